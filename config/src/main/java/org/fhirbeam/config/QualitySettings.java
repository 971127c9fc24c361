package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Objects;

/**
 * The job's data-quality policies that change what is written.
 *
 * @param duplicateIds what happens to a resource whose id a resource of the same type mapped before it in the run
 *     already has
 */
public record QualitySettings(DuplicateIds duplicateIds) implements Serializable {
  /** Resources of one type that share an id within one run. */
  public enum DuplicateIds {
    /** The first keeps the id; every later one becomes a reject of stage {@code quality}, rule {@code duplicate_id}. */
    REJECT,
    /** All are written (the {@code duplicate_id} check still counts them). */
    KEEP,
    /** The run fails and replaces nothing. */
    FAIL
  }

  /** The defaults: duplicates are rejected. */
  public static final QualitySettings DEFAULTS = new QualitySettings(DuplicateIds.REJECT);

  public QualitySettings {
    Objects.requireNonNull(duplicateIds, "duplicateIds");
  }
}
