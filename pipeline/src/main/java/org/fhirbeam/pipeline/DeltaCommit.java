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
import io.delta.kernel.defaults.engine.hadoopio.HadoopFileIO;
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
 * that holds a later run's fails this run's commit: two runs wrote at once). Several tables cannot change in one Delta transaction, so before the first of them
 * the run writes a ledger ({@code _fhirbeam/commits/<run id>.json} beside the tables) listing every table's files,
 * and deletes it after the last: a run killed between the two leaves its ledger, and the next run with the same Delta
 * location first completes that commit (tables that already hold it, or a later run, are left alone), so every table
 * ends holding the killed run exactly once.
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
  private final Map<String, DuckDbTables.ParquetLayout> layouts;
  /** Every table the run commits ({@code fhir_resources/<type>}, {@code quality/rejects}), with its columns. */
  private final Map<String, List<String[]>> tables = new LinkedHashMap<>();
  private final org.fhirbeam.config.DuckDbSettings duckdb;
  /** For tables named by catalog: the settings, the job's name, and each table's comment; else null. */
  private SinkSettings.Delta catalog;
  private String job;
  private final Map<String, String> comments = new LinkedHashMap<>();
  /** The job's Spark session ({@link CatalogTables}) when the tables are named by catalog; else null. */
  private Object session;
  private final Engine engine = DefaultEngine.create(new Configuration());
  /** Whether the run's ledger is written: from then on, its files are the tables' or the next run's to add. */
  private boolean ledgerWritten;

  private DeltaCommit(String root, WriteMode mode, String runId, long startMillis,
      Map<String, DuckDbTables.ParquetLayout> layouts, org.fhirbeam.config.DuckDbSettings duckdb) {
    this.root = root;
    this.mode = mode;
    this.runId = runId;
    this.startMillis = startMillis;
    this.layouts = layouts;
    this.duckdb = duckdb;
    layouts.forEach((type, layout) -> {
      List<String[]> columns = new ArrayList<>();
      layout.columns().forEach(c -> columns.add(new String[] {c.name(), c.sqlType()}));
      tables.put(DeltaFiles.resourceTable(type), columns);
    });
    tables.put(DeltaFiles.REJECTS, DeltaFiles.REJECT_COLUMNS);
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
    DeltaCommit commit = new DeltaCommit(root, settings.mode(), runId, startMillis, FileSinks.parquetLayouts(plan),
        plan.config().duckdb());
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
      for (org.fhirbeam.transforms.CompiledMapping m : plan.mappings()) {
        mappings.computeIfAbsent(DeltaFiles.resourceTable(m.resourceType()), t -> new ArrayList<>()).add(m.name());
      }
      mappings.forEach((table, names) -> commit.comments.put(table, "FHIR R4 " + table.substring(table.indexOf('/')
          + 1) + " resources of mapping " + String.join(", ", names)));
      commit.comments.put(DeltaFiles.REJECTS, "The rows of the latest run that became no resource, with the rule and"
          + " reason; holds PHI");
      return commit;
    }
    try {
      Files.createDirectories(Path.of(root));
    } catch (IOException e) {
      throw new InputException("sinks.delta.location " + settings.location() + " cannot be created: " + e, e);
    }
    commit.completeKilledCommits();
    commit.warmUp();
    return commit;
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
          latest(Table.forPath(engine, Path.of(DeltaFiles.folder(root, table)).toUri().toString()));
        }
        probe = Files.createTempFile("fhirbeam-delta-warmup-", ".parquet");
        try (java.sql.Connection db = org.fhirbeam.io.DuckDb.openInMemory(duckdb);
            java.sql.Statement st = db.createStatement()) {
          st.execute("COPY (SELECT 'x' AS id) TO " + org.fhirbeam.io.DuckDb.literal(probe.toString())
              + " (FORMAT parquet)");
        }
        ParquetStatsReader.readDataFileStatistics(new HadoopFileIO(new Configuration()).newInputFile(
            probe.toUri().toString(), Files.size(probe)), schema(List.<String[]>of(new String[] {"id", "VARCHAR"})),
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
   * Commits the run: one version of every resource type's table (those without resources too, so that every table
   * has a version per run) and of {@code quality.rejects} (the run's rejects, replacing the previous run's, as in
   * DuckDB), from the data files its tasks wrote ({@code committed}, the run's figures). Returns the tables and the
   * versions that hold the run.
   */
  RunSummary.Delta commit(Tally committed) throws IOException {
    Map<String, List<DeltaFiles.DataFile>> byTable = DeltaFiles.written(committed);
    if (catalog != null) {
      ledgerWritten = true; // the session reads the staged files; the committer's folder goes with them
      return CatalogTables.commit(session, catalog, job, tables, comments, root, byTable, startMillis);
    }
    // The run's transaction version: above every one the tables took, whatever this machine's clock says.
    long txnVersion = startMillis;
    for (String table : tables.keySet()) {
      txnVersion = Math.max(txnVersion, lastTxnVersion(table) + 1);
    }
    List<String> merged = new ArrayList<>();
    Map<String, Object> ledger = new LinkedHashMap<>();
    ledger.put("run_id", runId);
    ledger.put("txn_version", txnVersion);
    Map<String, Object> entries = new LinkedHashMap<>();
    for (Map.Entry<String, List<String[]>> table : tables.entrySet()) {
      List<DeltaFiles.DataFile> files = byTable.getOrDefault(table.getKey(), List.of());
      WriteMode tableMode = table.getKey().equals(DeltaFiles.REJECTS) ? WriteMode.OVERWRITE : mode;
      if (tableMode == WriteMode.UPSERT) {
        // The table's rows merged with the run's make the table anew: committed as an overwrite. A run without
        // resources of the type leaves the table's rows as they are (an empty version).
        tableMode = files.isEmpty() ? WriteMode.APPEND : WriteMode.OVERWRITE;
        files = files.isEmpty() ? files : upserted(table.getKey(), files, merged);
      } else {
        files = coalesced(table.getKey(), files, merged);
      }
      if (tableMode == WriteMode.APPEND && !files.isEmpty()) {
        checkColumns(table.getKey(), schema(table.getValue()));
      }
      Map<String, Object> t = new LinkedHashMap<>();
      t.put("mode", tableMode.name());
      List<Map<String, Object>> columns = new ArrayList<>();
      table.getValue().forEach(c -> columns.add(Map.of("name", c[0], "type", c[1])));
      t.put("columns", columns);
      List<Map<String, Object>> listed = new ArrayList<>();
      files.forEach(f -> listed.add(Map.of("name", f.name(), "rows", f.rows(), "bytes", f.bytes())));
      t.put("files", listed);
      entries.put(table.getKey(), t);
    }
    ledger.put("tables", entries);
    String location = ledger(runId);
    ObjectStorage.replace(location, new ByteArrayInputStream(JSON.writeValueAsBytes(ledger)), "application/json");
    ledgerWritten = true;
    Map<String, Long> versions = apply(JSON.valueToTree(ledger), false);
    ObjectStorage.delete(List.of(location));
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
    return new RunSummary.Delta(root, versions);
  }

  /**
   * Deletes the data files of a run that did not get as far as its ledger (it failed, or did not balance): no table
   * will ever add them. Best-effort: files left are never read (Delta's VACUUM removes them).
   */
  @Override
  public void close() {
    if (ledgerWritten) {
      return;
    }
    try {
      for (String table : tables.keySet()) {
        ObjectStorage.delete(ObjectStorage.list(DeltaFiles.folder(root, table) + "/part-" + runId + "-*"));
        ObjectStorage.delete(ObjectStorage.list(DeltaFiles.folder(root, table) + "/.part-" + runId + "-*"));
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
   * reader), the others as they are. The files merged are added to {@code merged}.
   */
  private List<DeltaFiles.DataFile> coalesced(String table, List<DeltaFiles.DataFile> files, List<String> merged)
      throws IOException {
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
      String name = "part-" + runId + "-merged-" + out.size() + ".parquet";
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
    Snapshot current = latest(Table.forPath(engine, Path.of(folder).toUri().toString()));
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
          : "SELECT resource AS json FROM " + parquetFiles(previous), "SELECT resource AS json FROM "
          + parquetFiles(incoming));
      rows = st.executeLargeUpdate(layout.copy(query, " ORDER BY 1", target.toString()));
    } catch (java.sql.SQLException e) {
      throw org.fhirbeam.io.DuckDb.failure("upserting into the Delta table " + folder + " failed", e);
    }
    merged.addAll(incoming);
    return List.of(new DeltaFiles.DataFile(name, rows, Files.size(target)));
  }

  private static String parquetFiles(List<String> files) {
    List<String> quoted = new ArrayList<>();
    files.forEach(f -> quoted.add(org.fhirbeam.io.DuckDb.literal(f)));
    return "read_parquet([" + String.join(", ", quoted) + "], union_by_name = true)";
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
    // The tables are independent, and most of a commit is waiting on files: two at a time.
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(2, r -> {
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
        committing.put(DeltaFiles.name(e.getKey()), pool.submit(() -> {
          long version = commitTable(e.getKey(), schema(columns), files, tableMode, txn, completing);
          if (done.incrementAndGet() == halt) {
            Runtime.getRuntime().halt(137);
          }
          return version;
        }));
      });
      Map<String, Long> versions = new LinkedHashMap<>();
      for (Map.Entry<String, java.util.concurrent.Future<Long>> c : committing.entrySet()) {
        versions.put(c.getKey(), c.getValue().get());
      }
      return versions;
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
      throw new IllegalStateException("interrupted while committing the Delta tables", e);
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * One version of {@code type}'s table adding {@code files} (replacing what it held, for overwrite), with
   * transaction id {@code txn}; returns the table's version that holds it (its latest, when it held it already or a
   * later run has committed since).
   */
  private long commitTable(String name, StructType schema, List<DeltaFiles.DataFile> dataFiles, WriteMode writeMode,
      long txn, boolean completing) throws IOException {
    String folder = DeltaFiles.folder(root, name);
    Files.createDirectories(Path.of(folder));
    Table table = Table.forPath(engine, Path.of(folder).toUri().toString());
    Snapshot current = latest(table);
    Map<String, String> properties = Map.of("delta.dataSkippingNumIndexedCols",
        String.valueOf(indexedColumns(schema)));
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
        checkColumns(name, schema);
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
    HadoopFileIO files = new HadoopFileIO(new Configuration());
    long now = System.currentTimeMillis();
    List<DataFileStatus> statuses = new ArrayList<>();
    for (DeltaFiles.DataFile f : dataFiles) {
      Path file = Path.of(folder, f.name());
      String path = file.toUri().toString();
      // The file as it is: a duplicate attempt of its task may have replaced it, whole, after it was counted.
      long bytes = Files.size(file);
      // From the file's footer: its rows, and the least and greatest value and the nulls of the indexed columns.
      DataFileStatistics stats = ParquetStatsReader.readDataFileStatistics(files.newInputFile(path, bytes),
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
    long last = lastTxnVersion(name);
    Snapshot current = latest(Table.forPath(engine, Path.of(DeltaFiles.folder(root, name)).toUri().toString()));
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
    Snapshot current = latest(Table.forPath(engine, Path.of(DeltaFiles.folder(root, table)).toUri().toString()));
    return current == null ? -1
        : ((io.delta.kernel.internal.SnapshotImpl) current).getLatestTransactionVersion(engine, APP_ID).orElse(-1L);
  }

  /** Refuses to append to {@code table} rows of other columns than its own. */
  private void checkColumns(String table, StructType schema) {
    String folder = DeltaFiles.folder(root, table);
    Snapshot current = latest(Table.forPath(engine, Path.of(folder).toUri().toString()));
    if (current != null && !current.getSchema().equals(schema)) {
      throw new InputException("the Delta table " + folder + " has the columns " + describe(current.getSchema())
          + ", and this run writes " + describe(schema) + " to " + DeltaFiles.name(table) + ": appending needs the"
          + " same columns (a run with sinks.delta.mode overwrite replaces the table with the new ones)");
    }
  }

  /**
   * How many leading columns of a table have statistics in its log: the keys ({@code id}, {@code last_updated},
   * {@code source_key}) of resource tables, where a record is found by; and the location of a reject. Values of
   * the other columns (birth dates, the rows of rejects) stay out of the log, which outlives the files it removes.
   */
  static int indexedColumns(StructType schema) {
    java.util.Set<String> keys = java.util.Set.of("id", "last_updated", "source_key", "run_id", "source", "file",
        "line", "row_number");
    int n = 0;
    while (n < schema.length() && keys.contains(schema.at(n).getName())) {
      n++;
    }
    return n;
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
