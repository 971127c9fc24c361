package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.function.DoubleSupplier;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.fhirbeam.config.InputException;
import org.fhirbeam.io.ObjectStorage;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.ReadTask;
import org.fhirbeam.transforms.MapWithDuckDb;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a planned job: the pipeline commits its parts into a staging root; when it has finished and the figures of
 * what it committed ({@link PipelineCounts}) balance, the run's {@link Committer} makes it the output. Into a local
 * directory, the DuckDB load ({@link DuckDbLoad}) commits and the staged results replace the previous ones
 * ({@link LocalCommit}); into object storage, a manifest written last makes the run the output
 * ({@link ObjectStoreCommit}). A run that fails leaves the previous output and database as they were.
 */
public final class JobRunner {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  /** A run whose counts do not balance: some rows were lost or duplicated. */
  public static final class UnbalancedRunException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UnbalancedRunException(String message) {
      super(message);
    }
  }

  private final JobPlan plan;
  private final Runner runner;
  /** A local output directory; null when the output is on object storage. */
  private final Path output;
  /** The output as given: a local directory, or a URI on object storage ({@code s3://bucket/prefix}). */
  private final String location;
  /** Whether the run is committed by a manifest ({@link ObjectStoreCommit}) rather than by renames. */
  private final boolean byManifest;

  /** How a run replaces its output. */
  public enum Commit {
    /** A manifest for object storage and Databricks Volumes, else a rename. */
    AUTO,
    /** The local directory swap ({@link LocalCommit}): needs a file system with atomic renames and file locks. */
    RENAME,
    /** Files under {@code runs/<run id>/} and a manifest written last ({@link ObjectStoreCommit}). */
    MANIFEST;

    /**
     * Whether a run into {@code output} is committed by a manifest: always on object storage, whose objects cannot
     * be renamed; on Databricks ({@code DATABRICKS_RUNTIME_VERSION} in {@code env}), for a Volume
     * ({@code /Volumes/<catalog>/<schema>/<volume>/...}, object storage mounted on every node) unless renames are
     * asked for. (Elsewhere {@code /Volumes} may be a Mac's disks.)
     */
    boolean byManifest(String output, Map<String, String> env) {
      if (ObjectStorage.isRemote(output)) {
        if (this == RENAME) {
          throw new InputException("--commit rename: the output " + output + " is on object storage, which has no"
              + " rename; use --commit manifest (or auto)");
        }
        return true;
      }
      Path path = Path.of(output).toAbsolutePath().normalize();
      boolean volume = Deployment.detect(env).databricks() && path.startsWith(Path.of("/Volumes"))
          && path.getNameCount() >= 4;
      return this == MANIFEST || this == AUTO && volume;
    }
  }
  private final boolean runnerChecks;
  private final PrintStream console;
  private final boolean terminal;

  private final double planSeconds;
  /** Where the run runs, for its summary. */
  private final Deployment deployment;

  public JobRunner(JobPlan plan, double planSeconds, Runner runner, String output, Commit commit,
      boolean runnerChecks, PrintStream console, boolean terminal, Deployment deployment) {
    this.planSeconds = planSeconds;
    this.deployment = deployment;
    this.plan = plan;
    this.runner = runner;
    boolean remote = ObjectStorage.isRemote(output);
    this.output = remote ? null : Path.of(output).toAbsolutePath().normalize();
    this.location = remote ? output.replaceAll("/+$", "") : this.output.toString();
    this.byManifest = commit.byManifest(output, System.getenv());
    this.runnerChecks = runnerChecks;
    this.console = console;
    this.terminal = terminal;
  }

  /** Where the run writes: a local directory, or a URI on object storage. */
  String location() {
    return location;
  }

  /** Whether the run is committed by a manifest ({@link ObjectStoreCommit}) rather than by renames. */
  boolean byManifest() {
    return byManifest;
  }

  /**
   * Runs the job: its committer ({@link LocalCommit} for a local output, {@link ObjectStoreCommit} for one committed
   * by a manifest) prepares the output, the graph runs, the figures of what its tasks committed must balance, and
   * the committer makes the run the output. A run that fails leaves the previous output (and database) as it was.
   */
  public RunSummary run() {
    Instant started = Instant.now();
    String runId = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
        .format(started) + "-" + UUID.randomUUID().toString().substring(0, 8);
    long start = System.nanoTime();
    DoubleSupplier elapsed = () -> planSeconds + (System.nanoTime() - start) / 1e9;
    Map<String, Double> stages = new LinkedHashMap<>();
    stages.put("plan", planSeconds);
    try (Committer commit = byManifest ? ObjectStoreCommit.open(plan, location, runId, runner::workersShareDisk)
            : LocalCommit.open(plan, output, runId);
        Progress progress = new Progress(console, terminal);
        DeltaCommit delta = DeltaCommit.open(plan, runId, started.toEpochMilli(), commit.partsDirectory())) {
      Ran ran = runGraph(runId, progress, commit, delta);
      stages.put("pipeline", (System.nanoTime() - start) / 1e9);
      long mark = System.nanoTime();
      progress.phase("verifying counts");
      RunSummary counted = counted(runId, ran, elapsed, stages, commit.database());
      stages.put("verify", (System.nanoTime() - mark) / 1e9);
      RunSummary balanced = counted.withStage("verify", stages.get("verify"));
      // With the run's quality figures, before the output's commit, so that its run summary names the versions.
      Committer.Beside beside = delta == null ? null
          : report -> delta.commit(balanced, ran.tasks(), location, report);
      try {
        return commit.commit(balanced, ran.tasks(), progress, stages, elapsed, beside);
      } catch (IOException | RuntimeException e) {
        if (delta != null && delta.committed() != null) {
          LOG.error("run {} is committed to the Delta tables in {} ({}), but its output was not: it failed",
              runId, delta.committed().location(), delta.committed().versions());
        }
        throw e;
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** What a finished pipeline ran on, and what its tasks counted about the parts it committed. */
  private record Ran(String runner, PipelineCounts tasks) {}

  /**
   * Runs the graph: its tasks write parts into the committer's parts folder and commit them into its staging root;
   * returns once the pipeline has finished and its figures are read.
   */
  private Ran runGraph(String runId, Progress progress, Committer commit, DeltaCommit delta) throws IOException {
    PipelineOptions options = runner.options("fhirbeam-" + plan.config().name(), runnerChecks);
    boolean remoteSources = plan.sources().values().stream().flatMap(s -> s.tasks().stream())
        .anyMatch(ReadTask::fetchesObjects);
    ObjectStorage.configure(options, ObjectStorage.isRemote(location) || remoteSources,
        ObjectStorage.settingsOf(plan.config().sources().values()));
    Pipeline p = Pipeline.create(options);
    JobGraph.build(p, plan, runId, commit.partsDirectory(), commit.stagingRoot(), commit.copiesParts(),
        delta == null ? null : delta.files(), runner.localConcurrency(), runner.parallelism());
    PipelineResult result = p.run();
    String executed = Runner.executed(result).label();
    Progress.Work work = Progress.Work.of(plan);
    progress.pipeline(work, () -> PipelineCounts.whileRunning(result));
    PipelineResult.State state = result.waitUntilFinish();
    if (state != PipelineResult.State.DONE) {
      throw new IllegalStateException("pipeline ended in state " + state);
    }
    progress.pipelineDone(work, PipelineCounts.whileRunning(result));
    // What the tasks counted about the parts the pipeline committed.
    return new Ran(executed, PipelineCounts.finished(plan, commit.stagingRoot()));
  }

  /**
   * The run's figures, from what its tasks committed; throws when they do not balance, so nothing is replaced.
   */
  private RunSummary counted(String runId, Ran ran, DoubleSupplier elapsed, Map<String, Double> stages,
      String database) {
    PipelineCounts tasks = ran.tasks();
    Map<String, Long> resourcesOut = new LinkedHashMap<>();
    plan.mappings().forEach(m -> resourcesOut.put(m.resourceType(),
        tasks.committedLines(MapWithDuckDb.resourceFileSet(m.resourceType()))));
    RunSummary counted = new RunSummary(runId, ran.runner(), plan.config().file(), tasks.rowsInBySource(),
        tasks.perMapping(), resourcesOut, tasks.committedLines(PartFile.REJECTS), elapsed.getAsDouble(), Map.of(),
        database, stages, tasks.validation(), RunSummary.drift(plan.sources()), RunSummary.skipped(plan.sources()))
        .withDeployment(deployment);
    if (!counted.balanced()) {
      throw new UnbalancedRunException("the run lost or duplicated rows, so the output was not replaced: "
          + String.join("; ", counted.imbalances()));
    }
    return counted;
  }
}
