package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.ReadTask;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * Runs a planned job: the pipeline writes into a staging directory; when it has finished and its counts
 * balance, the driver loads the DuckDB tables in one transaction and only then replaces the previous results in
 * the output directory. A run that fails leaves the previous output and database as they were.
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
      recoverInterruptedRuns(db);
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
      progress.pipeline(work, () -> counters(result));
      PipelineResult.State state = result.waitUntilFinish();
      if (state != PipelineResult.State.DONE) {
        throw new IllegalStateException("pipeline ended in state " + state);
      }
      progress.pipelineDone(work, counters(result));

      stages.put("pipeline", (System.nanoTime() - mark) / 1e9);
      mark = System.nanoTime();
      progress.phase("verifying counts");
      // What the mappings counted, against what the committed files hold.
      Map<String, Long> rowsIn = new LinkedHashMap<>();
      List<RunSummary.MappingCount> perMapping = new ArrayList<>();
      for (CompiledMapping m : plan.mappings()) {
        long read = counterExact(result, Counters.rowsIn(m.name()));
        rowsIn.putIfAbsent(m.source(), read);
        // Resources that duplicate ids, FHIRPath rules or validation rejected were counted as mapped by the mapping
        // stage first.
        perMapping.add(new RunSummary.MappingCount(m.name(), m.source(), m.resourceType(), read,
            counterExact(result, Counters.mapped(m.name())) - counterExact(result, Counters.invalid(m.name()))
                - counterExact(result, Counters.ruleRejected(m.name()))
                - counterExact(result, Counters.duplicates(m.name())),
            counterExact(result, Counters.rejected(m.name())),
            counterExact(result, Counters.millis(m.name())) / 1000.0));
      }
      RunSummary.Validation validation = validationSummary(result);
      List<QualityTables.Check> checks = countedChecks(result);
      List<QualityTables.SourceColumn> sourceColumns = sourceColumns(result);
      Map<String, Map<String, List<String>>> drift = RunSummary.drift(plan.sources());
      Map<String, Map<String, String>> skipped = RunSummary.skipped(plan.sources());
      // Each file set's lines are counted on a core of its own: the count reads every byte the run wrote (the
      // Synthea-shaped run's 800 MB took 0.6 s on one core). File sets by name: the resource types, and the rejects.
      Map<String, Path> fileSets = new LinkedHashMap<>();
      plan.mappings().forEach(m -> fileSets.put(m.resourceType(), fhirDir));
      fileSets.put("rejects", rejectsDir);
      Map<String, Long> counts = fileSets.entrySet().parallelStream().collect(java.util.stream.Collectors
          .toConcurrentMap(Map.Entry::getKey, e -> {
            try {
              return numberFiles(e.getValue(), e.getKey());
            } catch (IOException x) {
              throw new UncheckedIOException(x);
            }
          }));
      long rejected = counts.get("rejects");
      Map<String, Long> resourcesOut = new LinkedHashMap<>();
      plan.mappings().forEach(m -> resourcesOut.put(m.resourceType(), counts.get(m.resourceType())));
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
      Swap swap = new Swap(runId);
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

  /**
   * How often each column of each source has a value, in the source's column order, as the first mapping reading
   * the source counted it (every mapping of a source reads the same rows).
   */
  private List<QualityTables.SourceColumn> sourceColumns(PipelineResult result) {
    Map<String, Long> populated = new LinkedHashMap<>();
    for (MetricResult<Long> c : query(result).getCounters()) {
      String name = c.getName().getName();
      if (name.startsWith(Counters.COLUMN_POPULATED_PREFIX)) {
        populated.merge(name.substring(Counters.COLUMN_POPULATED_PREFIX.length()), c.getAttempted(), Long::sum);
      }
    }
    List<QualityTables.SourceColumn> out = new ArrayList<>();
    java.util.Set<String> done = new java.util.HashSet<>();
    for (CompiledMapping m : plan.mappings()) {
      PlannedSource source = plan.sources().get(m.source());
      if (source.tasks().isEmpty() || !done.add(m.source())) {
        continue;
      }
      long rows = counterExact(result, Counters.rowsRead(m.name()));
      List<String> columns = source.columns();
      for (int i = 0; i < columns.size(); i++) {
        out.add(new QualityTables.SourceColumn(m.source(), i, columns.get(i),
            populated.getOrDefault(m.name() + "/" + columns.get(i), 0L), rows));
      }
    }
    return out;
  }

  /**
   * The checks the stages counted while the pipeline ran (warn rules, valid codes, ranges), per mapping in
   * configuration order, then by check and element.
   */
  private List<QualityTables.Check> countedChecks(PipelineResult result) {
    Map<String, long[]> byName = new java.util.TreeMap<>();
    for (MetricResult<Long> c : query(result).getCounters()) {
      String name = c.getName().getName();
      int which = name.startsWith(Counters.CHECK_FAILED_PREFIX) ? 0 : name.startsWith(Counters.CHECK_TOTAL_PREFIX) ? 1
          : -1;
      if (which >= 0) {
        String key = name.substring(which == 0 ? Counters.CHECK_FAILED_PREFIX.length()
            : Counters.CHECK_TOTAL_PREFIX.length());
        byName.computeIfAbsent(key, k -> new long[2])[which] += c.getAttempted();
      }
    }
    List<QualityTables.Check> out = new ArrayList<>();
    for (CompiledMapping m : plan.mappings()) {
      byName.forEach((key, counts) -> {
        // mapping/check/element; only the element may hold '/'
        String[] p = key.split("/", 3);
        if (p[0].equals(m.name())) {
          out.add(new QualityTables.Check(p[0], p[1], p[2].isEmpty() ? null : p[2], counts[0], counts[1]));
        }
      });
    }
    return out;
  }

  /**
   * Renames a resource type's committed parts to the Bulk Data style {@code <Type>-SSSSS-of-NNNNN.ndjson} and
   * returns how many lines they hold.
   */
  private static long numberFiles(Path dir, String type) throws IOException {
    List<String> parts = new ArrayList<>(filesOf(dir, type));
    // Part names hold random task ids: ordered by content instead, equal inputs give byte-identical files.
    Map<String, String> firstLines = new LinkedHashMap<>();
    for (String part : parts) {
      try (java.io.BufferedReader in = Files.newBufferedReader(Path.of(part))) {
        String first = in.readLine();
        firstLines.put(part, first == null ? "" : first);
      }
    }
    parts.sort((a, b) -> {
      int c = firstLines.get(a).compareTo(firstLines.get(b));
      return c != 0 ? c : compareContents(Path.of(a), Path.of(b));
    });
    long lines = 0;
    for (int i = 0; i < parts.size(); i++) {
      Path part = Path.of(parts.get(i));
      lines += FileTrees.countLines(part);
      Files.move(part, dir.resolve(String.format(java.util.Locale.ROOT, "%s-%05d-of-%05d.ndjson.tmp", type, i,
          parts.size())), StandardCopyOption.ATOMIC_MOVE);
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, type + "-*.ndjson.tmp")) {
      for (Path p : s) {
        String name = p.getFileName().toString();
        Files.move(p, dir.resolve(name.substring(0, name.length() - ".tmp".length())), StandardCopyOption.ATOMIC_MOVE);
      }
    }
    return lines;
  }

  private static int compareContents(Path a, Path b) {
    try {
      long at = Files.mismatch(a, b);
      if (at < 0) {
        return 0;
      }
      try (java.io.RandomAccessFile ra = new java.io.RandomAccessFile(a.toFile(), "r");
          java.io.RandomAccessFile rb = new java.io.RandomAccessFile(b.toFile(), "r")) {
        ra.seek(at);
        rb.seek(at);
        return Integer.compare(ra.read(), rb.read());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The NDJSON files {@code <destination>-*.ndjson} in {@code dir}, sorted by name. */
  private static List<String> filesOf(Path dir, String destination) throws IOException {
    return FileSinks.files(dir, destination, List.of(".ndjson")).stream().map(Path::toString).toList();
  }

  /**
   * Moves staged results into place by renames, keeping the previous ones aside until the run has committed, so
   * they can be put back if the database commit fails.
   */
  private final class Swap {
    private static final List<String> NAMES = List.of("fhir", "parquet", "rejects", "report", "run-summary.json");
    private final String runId;
    private final List<Path[]> moved = new ArrayList<>();

    Swap(String runId) {
      this.runId = runId;
    }

    void in(Path staging) throws IOException {
      for (String name : NAMES) {
        if (!Files.exists(staging.resolve(name))) {
          continue; // a sink this run does not write (parquet/) keeps what an earlier run wrote
        }
        Path target = output.resolve(name);
        Path backup = null;
        if (Files.exists(target)) {
          backup = output.resolve(".previous-" + runId + "-" + name);
          Files.move(target, backup, StandardCopyOption.ATOMIC_MOVE);
        }
        moved.add(new Path[] {target, backup});
        Files.move(staging.resolve(name), target, StandardCopyOption.ATOMIC_MOVE);
      }
    }

    void restore() {
      for (int i = moved.size() - 1; i >= 0; i--) {
        Path target = moved.get(i)[0];
        Path backup = moved.get(i)[1];
        FileTrees.deleteTree(target);
        if (backup != null) {
          try {
            Files.move(backup, target, StandardCopyOption.ATOMIC_MOVE);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      }
    }

    /** After the commit the previous results are garbage: renamed first, so a crash never leaves half of one. */
    void dropBackups() {
      for (Path[] m : moved) {
        if (m[1] != null) {
          try {
            Path trash = output.resolve(".trash-" + m[1].getFileName().toString().substring(".previous-".length()));
            Files.move(m[1], trash, StandardCopyOption.ATOMIC_MOVE);
            FileTrees.deleteTree(trash);
          } catch (IOException | UncheckedIOException e) {
            // the run has committed; the next run deletes what is left
          }
        }
      }
    }
  }

  /**
   * Leftovers of runs that were killed, handled while this run holds the output lock. Staging directories and
   * trash go. Previous results that a run set aside while committing are put back if that run did not commit
   * (its id is not in the database's run table; without the DuckDB sink: its staging still held files), and
   * thrown away if it did.
   */
  private void recoverInterruptedRuns(Connection db) throws IOException {
    try (DirectoryStream<Path> s = Files.newDirectoryStream(output, ".previous-*")) {
      for (Path backup : s) {
        String rest = backup.getFileName().toString().substring(".previous-".length());
        for (String original : Swap.NAMES) {
          if (!rest.endsWith("-" + original)) {
            continue;
          }
          String runId = rest.substring(0, rest.length() - original.length() - 1);
          boolean committed = db != null ? DuckDbTables.committed(db, runId)
              : !stagedFilesLeft(output.resolve(".staging-" + runId));
          if (committed) {
            FileTrees.deleteTree(backup);
          } else {
            FileTrees.deleteTree(output.resolve(original));
            Files.move(backup, output.resolve(original), StandardCopyOption.ATOMIC_MOVE);
          }
        }
      }
    }
    for (String pattern : List.of(".staging-*", ".trash-*")) {
      try (DirectoryStream<Path> s = Files.newDirectoryStream(output, pattern)) {
        for (Path p : s) {
          FileTrees.deleteTree(p);
        }
      }
    }
  }

  private static boolean stagedFilesLeft(Path staging) {
    for (String name : Swap.NAMES) {
      if (Files.exists(staging.resolve(name))) {
        return true;
      }
    }
    return false;
  }

  private static void createParent(Path file) {
    Path parent = file.toAbsolutePath().getParent();
    try {
      Files.createDirectories(parent);
    } catch (IOException e) {
      throw new InputException("cannot create directory " + parent + " for the DuckDB database", e);
    }
  }

  /** The validation counters of a finished pipeline, or null when the job does not validate. */
  private RunSummary.Validation validationSummary(PipelineResult result) {
    ValidationSettings v = plan.config().validation();
    if (!v.enabled()) {
      return null;
    }
    Map<String, Long> validated = new LinkedHashMap<>();
    Map<String, Long> invalid = new LinkedHashMap<>();
    for (CompiledMapping m : plan.mappings()) {
      validated.put(m.name(), counterExact(result, Counters.validated(m.name())));
      invalid.put(m.name(), counterExact(result, Counters.invalid(m.name())));
    }
    List<RunSummary.IssueCount> issues = new ArrayList<>();
    for (MetricResult<Long> c : query(result).getCounters()) {
      String name = c.getName().getName();
      if (name.startsWith(Counters.ISSUE_PREFIX)) {
        // mapping/severity/category/message id; only the message id may hold '/'
        String[] p = name.substring(Counters.ISSUE_PREFIX.length()).split("/", 4);
        issues.add(new RunSummary.IssueCount(p[0], p[1], p[2], p[3], c.getAttempted()));
      }
    }
    issues.sort(java.util.Comparator.comparingLong(RunSummary.IssueCount::count).reversed()
        .thenComparing(RunSummary.IssueCount::mapping).thenComparing(RunSummary.IssueCount::messageId));
    return new RunSummary.Validation(v.mode().name().toLowerCase(java.util.Locale.ROOT), v.sampleRate(),
        v.rejectOn().name().toLowerCase(java.util.Locale.ROOT), plan.validator().buildSeconds(), validated, invalid,
        issues);
  }

  /** The counters of a running pipeline by name; none while the runner cannot report them. */
  private static Map<String, Long> counters(PipelineResult result) {
    Map<String, Long> counters = new HashMap<>();
    try {
      for (MetricResult<Long> c : query(result).getCounters()) {
        counters.merge(c.getName().getName(), c.getAttempted(), Long::sum);
      }
    } catch (RuntimeException e) {
      return Map.of();
    }
    return counters;
  }

  /** One counter after the pipeline finished; absent counters (nothing counted) are 0. */
  private static long counterExact(PipelineResult result, String name) {
    long sum = 0;
    for (MetricResult<Long> c : query(result).getCounters()) {
      if (c.getName().getName().equals(name)) {
        sum += c.getAttempted();
      }
    }
    return sum;
  }

  private static MetricQueryResults query(PipelineResult result) {
    return result.metrics().queryMetrics(
        MetricsFilter.builder().addNameFilter(MetricNameFilter.inNamespace(Counters.NAMESPACE)).build());
  }
}
