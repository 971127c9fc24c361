package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleSupplier;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;

/**
 * Commits a run into a local output directory, the committer for file systems that rename atomically: it holds the
 * output's lock and the DuckDB file for the run, cleans up after runs that were killed, and starts the DuckDB load
 * beside the graph ({@link DuckDbLoad}); the tasks move their parts into {@code .staging-<run id>/}; once the counts
 * balance it numbers the staged files, writes the file sinks, loads DuckDB and swaps the staged results in by atomic
 * renames just before the database commits (the previous results kept aside until then, and put back if it does
 * not).
 */
final class LocalCommit implements Committer {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(LocalCommit.class);
  private final Path output;
  private final String runId;
  private final JobPlan plan;
  /** The DuckDB file's path, or null without the DuckDB sink. */
  private final String database;
  private final Path staging;
  private Connection db;
  private OutputLock lock;
  private DuckDbLoad load;

  private LocalCommit(JobPlan plan, Path output, String runId) {
    this.plan = plan;
    this.output = output;
    this.runId = runId;
    this.database = plan.config().sinks().duckdb()
        ? Path.of(plan.config().duckdb().database()).toAbsolutePath().normalize().toString() : null;
    this.staging = output.resolve(".staging-" + runId);
  }

  /**
   * Prepares run {@code runId} into {@code output}: opens the DuckDB file (before the output is touched, so a locked
   * or broken file stops the run first), takes the output's lock, recovers from killed runs, starts the load and
   * creates the staging folders.
   */
  static LocalCommit open(JobPlan plan, Path output, String runId) throws IOException {
    LocalCommit c = new LocalCommit(plan, output, runId);
    boolean opened = false;
    try {
      if (c.database != null) {
        createParent(Path.of(c.database));
        c.db = DuckDb.openFile(c.database, plan.config().duckdb(), false);
      }
      c.lock = OutputLock.acquire(output);
      c.recoverInterruptedRuns(c.db);
      if (c.db != null) {
        c.load = DuckDbLoad.start(plan, c.db, runId);
      }
      for (String folder : List.of(".parts", "fhir", "rejects", "report")) {
        // report/ is staged and swapped like fhir/, so a failed run leaves the previous report (empty without the
        // DuckDB sink, where the figures are computed).
        Files.createDirectories(c.staging.resolve(folder));
      }
      opened = true;
      return c;
    } finally {
      if (!opened) {
        c.close();
      }
    }
  }

  @Override
  public String partsDirectory() {
    return staging.resolve(".parts").toString();
  }

  @Override
  public String stagingRoot() {
    return staging.toString();
  }

  @Override
  public boolean copiesParts() {
    return false;
  }

  @Override
  public String database() {
    return database;
  }

  @Override
  public RunSummary commit(RunSummary counted, PipelineCounts tasks, Progress progress, Map<String, Double> stages,
      DoubleSupplier elapsed, Beside beside) throws IOException {
    long mark = System.nanoTime();
    Map<String, Long> resourcesOut = counted.resourcesOut();
    Path fhirDir = staging.resolve("fhir");
    Path rejectsDir = staging.resolve("rejects");
    // Each file set is numbered on a core of its own: numbering reads the first line of every file.
    java.util.stream.Stream.concat(resourcesOut.keySet().stream().map(type -> Map.entry(type, fhirDir)),
        java.util.stream.Stream.of(Map.entry("rejects", rejectsDir))).parallel().forEach(e -> {
          try {
            numberFiles(e.getValue(), e.getKey());
          } catch (IOException x) {
            throw new UncheckedIOException(x);
          }
        });
    stages.merge("verify", (System.nanoTime() - mark) / 1e9, Double::sum);
    mark = System.nanoTime();

    if (load != null) {
      load.awaitRawCopy();
    }
    progress.phase("writing files");
    // The file sinks are built in the staging directory too; without the DuckDB sink a private in-memory DuckDB
    // does their SQL.
    SinkSettings sinks = plan.config().sinks();
    Map<String, List<String>> runFiles;
    try (Connection scratch = db != null ? null : DuckDb.openInMemory(plan.config().duckdb())) {
      FileSinks fileSinks = new FileSinks(db != null ? db : scratch, sinks, runId, output, staging);
      runFiles = fileSinks.ndjson(List.copyOf(resourcesOut.keySet()));
      if (sinks.parquet()) {
        fileSinks.parquet(runFiles, FileSinks.parquetLayouts(plan));
      }
    } catch (SQLException e) {
      throw DuckDb.failure("writing the file sinks failed", e);
    }
    stages.put("write_files", (System.nanoTime() - mark) / 1e9);

    // The staged files replace the previous ones just before the database commits; if either step fails, the
    // previous files are put back and the database rolls back.
    RunSummary[] done = new RunSummary[1];
    long[] commitStart = new long[1];
    Swap swap = new Swap();
    long loadStart = System.nanoTime();
    java.util.function.Consumer<Map<String, Long>> replaceFiles = tables -> {
      if (load != null) {
        stages.put("load_duckdb", (System.nanoTime() - loadStart) / 1e9);
      }
      commitStart[0] = System.nanoTime();
      done[0] = counted.loaded(elapsed.getAsDouble(), tables, stages);
      if (load != null) {
        done[0] = done[0].withLoadSeconds(load.seconds());
      }
      try {
        QualityReport report = null;
        if (load != null) {
          // Read back inside the loading transaction: the files show exactly what is about to commit.
          report = QualityReport.load(db, runId);
          report.write(staging.resolve("report"));
          done[0] = done[0].withChecks(report.checkSummary());
        }
        done[0] = Committer.commitBeside(beside, report, done[0], progress, stages);
        commitStart[0] = System.nanoTime();
        done[0].write(staging.resolve("run-summary.json"));
        swap.in(staging);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    };
    try {
      if (load != null) {
        progress.phase("loading DuckDB");
        load.finish(runFiles, rejectsDir, resourcesOut, counted, tasks.checks(), tasks.sourceColumns(),
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
  }

  /**
   * Releases the lock, stops the load (rolled back unless it committed), deletes the staging folder and closes the
   * database; none of it is a reason to fail: the run's outcome is already decided.
   */
  @Override
  public void close() {
    // Each step whatever the one before did: the run's outcome is already decided, committed or failed for the
    // reason it reports.
    try {
      if (lock != null) {
        lock.close();
      }
    } catch (RuntimeException e) {
      LOG.warn("the lock of output {} could not be released: {}", output, e.toString());
    }
    try {
      if (load != null) {
        load.close();
      }
    } catch (RuntimeException e) {
      // rolled back or committed already
    }
    // A staging folder left behind is removed by the next run.
    FileTrees.deleteScratch(staging);
    if (db != null) {
      try {
        db.close();
      } catch (SQLException e) {
        // closing cannot change the outcome
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

  /** Renames a resource type's committed parts to the Bulk Data style {@code <Type>-SSSSS-of-NNNNN.ndjson}. */
  static void numberFiles(Path dir, String type) throws IOException {
    List<String> parts = new ArrayList<>(filesOf(dir, type));
    // Ordered by content, not by part name: equal inputs give byte-identical files however they were cut into tasks.
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
    for (int i = 0; i < parts.size(); i++) {
      Path part = Path.of(parts.get(i));
      Files.move(part, dir.resolve(String.format(java.util.Locale.ROOT, "%s-%05d-of-%05d.ndjson.tmp", type, i,
          parts.size())), StandardCopyOption.ATOMIC_MOVE);
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, type + "-*.ndjson.tmp")) {
      for (Path p : s) {
        String name = p.getFileName().toString();
        Files.move(p, dir.resolve(name.substring(0, name.length() - ".tmp".length())), StandardCopyOption.ATOMIC_MOVE);
      }
    }
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
  final class Swap {
    private static final List<String> NAMES = List.of("fhir", "parquet", "rejects", "report", "run-summary.json");
    private final List<Path[]> moved = new ArrayList<>();

    private Swap() {}

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
  void recoverInterruptedRuns(Connection db) throws IOException {
    try (DirectoryStream<Path> s = Files.newDirectoryStream(output, ".previous-*")) {
      for (Path backup : s) {
        String rest = backup.getFileName().toString().substring(".previous-".length());
        for (String original : Swap.NAMES) {
          if (!rest.endsWith("-" + original)) {
            continue;
          }
          String other = rest.substring(0, rest.length() - original.length() - 1);
          boolean committed = db != null ? DuckDbTables.committed(db, other)
              : !stagedFilesLeft(output.resolve(".staging-" + other));
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

}
