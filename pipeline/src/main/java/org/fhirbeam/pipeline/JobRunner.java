package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.ObjectStorage;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.ReadTask;
import org.fhirbeam.transforms.MapWithDuckDb;

/**
 * Runs a planned job: the pipeline commits its parts into a staging root; when it has finished and the figures of
 * what it committed ({@link PipelineCounts}) balance, the run is committed. Into a local directory, the DuckDB load
 * ({@link DuckDbLoad}) commits and the staged results replace the previous ones ({@link LocalCommit}); into object
 * storage, a manifest written last makes the run the output ({@link ObjectStoreCommit}). A run that fails leaves the
 * previous output and database as they were.
 */
public final class JobRunner {
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
      boolean volume = env.containsKey("DATABRICKS_RUNTIME_VERSION") && path.startsWith(Path.of("/Volumes"))
          && path.getNameCount() >= 4;
      return this == MANIFEST || this == AUTO && volume;
    }
  }
  private final boolean runnerChecks;
  private final PrintStream console;
  private final boolean terminal;

  private final double planSeconds;

  public JobRunner(JobPlan plan, double planSeconds, Runner runner, String output, Commit commit,
      boolean runnerChecks, PrintStream console, boolean terminal) {
    this.planSeconds = planSeconds;
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

  public RunSummary run() {
    String runId = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
        .format(Instant.now()) + "-" + UUID.randomUUID().toString().substring(0, 8);
    return byManifest ? runByManifest(runId) : runLocal(runId);
  }

  /** What a finished pipeline ran on, and what its tasks counted about the parts it committed. */
  private record Ran(String runner, PipelineCounts tasks) {}

  /**
   * Runs the graph: its tasks write parts into {@code partsDir} (a folder every worker sees) and commit them into
   * {@code stagingRoot} (a path or a URI); returns once the pipeline has finished and its figures are read.
   */
  private Ran runGraph(String runId, Progress progress, String partsDir, String stagingRoot) throws IOException {
    PipelineOptions options = runner.options("fhirbeam-" + plan.config().name(), runnerChecks);
    boolean remoteSources = plan.sources().values().stream().flatMap(s -> s.tasks().stream())
        .anyMatch(ReadTask::fetchesObjects);
    ObjectStorage.configure(options, ObjectStorage.isRemote(location) || remoteSources,
        ObjectStorage.settingsOf(plan.config().sources().values()));
    Pipeline p = Pipeline.create(options);
    JobGraph.build(p, plan, runId, partsDir, stagingRoot, byManifest, runner.localConcurrency(),
        runner.parallelism());
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
    return new Ran(executed, PipelineCounts.finished(plan, stagingRoot));
  }

  /**
   * The run's figures, from what its tasks committed; throws when they do not balance, so nothing is replaced.
   */
  private RunSummary counted(String runId, Ran ran, long start, Map<String, Double> stages, String database) {
    PipelineCounts tasks = ran.tasks();
    Map<String, Long> resourcesOut = new LinkedHashMap<>();
    plan.mappings().forEach(m -> resourcesOut.put(m.resourceType(),
        tasks.committedLines(MapWithDuckDb.resourceFileSet(m.resourceType()))));
    RunSummary counted = new RunSummary(runId, ran.runner(), plan.config().file(), tasks.rowsInBySource(),
        tasks.perMapping(), resourcesOut, tasks.committedLines(PartFile.REJECTS),
        planSeconds + (System.nanoTime() - start) / 1e9, Map.of(), database, stages, tasks.validation(),
        RunSummary.drift(plan.sources()), RunSummary.skipped(plan.sources()));
    if (!counted.balanced()) {
      throw new UnbalancedRunException("the run lost or duplicated rows, so the output was not replaced: "
          + String.join("; ", counted.imbalances()));
    }
    return counted;
  }

  /**
   * A run committed by a manifest (object storage, a Databricks Volume): tasks copy the parts they commit under
   * {@code runs/<run id>/}, then the run is committed by writing the manifest last ({@link ObjectStoreCommit}).
   * Sinks that need the driver's disk (the DuckDB file, upsert) are refused before anything runs.
   */
  private RunSummary runByManifest(String runId) {
    long start = System.nanoTime();
    Map<String, Double> stages = new LinkedHashMap<>();
    stages.put("plan", planSeconds);
    ObjectStoreCommit commit = new ObjectStoreCommit(location, runId);
    commit.checkSinks(plan.config().sinks());
    if (ObjectStorage.isRemote(location)) {
      ObjectStorage.useBeforePipeline(ObjectStorage.settingsOf(plan.config().sources().values()));
    }
    commit.checkReachable();
    Path work = workDirectory(runId);
    try (Progress progress = new Progress(console, terminal)) {
      Ran ran = runGraph(runId, progress, work.resolve(".parts").toString(), commit.staging());
      stages.put("pipeline", (System.nanoTime() - start) / 1e9);
      long mark = System.nanoTime();
      progress.phase("verifying counts");
      RunSummary counted = counted(runId, ran, start, stages, null)
          .withStage("verify", (System.nanoTime() - mark) / 1e9);
      progress.phase("committing");
      long commitStart = System.nanoTime();
      QualityReport report = QualityReport.of(plan, counted, ran.tasks(), Instant.now(), commit.previousReport());
      counted = counted.withChecks(report.checkSummary());
      commit.commit(counted.withElapsed(planSeconds + (System.nanoTime() - start) / 1e9), report,
          CommitParts.committedFiles(ran.tasks().committed()), commit.kept(plan.config().sinks()));
      return counted.withElapsed(planSeconds + (System.nanoTime() - start) / 1e9)
          .withStage("commit", (System.nanoTime() - commitStart) / 1e9);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      FileTrees.deleteScratch(work);
    }
  }

  /**
   * The folder the tasks of a run committed by a manifest write their parts into before they commit them: it must
   * be one that every worker sees, {@code FHIRBEAM_WORK_DIR} (a Databricks Volume path, say); else, for a local
   * output (a Volume), the run's own folder in it, which the next commit removes if the run is killed; else the
   * temporary folder (one machine).
   */
  private Path workDirectory(String runId) {
    String dir = System.getenv("FHIRBEAM_WORK_DIR");
    Path root = dir != null && !dir.isBlank() ? Path.of(dir)
        : output != null ? output.resolve("runs").resolve(runId) : Path.of(System.getProperty("java.io.tmpdir"));
    try {
      return Files.createDirectories(root.resolve("fhirbeam-work-" + runId));
    } catch (IOException e) {
      throw new InputException("cannot create the run's work folder under " + root + ": " + e.getMessage(), e);
    }
  }

  private RunSummary runLocal(String runId) {
    long start = System.nanoTime();
    Map<String, Double> stages = new LinkedHashMap<>();
    stages.put("plan", planSeconds);
    long mark = start;
    boolean loadDuckDb = plan.config().sinks().duckdb();
    String database = Path.of(plan.config().duckdb().database()).toAbsolutePath().normalize().toString();
    Path staging = output.resolve(".staging-" + runId);
    // The database is opened before the output is touched, so a locked or broken file stops the run first.
    Connection db = null;
    if (loadDuckDb) {
      createParent(Path.of(database));
      db = DuckDb.openFile(database, plan.config().duckdb(), false);
    }
    DuckDbLoad load = null;
    try (OutputLock lock = OutputLock.acquire(output); Progress progress = new Progress(console, terminal)) {
      LocalCommit commit = new LocalCommit(output, runId);
      commit.recoverInterruptedRuns(db);
      if (loadDuckDb) {
        load = DuckDbLoad.start(plan, db, runId);
      }
      Path partsDir = staging.resolve(".parts");
      Path fhirDir = staging.resolve("fhir");
      Path rejectsDir = staging.resolve("rejects");
      Files.createDirectories(partsDir);
      Files.createDirectories(fhirDir);
      Files.createDirectories(rejectsDir);
      // Staged and swapped like fhir/, so a failed run leaves the previous report (empty without the DuckDB sink,
      // where the figures are computed).
      Files.createDirectories(staging.resolve("report"));

      Ran ran = runGraph(runId, progress, partsDir.toString(), staging.toString());

      stages.put("pipeline", (System.nanoTime() - mark) / 1e9);
      mark = System.nanoTime();
      progress.phase("verifying counts");
      RunSummary counted = counted(runId, ran, start, stages, loadDuckDb ? database : null);
      Map<String, Long> resourcesOut = counted.resourcesOut();
      // Each file set is numbered on a core of its own: numbering reads the first line of every file.
      java.util.stream.Stream.concat(resourcesOut.keySet().stream().map(type -> Map.entry(type, fhirDir)),
          java.util.stream.Stream.of(Map.entry("rejects", rejectsDir))).parallel().forEach(e -> {
            try {
              LocalCommit.numberFiles(e.getValue(), e.getKey());
            } catch (IOException x) {
              throw new UncheckedIOException(x);
            }
          });
      stages.put("verify", (System.nanoTime() - mark) / 1e9);
      mark = System.nanoTime();

      if (load != null) {
        load.awaitRawCopy();
      }
      progress.phase("writing files");
      // The file sinks are built in the staging directory too; without the DuckDB sink a private in-memory
      // DuckDB does their SQL.
      SinkSettings sinks = plan.config().sinks();
      Map<String, List<String>> runFiles;
      try (Connection scratch = loadDuckDb ? null : DuckDb.openInMemory(plan.config().duckdb())) {
        FileSinks fileSinks = new FileSinks(loadDuckDb ? db : scratch, sinks, runId, output, staging);
        runFiles = fileSinks.ndjson(List.copyOf(resourcesOut.keySet()));
        if (sinks.parquet()) {
          fileSinks.parquet(runFiles, FileSinks.parquetLayouts(plan));
        }
      } catch (SQLException e) {
        throw DuckDb.failure("writing the file sinks failed", e);
      }
      stages.put("write_files", (System.nanoTime() - mark) / 1e9);
      mark = System.nanoTime();

      // The staged files replace the previous ones just before the database commits; if either step fails,
      // the previous files are put back and the database rolls back.
      RunSummary[] done = new RunSummary[1];
      long[] commitStart = new long[1];
      LocalCommit.Swap swap = commit.swap();
      long loadStart = mark;
      Connection database0 = db;
      DuckDbLoad load0 = load;
      java.util.function.Consumer<Map<String, Long>> replaceFiles = tables -> {
        if (loadDuckDb) {
          stages.put("load_duckdb", (System.nanoTime() - loadStart) / 1e9);
        }
        commitStart[0] = System.nanoTime();
        done[0] = counted.loaded(planSeconds + (System.nanoTime() - start) / 1e9, tables, stages);
        if (loadDuckDb) {
          done[0] = done[0].withLoadSeconds(load0.seconds());
        }
        try {
          if (loadDuckDb) {
            // Read back inside the loading transaction: the files show exactly what is about to commit.
            QualityReport report = QualityReport.load(database0, runId);
            report.write(staging.resolve("report"));
            done[0] = done[0].withChecks(report.checkSummary());
          }
          done[0].write(staging.resolve("run-summary.json"));
          swap.in(staging);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      };
      try {
        if (loadDuckDb) {
          progress.phase("loading DuckDB");
          load.finish(runFiles, rejectsDir, resourcesOut, counted, ran.tasks().checks(), ran.tasks().sourceColumns(),
              output, replaceFiles);
        } else {
          replaceFiles.accept(Map.of());
        }
      } catch (RuntimeException e) {
        swap.restore();
        throw e;
      }
      swap.dropBackups();
      // The file was written before the commit finished, so only the printed summary has the commit's time.
      return done[0].withStage("commit", (System.nanoTime() - commitStart[0]) / 1e9);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      if (load != null) {
        try {
          load.close();
        } catch (RuntimeException e) {
          // the run's outcome is already decided: committed, or failed for the reason it reports
        }
      }
      // Not a reason to fail: a failed run's reason stands, and the next run removes a staging folder left behind.
      FileTrees.deleteScratch(staging);
      if (db != null) {
        try {
          db.close();
        } catch (SQLException e) {
          // the run's outcome is already decided; closing cannot change it
        }
      }
    }
  }

  private static void createParent(Path file) {
    Path parent = file.toAbsolutePath().getParent();
    try {
      Files.createDirectories(parent);
    } catch (IOException e) {
      throw new InputException("cannot create directory " + parent + " for the DuckDB database", e);
    }
  }

}
