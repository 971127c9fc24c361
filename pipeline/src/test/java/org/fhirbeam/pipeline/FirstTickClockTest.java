package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.lessThanOrEqualTo;

import org.apache.spark.streaming.util.RecurringTimer;
import org.junit.jupiter.api.Test;
import scala.runtime.BoxedUnit;

/** A stream's first micro-batch on a local Spark starts at once; the next ones an interval apart. */
class FirstTickClockTest {
  @Test
  void sparksTimerStartsOneMillisecondAfterTheClocksFirstReadingAndKeepsTheSystemClocksPace() throws Exception {
    FirstTickClock clock = new FirstTickClock();
    // Spark's own timer, as its job generator makes it: the first batch time is the next multiple of the interval.
    RecurringTimer timer = new RecurringTimer(clock, Runner.STREAM_BATCH_MILLIS, time -> BoxedUnit.UNIT, "test");
    long start = timer.getStartTime();
    long reading = clock.getTimeMillis();
    assertThat(start % Runner.STREAM_BATCH_MILLIS, equalTo(0L));
    assertThat(start - reading, lessThanOrEqualTo(1L));

    // Moved once: it runs at the system clock's pace. Each reading between two of the system clock's, so that a pause
    // of the test between them cannot pass for a move.
    long[] ahead = aheadOfTheSystemClock(clock);
    Thread.sleep(30);
    long[] later = aheadOfTheSystemClock(clock);
    assertThat("the ranges overlap", later[0] <= ahead[1] && ahead[0] <= later[1], is(true));
    assertThat(ahead[1], lessThanOrEqualTo(Runner.STREAM_BATCH_MILLIS));

    long target = clock.getTimeMillis() + 40;
    assertThat(clock.waitTillTime(target), greaterThanOrEqualTo(target));
    assertThat(clock.getTimeMillis(), greaterThanOrEqualTo(target));
  }

  /** How far ahead of the system clock {@code clock} is: at least [0] and at most [1] ms. */
  private static long[] aheadOfTheSystemClock(FirstTickClock clock) {
    long before = System.currentTimeMillis();
    long reading = clock.getTimeMillis();
    long after = System.currentTimeMillis();
    return new long[] {reading - after, reading - before};
  }

  @Test
  void theLocalSparkContextOfARunUsesIt() {
    Runner.SPARK.prepare();
    try {
      Runner.SPARK.parallelism(); // waits for the context prepare() starts in the background
      assertThat(org.apache.spark.SparkContext.getOrCreate().getConf().get("spark.streaming.clock"),
          equalTo(FirstTickClock.class.getName()));
    } finally {
      Runner.stopLocalSpark();
    }
  }
}
