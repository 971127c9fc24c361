package org.fhirbeam.data;

/**
 * Names of the figures the stages count, in one place so writers and the reader cannot drift apart: the run's
 * figures travel as {@link Tally} entries with the parts they describe, and Beam counters of the same names show how
 * far a run has got while it runs.
 */
public final class Counters {
  /** The metric namespace of every fhirbeam counter. */
  public static final String NAMESPACE = "fhirbeam";

  private Counters() {}

  /** Rows a mapping read from its source. */
  public static String rowsIn(String mapping) {
    return "rows_in/" + mapping;
  }

  /**
   * How much of its files a mapping has mapped, in millionths of a file: a file's pieces add up to one million
   * ({@code ReadTask.fileShare}), so a run's progress can say how many files are done.
   */
  public static String filesMapped(String mapping) {
    return "files_mapped/" + mapping;
  }

  /** The unit of {@link #filesMapped}: one file. */
  public static final long FILE = 1_000_000;

  /** Bytes of its files a mapping has mapped (0 for what has no size, such as a database's rows). */
  public static String bytesMapped(String mapping) {
    return "bytes_mapped/" + mapping;
  }

  /** The stage of {@link #checked} that runs a mapping's FHIRPath rules. */
  public static final String RULES = "rules";
  /** The stage of {@link #checked} that validates a mapping's resources. */
  public static final String VALIDATION = "validation";

  /**
   * Resources of a mapping that a stage after the mapping ({@link #RULES}, {@link #VALIDATION}) has gone through,
   * kept or not, sampled or not: how far the stage has got.
   */
  public static String checked(String stage, String mapping) {
    return "checked/" + stage + "/" + mapping;
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

  /** Resources of a mapping that were validated. */
  public static String validated(String mapping) {
    return "validated/" + mapping;
  }

  /**
   * Resources of a mapping that validation moved to the rejects (counted in {@link #rejected} too, and taken off
   * {@link #mapped}'s count by whoever reads it).
   */
  public static String invalid(String mapping) {
    return "invalid/" + mapping;
  }

  /** The prefix of {@link #validatorRejected} counters. */
  public static final String VALIDATOR_REJECTED_PREFIX = "validator_rejected/";

  /**
   * Resources of a mapping that HAPI's validator rejected, by the message id of the first rejecting issue (their
   * reject records' rule): the part of {@link #rejectReason}'s {@code validation} stage that compiled checks did not
   * reject.
   */
  public static String validatorRejected(String mapping, String messageId) {
    return VALIDATOR_REJECTED_PREFIX + mapping + "/" + messageId;
  }

  /** The prefix of {@link #issue} counters. */
  public static final String ISSUE_PREFIX = "issue/";

  /** Validation issues of a mapping's resources, by severity, category and message id (which may hold '/'). */
  public static String issue(String mapping, String severity, String category, String messageId) {
    return ISSUE_PREFIX + mapping + "/" + severity + "/" + category + "/" + messageId;
  }

  /**
   * Resources of a mapping that a {@code reject} FHIRPath rule moved to the rejects (counted in {@link #rejected}
   * too, and taken off {@link #mapped}'s count by whoever reads it).
   */
  public static String ruleRejected(String mapping) {
    return "rule_rejected/" + mapping;
  }

  /**
   * Resources of a mapping that repeated the id of a resource mapped before them and were moved to the rejects
   * (counted in {@link #rejected} too, and taken off {@link #mapped}'s count by whoever reads it).
   */
  public static String duplicates(String mapping) {
    return "duplicates/" + mapping;
  }

  /** The prefix of {@link #checkFailed} counters. */
  public static final String CHECK_FAILED_PREFIX = "check_failed/";
  /** The prefix of {@link #checkTotal} counters. */
  public static final String CHECK_TOTAL_PREFIX = "check_total/";

  /**
   * Failures of a check counted by a stage ({@code valid_code}, {@code in_range}, a {@code warn} rule), by mapping,
   * check and element (empty for a rule; it may hold '/').
   */
  public static String checkFailed(String mapping, String check, String element) {
    return CHECK_FAILED_PREFIX + mapping + "/" + check + "/" + element;
  }

  /** What a check of {@link #checkFailed} looked at. */
  public static String checkTotal(String mapping, String check, String element) {
    return CHECK_TOTAL_PREFIX + mapping + "/" + check + "/" + element;
  }

  /** The prefix of {@link #columnPopulated} counters. */
  public static final String COLUMN_POPULATED_PREFIX = "column_populated/";

  /** Rows a mapping read in which a source column has a value (neither NULL nor empty); the column may hold '/'. */
  public static String columnPopulated(String mapping, String column) {
    return COLUMN_POPULATED_PREFIX + mapping + "/" + column;
  }

  /** Rows a mapping read from its files, without the lines that could not be read: the total of its columns. */
  public static String rowsRead(String mapping) {
    return "rows_read/" + mapping;
  }

  /** Records of a stream source mapped so far: shown while a streaming run goes (a Beam counter only). */
  public static String streamRecords(String source) {
    return "stream_records/" + source;
  }

  /**
   * Records of a stream source its readers have emitted: counted by the readers, in the same task as
   * {@link #streamDone}, so that a driver that sees every reader done sees every record read too (a Beam counter only).
   */
  public static String streamRead(String source) {
    return "stream_read/" + source;
  }

  /**
   * Records of a stream source's partitions that its readers have not read yet (the consumer's lag, summed over the
   * partitions it knows it for): a Beam gauge, shown while a streaming run goes.
   */
  public static String streamLag(String source) {
    return "stream_lag/" + source;
  }

  /** The prefix of {@link #streamDone}. */
  public static final String STREAM_DONE_PREFIX = "stream_done/";

  /**
   * Counted once by reader {@code split} of the {@code splits} readers of a stream source when it is done (its bound
   * reached, or asked to stop): a Beam counter only, by which the driver of a run on Spark knows every reader is.
   */
  public static String streamDone(String source, int split, int splits) {
    return STREAM_DONE_PREFIX + source + "/" + split + "/" + splits;
  }

  /**
   * Lines the committed parts of a file set hold ({@code fhir/<Type>}, or {@code rejects/rejects}): counted by the
   * task that commits each part, and never a Beam counter.
   */
  public static String committedLines(String fileSet) {
    return "committed/" + fileSet;
  }

  public static final String REJECT_REASON_PREFIX = "reject_reason/";

  /**
   * Committed reject records of a mapping at one stage by one rule ({@code mapping/stage/rule}): counted by the task
   * that commits each reject part, from the records themselves.
   */
  public static String rejectReason(String mapping, String stage, String rule) {
    return REJECT_REASON_PREFIX + mapping + "/" + stage + "/" + rule;
  }

  /** The prefix of {@link #populated} figures. */
  public static final String POPULATED_PREFIX = "populated/";

  /**
   * Committed resources of a mapping in which its value element at {@code position} (in mapping order) has a value:
   * counted by the task that measures each part, for the quality figures of a run without the DuckDB load.
   */
  public static String populated(String mapping, int position) {
    return POPULATED_PREFIX + mapping + "/" + position;
  }

  /** Committed resources of a mapping that were measured for {@link #populated}. */
  public static String measured(String mapping) {
    return "measured/" + mapping;
  }

  /** Resources of a type beyond the first with each id: the failures of the {@code duplicate_id} check. */
  public static String repeatedIds(String resourceType) {
    return "repeated_ids/" + resourceType;
  }
}
