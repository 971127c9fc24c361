package org.fhirbeam.pipeline;

import java.io.IOException;
import java.util.Map;
import java.util.function.DoubleSupplier;

/**
 * How a run becomes the output: what is prepared before the graph runs, where the graph's tasks put their parts,
 * and how the run is committed once its counts balance. {@link JobRunner} plans, runs the graph and checks the
 * counts; everything about the output is its committer's. One per kind of output: {@link LocalCommit} (a local
 * directory: atomic renames, and the DuckDB load) and {@link ObjectStoreCommit} (object storage and Volumes: a
 * manifest written last); one that commits each window of a stream plugs in beside them. Delta tables are a sink
 * beside the output, not an output: {@link DeltaCommit} commits them when the output's committer has the run's
 * quality figures, just before it commits ({@link Beside}).
 */
interface Committer extends AutoCloseable {
  /** What commits beside the output, just before it: the Delta tables. */
  interface Beside {
    /**
     * Commits, given the run's quality report (null for a run without one: no DuckDB load, nothing measured);
     * returns the tables' versions.
     */
    RunSummary.Delta commit(QualityReport report) throws IOException;
  }

  /** The folder the tasks write their parts into before they commit them: one every worker sees. */
  String partsDirectory();

  /**
   * Where the tasks commit their parts (a path or a URI), and where the figures of what they committed are read
   * from once the graph has finished.
   */
  String stagingRoot();

  /**
   * Whether the tasks copy their parts through Beam's file systems (compressing them and writing Parquet as the
   * sinks ask, and measuring the resources for the quality report) rather than move them by renames.
   */
  boolean copiesParts();

  /** The DuckDB file the run loads, or null when it loads none. */
  String database();

  /**
   * Makes the run the output: {@code counted} is what its tasks committed, and balances; {@code stages} the seconds
   * of its steps so far, which the commit adds its own to; {@code elapsed} the seconds since the run began. Returns
   * the summary of the committed run. {@code beside} (null for nothing) commits once the run's quality figures are
   * known, before the output; what it returns is in the summary. Throws when the run cannot be committed, the
   * previous output left as it was.
   */
  RunSummary commit(RunSummary counted, PipelineCounts tasks, Progress progress, Map<String, Double> stages,
      DoubleSupplier elapsed, Beside beside) throws IOException;

  /** Runs {@code beside} for {@code summary}'s run, timed as stage {@code commit_delta}; the summary with it. */
  static RunSummary commitBeside(Beside beside, QualityReport report, RunSummary summary, Progress progress,
      Map<String, Double> stages) throws IOException {
    if (beside == null) {
      return summary;
    }
    progress.phase("committing Delta tables");
    long mark = System.nanoTime();
    RunSummary.Delta delta = beside.commit(report);
    stages.put("commit_delta", (System.nanoTime() - mark) / 1e9);
    return summary.withDelta(delta).withStage("commit_delta", stages.get("commit_delta"));
  }

  /** Releases what the committer took (a lock, a database, scratch folders); the run's outcome is decided by then. */
  @Override
  void close();
}
