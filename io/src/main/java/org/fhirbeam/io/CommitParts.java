package org.fhirbeam.io;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import java.util.zip.CheckedInputStream;
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
 * in the parts directory and are deleted with it. Moving is idempotent, so a retried bundle is harmless. A root on
 * object storage ({@code s3://...}) gets each part uploaded by the task that commits it, and the figures name
 * each file with its lines, bytes and CRC32C ({@link #committedFiles}), for the manifest that commits the run.
 */
public final class CommitParts extends PTransform<PCollection<PartFile>, PDone> {
  /** The file beside the committed parts that holds the run's figures. */
  static final String TALLY_FILE = ".tally.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String directory;
  private final boolean gzipResources;

  private CommitParts(String directory, boolean gzipResources) {
    this.directory = directory;
    this.gzipResources = gzipResources;
  }

  public static CommitParts to(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("directory is required");
    }
    return new CommitParts(directory, false);
  }

  /**
   * The same commit, uploading resource parts gzip-compressed ({@code .ndjson.gz}) to a root on object storage. A
   * local root gets them as they are: the local run compresses its numbered files itself.
   */
  public CommitParts gzippingResources() {
    return new CommitParts(directory, true);
  }

  /**
   * The figures of the parts a finished pipeline committed into {@code directory} (a path or a URI); none when it
   * committed no part.
   */
  public static Tally readTally(String directory) throws IOException {
    if (!ObjectStorage.exists(directory + "/" + TALLY_FILE)) {
      return Tally.EMPTY;
    }
    Map<String, Long> counts = JSON.readValue(ObjectStorage.read(directory + "/" + TALLY_FILE),
        new TypeReference<Map<String, Long>>() {});
    Tally.Builder tally = Tally.builder();
    counts.forEach(tally::add);
    return tally.build();
  }

  /** A file uploaded to object storage: where under the root, and what it holds. */
  public record CommittedFile(String target, long lines, long bytes, long crc32c) {}

  private static final String FILE_LINES = "file_lines/";
  private static final String FILE_BYTES = "file_bytes/";
  private static final String FILE_CRC32C = "file_crc32c/";

  /** The files a run committed to object storage, by target. */
  public static List<CommittedFile> committedFiles(Tally tally) {
    Map<String, Long> bytes = tally.withPrefix(FILE_BYTES);
    Map<String, Long> crc = tally.withPrefix(FILE_CRC32C);
    List<CommittedFile> out = new ArrayList<>();
    tally.withPrefix(FILE_LINES).forEach((target, lines) -> out.add(new CommittedFile(target, lines,
        bytes.get(target), crc.get(target))));
    return out;
  }

  @Override
  public PDone expand(PCollection<PartFile> input) {
    input.apply("MoveParts", ParDo.of(new MoveFn(directory, gzipResources)))
        .setCoder(SerializableCoder.of(Tally.class))
        // Without the default for no input: that costs the DirectRunner a side input and two more steps, and a run
        // that committed nothing has nothing to add up (readTally).
        .apply("AddUpTallies", Combine.globally(new AddUp()).withoutDefaults())
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
    private final boolean gzipResources;

    MoveFn(String directory, boolean gzipResources) {
      this.directory = directory;
      this.gzipResources = gzipResources;
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<Tally> out) throws IOException {
      Tally committed = part.tally().plus(Tally.of(Counters.committedLines(part.fileSet()), part.lines()));
      Path from = Path.of(part.path());
      if (part.lines() == 0) {
        out.output(committed);
        Files.deleteIfExists(from);
        return;
      }
      if (ObjectStorage.isRemote(directory)) {
        boolean gzip = gzipResources && part.holdsResources();
        String target = gzip ? part.target() + ".gz" : part.target();
        Path upload = from;
        if (gzip) {
          upload = Path.of(part.path() + ".gz");
          try (InputStream in = Files.newInputStream(from);
              OutputStream to = FileTrees.gzip(Files.newOutputStream(upload))) {
            in.transferTo(to);
          }
        }
        // A retried bundle uploads the part again, under the same name: the object is replaced, not repeated.
        CRC32C crc = new CRC32C();
        long bytes;
        try (InputStream in = new CheckedInputStream(Files.newInputStream(upload), crc);
            OutputStream to = ObjectStorage.create(directory + "/" + target,
                gzip ? "application/gzip" : "application/x-ndjson")) {
          bytes = in.transferTo(to);
        }
        if (gzip) {
          Files.delete(upload);
        }
        out.output(committed.plus(Tally.builder().add(FILE_LINES + target, part.lines())
            .add(FILE_BYTES + target, bytes).add(FILE_CRC32C + target, crc.getValue()).build()));
        return;
      }
      out.output(committed);
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
      ObjectStorage.write(directory + "/" + TALLY_FILE, JSON.writeValueAsBytes(tally.counts()), "application/json");
    }
  }
}
