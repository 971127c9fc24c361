package org.fhirbeam.io;

import java.io.Serializable;
import java.nio.file.Path;
import java.util.UUID;
import org.fhirbeam.data.Tally;

/**
 * An NDJSON file written by one worker, not yet part of the output.
 *
 * @param target where it goes, relative to the output root, e.g. {@code fhir/Patient-1b2c3d4e-0.ndjson}
 * @param path where the worker wrote it
 * @param lines how many lines it holds
 * @param tally what the stages counted about the work this part came from (a task's figures ride on one of its
 *     parts), added up over the parts a run commits
 */
public record PartFile(String target, String path, long lines, Tally tally) implements Serializable {
  /** A part that carries no figures. */
  public PartFile(String target, String path, long lines) {
    this(target, path, lines, Tally.EMPTY);
  }

  /** The folder of resource parts in the output. */
  public static final String RESOURCES = "fhir/";

  /** The file set of reject records, relative to the output root. */
  public static final String REJECTS = "rejects/rejects";

  /** A part of reject records from one stage of work on part {@code name}. */
  public static PartFile rejects(String name, String stage, String path, long lines) {
    return new PartFile(REJECTS + "-" + name + "-" + stage + ".ndjson", path, lines);
  }

  /**
   * A new file beside part file {@code path}, for what one attempt of a stage makes of it ({@code what}): its name
   * is the attempt's own, since a runner may run two attempts of a stage at once (Spark recomputes a cached partition
   * it cannot find while the first computation still runs, and retries), and two writers of one file would corrupt
   * it. Only the outputs an attempt emits are committed, under their deterministic targets.
   */
  public static Path beside(String path, String what) {
    Path file = Path.of(path);
    return file.resolveSibling(file.getFileName() + "." + what + "-" + UUID.randomUUID().toString().substring(0, 8));
  }

  /**
   * Whether task {@code id} made this part: a task names its parts by its id ({@code <file set>-<id>-<n>}), and each
   * stage names what it makes of a part by that part's name, so every part's target holds the id of the task it came
   * from.
   */
  public boolean madeBy(String id) {
    return target.contains("-" + id + "-");
  }

  /** This part carrying {@code more} figures besides its own. */
  public PartFile plus(Tally more) {
    return new PartFile(target, path, lines, tally.plus(more));
  }

  /** The file set the part belongs to: {@code fhir/<Type>} for resources, {@link #REJECTS} for rejects. */
  public String fileSet() {
    return target.substring(0, target.indexOf('-'));
  }

  /** Whether this part holds resources (rather than rejects). */
  public boolean holdsResources() {
    return target.startsWith(RESOURCES);
  }

  /** The target's name without the resource folder and {@code .ndjson}, e.g. {@code Patient-1b2c3d4e-0}. */
  public String resourcePartName() {
    return target.substring(RESOURCES.length(), target.length() - ".ndjson".length());
  }
}
