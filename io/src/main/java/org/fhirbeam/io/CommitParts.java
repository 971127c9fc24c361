package org.fhirbeam.io;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;

/**
 * Moves the part files of successful work to their targets under the output root, and writes the run's figures: the
 * tallies the committed parts carry, with the lines each file set holds, added up ({@link #readTally}). Only parts
 * that reach this step (outputs of committed bundles) are moved and counted; parts of failed attempts stay behind
 * in the parts directory and are deleted with it. Moving is idempotent, so a retried bundle is harmless.
 */
public final class CommitParts extends PTransform<PCollection<PartFile>, PDone> {
  /** The file beside the committed parts that holds the run's figures. */
  static final String TALLY_FILE = ".tally.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String directory;

  private CommitParts(String directory) {
    this.directory = directory;
  }

  public static CommitParts to(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("directory is required");
    }
    return new CommitParts(directory);
  }

  /** The figures of the parts a finished pipeline committed into {@code directory}. */
  public static Tally readTally(Path directory) throws IOException {
    Map<String, Long> counts = JSON.readValue(directory.resolve(TALLY_FILE).toFile(),
        new TypeReference<Map<String, Long>>() {});
    Tally.Builder tally = Tally.builder();
    counts.forEach(tally::add);
    return tally.build();
  }

  @Override
  public PDone expand(PCollection<PartFile> input) {
    input.apply("MoveParts", ParDo.of(new MoveFn(directory)))
        .setCoder(SerializableCoder.of(Tally.class))
        .apply("AddUpTallies", Combine.globally(new AddUp()))
        .apply("WriteTally", ParDo.of(new WriteTallyFn(directory)));
    return PDone.in(input.getPipeline());
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("directory", directory));
  }

  static final class MoveFn extends DoFn<PartFile, Tally> {
    private final String directory;

    MoveFn(String directory) {
      this.directory = directory;
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<Tally> out) throws IOException {
      out.output(part.tally().plus(Tally.of(Counters.committedLines(part.fileSet()), part.lines())));
      Path from = Path.of(part.path());
      if (part.lines() == 0) {
        Files.deleteIfExists(from);
        return;
      }
      Path to = Path.of(directory).resolve(part.target());
      Files.createDirectories(to.getParent());
      if (Files.exists(to) && !Files.exists(from)) {
        return; // moved by an earlier attempt of this bundle
      }
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
    }
  }

  /** Adds tallies up; nothing committed adds up to the empty tally. */
  static final class AddUp extends Combine.BinaryCombineFn<Tally> {
    @Override
    public Tally apply(Tally left, Tally right) {
      return left.plus(right);
    }

    @Override
    public Tally identity() {
      return Tally.EMPTY;
    }
  }

  static final class WriteTallyFn extends DoFn<Tally, Void> {
    private final String directory;

    WriteTallyFn(String directory) {
      this.directory = directory;
    }

    @ProcessElement
    public void process(@Element Tally tally) throws IOException {
      Path file = Path.of(directory).resolve(TALLY_FILE);
      Path written = file.resolveSibling(TALLY_FILE + ".tmp");
      JSON.writeValue(written.toFile(), tally.counts());
      Files.move(written, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
