package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricResults;
import org.apache.beam.sdk.transforms.Create;
import org.joda.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The runner a run reports is the one that executed it, told by the pipeline's result, not by its options. */
class RunnerTest {
  @ParameterizedTest
  @EnumSource(Runner.class)
  void theResultOfEachRunnersPipelineNamesThatRunner(Runner runner) {
    // As a run does it: Spark on the local context prepare() starts, stopped afterwards (one per JVM).
    runner.prepare();
    try {
      Pipeline p = Pipeline.create(runner.options("runner-test", true));
      p.apply(Create.of(1, 2, 3));
      PipelineResult result = p.run();
      result.waitUntilFinish();
      assertThat(Runner.executed(result), equalTo(runner));
    } finally {
      Runner.stopLocalSpark();
    }
  }

  @Test
  void sparkMapsAsManyTasksAtOnceAsItsContextHasCoresNotTheDriver() {
    int cores = Runtime.getRuntime().availableProcessors();
    System.setProperty("spark.master", "local[" + (cores + 3) + "]");
    try {
      Runner.SPARK.prepare();
      assertThat(Runner.SPARK.parallelism(), equalTo(cores + 3));
    } finally {
      Runner.stopLocalSpark();
      System.clearProperty("spark.master");
    }
    assertThat(Runner.DIRECT.parallelism(), equalTo(cores));
  }

  @Test
  void aResultOfAnotherRunnerIsAnError() {
    PipelineResult other = new PipelineResult() {
      @Override
      public State getState() {
        return State.DONE;
      }

      @Override
      public State cancel() {
        return State.DONE;
      }

      @Override
      public State waitUntilFinish(Duration duration) {
        return State.DONE;
      }

      @Override
      public State waitUntilFinish() {
        return State.DONE;
      }

      @Override
      public MetricResults metrics() {
        throw new UnsupportedOperationException();
      }
    };
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> Runner.executed(other));
    assertThat(e.getMessage(), equalTo("the pipeline ran on a runner fhirbeam does not know ("
        + other.getClass().getName() + ")"));
  }
}
