package org.fhirbeam.transforms;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.duckdb.DuckDBConnection;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.IdKeys;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.ReadTask;

/**
 * Applies compiled mappings to the files of their sources, one file (or piece of a file, see {@link #withPieceBytes})
 * per task. For each task a DuckDB connection reads the file and runs the mapping's SQL in one pass, writing NDJSON
 * part files itself: the resources ({@code fhir/<Type>-...}) and the reject records ({@code rejects/rejects-...}).
 * The output holds each mapping's part files under {@link #partsOf} of its name; no row passes through the JVM.
 * Rows are counted in {@link Counters#rowsIn} (an independent count of the file's rows), {@link Counters#mapped}
 * and {@link Counters#rejected}, by mapping name.
 *
 * <p>A mapping query writes its rows in file order, which keeps DuckDB on one core for it (measured: one DuckDB
 * thread maps as fast as two), so tasks use one DuckDB thread each and the cores map tasks side by side: large files
 * are cut into pieces. By default each task is an element of its own, and the runner decides how many run at once
 * (Spark runs one per core). A runner that runs one element at a time (the DirectRunner, whose scheduler spins on a
 * free thread when it is given more) gets {@link #withLocalConcurrency}: every task in one element, run that many
 * at a time on one DuckDB database, so the cores map different tasks together.
 */
public final class MapWithDuckDb extends PTransform<PBegin, PCollectionTuple> {
  /** One mapping and the read tasks of its source. */
  public record Work(CompiledMapping mapping, List<ReadTask> tasks) implements Serializable {
    public Work {
      Objects.requireNonNull(mapping, "mapping");
      tasks = List.copyOf(tasks);
    }
  }

  /** One task of one mapping (its index among the transform's mappings), and its place among all tasks. */
  record Item(int mapping, ReadTask task, long order) implements Serializable {}

  /** What one element runs: tasks that run together on one worker. */
  record Unit(List<Item> items) implements Serializable {
    Unit {
      items = List.copyOf(items);
    }
  }

  private final List<Work> works;
  private final DuckDbSettings settings;
  private final String partsDirectory;
  private final String runId;
  private final int localConcurrency;
  private final long pieceBytes;
  private final boolean idKeys;

  private MapWithDuckDb(List<Work> works, DuckDbSettings settings, String partsDirectory, String runId,
      int localConcurrency, long pieceBytes, boolean idKeys) {
    this.works = works;
    this.settings = settings;
    this.partsDirectory = partsDirectory;
    this.runId = runId;
    this.localConcurrency = localConcurrency;
    this.pieceBytes = pieceBytes;
    this.idKeys = idKeys;
  }

  /** Maps the tasks of each work; mapping names must differ. */
  public static MapWithDuckDb of(List<Work> works) {
    if (works == null || works.isEmpty() || works.stream().allMatch(w -> w.tasks().isEmpty())) {
      throw new IllegalArgumentException("at least one read task is required");
    }
    if (works.stream().map(w -> w.mapping().name()).distinct().count() != works.size()) {
      throw new IllegalArgumentException("mapping names must differ");
    }
    return new MapWithDuckDb(List.copyOf(works), null, null, null, 1, 0, false);
  }

  /** One mapping over its tasks. */
  public static MapWithDuckDb of(CompiledMapping mapping, List<ReadTask> tasks) {
    return of(List.of(new Work(mapping, tasks)));
  }

  public MapWithDuckDb withSettings(DuckDbSettings settings) {
    return new MapWithDuckDb(works, Objects.requireNonNull(settings, "settings"), partsDirectory, runId,
        localConcurrency, pieceBytes, idKeys);
  }

  /** Where workers write part files (a directory every worker can reach). */
  public MapWithDuckDb withPartsDirectory(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("parts directory must not be empty");
    }
    return new MapWithDuckDb(works, settings, directory, runId, localConcurrency, pieceBytes, idKeys);
  }

  /** The run id written into every reject record. */
  public MapWithDuckDb withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new MapWithDuckDb(works, settings, partsDirectory, runId, localConcurrency, pieceBytes, idKeys);
  }

  /**
   * Runs every task in one element, {@code tasks} of them at a time on the worker (see the class comment); 1 (the
   * default) makes each task an element of its own.
   */
  public MapWithDuckDb withLocalConcurrency(int tasks) {
    if (tasks < 1) {
      throw new IllegalArgumentException("local concurrency must be at least 1");
    }
    return new MapWithDuckDb(works, settings, partsDirectory, runId, tasks, pieceBytes, idKeys);
  }

  /**
   * Cuts files that can be cut (CSV with one record per line, see {@link ReadTask#cut}) into pieces of about this
   * many bytes, each a task of its own, so that one large file is mapped on several cores; 0 (the default) maps
   * every file whole. A piece writes its own part files; its rejects name the file and the lines as the whole
   * file's would.
   */
  public MapWithDuckDb withPieceBytes(long bytes) {
    if (bytes < 0) {
      throw new IllegalArgumentException("piece size must not be negative");
    }
    return new MapWithDuckDb(works, settings, partsDirectory, runId, localConcurrency, bytes, idKeys);
  }

  /**
   * Also writes each task's {@link IdKeys} to {@link #keysOf} its mapping, for finding duplicate ids across tasks:
   * one more short line per resource in the same COPY; off by default.
   */
  public MapWithDuckDb withIdKeys(boolean keys) {
    return new MapWithDuckDb(works, settings, partsDirectory, runId, localConcurrency, pieceBytes, keys);
  }

  /**
   * The piece size that spreads {@code works} evenly over {@code workers}: their bytes over a multiple of the workers,
   * pieces of at most {@link #MAX_PIECE_BYTES} (a failed piece is redone whole) and at least {@link #MIN_PIECE_BYTES}
   * (each piece costs a query's start and part files of its own).
   */
  public static long pieceBytes(List<Work> works, int workers) {
    long total = 0;
    for (Work w : works) {
      for (ReadTask t : w.tasks()) {
        total += t.bytes();
      }
    }
    long pieces = workers * Math.max(1, (total + workers * MAX_PIECE_BYTES - 1) / (workers * MAX_PIECE_BYTES));
    return Math.max(MIN_PIECE_BYTES, (total + pieces - 1) / pieces);
  }

  /** See {@link #pieceBytes}. */
  static final long MIN_PIECE_BYTES = 4L << 20;
  static final long MAX_PIECE_BYTES = 128L << 20;

  /** The output tag of a mapping's part files. */
  public static TupleTag<PartFile> partsOf(String mapping) {
    return new TupleTag<>("parts-" + mapping);
  }

  /** The output tag of a mapping's id keys (with {@link #withIdKeys}), one per task that wrote resources. */
  public static TupleTag<IdKeys> keysOf(String mapping) {
    return new TupleTag<>("keys-" + mapping);
  }

  /** The file set of this mapping's resources, relative to the output root. */
  public static String resourceFileSet(String resourceType) {
    return PartFile.RESOURCES + resourceType;
  }

  @Override
  public PCollectionTuple expand(PBegin input) {
    if (settings == null || partsDirectory == null || runId == null) {
      throw new IllegalStateException("withSettings(), withPartsDirectory() and withRunId() are required");
    }
    List<Item> items = new ArrayList<>();
    for (int i = 0; i < works.size(); i++) {
      for (ReadTask t : works.get(i).tasks()) {
        for (ReadTask piece : t.cut(pieceBytes)) {
          items.add(new Item(i, piece, items.size()));
        }
      }
    }
    // No more threads than tasks: a single task stays an element of its own, mapped on the worker's thread.
    int concurrency = Math.min(localConcurrency, items.size());
    List<Unit> units = new ArrayList<>();
    if (concurrency > 1) {
      units.add(new Unit(items));
    } else {
      items.forEach(item -> units.add(new Unit(List.of(item))));
    }
    List<SqlMapping> sqls = new ArrayList<>();
    List<TupleTag<PartFile>> tags = new ArrayList<>();
    List<TupleTag<IdKeys>> keyTags = new ArrayList<>();
    for (Work w : works) {
      sqls.add(new SqlMapping(w.mapping()));
      tags.add(partsOf(w.mapping().name()));
      if (idKeys) {
        keyTags.add(keysOf(w.mapping().name()));
      }
    }
    TupleTagList more = TupleTagList.of(new ArrayList<>(tags.subList(1, tags.size()))).and(new ArrayList<>(keyTags));
    PCollectionTuple out = input
        .apply("ListFiles", Create.of(units).withCoder(SerializableCoder.of(Unit.class)))
        .apply("MapFiles", ParDo.of(new MapFilesFn(sqls, tags, keyTags, settings, partsDirectory, runId,
            concurrency)).withOutputTags(tags.get(0), more));
    for (TupleTag<PartFile> tag : tags) {
      out.get(tag).setCoder(SerializableCoder.of(PartFile.class));
    }
    for (TupleTag<IdKeys> tag : keyTags) {
      out.get(tag).setCoder(SerializableCoder.of(IdKeys.class));
    }
    return out;
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("mappings", String.join(", ", works.stream().map(w -> w.mapping().name()).toList())))
        .add(DisplayData.item("files", works.stream().mapToInt(w -> w.tasks().size()).sum()))
        .add(DisplayData.item("localConcurrency", localConcurrency))
        .add(DisplayData.item("pieceBytes", pieceBytes))
        .add(DisplayData.item("idKeys", idKeys));
  }

  /**
   * COPY options (without the closing parenthesis) that write one text column as raw lines: no quote character
   * (with one, DuckDB quotes every value holding a '#'), and JSON text never holds the raw \1 delimiter, so
   * DuckDB writes each line exactly as it is.
   */
  static final String RAW_LINES = " (FORMAT csv, HEADER false, DELIMITER '\u0001', QUOTE '', ESCAPE ''";

  /** What one task wrote and counted; the element's thread turns it into counters and outputs. */
  private record Result(int mapping, ReadTask task, List<String> columnsRead, long rowsIn, long badLines,
      long millis, long[] populated, long[][] checkCounts, long mappingRejects, List<PartFile> resources,
      List<PartFile> rejects, IdKeys keys) {}

  /** Rows a partitioned COPY buffers per partition before writing them (see {@link MapFilesFn#setup}). */
  static final int PARTITION_FLUSH_ROWS = 32_768;

  /** The in-memory database a worker maps in, set up for mapping queries (the same for files and stream records). */
  static Connection openWorkerDatabase(DuckDbSettings settings) throws SQLException {
    Connection db = DuckDb.openInMemory(settings);
    try (Statement st = db.createStatement()) {
      // Row positions in rejects count rows in file order, whatever the configuration says.
      st.execute("SET preserve_insertion_order = true");
      // The COPY that splits resources from rejects buffers each kind's lines up to this many rows before it writes
      // them (DuckDB's default: 524,288). Measured on the 400,000 Synthea-shaped Observation rows: peak RSS 424 MB
      // -> 196 MB and 3.9 s -> 3.0 s; on 1M Patient rows 258 MB -> 140 MB, the same bytes written.
      st.execute("SET partitioned_write_flush_threshold = " + PARTITION_FLUSH_ROWS);
      // A mapping query runs on one core (its rows are numbered in file order), so cores map tasks side by side
      // instead, each query on the thread that runs it. DuckDB's own worker threads would only compete with them:
      // two halves of the 1M Patient rows mapped at once took 1.2-1.5 s and 2.4-2.9 s of CPU with threads = 2,
      // 1.0 s and 1.7 s with threads = 1 (the whole file alone: 1.25-1.5 s either way); the Synthea-shaped run's
      // pipeline 7.4-8.6 s -> 6.0-7.1 s. Spark runs a task per core, each on a database of its own: the same.
      st.execute("SET threads = 1");
    }
    UcumUnits.register(db);
    return db;
  }

  static final class MapFilesFn extends DoFn<Unit, PartFile> {
    private final List<SqlMapping> sqls;
    private final List<TupleTag<PartFile>> tags;
    /** Empty when the tasks write no id keys. */
    private final List<TupleTag<IdKeys>> keyTags;
    private final DuckDbSettings settings;
    private final String partsDirectory;
    private final String runId;
    private final int concurrency;
    private transient Connection db;
    private transient ExecutorService pool;

    MapFilesFn(List<SqlMapping> sqls, List<TupleTag<PartFile>> tags, List<TupleTag<IdKeys>> keyTags,
        DuckDbSettings settings, String partsDirectory, String runId, int concurrency) {
      this.sqls = List.copyOf(sqls);
      this.tags = List.copyOf(tags);
      this.keyTags = List.copyOf(keyTags);
      this.settings = settings;
      this.partsDirectory = partsDirectory;
      this.runId = runId;
      this.concurrency = concurrency;
    }

    @Setup
    public void setup() throws SQLException {
      db = openWorkerDatabase(settings);
      if (concurrency > 1) {
        AtomicInteger n = new AtomicInteger();
        pool = Executors.newFixedThreadPool(concurrency, r -> {
          Thread t = new Thread(r, "fhirbeam-map-" + n.incrementAndGet());
          t.setDaemon(true);
          return t;
        });
      }
    }

    @ProcessElement
    public void process(@Element Unit unit, MultiOutputReceiver out) throws IOException {
      List<Result> results = new ArrayList<>();
      if (pool == null || unit.items().size() == 1) {
        for (Item item : unit.items()) {
          results.add(map(db, item));
        }
      } else {
        // Each task on a connection of its own to the one database: DuckDB shares its threads and memory limit.
        // The largest start first, so that the cores end together; the results stay in task order.
        List<Integer> bySize = new ArrayList<>();
        for (int i = 0; i < unit.items().size(); i++) {
          bySize.add(i);
        }
        long[] bytes = unit.items().stream().mapToLong(item -> item.task().bytes()).toArray();
        bySize.sort((x, y) -> Long.compare(bytes[y], bytes[x]));
        List<Future<Result>> running = new ArrayList<>(java.util.Collections.nCopies(unit.items().size(), null));
        for (int i : bySize) {
          Item item = unit.items().get(i);
          running.set(i, pool.submit(() -> {
            try (Connection c = db.unwrap(DuckDBConnection.class).duplicate()) {
              return map(c, item);
            }
          }));
        }
        // Every task ends before a failure is reported, so none still writes parts when the pipeline stops.
        Throwable failure = null;
        for (Future<Result> f : running) {
          try {
            results.add(f.get());
          } catch (ExecutionException e) {
            failure = failure == null ? e.getCause() : failure;
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while mapping", e);
          }
        }
        // The first failing task in task order, as it would have failed alone.
        if (failure instanceof RuntimeException e) {
          throw e;
        }
        if (failure instanceof Error e) {
          throw e;
        }
        if (failure instanceof IOException e) {
          throw e;
        }
        if (failure != null) {
          throw new IllegalStateException(failure);
        }
      }
      for (Result r : results) {
        // The task's figures ride on its first part; a task without parts read no row.
        Tally tally = count(r);
        List<PartFile> parts = new ArrayList<>(r.resources());
        parts.addAll(r.rejects());
        for (int i = 0; i < parts.size(); i++) {
          out.get(tags.get(r.mapping())).output(i == 0 ? parts.get(i).plus(tally) : parts.get(i));
        }
        if (r.keys() != null) {
          out.get(keyTags.get(r.mapping())).output(r.keys());
        }
      }
    }

    /** Runs one task on {@code db}: the count, the mapping's COPY and the rejects of unreadable lines. */
    private Result map(Connection db, Item item) throws IOException {
      long started = System.nanoTime();
      // Objects on object storage are fetched to the worker's disk and planned there as local files are.
      try (FileSourcePlanner.Fetched fetched = FileSourcePlanner.fetch(db, item.task())) {
        return read(db, item, fetched.task(), started);
      }
    }

    /** {@link #map(Connection, Item)} reading {@code task}: the item's, or the one over its objects' copies. */
    private Result read(Connection db, Item item, ReadTask task, long started) throws IOException {
      if (task.isQuery()) {
        // Run once into a table, then counted and mapped from it (the Synthea set's MedicationRequest query joins
        // and sorts two files: its count took 0.9 s when it ran the query again).
        String table = "#query_" + UUID.randomUUID().toString().replace("-", "");
        try {
          return map(db, item, task.materialize(db, table), started);
        } catch (SQLException e) {
          throw DuckDb.failure("mapping " + sqls.get(item.mapping()).mapping().name() + " failed on "
              + task.file(), e);
        } finally {
          try (Statement st = db.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + DuckDb.identifier(table));
          } catch (SQLException e) {
            // A temporary table goes with its connection: the task's, or the worker's at teardown.
          }
        }
      }
      if (!task.isPiece()) {
        return map(db, item, task, started);
      }
      // A piece is read from a copy of its lines on the worker's disk, beside the file's header line.
      Path copy = Files.createTempFile("fhirbeam-piece-", ".csv");
      try {
        return map(db, item, task.writePiece(copy), started);
      } finally {
        Files.deleteIfExists(copy);
      }
    }

    /**
     * {@link #map(Connection, Item)} reading {@code task}: the item's task (or the one over its objects' copies), the
     * copy of its piece or its materialized query; {@code started} is when the item's work began.
     */
    private Result map(Connection db, Item item, ReadTask task, long started) throws IOException {
      SqlMapping sql = sqls.get(item.mapping());
      CompiledMapping m = sql.mapping();
      // Outputs are named (their targets) by the task's place among the run's tasks, so a retried attempt's outputs
      // replace the failed one's and leave no second copy behind. What an attempt writes before it is committed is
      // its own, and so are its temporary tables: Spark may run two attempts of a task at once (a cached partition it
      // cannot find is computed again while the first computation still runs), and a retry may run on the database
      // a failed attempt left its tables in.
      String id = String.format(java.util.Locale.ROOT, "%05d", item.order());
      String attempt = UUID.randomUUID().toString().replace("-", "");
      String badLines = "bad_lines_" + attempt;
      Path dir = Path.of(partsDirectory, m.name() + "-" + id + "-" + attempt.substring(0, 8));
      Files.createDirectories(dir.getParent());
      long rowsIn;
      long written;
      long badLineCount = 0;
      List<PartFile> ingestRejects = new ArrayList<>();
      List<SqlMapping.Check> checks = sql.checks();
      long[][] checkCounts = new long[checks.size()][2];
      long[] populated = new long[task.columns().size()];
      try (Statement st = db.createStatement()) {
        task.prepare(db); // a database partition is copied into this task's DuckDB first
        // Counted independently of the mapping query, but over every column: DuckDB only checks (and sets aside)
        // a line's encoding when it reads the values, so a pruned count would disagree with the mapping's scan.
        List<String> every = new ArrayList<>();
        for (String c : task.columns()) {
          every.add(DuckDb.identifier(c));
        }
        // The checks' counts (valid codes, ranges, warn rules) ride on this scan: on the bench's 1M Patient rows
        // they add 0.06 s to it (0.10 s), where the mapping's COPY takes 2.4 s; a second scan would cost 0.4 s,
        // and window aggregates in the mapping query 0.8 s (they stop DuckDB from streaming its row numbers).
        // So do the populated counts of every column of the file: values neither NULL nor empty. Not trimmed, unlike
        // the mapping's inputs: trimming took the scan from 0.19 s to 1.0 s for 5 columns of 1M rows, while the
        // empty test is free, and values of blanks alone are rare (CSV reads an empty field as NULL).
        List<String> sums = new ArrayList<>(sql.checkSums());
        for (String c : task.columns()) {
          sums.add("count(nullif(CAST(" + DuckDb.identifier(c) + " AS VARCHAR), ''))");
        }
        String rows = task.textRows(sql.columns(), badLines);
        String count = "SELECT count(hash(" + String.join(", ", every) + "))" + sums.stream().map(x -> ", " + x)
            .collect(java.util.stream.Collectors.joining()) + " FROM ("
            + (checks.isEmpty() ? rows : sql.detailQuery(rows)) + ")";
        try (ResultSet rs = st.executeQuery(count)) {
          rs.next();
          rowsIn = rs.getLong(1);
          for (int i = 0; i < checkCounts.length; i++) {
            checkCounts[i][0] = rs.getLong(2 + 2 * i);
            checkCounts[i][1] = rs.getLong(3 + 2 * i);
          }
          for (int i = 0; i < populated.length; i++) {
            populated[i] = rs.getLong(2 + 2 * checkCounts.length + i);
          }
        }
        // Rows after a left-out line sit further down the file: line numbers in rejects must count those lines.
        // The i-th left-out line L (1-based, in order, DuckDB's numbering: the header is line 1) comes after L - i - 1
        // rows that were read. Files whose records are not one per line report row numbers among the rows read instead.
        String skipped = null;
        if (task.skipsBadLines() && task.kind() == ReadTask.LocationKind.LINE) {
          skipped = badLines + "_shift";
          // Consecutive left-out lines share a row number: the row after them moves down by all of them.
          st.execute("CREATE TEMP TABLE " + DuckDb.identifier(skipped) + " AS SELECT line"
              + " - n AS \"#from\", max(n) AS \"#lines\" FROM (SELECT line, row_number() OVER (ORDER BY line)"
              + " AS n FROM (SELECT DISTINCT line FROM " + DuckDb.identifier(badLines) + ")) GROUP BY \"#from\"");
          try (ResultSet rs = st.executeQuery("SELECT count(*) FROM " + DuckDb.identifier(skipped))) {
            rs.next();
            if (rs.getLong(1) == 0) {
              st.execute("DROP TABLE " + DuckDb.identifier(skipped));
              skipped = null;
            }
          }
        }
        SqlMapping.Origin origin = new SqlMapping.Origin(runId, task.source(), task.file(), task.kind().field(),
            task.firstLocation(), task.columns(), skipped, task.keyColumns());
        written = st.executeLargeUpdate("COPY (" + sql.outputQuery(task.textRows(sql.columns(), badLines + "_copy"),
            origin, !keyTags.isEmpty()) + ") TO " + DuckDb.literal(dir.toString()) + RAW_LINES
            + ", PARTITION_BY (kind))");
        FaultSwitch.afterWriting(partsDirectory, m.name(), item.order());
        if (task.skipsBadLines()) {
          // Lines DuckDB could not read as CSV become rejects of the ingest stage, with their line numbers.
          Path bad = dir.resolve("bad-lines.ndjson");
          badLineCount = st.executeLargeUpdate("COPY (" + badLinesQuery(badLines, origin, task.lineShift(), m.name())
              + ") TO "
              + DuckDb.literal(bad.toString()) + RAW_LINES + ")");
          if (badLineCount > 0) {
            ingestRejects.add(PartFile.rejects(id, "ingest", bad.toString(), badLineCount));
          }
          try (ResultSet rs = st.executeQuery("SELECT count(*) FROM ((SELECT DISTINCT line FROM "
              + DuckDb.identifier(badLines) + ") EXCEPT (SELECT DISTINCT line FROM "
              + DuckDb.identifier(badLines + "_copy") + ")) UNION ALL SELECT count(*) FROM ((SELECT DISTINCT line FROM "
              + DuckDb.identifier(badLines + "_copy") + ") EXCEPT (SELECT DISTINCT line FROM "
              + DuckDb.identifier(badLines) + "))")) {
            while (rs.next()) {
              if (rs.getLong(1) != 0) {
                throw new IllegalStateException("mapping " + m.name() + " on " + task.file()
                    + ": the count and the mapping set aside different lines");
              }
            }
          }
          for (String t : List.of(badLines, badLines + "_scans", badLines + "_copy", badLines + "_copy_scans",
              badLines + "_shift")) {
            st.execute("DROP TABLE IF EXISTS " + DuckDb.identifier(t));
          }
        }
        task.release(db);
      } catch (SQLException e) {
        throw DuckDb.failure("mapping " + m.name() + " failed on " + task.file(), e);
      }
      List<PartFile> rejects = new ArrayList<>(parts(dir.resolve("kind=" + SqlMapping.REJECT), PartFile.REJECTS, id,
          true));
      long mappingRejects = rejects.stream().mapToLong(PartFile::lines).sum();
      rejects.addAll(ingestRejects);
      // With id keys, each resource was written with its key line.
      List<PartFile> resources = resourceParts(dir.resolve("kind=" + SqlMapping.RESOURCE),
          resourceFileSet(m.resourceType()), id, (written - mappingRejects) / (keyTags.isEmpty() ? 1 : 2));
      IdKeys keys = null;
      if (!keyTags.isEmpty() && !resources.isEmpty()) {
        List<String> keyFiles = written(dir.resolve("kind=" + SqlMapping.KEY)).stream().map(Path::toString).toList();
        keys = new IdKeys(item.order(), m.name(), task.source(), task.file(), task.kind().field(), keyFiles,
            resources.stream().map(PartFile::target).toList());
      }
      // The task as planned, not the piece's copy or the materialized query it was read as: its share of the file.
      // The columns as read: for an object the task fetched, those of its planned columns the whole object has.
      return new Result(item.mapping(), item.task(), task.columns(), rowsIn, badLineCount,
          (System.nanoTime() - started) / 1_000_000, populated, checkCounts, mappingRejects, resources, rejects, keys);
    }

    /** The figures of one task, counted on the element's thread (Beam's metrics belong to it). */
    private Tally count(Result r) {
      SqlMapping sql = sqls.get(r.mapping());
      String name = sql.mapping().name();
      List<SqlMapping.Check> checks = sql.checks();
      Tally.Builder tally = Tally.builder()
          .count(Counters.rowsIn(name), r.rowsIn() + r.badLines())
          .count(Counters.millis(name), r.millis())
          .count(Counters.rowsRead(name), r.rowsIn());
      // How far the mapping has got: shown while the run goes, not part of its figures.
      Metrics.counter(Counters.NAMESPACE, Counters.filesMapped(name)).inc(r.task().fileShare(Counters.FILE));
      Metrics.counter(Counters.NAMESPACE, Counters.bytesMapped(name)).inc(r.task().bytes());
      for (int i = 0; i < r.populated().length; i++) {
        tally.count(Counters.columnPopulated(name, r.columnsRead().get(i)), r.populated()[i]);
      }
      for (int i = 0; i < checks.size(); i++) {
        String element = checks.get(i).element() == null ? "" : checks.get(i).element();
        tally.count(Counters.checkFailed(name, checks.get(i).check(), element), r.checkCounts()[i][0]);
        tally.count(Counters.checkTotal(name, checks.get(i).check(), element), r.checkCounts()[i][1]);
      }
      long mapped = r.resources().stream().mapToLong(PartFile::lines).sum();
      return tally.count(Counters.mapped(name), mapped)
          .count(Counters.rejected(name), r.mappingRejects() + r.badLines())
          .build();
    }

    /**
     * Reject records for the lines DuckDB set aside, one per line, in line order; {@code lineShift} turns DuckDB's line
     * numbers into the file's (see {@link ReadTask#lineShift}).
     */
    private static String badLinesQuery(String table, SqlMapping.Origin origin, long lineShift, String mapping) {
      return "SELECT '{\"run_id\":' || to_json(" + DuckDb.literal(origin.runId()) + ") || ',\"source\":' || to_json("
          + DuckDb.literal(origin.source()) + ") || ',\"file\":' || to_json(" + DuckDb.literal(origin.file())
          + ") || ',\"line\":' || (line + " + lineShift + ") || ',\"stage\":\"ingest\",\"mapping\":' || to_json("
          + DuckDb.literal(mapping) + ") || ',\"rule\":' || to_json('csv-' || replace(lower(error_type), ' ', '-'))"
          + " || ',\"reason\":' || to_json(CASE error_type"
          + " WHEN 'TOO MANY COLUMNS' THEN 'the line has more fields than the header'"
          + " WHEN 'MISSING COLUMNS' THEN 'the line has fewer fields than the header'"
          + " WHEN 'UNQUOTED VALUE' THEN 'a value has a quote inside it that is not escaped'"
          + " WHEN 'INVALID ENCODING' THEN 'the line is not valid in the file''s encoding (UTF-8)'"
          + " WHEN 'LINE SIZE OVER MAXIMUM' THEN 'the line is longer than DuckDB''s maximum line size'"
          // Column name and declared type only: DuckDB's own message quotes the value.
          + " WHEN 'CAST' THEN 'the value of column ' || column_name || ' does not convert to the type declared"
          + " for it in types'"
          + " ELSE 'the line cannot be read as CSV' END)"
          + " || ',\"raw\":' || to_json(csv_line) || '}'"
          + " FROM (SELECT line, min(error_type) AS error_type, any_value(csv_line) AS csv_line,"
          + " min(column_name) FILTER (WHERE error_type = 'CAST') AS column_name FROM "
          + DuckDb.identifier(table) + " GROUP BY line) ORDER BY line";
    }

    /** The files DuckDB wrote for one kind of line, with their targets and (when asked) line counts. */
    static List<PartFile> parts(Path dir, String fileSet, String id, boolean count) throws IOException {
      List<PartFile> out = new ArrayList<>();
      List<Path> files = written(dir);
      for (int i = 0; i < files.size(); i++) {
        out.add(new PartFile(fileSet + "-" + id + "-" + i + ".ndjson", files.get(i).toString(),
            count ? FileTrees.countLines(files.get(i)) : -1));
      }
      return out;
    }

    /**
     * The resource files DuckDB wrote into {@code dir}: one file holds the {@code lines} resources the query says it
     * wrote, without reading it again; several are counted.
     */
    static List<PartFile> resourceParts(Path dir, String fileSet, String id, long lines) throws IOException {
      List<PartFile> files = parts(dir, fileSet, id, false);
      if (files.size() != 1) {
        return parts(dir, fileSet, id, true);
      }
      PartFile only = files.get(0);
      return List.of(new PartFile(only.target(), only.path(), lines));
    }

    /** The files DuckDB wrote for one kind of line, in the order their lines were written; none without the folder. */
    static List<Path> written(Path dir) throws IOException {
      List<Path> files = new ArrayList<>();
      if (!Files.isDirectory(dir)) {
        return files;
      }
      try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
        s.forEach(files::add);
      }
      // DuckDB numbers the files of a partition data_0, data_1, ...: shorter names first keeps data_10 after data_9.
      files.sort(Comparator.comparingInt((Path f) -> f.getFileName().toString().length())
          .thenComparing(Comparator.naturalOrder()));
      return files;
    }

    @Teardown
    public void teardown() throws SQLException {
      if (pool != null) {
        pool.shutdownNow();
      }
      if (db != null) {
        db.close();
      }
    }
  }
}
