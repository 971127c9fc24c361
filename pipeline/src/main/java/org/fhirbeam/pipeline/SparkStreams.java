package org.fhirbeam.pipeline;

import java.io.IOException;
import java.util.Map;
import org.apache.beam.runners.spark.io.MicrobatchSource;
import org.apache.beam.runners.spark.metrics.MetricsAccumulator;
import org.apache.beam.runners.spark.util.GlobalWatermarkHolder;
import org.apache.beam.sdk.PipelineResult;
import org.fhirbeam.data.Counters;
import org.joda.time.Duration;

/**
 * What a streaming job on Beam's Spark runner needs from its driver. The driver commits the windows the tasks hand
 * over ({@link StreamOutput#commitReady}), and since the runner's streaming mode (DStream micro-batches) never ends by
 * itself (Beam issue 18416), it ends the run: once every reader of every source has counted itself done
 * ({@link Counters#streamDone}: a bound, or SIGINT/SIGTERM) and the records committed have reached the records the
 * readers emitted ({@link Counters#streamRead}, counted by the same tasks as their being done), on two looks in a row
 * (a task's counters reach the driver one by one), it stops the streaming context. All of it from Spark's metrics,
 * which reach the driver from the workers of a cluster too. The runner's watermarks and metrics live in static fields
 * of this JVM, cleared before each run so that an earlier run's are not taken for this one's.
 */
final class SparkStreams {
  /**
   * How long after every reader is done, besides a window's length, the records read may stay uncommitted before the
   * run fails.
   */
  private static final long LAST_MILLIS = 60_000;

  private SparkStreams() {}

  /** Forgets what an earlier streaming run in this JVM left in the runner's static state. */
  static void reset() {
    GlobalWatermarkHolder.clear();
    MetricsAccumulator.clear();
  }

  /**
   * Commits the windows handed over into {@code out} until every reader is done and every record read is
   * committed, then stops the run; a failed micro-batch is thrown as the runner reports it. {@code window} is the
   * job's window length, {@code sources} the sources it reads.
   */
  static void runToTheEnd(PipelineResult result, StreamOutput out, java.time.Duration window,
      java.util.Set<String> sources) throws IOException {
    long doneAt = -1;
    boolean endSeen = false;
    try {
      while (true) {
        PipelineResult.State state = result.waitUntilFinish(Duration.millis(StreamRunner.COMMIT_POLL_MILLIS));
        out.commitReady();
        if (state != null && state.isTerminal()) {
          if (state != PipelineResult.State.DONE && state != PipelineResult.State.CANCELLED) {
            throw new IllegalStateException("pipeline ended in state " + state);
          }
          return;
        }
        Map<String, Long> counters = PipelineCounts.whileRunning(result);
        if (!readersDone(counters, sources)) {
          continue;
        }
        if (doneAt < 0) {
          doneAt = System.currentTimeMillis();
        }
        long read = recordsRead(counters);
        // Records a runner read again are emitted (and counted) twice, and dropped from the windows once.
        boolean end = out.recordsCommitted() + out.recordsReplayed() >= read;
        if (end && endSeen) {
          return;
        }
        endSeen = end;
        if (System.currentTimeMillis() - doneAt > window.toMillis() + LAST_MILLIS) {
          throw new IllegalStateException("every reader was done " + (System.currentTimeMillis() - doneAt) / 1000
              + " s ago, and " + out.recordsCommitted() + " of the " + read + " records read are committed");
        }
      }
    } finally {
      // Without waiting for the micro-batch under way, as the runner's cancel does (a second or two): every record read
      // is committed, or the run has failed.
      scala.Option<org.apache.spark.streaming.StreamingContext> active =
          org.apache.spark.streaming.StreamingContext.getActive();
      if (active.isDefined()) {
        active.get().stop(false, false);
        // The runner's listener checkpoints its metrics into the run's checkpoint folder when a micro-batch ends: the
        // last one's must be done before the folder is deleted. (waitUntilEmpty is Spark's own, public in bytecode;
        // a vendor's Spark without it only makes the folder's deletion a warning.)
        try {
          active.get().sparkContext().listenerBus().waitUntilEmpty(10_000);
        } catch (java.util.concurrent.TimeoutException | RuntimeException | LinkageError e) {
          // the folder's deletion then says what is wrong
        }
      }
      result.cancel();
      try {
        MicrobatchSource.clearCache(); // closes the readers the runner keeps between micro-batches
      } catch (RuntimeException e) {
        // no reader was ever cached
      }
    }
  }

  /** The records the readers of every stream source have emitted, from the pipeline's {@code counters}. */
  static long recordsRead(Map<String, Long> counters) {
    return counters.entrySet().stream().filter(e -> e.getKey().startsWith(Counters.streamRead("")))
        .mapToLong(Map.Entry::getValue).sum();
  }

  /** Whether every reader of each of {@code sources} has counted itself done: as many as they say there are. */
  static boolean readersDone(Map<String, Long> counters, java.util.Set<String> sources) {
    Map<String, java.util.Set<String>> done = new java.util.HashMap<>();
    Map<String, Integer> readers = new java.util.HashMap<>();
    counters.forEach((name, n) -> {
      if (name.startsWith(Counters.STREAM_DONE_PREFIX) && n > 0) {
        String[] p = name.substring(Counters.STREAM_DONE_PREFIX.length()).split("/");
        done.computeIfAbsent(p[0], k -> new java.util.HashSet<>()).add(p[1]);
        readers.put(p[0], Integer.parseInt(p[2]));
      }
    });
    return sources.stream().allMatch(s -> done.containsKey(s) && done.get(s).size() == readers.get(s));
  }
}
