package org.fhirbeam.data;

/**
 * Names of the Beam metric counters the stages keep and the run summary reads, in one place so writers and the
 * reader cannot drift apart.
 */
public final class Counters {
  /** The metric namespace of every fhirbeam counter. */
  public static final String NAMESPACE = "fhirbeam";

  private Counters() {}

  /** Rows a mapping read from its source. */
  public static String rowsIn(String mapping) {
    return "rows_in/" + mapping;
  }

  /** Rows a mapping turned into resources. */
  public static String mapped(String mapping) {
    return "mapped/" + mapping;
  }

  /**
   * Milliseconds a mapping's tasks spent in DuckDB, summed over tasks: reading, mapping and writing happen in
   * one query there.
   */
  public static String millis(String mapping) {
    return "ms/" + mapping;
  }

  /** Rows a mapping rejected. */
  public static String rejected(String mapping) {
    return "rejected/" + mapping;
  }
}
