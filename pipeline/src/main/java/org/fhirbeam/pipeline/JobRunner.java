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
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapWithDuckDb;

/**
 * Runs a planned job: the pipeline writes into a staging directory; when it has finished and its counts
 * ({@link PipelineCounts}, against the lines of the files it committed) balance, the DuckDB load
 * ({@link DuckDbLoad}) commits and the staged results replace the previous ones ({@link LocalCommit}). A run that
 * fails leaves the previous output and database as they were.
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
  private final Path output;
  private final boolean runnerChecks;
  private final PrintStream console;
  private final boolean terminal;

  private final double planSeconds;

  public JobRunner(JobPlan plan, double planSeconds, Runner runner, Path output, boolean runnerChecks,
      PrintStream console, boolean terminal) {
    this.planSeconds = planSeconds;
    this.plan = plan;
    this.runner = runner;
    this.output = output.toAbsolutePath().normalize();
    this.runnerChecks = runnerChecks;
    this.console = console;
    this.terminal = terminal;
  }

  public RunSummary run() {
    long start = System.nanoTime();
    Map<String, Double> stages = new LinkedHashMap<>();
    stages.put("plan", planSeconds);
    long mark = start;
    String runId = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
        .format(Instant.now()) + "-" + UUID.randomUUID().toString().substring(0, 8);
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

      Pipeline p = Pipeline.create(runner.options("fhirbeam-" + plan.config().name(), runnerChecks));
      JobGraph.build(p, plan, runId, partsDir.toString(), staging.toString(), runner.localConcurrency(),
          runner.parallelism());
      PipelineResult result = p.run();
      String executed = Runner.executed(result).label();
      Progress.Work work = Progress.Work.of(plan);
      PipelineCounts tasks = new PipelineCounts(plan, result);
      progress.pipeline(work, tasks::whileRunning);
      PipelineResult.State state = result.waitUntilFinish();
      if (state != PipelineResult.State.DONE) {
        throw new IllegalStateException("pipeline ended in state " + state);
      }
      progress.pipelineDone(work, tasks.whileRunning());

      stages.put("pipeline", (System.nanoTime() - mark) / 1e9);
      mark = System.nanoTime();
      progress.phase("verifying counts");
      // What the tasks counted about the parts the pipeline committed.
      tasks.finished(staging);
      Map<String, Long> rowsIn = tasks.rowsInBySource();
      List<RunSummary.MappingCount> perMapping = tasks.perMapping();
      RunSummary.Validation validation = tasks.validation();
      List<QualityTables.Check> checks = tasks.checks();
      List<QualityTables.SourceColumn> sourceColumns = tasks.sourceColumns();
      Map<String, Map<String, List<String>>> drift = RunSummary.drift(plan.sources());
      Map<String, Map<String, String>> skipped = RunSummary.skipped(plan.sources());
      long rejected = tasks.committedLines(PartFile.REJECTS);
      Map<String, Long> resourcesOut = new LinkedHashMap<>();
      plan.mappings().forEach(m -> resourcesOut.put(m.resourceType(),
          tasks.committedLines(MapWithDuckDb.resourceFileSet(m.resourceType()))));
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
      double elapsed = planSeconds + (System.nanoTime() - start) / 1e9;
      RunSummary counted = new RunSummary(runId, executed, plan.config().file(), rowsIn, perMapping,
          resourcesOut, rejected, elapsed, Map.of(), loadDuckDb ? database : null, stages, validation,
          drift, skipped);
      if (!counted.balanced()) {
        throw new UnbalancedRunException("the run lost or duplicated rows, so the output was not replaced: "
            + String.join("; ", counted.imbalances()));
      }

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
          Map<String, List<DuckDbTables.Column>> columns = new LinkedHashMap<>();
          for (String type : resourcesOut.keySet()) {
            columns.put(type, DuckDbLoad.tableColumns(plan, type, false));
          }
          fileSinks.parquet(runFiles, columns, sourceKeys());
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
        done[0] = new RunSummary(runId, executed, plan.config().file(), rowsIn, perMapping, resourcesOut,
            rejected, planSeconds + (System.nanoTime() - start) / 1e9, tables, loadDuckDb ? database : null, stages,
            validation, drift, skipped);
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
          load.finish(runFiles, rejectsDir, resourcesOut, counted, checks, sourceColumns, output, replaceFiles);
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
      FileTrees.deleteTree(staging);
      if (db != null) {
        try {
          db.close();
        } catch (SQLException e) {
          // the run's outcome is already decided; closing cannot change it
        }
      }
    }
  }

  /**
   * Per resource type, the source column its ids are taken from unchanged, when every mapping of the type takes
   * them from one (the same) column.
   */
  private Map<String, String> sourceKeys() {
    Map<String, java.util.Set<String>> idColumns = new LinkedHashMap<>();
    for (CompiledMapping m : plan.mappings()) {
      // null (an id built by an expression) is kept as a member: it makes the type's key unusable
      idColumns.computeIfAbsent(m.resourceType(), t -> new java.util.HashSet<>()).add(m.idColumn());
    }
    Map<String, String> keys = new LinkedHashMap<>();
    idColumns.forEach((type, columns) -> {
      if (columns.size() == 1 && !columns.contains(null)) {
        keys.put(type, columns.iterator().next());
      }
    });
    return keys;
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
