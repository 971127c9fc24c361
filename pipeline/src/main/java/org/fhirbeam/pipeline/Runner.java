package org.fhirbeam.pipeline;

import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.runners.spark.SparkPipelineOptions;
import org.apache.beam.runners.spark.SparkRunner;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/** The runners a job can use, and the only place that builds runner-specific options. */
public enum Runner {
  /** Beam's DirectRunner in this JVM, using every core. */
  DIRECT,
  /** Beam's Spark runner on a local Spark ({@code local[N]}, N = the cores) in this JVM. */
  SPARK;

  /**
   * Options for this runner. {@code runnerChecks} turns on the DirectRunner's immutability and encodability
   * checks: tests keep them on; real runs turn them off since they cost 7-15x here.
   */
  PipelineOptions options(String jobName, boolean runnerChecks) {
    return switch (this) {
      case DIRECT -> {
        DirectOptions o = PipelineOptionsFactory.create().as(DirectOptions.class);
        o.setRunner(DirectRunner.class);
        o.setBlockOnRun(false);
        // One runner thread: the work runs inside DuckDB, which uses the cores itself, and the DirectRunner's
        // monitor busy-polls on a runner thread whenever one is free, halving DuckDB's speed on two cores.
        o.setTargetParallelism(1);
        o.setEnforceImmutability(runnerChecks);
        o.setEnforceEncodability(runnerChecks);
        o.setJobName(jobName);
        yield o;
      }
      case SPARK -> {
        SparkPipelineOptions o = PipelineOptionsFactory.create().as(SparkPipelineOptions.class);
        o.setRunner(SparkRunner.class);
        // local[N], not local[*]: Beam skips staging the classpath only for masters matching local[digits], and
        // with local[*] Spark copied every jar through its file server before the first task (seconds per run).
        o.setSparkMaster("local[" + Runtime.getRuntime().availableProcessors() + "]");
        // Nobody looks at the web UI of a Spark that lives for one local run; starting it costs about 0.5 s.
        // Spark reads spark.* system properties into the context's configuration; a value set by the user stays.
        if (System.getProperty("spark.ui.enabled") == null) {
          System.setProperty("spark.ui.enabled", "false");
        }
        o.setEnableSparkMetricSinks(false);
        o.setAppName(jobName);
        o.setJobName(jobName);
        yield o;
      }
    };
  }

  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
