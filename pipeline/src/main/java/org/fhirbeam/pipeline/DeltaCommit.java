package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.delta.kernel.DataWriteContext;
import io.delta.kernel.Operation;
import io.delta.kernel.Snapshot;
import io.delta.kernel.Table;
import io.delta.kernel.Transaction;
import io.delta.kernel.TransactionBuilder;
import io.delta.kernel.TransactionCommitResult;
import io.delta.kernel.data.Row;
import io.delta.kernel.defaults.engine.DefaultEngine;
import io.delta.kernel.defaults.internal.parquet.ParquetStatsReader;
import io.delta.kernel.engine.Engine;
import io.delta.kernel.exceptions.ConcurrentTransactionException;
import io.delta.kernel.exceptions.TableNotFoundException;
import io.delta.kernel.hook.PostCommitHook;
import io.delta.kernel.internal.TableImpl;
import io.delta.kernel.statistics.DataFileStatistics;
import io.delta.kernel.types.BooleanType;
import io.delta.kernel.types.DataType;
import io.delta.kernel.types.DateType;
import io.delta.kernel.types.DoubleType;
import io.delta.kernel.types.LongType;
import io.delta.kernel.types.StringType;
import io.delta.kernel.types.StructField;
import io.delta.kernel.types.StructType;
import io.delta.kernel.types.TimestampType;
import io.delta.kernel.utils.CloseableIterable;
import io.delta.kernel.utils.CloseableIterator;
import io.delta.kernel.utils.DataFileStatus;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.hadoop.util.HadoopOutputFile;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.DeltaFiles;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.ObjectStorage;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.transforms.CompiledMapping;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Commits a run's resources to Delta tables with the Delta kernel's Java API (no Spark session): the run's tasks
 * write each resource part as a Parquet file into its type's table folder ({@link DeltaFiles}), and once the run
 * balances, each table gets one version holding exactly the run's files: added to what it held (append), or
 * replacing it (overwrite, a REPLACE TABLE that also takes the run's columns). A file not in a table's log is not
 * part of the table, so until its version is written a table is as it was, and readers can time-travel to any
 * earlier run.
 *
 * <p>A run's commits are idempotent: each carries the Delta transaction id {@code (fhirbeam, v)}, {@code v} the run's
 * start in ms or, if a table took one as high already, just above the highest, which a table takes once (a table
 * that holds a later run's fails this run's commit: two runs wrote at once). Several tables cannot change in one
 * Delta transaction, so before the first of them the run writes a ledger ({@code _fhirbeam/commits/<run id>.json}
 * beside the tables) listing every table's files, and deletes it after the last: a run killed between the two leaves
 * its ledger, and the next run with the same Delta location first completes that commit (tables that already hold
 * it, or a later run, are left alone), so every table ends holding the killed run exactly once.
 */
final class DeltaCommit implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(DeltaCommit.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The application id of the runs' Delta transaction ids. */
  static final String APP_ID = "fhirbeam";
  private static final String ENGINE_INFO = "fhirbeam";
  /**
   * Test-only: with this system property set to {@code n}, the JVM halts (as if killed) right after the commit has
   * written the versions of its first {@code n} tables.
   */
  static final String HALT_AFTER_TABLES = "fhirbeam.delta_halt_after_tables";
  /** The size a run's small data files are merged up to, in each table. */
  static final long TARGET_BYTES = 128L << 20;
  /**
   * Data files smaller than this are merged: a task's part of a small input file. Larger ones are left as they are:
   * merging copies every byte on the driver, and a table read in tasks reads files of this size well.
   */
  static final long SMALL_BYTES = 8L << 20;

  private final String root;
  private final WriteMode mode;
  private final String runId;
  /** The run's start in ms: its transaction version, unless a table already took one as high (see #commit). */
  private final long startMillis;
  private final JobPlan plan;
  private final Map<String, DuckDbTables.ParquetLayout> layouts;
  /**
   * Every table the run commits, by {@code <schema>/<name>}: the resource tables first, then those of the same files
   * ({@code transformed_data}), the rejects and the quality history; the {@code raw_data} tables join once copied.
   */
  private final Map<String, TableSpec> tables = new LinkedHashMap<>();
  private final org.fhirbeam.config.DuckDbSettings duckdb;
  /** The copy of the source rows into the {@code raw_data} tables, made while the pipeline maps; null for none. */
  private java.util.concurrent.FutureTask<Map<String, RawTable>> rawCopy;
  /** For tables named by catalog: the settings, the job's name, and each table's comment; else null. */
  private SinkSettings.Delta catalog;
  private String job;
  private final Map<String, String> comments = new LinkedHashMap<>();
  /** The job's Spark session ({@link CatalogTables}) when the tables are named by catalog; else null. */
  private Object session;
  /** The tables' files, through {@code java.nio} ({@link LocalFileIO}). */
  private final LocalFileIO fileIO = new LocalFileIO();
  private final Engine engine = DefaultEngine.create(fileIO);
  /** The tables' versions once the run is committed to them; null before. */
  private RunSummary.Delta committed;
  /** Whether the run's ledger is written: from then on, its files are the tables' or the next run's to add. */
  private boolean ledgerWritten;
  /** Whether the tables are a streaming job's, committed window by window ({@link #forStream}). */
  private final boolean stream;

  /**
   * A table the run commits: its columns ({@code [name, DuckDB type]}), how it takes the run's files, how many of its
   * leading columns have statistics in its log, and for a table of another's files (a mapping's
   * {@code transformed_data} table: its type's resources, the mapping's columns of them) that table; else null.
   */
  record TableSpec(List<String[]> columns, WriteMode mode, int indexed, String filesOf) {}

  /** A {@code raw_data} table as its copy wrote it: the source's columns, and its data files. */
  private record RawTable(List<String[]> columns, List<DeltaFiles.DataFile> files) {}

  private DeltaCommit(String root, WriteMode mode, String runId, long startMillis, JobPlan plan, boolean stream) {
    this.root = root;
    this.stream = stream;
    this.mode = mode;
    this.runId = runId;
    this.startMillis = startMillis;
    this.plan = plan;
    this.layouts = FileSinks.parquetLayouts(plan);
    this.duckdb = plan.config().duckdb();
    layouts.forEach((type, layout) -> {
      List<String[]> columns = new ArrayList<>();
      layout.columns().forEach(c -> columns.add(new String[] {c.name(), c.sqlType()}));
      tables.put(DeltaFiles.resourceTable(type), new TableSpec(columns, mode, indexedColumns(columns), null));
    });
    for (CompiledMapping m : plan.mappings()) {
      // As DuckDB's transformed_data view: id and the mapping's columns, of every resource of the type. Those its
      // type's files hold: its top-level elements (nested ones are in the resource).
      java.util.Set<String> own = new java.util.HashSet<>(List.of("id"));
      m.flatColumns().stream().filter(CompiledMapping.FlatColumn::topLevel).forEach(c -> own.add(c.name()));
      String resources = DeltaFiles.resourceTable(m.resourceType());
      List<String[]> columns = tables.get(resources).columns().stream().filter(c -> own.contains(c[0])).toList();
      tables.put(DeltaFiles.TRANSFORMED_SCHEMA + "/" + m.name(), new TableSpec(columns, mode, 1, resources));
    }
    if (stream) {
      // A stream's rejects are added window by window; the record's place is indexed, not the record. Its windows
      // and positions are counts and offsets: every column indexed.
      QualityTables.STREAM.forEach((table, columns) -> tables.put(DeltaFiles.QUALITY_SCHEMA + "/" + table,
          new TableSpec(columns, WriteMode.APPEND, table.equals("rejects") ? 6 : columns.size(), null)));
      return;
    }
    tables.put(DeltaFiles.REJECTS, new TableSpec(DeltaFiles.REJECT_COLUMNS, WriteMode.OVERWRITE,
        indexedColumns(DeltaFiles.REJECT_COLUMNS), null));
    // Counts and names of each run, no record values: every column indexed.
    QualityTables.HISTORY.forEach((table, columns) -> tables.put(DeltaFiles.QUALITY_SCHEMA + "/" + table,
        new TableSpec(columns, WriteMode.APPEND, columns.size(), null)));
  }

  /**
   * The path-based Delta tables ({@code sinks.delta.location}) of run {@code runId} of streaming job {@code plan},
   * which commits window by window ({@link #commitWindow}): the resource tables and the mappings'
   * {@code transformed_data} tables as a batch run's, and {@code quality.rejects}, {@code quality.stream_windows}
   * and {@code quality.stream_positions} with the columns of the stream's DuckDB tables. Completes first the commit
   * of a window killed while it committed.
   */
  static DeltaCommit forStream(JobPlan plan, String runId) {
    String location = plan.config().sinks().delta().location();
    String root = Path.of(location).toAbsolutePath().normalize().toString();
    try {
      Files.createDirectories(Path.of(root));
    } catch (IOException e) {
      throw new InputException("sinks.delta.location " + location + " cannot be created: " + e, e);
    }
    DeltaCommit commit = new DeltaCommit(root, WriteMode.APPEND, runId, 0, plan, true);
    commit.completeKilledCommits();
    return commit;
  }

  /** The folder of {@code table} ({@code <schema>/<name>}). */
  String folder(String table) {
    return DeltaFiles.folder(root, table);
  }

  /** The data files of {@code table}'s latest version, as paths; none for a table not created yet. */
  List<String> dataFiles(String table) {
    Snapshot current = latest(table(folder(table)));
    return current == null ? List.of() : DeltaSource.dataFiles(engine, current, "the Delta table " + folder(table));
  }

  /** A Parquet file of a window's resources, written by a task, and the resources it holds. */
  record WindowFile(Path file, long rows) {}

  /**
   * Commits window {@code windowId} of a stream: its resources ({@code resourceFiles}, Parquet files by type, laid
   * out as the tables' files, which are moved into the tables' folders), its rejects ({@code rejectFiles}, the
   * stream's reject NDJSON files) and its {@code rows} of other {@code quality} tables (by table, values of its
   * columns), each written as one data file; then each table that has a file gets one version (a mapping's
   * {@code transformed_data} table takes its resource table's), all with the same transaction version, above every
   * one the tables took. As a run's commit, through a ledger: a window killed while it committed is completed by the
   * next run. Returns the tables' versions that hold the window.
   */
  Map<String, Long> commitWindow(String windowId, Map<String, List<WindowFile>> resourceFiles,
      List<String> rejectFiles, Map<String, List<List<Object>>> rows) throws IOException {
    Map<String, List<DeltaFiles.DataFile>> byTable = new LinkedHashMap<>();
    for (Map.Entry<String, List<WindowFile>> e : resourceFiles.entrySet()) {
      String table = DeltaFiles.resourceTable(e.getKey());
      Path folder = Files.createDirectories(Path.of(folder(table)));
      List<DeltaFiles.DataFile> files = new ArrayList<>();
      for (WindowFile f : e.getValue()) {
        String name = String.format(java.util.Locale.ROOT, "part-%s-%s-%05d.parquet", windowId,
            table.substring(table.indexOf('/') + 1), files.size());
        Files.move(f.file(), folder.resolve(name), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        files.add(new DeltaFiles.DataFile(name, f.rows(), Files.size(folder.resolve(name))));
      }
      byTable.put(table, files);
    }
    try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
        java.sql.Statement st = db.createStatement()) {
      if (!rejectFiles.isEmpty()) {
        byTable.put(DeltaFiles.REJECTS, List.of(writeFile(st, DeltaFiles.REJECTS, windowId, target -> "COPY ("
            + QualityTables.streamRejectsQuery(rejectFiles, windowId) + ") TO " + org.fhirbeam.io.DuckDb.literal(
            target) + " (FORMAT parquet)")));
      }
      for (Map.Entry<String, List<List<Object>>> e : rows.entrySet()) {
        String table = DeltaFiles.QUALITY_SCHEMA + "/" + e.getKey();
        byTable.put(table, List.of(writeFile(st, table, windowId, target -> "COPY (" + valuesQuery(
            QualityTables.STREAM.get(e.getKey()), e.getValue()) + ") TO " + org.fhirbeam.io.DuckDb.literal(target)
            + " (FORMAT parquet)")));
      }
    } catch (java.sql.SQLException e) {
      throw org.fhirbeam.io.DuckDb.failure("writing window " + windowId + "'s Delta data files failed", e);
    }
    List<String> merged = new ArrayList<>();
    Map<String, Long> versions = commitFiles(windowId, byTable, merged);
    try {
      ObjectStorage.delete(merged); // merged into larger files, which the tables have instead
    } catch (IOException | RuntimeException e) {
      LOG.warn("window {} is committed to the Delta tables in {}, but files it did not add could not all be deleted"
          + " (they are never read): {}", windowId, root, e.toString());
    }
    return versions;
  }

  /**
   * Writes a data file of window {@code windowId} into {@code table}'s folder, with the COPY statement
   * {@code copy} makes for its path; returns it as a data file of the table.
   */
  private DeltaFiles.DataFile writeFile(java.sql.Statement st, String table, String windowId,
      java.util.function.Function<String, String> copy) throws IOException, java.sql.SQLException {
    Path folder = Files.createDirectories(Path.of(folder(table)));
    String name = "part-" + windowId + "-" + table.substring(table.indexOf('/') + 1) + ".parquet";
    long rows = st.executeLargeUpdate(copy.apply(folder.resolve(name).toString()));
    return new DeltaFiles.DataFile(name, rows, Files.size(folder.resolve(name)));
  }

  /** Deletes the data files of window (or run) {@code id} in every table: files no table holds. */
  void deleteFiles(String id) throws IOException {
    for (String table : tables.keySet()) {
      if (Files.isDirectory(Path.of(folder(table)))) {
        ObjectStorage.delete(ObjectStorage.list(folder(table) + "/part-" + id + "-*"));
      }
    }
  }

  /**
   * Prepares run {@code runId} (started at {@code startMillis}) of {@code plan} for its Delta tables; null when the
   * job writes none. Path-based tables: completes first the commit of a run killed while committing to the same
   * tables. Tables named by catalog: takes the job's Spark session (refused without one), and has the tasks stage
   * the data files under {@code staging}, a folder every worker sees.
   */
  static DeltaCommit open(JobPlan plan, String runId, long startMillis, String staging) {
    SinkSettings.Delta settings = plan.config().sinks().delta();
    if (settings == null) {
      return null;
    }
    boolean byCatalog = settings.catalog() != null;
    String root = byCatalog ? staging + "/delta" : Path.of(settings.location()).toAbsolutePath().normalize()
        .toString();
    DeltaCommit commit = new DeltaCommit(root, settings.mode(), runId, startMillis, plan, false);
    if (byCatalog) {
      try {
        Class.forName("org.apache.spark.sql.SparkSession");
      } catch (ClassNotFoundException e) {
        throw new InputException("sinks.delta.catalog names tables of a catalog of the job's Spark session (Unity"
            + " Catalog on Databricks), and this installation runs without Spark SQL: run the job on Databricks, or"
            + " use sinks.delta.location for path-based tables", e);
      }
      commit.session = CatalogTables.session(System.getenv());
      commit.catalog = settings;
      commit.job = plan.config().name();
      Map<String, List<String>> mappings = new LinkedHashMap<>();
      for (CompiledMapping m : plan.mappings()) {
        mappings.computeIfAbsent(DeltaFiles.resourceTable(m.resourceType()), t -> new ArrayList<>()).add(m.name());
        commit.comments.put(DeltaFiles.TRANSFORMED_SCHEMA + "/" + m.name(), "id and the columns of mapping "
            + m.name() + " of the " + m.resourceType() + " resources");
      }
      mappings.forEach((table, names) -> commit.comments.put(table, "FHIR R4 " + table.substring(table.indexOf('/')
          + 1) + " resources of mapping " + String.join(", ", names)));
      commit.comments.put(DeltaFiles.REJECTS, "The rows of the latest run that became no resource, with the rule and"
          + " reason; holds PHI");
      QualityTables.HISTORY.keySet().forEach(t -> commit.comments.put(DeltaFiles.QUALITY_SCHEMA + "/" + t,
          "Data-quality figures of each run: " + t.replace('_', ' ')));
      plan.sources().keySet().forEach(s -> commit.comments.put(DeltaFiles.rawTable(s), "The rows of source " + s
          + " as the latest run read them, every column as text, with _source_file; holds PHI"));
    } else {
      try {
        Files.createDirectories(Path.of(root));
      } catch (IOException e) {
        throw new InputException("sinks.delta.location " + settings.location() + " cannot be created: " + e, e);
      }
      commit.completeKilledCommits();
      commit.warmUp();
    }
    if (settings.rawCopy()) {
      commit.rawCopy = new java.util.concurrent.FutureTask<>(commit::copyRawRows);
      Thread t = new Thread(commit.rawCopy, "fhirbeam-delta-raw-copy");
      t.setDaemon(true);
      t.start();
    }
    return commit;
  }

  /**
   * Writes the rows of the job's file sources ({@link RawRows}) as the data files of their {@code raw_data} tables,
   * on the machine that runs the command, while the pipeline maps: files of up to {@link #TARGET_BYTES}, each under
   * a name of its own in the table's folder once whole. Returns each table with its columns and files.
   */
  private Map<String, RawTable> copyRawRows() throws IOException {
    Map<String, RawTable> out = new LinkedHashMap<>();
    try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
        RawRows rows = RawRows.of(plan, db);
        java.sql.Statement st = db.createStatement()) {
      st.execute("SET preserve_insertion_order = false"); // rows of a Delta table have no order
      // Beside the pipeline's tasks, which keep every core busy: one thread, so as to take turns with them.
      st.execute("SET threads = 1");
      for (String source : rows.queries().keySet()) {
        String table = DeltaFiles.rawTable(source);
        Path folder = Files.createDirectories(Path.of(DeltaFiles.folder(root, table)));
        List<String[]> columns = new ArrayList<>();
        try (java.sql.ResultSet rs = st.executeQuery("DESCRIBE " + rows.query(source))) {
          while (rs.next()) {
            columns.add(new String[] {rs.getString("column_name"), rs.getString("column_type")});
          }
        }
        Path writing = folder.resolve(".part-" + runId + "-raw.writing");
        st.execute("COPY (" + rows.query(source) + ") TO " + org.fhirbeam.io.DuckDb.literal(writing.toString())
            + " (FORMAT parquet, FILE_SIZE_BYTES " + TARGET_BYTES + ", FILENAME_PATTERN 'raw-{i}')");
        List<DeltaFiles.DataFile> files = new ArrayList<>();
        List<Path> written;
        try (java.util.stream.Stream<Path> l = Files.isDirectory(writing) ? Files.list(writing)
            : java.util.stream.Stream.empty()) {
          written = l.sorted().toList();
        }
        for (Path file : written) {
          long fileRows;
          try (java.sql.ResultSet rs = st.executeQuery("SELECT num_rows FROM parquet_file_metadata("
              + org.fhirbeam.io.DuckDb.literal(file.toString()) + ")")) {
            rs.next();
            fileRows = rs.getLong(1);
          }
          String name = "part-" + runId + "-" + file.getFileName();
          Files.move(file, folder.resolve(name), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
          files.add(new DeltaFiles.DataFile(name, fileRows, Files.size(folder.resolve(name))));
        }
        Files.deleteIfExists(writing);
        out.put(table, new RawTable(columns, files));
      }
    } catch (java.sql.SQLException e) {
      throw org.fhirbeam.io.DuckDb.failure("copying the source rows into the raw_data Delta tables failed", e);
    }
    return out;
  }

  /**
   * While the pipeline runs, on a thread of its own: reads the tables' latest snapshots, and the statistics of a
   * one-row Parquet file, so that the kernel, Hadoop's file system and Parquet's footer reader load and start up
   * meanwhile (most of a second), not when the run commits.
   */
  private void warmUp() {
    Thread t = new Thread(() -> {
      Path probe = null;
      try {
        for (String table : tables.keySet()) {
          latest(table(DeltaFiles.folder(root, table)));
        }
        probe = Files.createTempFile("fhirbeam-delta-warmup-", ".parquet");
        try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
            java.sql.Statement st = db.createStatement()) {
          st.execute("COPY (SELECT 'x' AS id) TO " + org.fhirbeam.io.DuckDb.literal(probe.toString())
              + " (FORMAT parquet)");
        }
        ParquetStatsReader.readDataFileStatistics(fileIO.newInputFile(LocalFileIO.name(probe), Files.size(probe)),
            schema(List.<String[]>of(new String[] {"id", "VARCHAR"})),
            List.of(new io.delta.kernel.expressions.Column("id")));
      } catch (IOException | java.sql.SQLException | RuntimeException e) {
        LOG.debug("warming up the Delta kernel failed; the commit does it", e);
      } finally {
        if (probe != null) {
          probe.toFile().delete();
        }
      }
    }, "fhirbeam-delta-warmup");
    t.setDaemon(true);
    t.start();
  }

  /** Where the run's tasks write the tables' data files. */
  DeltaFiles files() {
    return new DeltaFiles(root, runId, layouts);
  }

  /**
   * Commits the run: one version of every table, those the run gives no rows too, so that every table has a version
   * per run: each resource type's table, and the mappings' {@code transformed_data} tables of the same files; the
   * run's {@code quality.rejects} (replacing the previous run's, as in DuckDB) and {@code raw_data} copies; and, from
   * the run's quality {@code report} (null for a run without one, which leaves them as they are), its rows of the
   * {@code quality} history tables. The data files are those its tasks wrote ({@code tasks}, the figures of what they
   * committed) and those written here; {@code counted} is the run's summary, and {@code output} where it writes.
   * Returns the tables and the versions that hold the run.
   */
  RunSummary.Delta commit(RunSummary counted, PipelineCounts tasks, String output, QualityReport report)
      throws IOException {
    Map<String, List<DeltaFiles.DataFile>> byTable = new LinkedHashMap<>(DeltaFiles.written(tasks.committed()));
    awaitRawCopy().forEach((table, raw) -> {
      tables.put(table, new TableSpec(raw.columns(), WriteMode.OVERWRITE, 0, null)); // no values in the log
      byTable.put(table, raw.files());
    });
    if (report != null) {
      byTable.putAll(writeQualityRows(report, counted, tasks, output));
    } else {
      // No figures: the history tables are left as they are.
      QualityTables.HISTORY.keySet().forEach(t -> tables.remove(DeltaFiles.QUALITY_SCHEMA + "/" + t));
    }
    if (catalog != null) {
      ledgerWritten = true; // the session reads the staged files; the committer's folder goes with them
      committed = CatalogTables.commit(session, catalog, job, tables, comments, root, byTable, startMillis);
      return committed;
    }
    List<String> merged = new ArrayList<>();
    Map<String, Long> versions = commitFiles(runId, byTable, merged);
    // Files merged into larger ones, which the ledger listed instead, and what killed attempts of tasks left: no
    // table will ever add them.
    List<String> unused = new ArrayList<>(merged);
    try {
      for (String table : tables.keySet()) {
        unused.addAll(ObjectStorage.list(DeltaFiles.folder(root, table) + "/.part-" + runId + "-*"));
      }
      ObjectStorage.delete(unused);
    } catch (IOException | RuntimeException e) {
      LOG.warn("run {} is committed to the Delta tables in {}, but files it did not add could not all be deleted"
          + " (they are never read): {}", runId, root, e.toString());
    }
    committed = new RunSummary.Delta(root, versions, tables.keySet().stream().filter(RunSummary.Delta::shown)
        .sorted().map(DeltaFiles::name).toList());
    return committed;
  }

  /**
   * Commits {@code byTable} (by table, the data files it gets) under id {@code id} (a run's or a stream window's):
   * the files each table gets (a run's small ones merged, their names added to {@code merged}) are listed in a
   * ledger, then each table's version is written, then the ledger deleted. All versions carry one transaction
   * version: the run's start in ms, or above every one the tables took. A stream's window gives a version only to
   * the tables it has files for. Returns the tables' versions that hold the files.
   */
  private Map<String, Long> commitFiles(String id, Map<String, List<DeltaFiles.DataFile>> byTable,
      List<String> merged) throws IOException {
    // The transaction version: above every one the tables took, whatever this machine's clock says.
    long txnVersion = startMillis;
    for (String table : tables.keySet()) {
      txnVersion = Math.max(txnVersion, lastTxnVersion(table) + 1);
    }
    Map<String, Object> ledger = new LinkedHashMap<>();
    ledger.put("run_id", id);
    ledger.put("txn_version", txnVersion);
    Map<String, Object> entries = new LinkedHashMap<>();
    Map<String, WriteMode> modes = new LinkedHashMap<>();
    Map<String, List<DeltaFiles.DataFile>> added = new LinkedHashMap<>();
    for (Map.Entry<String, TableSpec> table : tables.entrySet()) {
      TableSpec spec = table.getValue();
      List<DeltaFiles.DataFile> files;
      WriteMode tableMode = spec.mode();
      if (spec.filesOf() != null) {
        // The files its resource table gets, as that table gets them; named from this table's folder (both are
        // <schema>/<name>), they are in the log by their absolute paths.
        tableMode = modes.get(spec.filesOf());
        files = new ArrayList<>();
        for (DeltaFiles.DataFile f : added.get(spec.filesOf())) {
          files.add(new DeltaFiles.DataFile("../../" + spec.filesOf() + "/" + f.name(), f.rows(), f.bytes()));
        }
      } else if (tableMode == WriteMode.UPSERT) {
        files = byTable.getOrDefault(table.getKey(), List.of());
        // The table's rows merged with the run's make the table anew: committed as an overwrite. A run without
        // resources of the type leaves the table's rows as they are (an empty version).
        tableMode = files.isEmpty() ? WriteMode.APPEND : WriteMode.OVERWRITE;
        files = files.isEmpty() ? files : upserted(table.getKey(), files, merged);
      } else {
        files = coalesced(id, table.getKey(), byTable.getOrDefault(table.getKey(), List.of()), merged);
      }
      modes.put(table.getKey(), tableMode);
      added.put(table.getKey(), files);
      if (stream && files.isEmpty()) {
        continue; // a window's version only where it adds rows
      }
      if (tableMode == WriteMode.APPEND && !files.isEmpty()) {
        checkColumns(table.getKey(), latest(table(DeltaFiles.folder(root, table.getKey()))),
            schema(spec.columns()));
      }
      Map<String, Object> t = new LinkedHashMap<>();
      t.put("mode", tableMode.name());
      t.put("indexed", spec.indexed());
      List<Map<String, Object>> columns = new ArrayList<>();
      spec.columns().forEach(c -> columns.add(Map.of("name", c[0], "type", c[1])));
      t.put("columns", columns);
      List<Map<String, Object>> listed = new ArrayList<>();
      files.forEach(f -> listed.add(Map.of("name", f.name(), "rows", f.rows(), "bytes", f.bytes())));
      t.put("files", listed);
      entries.put(table.getKey(), t);
    }
    ledger.put("tables", entries);
    String location = ledger(id);
    ObjectStorage.replace(location, new ByteArrayInputStream(JSON.writeValueAsBytes(ledger)), "application/json");
    ledgerWritten = true;
    Map<String, Long> versions = apply(JSON.valueToTree(ledger), false);
    ObjectStorage.delete(List.of(location));
    return versions;
  }

  /** The tables' versions once the run is committed to them; null before. */
  RunSummary.Delta committed() {
    return committed;
  }

  /** The {@code raw_data} tables the copy wrote; none when the job copies no rows. Throws what the copy threw. */
  private Map<String, RawTable> awaitRawCopy() throws IOException {
    return rawCopy == null ? Map.of() : await(rawCopy, "copying the source rows");
  }

  /** What {@code work} returned, once done; throws what it threw. */
  private static <T> T await(java.util.concurrent.Future<T> work, String what) throws IOException {
    try {
      return work.get();
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof IOException io) {
        throw io;
      }
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while " + what, e);
    }
  }

  /**
   * Writes the run's rows of each {@code quality} history table as one data file of its table: the figures of the
   * run's quality {@code report} (read from the DuckDB load's quality tables, or made from what the tasks measured),
   * with the columns of DuckDB's quality tables. Returns each table with its file (none for a table the run has no
   * rows of).
   */
  private Map<String, List<DeltaFiles.DataFile>> writeQualityRows(QualityReport report, RunSummary counted,
      PipelineCounts tasks, String output) throws IOException {
    Map<String, List<List<Object>>> rows = new LinkedHashMap<>();
    QualityTables.HISTORY.keySet().forEach(t -> rows.put(t, new ArrayList<>()));
    QualityReport.RunRow run = report.run();
    rows.get("runs").add(java.util.Arrays.asList(runId, run.time(), run.job(), run.rowsIn(), run.resources(),
        run.rejected(), run.validated(), output));
    for (int i = 0; i < counted.mappings().size(); i++) {
      RunSummary.MappingCount m = counted.mappings().get(i);
      rows.get("mappings").add(List.of(runId, i, m.mapping(), m.source(), m.resourceType(), m.rowsIn(), m.mapped(),
          m.rejected()));
    }
    for (QualityReport.CompletenessRow c : report.completeness()) {
      // The element's position and column in its mapping, as DuckDB's table has them.
      CompiledMapping m = plan.mappings().stream().filter(x -> x.name().equals(c.mapping())).findFirst().orElseThrow();
      int position = 0;
      while (!m.valueElements().get(position).path().equals(c.element())) {
        position++;
      }
      rows.get("completeness").add(java.util.Arrays.asList(runId, c.mapping(), position, c.element(),
          m.valueElements().get(position).column(), c.populated(), c.total(), c.share()));
    }
    report.rejects().forEach(r -> rows.get("rejects_by_reason").add(List.of(runId, r.mapping(), r.stage(), r.rule(),
        r.count())));
    report.checks().forEach(c -> rows.get("checks").add(java.util.Arrays.asList(runId, c.mapping(), c.check(),
        c.element(), c.failed(), c.total())));
    report.issues().forEach(i -> rows.get("validation_issues").add(List.of(runId, i.mapping(), i.severity(),
        i.category(), i.messageId(), i.count())));
    tasks.sourceColumns().forEach(c -> rows.get("source_columns").add(java.util.Arrays.asList(runId, c.source(),
        c.position(), c.column(), c.populated(), c.total(), c.total() == 0 ? null : (double) c.populated()
        / c.total())));
    Map<String, List<DeltaFiles.DataFile>> out = new LinkedHashMap<>();
    try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
        java.sql.Statement st = db.createStatement()) {
      for (Map.Entry<String, List<List<Object>>> t : rows.entrySet()) {
        if (t.getValue().isEmpty()) {
          continue;
        }
        String table = DeltaFiles.QUALITY_SCHEMA + "/" + t.getKey();
        Path folder = Files.createDirectories(Path.of(DeltaFiles.folder(root, table)));
        String name = "part-" + runId + "-quality.parquet";
        st.execute("COPY (" + valuesQuery(QualityTables.HISTORY.get(t.getKey()), t.getValue()) + ") TO "
            + org.fhirbeam.io.DuckDb.literal(folder.resolve(name).toString()) + " (FORMAT parquet)");
        out.put(table, List.of(new DeltaFiles.DataFile(name, t.getValue().size(), Files.size(folder.resolve(name)))));
      }
    } catch (java.sql.SQLException e) {
      throw org.fhirbeam.io.DuckDb.failure("writing the quality figures for the Delta tables failed", e);
    }
    return out;
  }

  /** A query of {@code rows}, each value cast to its column's type and named as the column. */
  static String valuesQuery(List<String[]> columns, List<List<Object>> rows) {
    List<String> values = new ArrayList<>();
    for (List<Object> row : rows) {
      List<String> v = new ArrayList<>();
      for (Object o : row) {
        // A double as text, which the cast reads exactly (a numeric literal would be read as a DECIMAL first).
        v.add(o == null ? "NULL" : o instanceof String || o instanceof Double ? org.fhirbeam.io.DuckDb.literal(
            o.toString()) : o.toString());
      }
      values.add("(" + String.join(", ", v) + ")");
    }
    List<String> select = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < columns.size(); i++) {
      names.add("c" + i);
      select.add("CAST(c" + i + " AS " + columns.get(i)[1] + ") AS "
          + org.fhirbeam.io.DuckDb.identifier(columns.get(i)[0]));
    }
    return "SELECT " + String.join(", ", select) + " FROM (VALUES " + String.join(", ", values) + ") AS v("
        + String.join(", ", names) + ")";
  }

  /**
   * Deletes the data files of a run that did not get as far as its ledger (it failed, or did not balance): no table
   * will ever add them. Best-effort: files left are never read (Delta's VACUUM removes them).
   */
  @Override
  public void close() {
    if (ledgerWritten || stream) {
      return;
    }
    java.util.Set<String> written = new java.util.LinkedHashSet<>(tables.keySet());
    if (rawCopy != null) {
      try {
        awaitRawCopy(); // its files are deleted once it is done writing them
      } catch (IOException | RuntimeException e) {
        LOG.debug("the raw_data copy of a failed run failed too", e);
      }
      plan.sources().keySet().forEach(source -> written.add(DeltaFiles.rawTable(source)));
    }
    try {
      for (String table : written) {
        Path folder = Path.of(DeltaFiles.folder(root, table));
        if (Files.isDirectory(folder)) {
          ObjectStorage.delete(ObjectStorage.list(folder + "/part-" + runId + "-*"));
          ObjectStorage.delete(ObjectStorage.list(folder + "/.part-" + runId + "-*.parquet.writing-*"));
          org.fhirbeam.io.FileTrees.deleteScratch(folder.resolve(".part-" + runId + "-raw.writing"));
        }
      }
    } catch (IOException | RuntimeException e) {
      LOG.warn("the data files run {} wrote into the Delta tables in {} could not all be deleted: {}", runId, root,
          e.toString());
    }
  }

  /**
   * {@code type}'s data files as the table gets them: each run of consecutive small files ({@link #SMALL_BYTES}) under
   * {@link #TARGET_BYTES}
   * together merged into one (a task's part of a small input is a small file, and many small files slow every
   * reader), the others as they are, named for {@code id} (the run's or the window's). The files merged are added to
   * {@code merged}.
   */
  private List<DeltaFiles.DataFile> coalesced(String id, String table, List<DeltaFiles.DataFile> files,
      List<String> merged) throws IOException {
    String folder = DeltaFiles.folder(root, table);
    List<List<DeltaFiles.DataFile>> groups = new ArrayList<>();
    long groupBytes = 0;
    for (DeltaFiles.DataFile f : files) {
      if (f.bytes() >= SMALL_BYTES) {
        groups.add(new ArrayList<>(List.of(f))); // large enough as it is
        groupBytes = TARGET_BYTES;
        continue;
      }
      if (groups.isEmpty() || groupBytes + f.bytes() > TARGET_BYTES) {
        groups.add(new ArrayList<>());
        groupBytes = 0;
      }
      groups.get(groups.size() - 1).add(f);
      groupBytes += f.bytes();
    }
    List<DeltaFiles.DataFile> out = new ArrayList<>();
    for (List<DeltaFiles.DataFile> group : groups) {
      if (group.size() == 1) {
        out.add(group.get(0));
        continue;
      }
      List<String> paths = new ArrayList<>();
      long rows = 0;
      for (DeltaFiles.DataFile f : group) {
        paths.add(folder + "/" + f.name());
        rows += f.rows();
      }
      String name = "part-" + id + "-merged-" + out.size() + ".parquet";
      Path target = Path.of(folder, name);
      long copied = appendRowGroups(paths, target);
      if (copied != rows) {
        throw new IOException("merging " + group.size() + " Delta data files of " + folder + " copied " + copied
            + " of their " + rows + " rows");
      }
      out.add(new DeltaFiles.DataFile(name, rows, Files.size(target)));
      merged.addAll(paths);
    }
    return out;
  }

  /**
   * The upsert of {@code files} (the run's data files of {@code type}) into the type's table, as one data file: of
   * the table's resources and the run's, one per id, the one with the newer {@code meta.lastUpdated} (the run's when
   * they tie or either has none), as the other sinks' upsert. The run's files are added to {@code merged}. Every file
   * of the table is read and written again (copy on write), as the Parquet sink's upsert does.
   */
  private List<DeltaFiles.DataFile> upserted(String table, List<DeltaFiles.DataFile> files, List<String> merged)
      throws IOException {
    String folder = DeltaFiles.folder(root, table);
    DuckDbTables.ParquetLayout layout = layouts.entrySet().stream()
        .filter(e -> DeltaFiles.resourceTable(e.getKey()).equals(table)).findFirst().orElseThrow().getValue();
    Snapshot current = latest(table(folder));
    List<String> previous = current == null ? List.of()
        : DeltaSource.dataFiles(engine, current, "sinks.delta: the Delta table " + folder);
    List<String> incoming = new ArrayList<>();
    files.forEach(f -> incoming.add(folder + "/" + f.name()));
    String name = "part-" + runId + "-upsert.parquet";
    Path target = Path.of(folder, name);
    long rows;
    try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
        java.sql.Statement st = db.createStatement()) {
      // By name: files of earlier runs may have other typed columns; only their resources are read.
      String query = DuckDbTables.upsertQuery(previous.isEmpty() ? DuckDbTables.NO_RESOURCES
          : "SELECT resource AS json FROM " + DuckDbTables.parquetFiles(previous), "SELECT resource AS json FROM "
          + DuckDbTables.parquetFiles(incoming));
      rows = st.executeLargeUpdate(layout.copy(query, " ORDER BY 1", target.toString()));
    } catch (java.sql.SQLException e) {
      throw org.fhirbeam.io.DuckDb.failure("upserting into the Delta table " + folder + " failed", e);
    }
    merged.addAll(incoming);
    return List.of(new DeltaFiles.DataFile(name, rows, Files.size(target)));
  }

  /**
   * Writes the row groups of {@code files} (Parquet files of one layout), in order, into one file {@code target},
   * as they are: their pages are copied, not decoded and encoded again. Returns the rows written.
   */
  private static long appendRowGroups(List<String> files, Path target) throws IOException {
    Configuration conf = new Configuration();
    // The local file system without its checksum files beside each file.
    conf.set("fs.file.impl", org.apache.hadoop.fs.RawLocalFileSystem.class.getName());
    conf.setBoolean("fs.file.impl.disable.cache", true);
    org.apache.parquet.hadoop.metadata.FileMetaData first;
    try (ParquetFileReader reader = ParquetFileReader.open(input(files.get(0), conf))) {
      first = reader.getFooter().getFileMetaData();
    }
    ParquetFileWriter writer = new ParquetFileWriter(HadoopOutputFile.fromPath(
        new org.apache.hadoop.fs.Path(target.toUri()), conf), first.getSchema(), ParquetFileWriter.Mode.CREATE,
        ParquetWriter.DEFAULT_BLOCK_SIZE, ParquetWriter.MAX_PADDING_SIZE_DEFAULT);
    writer.start();
    long rows = 0;
    for (String f : files) {
      try (ParquetFileReader reader = ParquetFileReader.open(input(f, conf))) {
        rows += reader.getRecordCount();
      }
      writer.appendFile(input(f, conf));
    }
    writer.end(first.getKeyValueMetaData());
    return rows;
  }

  private static HadoopInputFile input(String file, Configuration conf) throws IOException {
    return HadoopInputFile.fromPath(new org.apache.hadoop.fs.Path(Path.of(file).toUri()), conf);
  }

  private String ledger(String run) {
    return root + "/_fhirbeam/commits/" + run + ".json";
  }

  /** Completes the commits whose ledgers are left: of runs killed while they committed. */
  private void completeKilledCommits() {
    try {
      for (String left : ObjectStorage.list(root + "/_fhirbeam/commits/*.json")) {
        JsonNode ledger = JSON.readTree(ObjectStorage.read(left));
        LOG.info("completing the Delta commit of run {}, stopped while it committed", ledger.get("run_id").asText());
        try {
          apply(ledger, true);
        } catch (RuntimeException | IOException e) {
          throw new IllegalStateException("completing the Delta commit of run " + ledger.get("run_id").asText()
              + ", stopped while it committed, failed, so no run can commit to " + root + " until it is done: "
              + e.getMessage() + " (delete " + left + " to give up the tables of that run not committed yet)", e);
        }
        ObjectStorage.delete(List.of(left));
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException("completing an earlier run's Delta commit in " + root + " failed", e);
    }
  }

  /**
   * Writes the version of every table of {@code ledger} that does not hold its run yet; returns the tables'
   * versions that hold it (the version found in the table, for one that held it already).
   */
  private Map<String, Long> apply(JsonNode ledger, boolean completing) throws IOException {
    long txn = ledger.get("txn_version").asLong();
    int halt = Integer.getInteger(HALT_AFTER_TABLES, -1);
    java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger();
    Map<String, java.util.concurrent.Future<Long>> committing = new LinkedHashMap<>();
    // The tables are independent, and most of a commit is waiting on files: two at a time (one at a time for the
    // test that halts after n tables, so that exactly n hold the run).
    int threads = halt > 0 ? 1 : 2;
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "fhirbeam-delta-commit");
      t.setDaemon(true);
      return t;
    });
    try {
      ledger.get("tables").fields().forEachRemaining(e -> {
        List<String[]> columns = new ArrayList<>();
        e.getValue().get("columns").forEach(c -> columns.add(new String[] {c.get("name").asText(),
            c.get("type").asText()}));
        List<DeltaFiles.DataFile> files = new ArrayList<>();
        e.getValue().get("files").forEach(f -> files.add(new DeltaFiles.DataFile(f.get("name").asText(),
            f.get("rows").asLong(), f.get("bytes").asLong())));
        WriteMode tableMode = WriteMode.valueOf(e.getValue().get("mode").asText());
        // Ledgers of runs before the tables said how many columns they index: then the resource tables' way.
        int indexed = e.getValue().has("indexed") ? e.getValue().get("indexed").asInt() : indexedColumns(columns);
        committing.put(DeltaFiles.name(e.getKey()), pool.submit(() -> {
          long version = commitTable(e.getKey(), schema(columns), indexed, files, tableMode, txn, completing);
          if (done.incrementAndGet() == halt) {
            Runtime.getRuntime().halt(137);
          }
          return version;
        }));
      });
      Map<String, Long> versions = new LinkedHashMap<>();
      for (Map.Entry<String, java.util.concurrent.Future<Long>> c : committing.entrySet()) {
        versions.put(c.getKey(), await(c.getValue(), "committing the Delta tables"));
      }
      return versions;
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * One version of {@code type}'s table adding {@code files} (replacing what it held, for overwrite), with
   * transaction id {@code txn}; returns the table's version that holds it (its latest, when it held it already or a
   * later run has committed since).
   */
  private long commitTable(String name, StructType schema, int indexed, List<DeltaFiles.DataFile> dataFiles,
      WriteMode writeMode, long txn, boolean completing) throws IOException {
    String folder = DeltaFiles.folder(root, name);
    Files.createDirectories(Path.of(folder));
    Table table = table(folder);
    Snapshot current = latest(table);
    Map<String, String> properties = Map.of("delta.dataSkippingNumIndexedCols", String.valueOf(indexed));
    TransactionBuilder builder;
    if (current == null) {
      builder = table.createTransactionBuilder(engine, ENGINE_INFO, Operation.CREATE_TABLE)
          .withSchema(engine, schema).withTableProperties(engine, properties);
    } else if (writeMode == WriteMode.OVERWRITE) {
      // The kernel's REPLACE TABLE (public in later releases): the run's files and columns replace the table's.
      builder = ((TableImpl) table).createReplaceTableTransactionBuilder(engine, ENGINE_INFO)
          .withSchema(engine, schema).withTableProperties(engine, properties);
    } else {
      if (!dataFiles.isEmpty()) {
        checkColumns(name, current, schema);
      }
      builder = table.createTransactionBuilder(engine, ENGINE_INFO, Operation.WRITE);
    }
    Transaction transaction;
    try {
      transaction = builder.withTransactionId(engine, APP_ID, txn).build(engine);
    } catch (ConcurrentTransactionException e) {
      return committedBefore(name, txn, completing);
    }
    Row state = transaction.getTransactionState(engine);
    DataWriteContext context = Transaction.getWriteContext(engine, state, Map.of());
    long now = System.currentTimeMillis();
    List<DataFileStatus> statuses = new ArrayList<>();
    for (DeltaFiles.DataFile f : dataFiles) {
      Path file = Path.of(folder, f.name()).normalize();
      String path = LocalFileIO.name(file);
      // The file as it is: a duplicate attempt of its task may have replaced it, whole, after it was counted.
      long bytes = Files.size(file);
      // From the file's footer: its rows, and the least and greatest value and the nulls of the indexed columns.
      DataFileStatistics stats = ParquetStatsReader.readDataFileStatistics(fileIO.newInputFile(path, bytes),
          schema, context.getStatisticsColumns());
      if (stats.getNumRecords() != f.rows()) {
        throw new IOException("the Delta data file " + path + " holds " + stats.getNumRecords() + " rows, and its"
            + " task wrote " + f.rows());
      }
      statuses.add(new DataFileStatus(path, bytes, now, Optional.of(stats)));
    }
    TransactionCommitResult result;
    try (CloseableIterator<Row> actions = Transaction.generateAppendActions(engine, state,
        io.delta.kernel.internal.util.Utils.toCloseableIterator(statuses.iterator()), context)) {
      result = transaction.commit(engine, CloseableIterable.inMemoryIterable(actions));
    } catch (ConcurrentTransactionException e) {
      return committedBefore(name, txn, completing);
    }
    for (PostCommitHook hook : result.getPostCommitHooks()) {
      try {
        hook.threadSafeInvoke(engine); // checkpoints and checksums: the commit stands without them
      } catch (IOException | RuntimeException e) {
        LOG.warn("Delta table {}: the {} after version {} failed: {}", folder, hook.getType(), result.getVersion(),
            e.toString());
      }
    }
    return result.getVersion();
  }

  /**
   * What a table that refused transaction version {@code txn} holds: this run, committed before (the same version is
   * the table's last), whose version is returned; or a later run's, which fails the commit (this run's files are not
   * in the table), or when {@code completing} a killed run's commit is only logged, as the later run's rows stand.
   */
  private long committedBefore(String name, long txn, boolean completing) {
    Snapshot current = latest(table(DeltaFiles.folder(root, name)));
    long last = lastTxnVersion(current);
    if (last == txn) {
      return current.getVersion();
    }
    String why = "the Delta table " + DeltaFiles.folder(root, name) + " holds a run with transaction version " + last
        + ", after this run's " + txn + " (two runs wrote to it at once)";
    if (completing) {
      LOG.warn("{}: that run's files are left out of it", why);
      return current.getVersion();
    }
    throw new IllegalStateException(why + ", so this run's rows are not in it");
  }

  /** The last transaction version of this application that {@code table} took; -1 for none (or no table). */
  private long lastTxnVersion(String table) {
    return lastTxnVersion(latest(table(DeltaFiles.folder(root, table))));
  }

  /** The last transaction version of this application in snapshot {@code current}; -1 for none (or no table). */
  private long lastTxnVersion(Snapshot current) {
    return current == null ? -1
        : ((io.delta.kernel.internal.SnapshotImpl) current).getLatestTransactionVersion(engine, APP_ID).orElse(-1L);
  }

  /** Refuses to append to {@code table}, whose latest snapshot is {@code current}, rows of other columns. */
  private void checkColumns(String table, Snapshot current, StructType schema) {
    if (current != null && !current.getSchema().equals(schema)) {
      throw new InputException("the Delta table " + DeltaFiles.folder(root, table) + " has the columns "
          + describe(current.getSchema()) + ", and this run writes " + describe(schema) + " to "
          + DeltaFiles.name(table) + ": appending needs the same columns (a run with sinks.delta.mode overwrite"
          + " replaces the table with the new ones)");
    }
  }

  /**
   * How many leading columns of a table have statistics in its log: the keys ({@code id}, {@code last_updated},
   * {@code source_key}) of resource tables, where a record is found by; and the location of a reject. Values of
   * the other columns (birth dates, the rows of rejects) stay out of the log, which outlives the files it removes.
   */
  static int indexedColumns(List<String[]> columns) {
    java.util.Set<String> keys = java.util.Set.of("id", "last_updated", "source_key", "run_id", "source", "file",
        "line", "row_number");
    int n = 0;
    while (n < columns.size() && keys.contains(columns.get(n)[0])) {
      n++;
    }
    return n;
  }

  /** The Delta table in {@code folder}, named as {@link LocalFileIO} names files. */
  private Table table(String folder) {
    return Table.forPath(engine, LocalFileIO.name(Path.of(folder)));
  }

  private Snapshot latest(Table table) {
    try {
      return table.getLatestSnapshot(engine);
    } catch (TableNotFoundException e) {
      return null;
    }
  }

  /** The Delta schema of a table's columns ({@code [name, DuckDB type]}, as the Parquet files have them). */
  static StructType schema(List<String[]> columns) {
    StructType schema = new StructType();
    for (String[] c : columns) {
      schema = schema.add(c[0], type(c[1]), true);
    }
    return schema;
  }

  private static DataType type(String sqlType) {
    return switch (sqlType) {
      case "VARCHAR", "JSON" -> StringType.STRING;
      case "DATE" -> DateType.DATE;
      case "BIGINT" -> LongType.LONG;
      case "INTEGER" -> io.delta.kernel.types.IntegerType.INTEGER;
      case "DOUBLE" -> DoubleType.DOUBLE;
      case "BOOLEAN" -> BooleanType.BOOLEAN;
      case "TIMESTAMPTZ" -> TimestampType.TIMESTAMP;
      default -> throw new IllegalArgumentException("no Delta type for the column type " + sqlType);
    };
  }

  private static String describe(StructType schema) {
    List<String> out = new ArrayList<>();
    for (StructField f : schema.fields()) {
      out.add(f.getName() + " " + f.getDataType());
    }
    return "(" + String.join(", ", out) + ")";
  }
}
