package org.fhirbeam.transforms;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.PartFile;

/**
 * What a stage after the mapping (FHIRPath rules, invariants) does to a part of resources: each line is kept or
 * becomes a reject record, and the stage passes on the input part when it rejected nothing, else a part of the kept
 * resources and a part of the reject records. The input part stays (a retried bundle reads it again); the staging
 * directory goes at the end of the run.
 */
public final class ResourceFilter {
  private ResourceFilter() {}

  /** The decision on one resource (its line, and its 1-based number in the part): null keeps it, else its reject. */
  @FunctionalInterface
  public interface Decision {
    String rejectOf(String line, long number) throws IOException;
  }

  /**
   * Filters {@code part} with {@code decision}, writing the kept resources and the reject records beside it.
   *
   * @param what names the stage's files beside the part ({@code rules}: {@code rules-kept}, {@code rules-rejects})
   */
  public static Filtered filter(PartFile part, String what, Decision decision) throws IOException {
    Path kept = PartFile.beside(part.path(), what + "-kept");
    Path rejectsFile = PartFile.beside(part.path(), what + "-rejects");
    long lines = 0;
    long rejected = 0;
    try (BufferedReader in = Files.newBufferedReader(Path.of(part.path()), StandardCharsets.UTF_8);
        BufferedWriter keep = Files.newBufferedWriter(kept, StandardCharsets.UTF_8);
        BufferedWriter rejects = Files.newBufferedWriter(rejectsFile, StandardCharsets.UTF_8)) {
      String line;
      while ((line = in.readLine()) != null) {
        lines++;
        String reject = decision.rejectOf(line, lines);
        if (reject == null) {
          keep.write(line);
          keep.newLine();
        } else {
          rejected++;
          rejects.write(reject);
          rejects.newLine();
        }
      }
    }
    return new Filtered(part, lines, rejected, kept, rejectsFile);
  }

  /** A filtered part: how many resources it held and how many were rejected, and the files of each. */
  public record Filtered(PartFile part, long lines, long rejected, Path kept, Path rejects) {

    /**
     * Gives {@code out} the parts to pass on, the last carrying {@code tally}: the input part when nothing was
     * rejected (the stage's files go), else the kept resources and the reject records of {@code stage}.
     */
    public void output(String stage, Tally tally, Consumer<PartFile> out) throws IOException {
      if (rejected == 0) {
        Files.delete(kept);
        Files.delete(rejects);
        out.accept(part.plus(tally));
        return;
      }
      out.accept(new PartFile(part.target(), kept.toString(), lines - rejected, part.tally()));
      out.accept(PartFile.rejects(part.resourcePartName(), stage, rejects.toString(), rejected).plus(tally));
    }
  }
}
