package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.KafkaBatchSource;
import org.fhirbeam.io.ObjectStorage;

/**
 * Runs a streaming job until it is stopped (SIGINT or SIGTERM: the windows read so far are committed, and the run
 * ends normally) or reaches its bound ({@code --max-records}, {@code --duration}, {@code --drain}). Before the graph
 * starts, the output settles what a killed run left pending and gives the committed position of each partition
 * ({@link StreamOutput}); the readers start there, or where the source's {@code start} says for partitions the job
 * has not committed yet. Each window commits on its own; the terminal shows records read, records/s and windows
 * committed.
 */
final class StreamRunner {
  /** How a run ends by itself: after so many records per source, after so long, or at the ends of the partitions. */
  record Limits(long maxRecords, Duration duration, boolean drain) {
    static final Limits NONE = new Limits(0, null, false);
  }

  private final JobPlan plan;
  private final double planSeconds;
  private final Runner runner;
  private final Path output;
  private final Limits limits;
  private final boolean runnerChecks;
  private final PrintStream console;
  private final boolean terminal;
  private final Map<String, String> env;

  StreamRunner(JobPlan plan, double planSeconds, Runner runner, String output, Limits limits, boolean runnerChecks,
      PrintStream console, boolean terminal, Map<String, String> env) {
    if (ObjectStorage.isRemote(output)) {
      throw new InputException("--output " + output + ": a streaming job writes to a local folder");
    }
    this.plan = plan;
    this.planSeconds = planSeconds;
    this.runner = runner;
    this.output = Path.of(output).toAbsolutePath().normalize();
    this.limits = limits;
    this.runnerChecks = runnerChecks;
    this.console = console;
    this.terminal = terminal;
    this.env = env;
  }

  RunSummary run() {
    String runId = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
        .format(Instant.now()) + "-" + UUID.randomUUID().toString().substring(0, 8);
    long start = System.nanoTime();
    // The brokers are asked for the partitions' offsets while the output is settled: only the choice of where each
    // partition starts needs the positions the output has committed.
    Map<String, Map<String, String>> settings = new LinkedHashMap<>();
    Map<String, java.util.concurrent.CompletableFuture<KafkaBatchSource.Offsets>> offsets = new LinkedHashMap<>();
    for (SourceConfig s : plan.config().sources().values()) {
      if (s.kafka() != null) {
        Map<String, String> consumer = new LinkedHashMap<>();
        s.kafka().consumerSettings(env).forEach((k, v) -> consumer.put(k, String.valueOf(v)));
        settings.put(s.name(), consumer);
        offsets.put(s.name(), java.util.concurrent.CompletableFuture.supplyAsync(
            () -> KafkaBatchSource.offsets(s.kafka(), consumer)));
      }
    }
    Path checkpoints;
    try {
      checkpoints = Files.createTempDirectory("fhirbeam-stream-checkpoints");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    PipelineOptions options = runner.streamOptions("fhirbeam-" + plan.config().name(), runnerChecks, checkpoints);
    // A stream's outputs are local and its sources Kafka's or Delta tables' (read by the Delta kernel): Beam's S3 file
    // system is never used, so it gets a region instead of looking one up (off AWS, a second waiting for the
    // instance-metadata endpoint).
    ObjectStorage.configure(options, false, null);
    try (OutputLock lock = OutputLock.acquire(output);
        StreamOutput out = StreamOutput.open(job(runId));
        Progress progress = new Progress(console, terminal)) {
      Map<String, Long> committed = out.positions();
      Map<String, Map<String, Long>> positions = new LinkedHashMap<>();
      Map<String, KafkaBatchSource.Bounds> bounds = new LinkedHashMap<>();
      for (SourceConfig s : plan.config().sources().values()) {
        Map<String, Long> mine = new LinkedHashMap<>();
        String prefix = s.name() + "/";
        committed.forEach((k, v) -> {
          if (k.startsWith(prefix)) {
            mine.put(k.substring(prefix.length()), v);
          }
        });
        long deadline = limits.duration() == null ? 0 : System.currentTimeMillis() + limits.duration().toMillis();
        if (s.kafka() == null) {
          String key = DeltaStream.key(s);
          positions.put(s.name(), Map.of(key, DeltaStream.startPosition(s, mine.get(key))));
          bounds.put(s.name(), new KafkaBatchSource.Bounds(limits.maxRecords(), deadline,
              limits.drain() ? Map.of(key, DeltaStream.endPosition(s)) : null));
          continue;
        }
        KafkaBatchSource.Offsets known = joined(offsets.get(s.name()));
        positions.put(s.name(), KafkaBatchSource.startPositions(s.kafka(), known, mine));
        bounds.put(s.name(), new KafkaBatchSource.Bounds(limits.maxRecords(), deadline,
            limits.drain() ? known.end() : null));
      }
      Map<String, Long> starts = new LinkedHashMap<>();
      positions.forEach((source, byKey) -> byKey.forEach((key, at) -> starts.put(source + "/" + key, at)));
      out.readFrom(starts);
      Pipeline p = Pipeline.create(options);
      StreamGraph.build(p, plan, runId, output.toString(), positions, settings, bounds,
          plan.config().streaming().window());
      org.fhirbeam.io.StreamStop.reset();
      Signals stop = Signals.install();
      try {
        if (runner == Runner.SPARK) {
          SparkStreams.reset();
        }
        PipelineResult result = p.run();
        progress.stream(() -> line(result, out, start));
        if (runner == Runner.SPARK) {
          java.util.Set<String> read = new java.util.HashSet<>();
          plan.mappings().forEach(m -> read.add(m.source()));
          SparkStreams.runToTheEnd(result, out, plan.config().streaming().window(), read);
        } else {
          commitUntilDone(result, out);
        }
        out.commitReady();
        if (out.waiting()) {
          throw new IllegalStateException("windows were handed over after a window that never was, so they are not"
              + " committed");
        }
      } finally {
        stop.restore();
      }
      progress.close();
      RunSummary summary = out.runSummary();
      double elapsed = planSeconds + (System.nanoTime() - start) / 1e9;
      if (!summary.balanced()) {
        throw new JobRunner.UnbalancedRunException("the run lost or duplicated records: "
            + String.join("; ", summary.imbalances()));
      }
      console.printf(Locale.ROOT, "Stream %s: %d windows committed in %.1f s%s%n", runId, out.windows(), elapsed,
          stop.received() ? " (stopped by " + stop.signal() + ")" : "");
      return summary;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      try {
        org.fhirbeam.io.FileTrees.deleteTree(checkpoints);
      } catch (UncheckedIOException e) {
        // Spark's own state, not the job's: what the run committed stands.
        console.println("warning: the runner's checkpoint folder " + checkpoints + " could not be deleted: " + e
            .getMessage());
      }
    }
  }

  /** What {@code future} gives, or the exception it failed with. */
  private static <T> T joined(java.util.concurrent.CompletableFuture<T> future) {
    try {
      return future.join();
    } catch (java.util.concurrent.CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }
  }

  private StreamOutput.Job job(String runId) {
    return new StreamOutput.Job(plan.config(), plan.mappings(), output.toString(), runId, runner.label());
  }

  /** How often the driver looks for windows handed over, while the pipeline runs. */
  static final long COMMIT_POLL_MILLIS = 100;

  /**
   * Commits the windows the DirectRunner's pipeline hands over ({@link StreamOutput#commitReady}) until it is done;
   * cancels it if a commit fails.
   */
  private static void commitUntilDone(PipelineResult result, StreamOutput out) throws IOException {
    boolean ended = false;
    try {
      while (true) {
        PipelineResult.State state = result.waitUntilFinish(org.joda.time.Duration.millis(COMMIT_POLL_MILLIS));
        out.commitReady();
        if (state != null && state.isTerminal()) {
          ended = true;
          if (state != PipelineResult.State.DONE) {
            throw new IllegalStateException("pipeline ended in state " + state);
          }
          return;
        }
      }
    } finally {
      if (!ended) {
        try {
          result.cancel();
        } catch (IOException | RuntimeException e) {
          // stopping after a failed commit: that failure is the one to report
        }
      }
    }
  }

  /** The records of every stream source mapped so far, from the pipeline's {@code counters}. */
  static long recordsMapped(Map<String, Long> counters) {
    return counters.entrySet().stream().filter(e -> e.getKey().startsWith(Counters.streamRecords("")))
        .mapToLong(Map.Entry::getValue).sum();
  }

  /** The progress line: records mapped, their rate, the consumer lag and the windows committed. */
  private static String line(PipelineResult result, StreamOutput out, long start) {
    long records = recordsMapped(PipelineCounts.whileRunning(result));
    long lag = 0;
    try {
      for (org.apache.beam.sdk.metrics.MetricResult<org.apache.beam.sdk.metrics.GaugeResult> g : result.metrics()
          .queryMetrics(org.apache.beam.sdk.metrics.MetricsFilter.builder().addNameFilter(
              org.apache.beam.sdk.metrics.MetricNameFilter.inNamespace(Counters.NAMESPACE)).build()).getGauges()) {
        if (g.getName().getName().startsWith(Counters.streamLag(""))) {
          lag += g.getAttempted().getValue();
        }
      }
    } catch (RuntimeException e) {
      // not readable while the runner starts
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    return String.format(Locale.ROOT, "streaming: %,d records mapped (%,d records/s), lag %,d records, %,d windows"
        + " committed", records, Math.round(records / Math.max(seconds, 1e-3)), lag,
        out.windows());
  }

  /** SIGINT and SIGTERM ask the readers to stop, so that the run commits what it read and ends normally. */
  static final class Signals {
    private final Map<String, sun.misc.SignalHandler> previous = new LinkedHashMap<>();
    private volatile String received;

    static Signals install() {
      Signals s = new Signals();
      for (String name : new String[] {"INT", "TERM"}) {
        try {
          s.previous.put(name, sun.misc.Signal.handle(new sun.misc.Signal(name), sig -> {
            s.received = "SIG" + name;
            org.fhirbeam.io.StreamStop.request();
          }));
        } catch (IllegalArgumentException e) {
          // a signal this platform does not have
        }
      }
      return s;
    }

    boolean received() {
      return received != null;
    }

    String signal() {
      return received;
    }

    void restore() {
      previous.forEach((name, handler) -> sun.misc.Signal.handle(new sun.misc.Signal(name), handler));
    }
  }
}
