package org.fhirbeam.pipeline;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.runners.spark.SparkContextOptions;
import org.apache.beam.runners.spark.SparkPipelineResult;
import org.apache.beam.runners.spark.SparkRunner;
import org.apache.beam.runners.spark.coders.SparkRunnerKryoRegistrator;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/** The runners a job can use, and the only place that builds runner-specific options. */
public enum Runner {
  /** Beam's DirectRunner in this JVM, using every core. */
  DIRECT,
  /** Beam's Spark runner on a local Spark ({@code local[N]}, N = the cores) in this JVM. */
  SPARK;

  /**
   * The local Spark context of this JVM's run, started by {@link #startLocalSpark} while the job is planned. Spark
   * allows one context per JVM, hence one static field, as in Beam's own context factory.
   */
  private static CompletableFuture<JavaSparkContext> localSpark;
  /** Whether {@link #localSpark} is the cluster's own context (Databricks'), which the run must not stop. */
  private static boolean clusterSpark;

  /**
   * Starts in the background what every run of this runner needs and the job does not decide, so that it overlaps
   * the planning instead of following it: Beam's registry of pipeline options (about 1 s of one core here, since
   * Beam checks every options interface on the classpath, Spark's among them, and Jackson loads its modules on
   * first use) and, for Spark, the local context ({@link #startLocalSpark}).
   */
  void prepare() {
    prepare(Deployment.detect(Map.of()));
  }

  /**
   * As {@link #prepare()}, where {@code deployment} says: on Databricks the Spark runner uses the cluster's own
   * context ({@link #useClusterSpark}), which exists before the job and outlives it.
   */
  void prepare(Deployment deployment) {
    Thread options = new Thread(() -> {
      try {
        PipelineOptionsFactory.create();
      } catch (RuntimeException e) {
        // The run creates its options itself and reports what failed.
      }
    }, "fhirbeam-options");
    options.setDaemon(true);
    options.start();
    if (this == SPARK && deployment.databricks()) {
      useClusterSpark();
    } else if (this == SPARK) {
      startLocalSpark();
    }
  }

  /**
   * The run uses the context of the cluster it runs on (Databricks starts it before the job): Spark's
   * {@code getOrCreate}, never stopped (by {@link #stopLocalSpark} or Beam, which leaves a provided context running).
   */
  static synchronized void useClusterSpark() {
    if (localSpark != null) {
      throw new IllegalStateException("a Spark context is already in use");
    }
    clusterSpark = true;
    localSpark = CompletableFuture.supplyAsync(() -> JavaSparkContext.fromSparkContext(
        org.apache.spark.SparkContext.getOrCreate()));
  }

  /** The local Spark context of this JVM's run, started or starting; null when none is. */
  private static synchronized CompletableFuture<JavaSparkContext> localSpark() {
    return localSpark;
  }

  /**
   * Starts the local Spark context ({@code local[N]}, N = the cores) in the background, so that its second or so
   * of start-up overlaps the planning instead of following it. The run then uses it as a provided context, as
   * it would use a cluster's; {@link #stopLocalSpark} stops it.
   */
  static synchronized void startLocalSpark() {
    if (localSpark != null) {
      throw new IllegalStateException("a local Spark context is already running");
    }
    localSpark = CompletableFuture.supplyAsync(() -> {
      SparkConf conf = new SparkConf()
          // local[N], not local[*]: Spark then needs no staged jars, and the cores are known. A master given as Spark's
          // own spark.master property (as spark-submit gives it; local[N,F] retries a failed task F - 1 times) wins.
          .setMaster(System.getProperty("spark.master", "local[" + Runtime.getRuntime().availableProcessors() + "]"))
          .setAppName("fhirbeam")
          // What Beam's context factory sets on the contexts it makes. Kryo also moves cached blocks between executors:
          // with Java serialization, an executor fetching another's cached partition fails (Beam's WindowedValue is
          // not Serializable) and Spark computes the partition again, mapping its files twice.
          .set("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
          .set("spark.kryo.registrator", SparkRunnerKryoRegistrator.class.getName());
      // Nobody looks at the web UI of a Spark that lives for one local run; starting it costs about 0.5 s.
      // A value the user set (a spark.* system property, which SparkConf reads) stays.
      conf.setIfMissing("spark.ui.enabled", "false");
      // Cached partitions of a finished run are dropped without waiting for the executors: on the standalone cluster
      // one in three runs stopped its context 120 s after committing (spark.rpc.askTimeout), its cleaner waiting for
      // an executor's reply to the removal of a cached RDD.
      conf.setIfMissing("spark.cleaner.referenceTracking.blocking", "false");
      // A stream's first micro-batch starts at once, not at the next whole interval (FirstTickClock).
      conf.setIfMissing("spark.streaming.clock", FirstTickClock.class.getName());
      return new JavaSparkContext(conf);
    });
  }

  /** Stops the context {@link #startLocalSpark} started, if any (Beam leaves a provided context running). */
  static synchronized void stopLocalSpark() {
    if (clusterSpark) {
      localSpark = null; // the cluster's: it goes on running
      clusterSpark = false;
      return;
    }
    if (localSpark != null) {
      CompletableFuture<JavaSparkContext> started = localSpark;
      localSpark = null;
      started.thenAccept(JavaSparkContext::stop).exceptionally(e -> null).join();
    }
  }

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
        SparkContextOptions o = PipelineOptionsFactory.create().as(SparkContextOptions.class);
        o.setRunner(SparkRunner.class);
        CompletableFuture<JavaSparkContext> started = localSpark();
        if (started != null) {
          o.setUsesProvidedSparkContext(true);
          o.setProvidedSparkContext(started.join());
        } else {
          // Beam starts a context of its own: local[N], not local[*], since Beam skips staging the classpath only
          // for masters matching local[digits] (with local[*] Spark copied every jar before the first task).
          o.setSparkMaster("local[" + Runtime.getRuntime().availableProcessors() + "]");
          if (System.getProperty("spark.ui.enabled") == null) {
            System.setProperty("spark.ui.enabled", "false");
          }
        }
        o.setEnableSparkMetricSinks(false);
        o.setAppName(jobName);
        o.setJobName(jobName);
        yield o;
      }
    };
  }

  /**
   * Options for a streaming job on this runner: {@link #options}, with the source read as a primitive (Spark's
   * streaming mode runs no splittable DoFn, and Beam would otherwise wrap an unbounded source in one) and, on the
   * DirectRunner, a thread per core: a stream's reader goes on polling while a window's records are mapped and
   * committed, and the partitions of a window are mapped side by side.
   */
  PipelineOptions streamOptions(String jobName, boolean runnerChecks, java.nio.file.Path checkpoints) {
    PipelineOptions o = options(jobName, runnerChecks);
    org.apache.beam.sdk.options.ExperimentalOptions.addExperiment(
        o.as(org.apache.beam.sdk.options.ExperimentalOptions.class), "use_deprecated_read");
    if (this == DIRECT) {
      o.as(DirectOptions.class).setTargetParallelism(Math.max(2, Runtime.getRuntime().availableProcessors()));
    } else {
      // Micro-batches of a second; Spark streaming keeps its state (open windows, readers' checkpoints) in a folder
      // of the run's own: one left by an earlier run would bring back that run's graph instead of this one.
      SparkContextOptions spark = o.as(SparkContextOptions.class);
      spark.setStreaming(true);
      spark.setBatchIntervalMillis(STREAM_BATCH_MILLIS);
      spark.setCheckpointDir(checkpoints.toString());
    }
    return o;
  }

  /** The Spark runner's micro-batch interval for streaming jobs. */
  static final long STREAM_BATCH_MILLIS = 1000;

  /**
   * The runner that executed a pipeline, told by the type of the result it returned rather than by the options
   * that asked for it, so that a run which silently fell back to another runner says so (and tests notice).
   */
  static Runner executed(PipelineResult result) {
    if (result instanceof DirectRunner.DirectPipelineResult) {
      return DIRECT;
    }
    if (result instanceof SparkPipelineResult) {
      return SPARK;
    }
    throw new IllegalStateException("the pipeline ran on a runner fhirbeam does not know ("
        + result.getClass().getName() + ")");
  }

  /**
   * How many files one worker maps at a time (see {@link org.fhirbeam.transforms.MapWithDuckDb}): the DirectRunner
   * runs one element at a time here (one runner thread: with a second one free, its scheduler spins beside DuckDB),
   * so its worker maps as many files at once as there are cores; Spark runs a task per core itself.
   */
  int localConcurrency() {
    return this == DIRECT ? Runtime.getRuntime().availableProcessors() : 1;
  }

  /**
   * How many tasks the runner maps at once: the driver's cores on the DirectRunner; on Spark, the context's default
   * parallelism (a core per task: the cores of {@code local[N]}, or of a cluster's executors, not the driver's).
   */
  int parallelism() {
    if (this == SPARK) {
      CompletableFuture<JavaSparkContext> started = localSpark();
      if (started != null) {
        return Math.max(1, started.join().defaultParallelism());
      }
    }
    return Runtime.getRuntime().availableProcessors();
  }

  /**
   * Whether the workers run on this machine and see its disk: the DirectRunner's, and a local Spark's
   * ({@code local[N]}); not the executors of a cluster (a master such as {@code spark://...}, or Databricks').
   */
  boolean workersShareDisk() {
    if (this == SPARK) {
      CompletableFuture<JavaSparkContext> started = localSpark();
      return started == null || started.join().sc().isLocal();
    }
    return true;
  }

  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
