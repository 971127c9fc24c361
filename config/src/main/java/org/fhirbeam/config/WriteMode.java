package org.fhirbeam.config;

/**
 * How a sink treats what earlier runs left in it. Whatever the mode, a run that fails leaves the previous state.
 */
public enum WriteMode {
  /** This run's resources replace the previous ones. */
  OVERWRITE,
  /** The previous resources stay and this run's are added, duplicates included. */
  APPEND,
  /**
   * One resource per type and id: the one with the newest {@code meta.lastUpdated} wins; when they tie or either
   * has none, this run's wins.
   */
  UPSERT
}
