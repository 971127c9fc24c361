package org.fhirbeam.pipeline;

import java.io.IOException;
import java.util.Map;
import org.apache.beam.runners.spark.io.MicrobatchSource;
import org.apache.beam.runners.spark.metrics.MetricsAccumulator;
import org.apache.beam.runners.spark.util.GlobalWatermarkHolder;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.fhirbeam.data.Counters;
import org.joda.time.Duration;

/**
 * What a streaming job on Beam's Spark runner needs from its driver. The runner's streaming mode (DStream
 * micro-batches) never ends by itself, even once every source's watermark has reached the end of time (Beam issue
 * 18416), so the driver watches the watermarks the runner keeps for each source and the job's counters: once every
 * source is at the end of time (its readers are done: a bound, or SIGINT/SIGTERM) and the records committed have
 * reached the records mapped, the last window is committed and the driver stops the streaming context. The runner's
 * watermarks and metrics live in static fields of this JVM, cleared before each run so that an earlier run's end of
 * time is not taken for this one's.
 */
final class SparkStreams {
  /**
   * How many micro-batches after the end of time the records mapped may stay uncommitted before the run fails: their
   * windows fire one or two micro-batches after it, and commit in a few.
   */
  private static final int LAST_BATCHES = 60;

  private SparkStreams() {}

  /** Forgets what an earlier streaming run in this JVM left in the runner's static state. */
  static void reset() {
    GlobalWatermarkHolder.clear();
    MetricsAccumulator.clear();
  }

  /**
   * Waits until every source is done and the windows are committed, then stops the run; a failed micro-batch is
   * thrown as the runner reports it.
   */
  static void runToTheEnd(PipelineResult result) throws IOException {
    long batch = Runner.STREAM_BATCH_MILLIS;
    long endedAt = -1;
    try {
      while (true) {
        PipelineResult.State state = result.waitUntilFinish(Duration.millis(batch / 4));
        if (state != null && state.isTerminal()) {
          if (state != PipelineResult.State.DONE && state != PipelineResult.State.CANCELLED) {
            throw new IllegalStateException("pipeline ended in state " + state);
          }
          return;
        }
        Map<Integer, GlobalWatermarkHolder.SparkWatermarks> watermarks = GlobalWatermarkHolder.get(batch);
        boolean atEnd = watermarks != null && !watermarks.isEmpty() && watermarks.values().stream()
            .allMatch(w -> !w.getHighWatermark().isBefore(BoundedWindow.TIMESTAMP_MAX_VALUE));
        if (!atEnd) {
          continue;
        }
        long batchTime = GlobalWatermarkHolder.getLastWatermarkedBatchTime();
        if (endedAt < 0) {
          endedAt = batchTime;
        }
        Map<String, Long> counters = PipelineCounts.whileRunning(result);
        long mapped = counters.entrySet().stream().filter(e -> e.getKey().startsWith(Counters.streamRecords("")))
            .mapToLong(Map.Entry::getValue).sum();
        if (counters.getOrDefault(Counters.STREAM_COMMITTED, 0L) >= mapped) {
          return;
        }
        if (batchTime >= endedAt + LAST_BATCHES * batch) {
          throw new IllegalStateException(LAST_BATCHES + " micro-batches after every source was done, "
              + counters.getOrDefault(Counters.STREAM_COMMITTED, 0L) + " of the " + mapped + " records mapped are"
              + " committed");
        }
      }
    } finally {
      result.cancel();
      try {
        MicrobatchSource.clearCache(); // closes the readers the runner keeps between micro-batches
      } catch (RuntimeException e) {
        // no reader was ever cached
      }
    }
  }
}
