package org.fhirbeam.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;

/**
 * Moves the part files of successful work to their targets under the output root. Only
 * parts that reach this step (outputs of committed bundles) are moved; parts of failed attempts stay behind
 * in the parts directory and are deleted with it. Moving is idempotent, so a retried bundle is harmless.
 */
public final class CommitParts extends PTransform<PCollection<PartFile>, PDone> {
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

  @Override
  public PDone expand(PCollection<PartFile> input) {
    input.apply("MoveParts", ParDo.of(new MoveFn(directory)));
    return PDone.in(input.getPipeline());
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("directory", directory));
  }

  static final class MoveFn extends DoFn<PartFile, Void> {
    private final String directory;

    MoveFn(String directory) {
      this.directory = directory;
    }

    @ProcessElement
    public void process(@Element PartFile part) throws IOException {
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
}
