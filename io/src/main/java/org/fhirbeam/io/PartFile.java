package org.fhirbeam.io;

import java.io.Serializable;

/**
 * An NDJSON file written by one worker, not yet part of the output.
 *
 * @param target where it goes, relative to the output root, e.g. {@code fhir/Patient-1b2c3d4e-0.ndjson}
 * @param path where the worker wrote it
 * @param lines how many lines it holds
 */
public record PartFile(String target, String path, long lines) implements Serializable {
  /** The folder of resource parts in the output. */
  public static final String RESOURCES = "fhir/";

  /** The file set of reject records, relative to the output root. */
  public static final String REJECTS = "rejects/rejects";

  /** A part of reject records from one stage of work on part {@code name}. */
  public static PartFile rejects(String name, String stage, String path, long lines) {
    return new PartFile(REJECTS + "-" + name + "-" + stage + ".ndjson", path, lines);
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
