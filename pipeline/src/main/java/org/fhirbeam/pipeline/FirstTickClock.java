package org.fhirbeam.pipeline;

/**
 * The clock of a streaming job's micro-batches on a local Spark ({@code spark.streaming.clock}, which Spark reads when
 * the streaming context is made): the system clock, moved once so that the first micro-batch starts at once. Spark
 * starts a stream's first micro-batch at the next multiple of the batch interval after its clock's time, which with
 * the system clock left a fresh run waiting 0 to 1 s (0.5 s on average) before it read a record. This clock, at its
 * first reading (Spark's choice of that first batch time), sets itself that far ahead that the next multiple is 1 ms
 * away, and then runs at the system clock's pace: micro-batches still come one interval apart. Their times (what
 * Spark names a batch by, and what Beam's runner passes on as the batches' synchronized processing time) are then
 * ahead of the system clock by less than an interval. The job's windows and watermarks do not use them: its readers
 * stamp records and watermarks with the system clock. It is aligned to the runner's own interval
 * ({@link Runner#STREAM_BATCH_MILLIS}): a stream of another interval on the same context would still start within one
 * of its intervals, as with the system clock. Spark declares its {@code Clock} trait private to Spark; it is a public
 * interface to Java, and this implements the three methods Spark 3.5 declares.
 */
public final class FirstTickClock implements org.apache.spark.util.Clock {
  private final org.apache.spark.util.SystemClock system = new org.apache.spark.util.SystemClock();
  /** How far ahead of the system clock this one is; set at the first reading. */
  private volatile long offset = -1;

  /** Spark makes the clock by its class name, with this constructor. */
  public FirstTickClock() {}

  /** How far ahead this clock is, set from {@code now} (the system clock's time) at the first reading. */
  private long offset(long now) {
    if (offset < 0) {
      synchronized (this) {
        if (offset < 0) {
          offset = Runner.STREAM_BATCH_MILLIS - 1 - Math.floorMod(now, Runner.STREAM_BATCH_MILLIS);
        }
      }
    }
    return offset;
  }

  @Override
  public long getTimeMillis() {
    long now = system.getTimeMillis();
    return now + offset(now);
  }

  @Override
  public long nanoTime() {
    return system.nanoTime();
  }

  /** Spark's own wait, moved: it ends when Spark's timer is stopped as it would with the system clock. */
  @Override
  public long waitTillTime(long targetTime) {
    long ahead = offset(system.getTimeMillis());
    return system.waitTillTime(targetTime - ahead) + ahead;
  }
}
