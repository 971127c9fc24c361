package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.DeltaFiles;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.io.StreamRange;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapWithDuckDb;

/**
 * The output of a streaming job, committed window by window, each like a small run: its resource and reject files
 * under {@code fhir/} and {@code rejects/} (named by the window), one version of each Delta table it adds rows to,
 * one DuckDB transaction that appends its resources and rejects and records the window with the position it reached
 * in each partition, and {@code run-summary.json} rewritten with the run's figures so far.
 *
 * <p>The position is the job's own: it lives with the outputs, never in Kafka. It is committed with the window's
 * rows in its Delta tables ({@code quality.stream_positions}, through the Delta commit's ledger), else in its DuckDB
 * transaction, else (neither sink) in the window's record {@code _stream/windows/<window>.json} written last: that
 * sink is the one of record. A window's files are first put under {@code _stream/pending/<window>/}, with a
 * description of the window, and moved into place once the window is committed; a restart moves those of a
 * committed window into place (loading it into DuckDB first, when only the Delta tables got it) and deletes the
 * others, whose records it reads again. So whatever point a run is killed at, every record ends up in the outputs
 * exactly once: processing is at least once, the outputs effectively once.
 *
 * <p>The runner's tasks, wherever they run, only map the records into parts and hand each window over
 * ({@link #handOver}); the run's driver commits the windows ({@link #commitReady}), in order per partition: a window
 * whose records start after the committed position waits for the window before it. Every instance method is
 * synchronized.
 */
final class StreamOutput implements AutoCloseable {
  /** What a window's commit needs to know about the job. */
  record Job(PipelineConfig config, List<CompiledMapping> mappings, String output, String runId, String runner) {
    Job {
      mappings = List.copyOf(mappings);
    }

    /** The job's DuckDB file, or null when it writes none. */
    String database() {
      return config.sinks().duckdb() ? config.duckdb().database() : null;
    }

    JobPlan plan() {
      return new JobPlan(config, Map.of(), mappings, null);
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final DateTimeFormatter WINDOW = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss.SSS'Z'")
      .withZone(ZoneOffset.UTC);
  /** How long a window waits for the one before it to be handed over. */
  private static final long WAIT_MILLIS = 10 * 60_000;

  private final Job job;
  private final Path output;
  private final Connection db;
  /** The job's Delta tables; null when it writes none. */
  private final DeltaCommit delta;
  /** The next offset of each partition committed so far, by {@link StreamRange#partitionKey}. */
  private final Map<String, Long> positions = new HashMap<>();
  /** Where this run's readers start each partition, by partition key ({@link #readFrom}). */
  private final Map<String, Long> starts = new HashMap<>();
  private final long started = System.nanoTime();
  private Tally runTally = Tally.EMPTY;
  private int windows;
  /** The records of the windows this run committed. */
  private long recordsCommitted;
  /** The records this run's windows held that a runner had read already ({@link #select}), dropped. */
  private long recordsReplayed;

  private StreamOutput(Job job, Path output, Connection db, DeltaCommit delta) {
    this.job = job;
    this.output = output;
    this.db = db;
    this.delta = delta;
  }

  /**
   * The output of {@code job}, opened by the run's driver: a crashed run's pending windows are settled, what it left
   * handed over or half mapped deleted, and the committed positions read.
   */
  static StreamOutput open(Job job) {
    Path output = Path.of(job.output()).toAbsolutePath().normalize();
    Connection db = null;
    if (job.database() != null) {
      Path file = Path.of(job.database()).toAbsolutePath();
      try {
        Files.createDirectories(file.getParent());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      db = DuckDb.openFile(file.toString(), job.config().duckdb(), false);
    }
    StreamOutput out;
    try {
      out = new StreamOutput(job, output, db, job.config().sinks().delta() == null ? null
          : DeltaCommit.forStream(job.plan(), job.runId()));
    } catch (RuntimeException e) {
      if (db != null) {
        DuckDb.closeQuietly(db);
      }
      throw e;
    }
    try {
      out.settle();
    } catch (IOException e) {
      out.close();
      throw new UncheckedIOException(e);
    } catch (RuntimeException e) {
      out.close();
      throw e;
    }
    return out;
  }

  /** The committed position of every partition the job has committed windows of, by partition key. */
  synchronized Map<String, Long> positions() {
    return Map.copyOf(positions);
  }

  /**
   * Tells the output where this run's readers start each partition ({@code starts}, by partition key): a partition
   * with no committed position yet has its first window's records from there, and a window whose records of it start
   * later waits, as after any other gap.
   */
  synchronized void readFrom(Map<String, Long> starts) {
    this.starts.putAll(starts);
  }

  /** How many windows this run has committed. */
  synchronized int windows() {
    return windows;
  }

  /**
   * Reads the committed positions from the sink of record, and settles the windows a killed run left pending: those
   * it committed are moved into place (and loaded into DuckDB first, when only the Delta tables got them), the others
   * deleted (their records are read again).
   */
  private void settle() throws IOException {
    java.util.Set<String> inDuckDb = new java.util.HashSet<>();
    if (db != null) {
      try (Statement st = db.createStatement()) {
        if (DuckDb.tableExists(db, "quality", "stream_positions")) {
          readPositions(st, "quality.stream_positions", "quality.stream_windows", inDuckDb);
        }
      } catch (SQLException e) {
        throw DuckDb.failure("reading the stream's committed positions failed", e);
      }
    }
    java.util.Set<String> committedWindows = inDuckDb;
    if (delta != null) {
      // The Delta tables are the sink of record: DuckDB gets a window after them.
      positions.clear();
      committedWindows = new java.util.HashSet<>();
      List<String> positionFiles = delta.dataFiles(DeltaFiles.QUALITY_SCHEMA + "/stream_positions");
      if (!positionFiles.isEmpty()) {
        try (Connection mem = DuckDb.openInMemory(job.config().duckdb()); Statement st = mem.createStatement()) {
          readPositions(st, DuckDbTables.parquetFiles(positionFiles), DuckDbTables.parquetFiles(delta.dataFiles(
              DeltaFiles.QUALITY_SCHEMA + "/stream_windows")), committedWindows);
        } catch (SQLException e) {
          throw DuckDb.failure("reading the stream's committed positions from its Delta tables failed", e);
        }
      }
      java.util.Set<String> extra = new java.util.TreeSet<>(inDuckDb);
      extra.removeAll(committedWindows);
      if (!extra.isEmpty()) {
        throw new IllegalStateException("the DuckDB database " + job.database() + " holds " + extra.size()
            + " windows of this stream that its Delta tables in " + delta.folder("") + " do not (the first: "
            + extra.iterator().next() + "), so the two cannot resume from one position: give the job a new"
            + " database, or new Delta tables");
      }
    } else if (db == null) {
      Path records = output.resolve("_stream/windows");
      if (Files.isDirectory(records)) {
        try (Stream<Path> files = Files.list(records)) {
          for (Path f : files.filter(f -> f.getFileName().toString().endsWith(".json")).toList()) {
            WindowRecord w = JSON.readValue(f.toFile(), WindowRecord.class);
            committedWindows.add(w.windowId());
            w.positions().forEach((k, next) -> positions.merge(k, next, Math::max));
          }
        }
      }
    }
    // Windows handed over and not committed, and parts of windows not handed over: their records are read again.
    FileTrees.deleteTree(output.resolve(READY));
    FileTrees.deleteTree(output.resolve(PARTS));
    Path pending = output.resolve("_stream/pending");
    if (Files.isDirectory(pending)) {
      try (Stream<Path> dirs = Files.list(pending)) {
        for (Path dir : dirs.sorted().toList()) {
          String id = dir.getFileName().toString();
          if (committedWindows.contains(id)) {
            if (db != null && !inDuckDb.contains(id)) {
              load(job.plan(), JSON.readValue(dir.resolve(DESCRIPTION).toFile(), Window.class));
            }
            moveIntoPlace(dir);
          } else {
            FileTrees.deleteTree(dir);
            if (delta != null) {
              delta.deleteFiles(id);
            }
          }
        }
      }
    }
  }

  /**
   * Reads the positions committed in relation {@code positionsTable} (the next offset of each partition) and adds
   * the window ids of {@code windowsTable} to {@code windows}.
   */
  private void readPositions(Statement st, String positionsTable, String windowsTable,
      java.util.Set<String> windows) throws SQLException {
    try (ResultSet rs = st.executeQuery("SELECT source, topic, \"partition\", max(next_offset) FROM " + positionsTable
        + " GROUP BY ALL")) {
      while (rs.next()) {
        positions.put(rs.getString(1) + "/" + rs.getString(2) + "/" + rs.getInt(3), rs.getLong(4));
      }
    }
    try (ResultSet rs = st.executeQuery("SELECT window_id FROM " + windowsTable)) {
      while (rs.next()) {
        windows.add(rs.getString(1));
      }
    }
  }

  /** The file in a window's pending folder that describes it ({@link Window}). */
  private static final String DESCRIPTION = "_window.json";

  /**
   * What a window's commit writes into the tables, kept in its pending folder until its files are in place: a
   * restart that finds it in the Delta tables and not in DuckDB loads it from this. {@code resourceFiles} are its
   * resource NDJSON files by type, {@code rejectFiles} its reject files, {@code resourcesOut} its resources by type;
   * {@code rows} its rows of {@code quality.stream_windows} and {@code quality.stream_positions}.
   */
  record Window(String windowId, Map<String, List<String>> resourceFiles, List<String> rejectFiles,
      Map<String, Long> resourcesOut, Map<String, List<List<Object>>> rows) {}

  /** What the window's record holds, without the DuckDB sink. */
  record WindowRecord(String windowId, String runId, Map<String, Long> positions) {}

  /** Where the runners hand the driver each window to commit ({@link #handOver}), under the output. */
  static final String READY = "_stream/ready";
  /** Where the mapping tasks write their parts, under the output. */
  static final String PARTS = "_stream/parts";

  /**
   * A window as a runner hands it to the driver: its start, its parts, the Parquet files of its resource parts (by
   * the part's path; none when the sinks take none) and its ranges of records.
   */
  record HandedOver(long windowStart, List<PartFile> parts, Map<String, String> parquet, List<StreamRange> ranges)
      implements Serializable {}

  /**
   * Hands window {@code windowStart}'s {@code parts} (with their {@code parquet} files) and {@code ranges} (of one
   * bundle) to the driver of run {@code runId}, from the task that gathered them, wherever it runs: a file of
   * {@link #READY} under {@code output} (a folder the driver and the workers share), written beside and then moved into
   * place whole, named so that windows sort by their start, and with the run's id.
   */
  static void handOver(String output, String runId, long windowStart, List<PartFile> parts,
      Map<String, String> parquet, List<StreamRange> ranges) throws IOException {
    Path ready = Files.createDirectories(Path.of(output).resolve(READY));
    String name = String.format(Locale.ROOT, "%015d-%s-%s", windowStart, runId, java.util.UUID.randomUUID());
    Path temp = ready.resolve("." + name + ".tmp");
    try (java.io.ObjectOutputStream o = new java.io.ObjectOutputStream(Files.newOutputStream(temp))) {
      o.writeObject(new HandedOver(windowStart, List.copyOf(parts), new java.util.HashMap<>(parquet),
          List.copyOf(ranges)));
    }
    Files.move(temp, ready.resolve(name + ".window"), StandardCopyOption.ATOMIC_MOVE);
  }

  /**
   * Commits the windows handed over so far, earliest first, until one must wait for a window not handed over yet
   * (the runner's GroupByKey gives a micro-batch's windows in any order). Returns how many it committed. Throws when a
   * window has waited {@value #WAIT_MILLIS} ms.
   */
  synchronized int commitReady() throws IOException {
    Path ready = output.resolve(READY);
    if (!Files.isDirectory(ready)) {
      return 0;
    }
    List<Path> files;
    try (Stream<Path> list = Files.list(ready)) {
      files = list.filter(f -> f.getFileName().toString().endsWith(".window")).sorted().toList();
    }
    String mine = "-" + job.runId() + "-";
    List<Path> ours = new ArrayList<>();
    for (Path f : files) {
      if (f.getFileName().toString().contains(mine)) {
        ours.add(f);
      } else {
        // Handed over by a task of a killed run, still running on a worker after the run settled: its records are
        // read again by this run.
        Files.deleteIfExists(f);
      }
    }
    files = ours;
    int committed = 0;
    for (Path f : files) {
      HandedOver w;
      try (java.io.ObjectInputStream in = new java.io.ObjectInputStream(Files.newInputStream(f))) {
        w = (HandedOver) in.readObject();
      } catch (ClassNotFoundException e) {
        throw new IOException("window " + f + " cannot be read", e);
      }
      Outcome outcome = commit(Instant.ofEpochMilli(w.windowStart()), w.parts(), w.parquet(), w.ranges());
      if (outcome == Outcome.WAITS) {
        if (System.currentTimeMillis() - Files.getLastModifiedTime(f).toMillis() > WAIT_MILLIS) {
          throw new IllegalStateException("a window waited " + WAIT_MILLIS / 1000 + " s for the window before it"
              + " to be handed over");
        }
        break;
      }
      Files.delete(f);
      committed += outcome == Outcome.COMMITTED ? 1 : 0;
    }
    return committed;
  }

  /** What {@link #commit} did with a window. */
  enum Outcome {
    COMMITTED,
    /** Committed already: every record of it was read again by the runner ({@link #select}). */
    COMMITTED_BEFORE,
    /** It follows a window not committed yet. */
    WAITS
  }

  /**
   * Commits one window: {@code parts} (every part file its stages wrote), {@code parquet} (the Parquet file of each
   * resource part, by the part's path, when the sinks take them) and {@code mapped} (the ranges of records its tasks
   * mapped). The records a runner read again (a micro-batch computed again, a retried task) are dropped with the parts
   * of the tasks that mapped them ({@link #select}); a window with nothing else was committed already. A window that
   * follows a window not yet committed waits for it: nothing is done. Throws when the window does not balance:
   * nothing of it is committed, and the run stops with its position before the window.
   */
  synchronized Outcome commit(Instant windowStart, List<PartFile> parts, Map<String, String> parquet,
      List<StreamRange> mapped) throws IOException {
    Selection selection = select(mapped);
    if (selection == null) {
      return Outcome.WAITS;
    }
    List<PartFile> kept = new ArrayList<>();
    for (PartFile p : parts) {
      List<StreamRange> of = mapped.stream().filter(r -> p.madeBy(r.task())).toList();
      if (of.size() != 1) {
        throw new IllegalStateException("part " + p.target() + " of a window comes from " + of.size() + " of its"
            + " tasks, not one");
      }
      if (selection.replayed().contains(of.get(0))) {
        Files.deleteIfExists(Path.of(p.path()));
        if (parquet.get(p.path()) != null) {
          Files.deleteIfExists(Path.of(parquet.get(p.path())));
        }
      } else {
        kept.add(p);
      }
    }
    recordsReplayed += selection.replayed().stream().mapToLong(StreamRange::records).sum();
    if (selection.ranges().isEmpty()) {
      return Outcome.COMMITTED_BEFORE;
    }
    parts = kept;
    List<StreamRange> ranges = selection.ranges();
    String windowId = "w" + WINDOW.format(windowStart) + "-" + job.runId().substring(job.runId().length() - 8);
    Tally tally = Tally.EMPTY;
    for (PartFile p : parts) {
      tally = tally.plus(CommitParts.committedFigures(p, Path.of(p.path())));
    }
    JobPlan plan = job.plan();
    RunSummary counted = summary(plan, tally, windowId, ranges);
    if (!counted.balanced()) {
      throw new JobRunner.UnbalancedRunException("window " + windowId + " lost or duplicated records, so it was not"
          + " committed: " + String.join("; ", counted.imbalances()));
    }
    Path pending = output.resolve("_stream/pending").resolve(windowId);
    Map<String, List<String>> resourceFiles = new TreeMap<>();
    Map<String, List<DeltaCommit.WindowFile>> deltaFiles = new TreeMap<>();
    List<String> rejectFiles = new ArrayList<>();
    Map<String, Integer> numbers = new HashMap<>();
    for (PartFile p : parts) {
      if (p.lines() == 0) {
        Files.deleteIfExists(Path.of(p.path()));
        continue;
      }
      String set = p.fileSet();
      int n = numbers.merge(set, 1, Integer::sum) - 1;
      String target = String.format(Locale.ROOT, "%s-%s-%05d.ndjson", set, windowId, n);
      boolean gzip = p.holdsResources()
          && job.config().sinks().ndjsonCompression() == SinkSettings.Compression.GZIP;
      Path to = pending.resolve(gzip ? target + ".gz" : target);
      Files.createDirectories(to.getParent());
      if (gzip) {
        FileSinks.gzip(Path.of(p.path()), to);
        Files.delete(Path.of(p.path()));
      } else {
        Files.move(Path.of(p.path()), to, StandardCopyOption.ATOMIC_MOVE);
      }
      if (!p.holdsResources()) {
        rejectFiles.add(to.toString());
        continue;
      }
      String type = set.substring(PartFile.RESOURCES.length());
      resourceFiles.computeIfAbsent(type, t -> new ArrayList<>()).add(to.toString());
      if (!job.config().sinks().parquet() && delta == null) {
        continue;
      }
      if (parquet.get(p.path()) == null) {
        throw new IllegalStateException("part " + p.target() + " of window " + windowId + " came without its Parquet"
            + " file");
      }
      Path file = Path.of(parquet.get(p.path()));
      if (job.config().sinks().parquet()) {
        // The Parquet sink keeps its file; the Delta table takes a copy of it.
        Path sink = Files.createDirectories(pending.resolve("parquet").resolve(type)).resolve(String.format(
            Locale.ROOT, "part-%s-%05d.parquet", windowId, n));
        if (delta != null) {
          Files.copy(file, sink, StandardCopyOption.REPLACE_EXISTING);
        } else {
          Files.move(file, sink, StandardCopyOption.ATOMIC_MOVE);
        }
      }
      if (delta != null) {
        deltaFiles.computeIfAbsent(type, t -> new ArrayList<>()).add(new DeltaCommit.WindowFile(file, p.lines()));
      }
    }
    Map<String, Long> windowPositions = new LinkedHashMap<>();
    ranges.forEach(r -> windowPositions.put(r.partitionKey(), r.next()));
    Window window = new Window(windowId, resourceFiles, rejectFiles, counted.resourcesOut(), Map.of(
        "stream_windows", List.of(windowRow(windowId, windowStart, counted, ranges)),
        "stream_positions", positionRows(windowId, ranges)));
    Files.createDirectories(pending);
    JSON.writeValue(pending.resolve(DESCRIPTION).toFile(), window);
    fault("after-files");
    if (delta != null) {
      if (faultAt("in-delta")) {
        System.setProperty(DeltaCommit.HALT_AFTER_TABLES, "1");
      }
      delta.commitWindow(windowId, deltaFiles, rejectFiles, window.rows());
    }
    if (db != null) {
      load(plan, window);
    } else if (delta == null) {
      Path record = output.resolve("_stream/windows").resolve(windowId + ".json");
      Files.createDirectories(record.getParent());
      Path temp = record.resolveSibling("." + windowId + ".json.tmp");
      JSON.writeValue(temp.toFile(), new WindowRecord(windowId, job.runId(), windowPositions));
      Files.move(temp, record, StandardCopyOption.ATOMIC_MOVE);
    }
    // Committed: what follows only finishes what a restart would finish too.
    fault("after-commit");
    positions.putAll(windowPositions);
    moveIntoPlace(pending);
    runTally = runTally.plus(tally);
    windows++;
    recordsCommitted += ranges.stream().mapToLong(StreamRange::records).sum();
    writeSummary();
    return Outcome.COMMITTED;
  }

  /** The records of the windows this run committed. */
  synchronized long recordsCommitted() {
    return recordsCommitted;
  }

  /** The records of this run's windows that a runner had read already, dropped ({@link #select}). */
  synchronized long recordsReplayed() {
    return recordsReplayed;
  }

  /** Whether windows this run's tasks handed over wait to be committed. */
  synchronized boolean waiting() throws IOException {
    Path ready = output.resolve(READY);
    if (!Files.isDirectory(ready)) {
      return false;
    }
    try (Stream<Path> list = Files.list(ready)) {
      return list.anyMatch(f -> f.getFileName().toString().endsWith(".window")
          && f.getFileName().toString().contains("-" + job.runId() + "-"));
    }
  }

  /**
   * What a window commits of the ranges its tasks mapped ({@code ranges}): of each partition, one range (the ranges
   * that follow each other from the partition's position on, merged: its committed position, or where this run began
   * to read it, {@link #readFrom}), and {@code replayed}, the ranges whose records are before that position or in this
   * window twice. Those are records a runner read again: Beam's Spark runner computes a micro-batch's read again when
   * it needs the micro-batch and has lost it, from the reader's checkpoint before it, and its readers' cache can then
   * hand a later micro-batch a reader behind the others. Null when the window must wait: a partition's records start
   * after its position. Throws when a partition's ranges overlap in part, or leave a gap: such records cannot be told
   * apart in the parts, so the run stops, and a restart reads them again from the committed position.
   */
  Selection select(List<StreamRange> ranges) {
    Map<String, List<StreamRange>> byPartition = new TreeMap<>();
    ranges.forEach(r -> byPartition.computeIfAbsent(r.partitionKey(), k -> new ArrayList<>()).add(r));
    List<StreamRange> merged = new ArrayList<>();
    List<StreamRange> replayed = new ArrayList<>();
    for (List<StreamRange> list : byPartition.values()) {
      list.sort(java.util.Comparator.comparingLong(StreamRange::from).thenComparingLong(StreamRange::next));
      String key = list.get(0).partitionKey();
      Long position = positions.getOrDefault(key, starts.get(key));
      if (position == null) {
        throw new IllegalStateException("a window holds records of " + key + ", which this run does not read");
      }
      long at = position;
      StreamRange all = null;
      for (StreamRange r : list) {
        if (r.next() <= at) {
          replayed.add(r);
        } else if (r.from() == at) {
          all = all == null ? r : new StreamRange(all.source(), all.topic(), all.partition(), all.from(), r.next(),
              all.records() + r.records(), Math.min(all.firstPollMillis(), r.firstPollMillis()),
              Math.min(all.minTimestamp(), r.minTimestamp()), Math.max(all.maxTimestamp(), r.maxTimestamp()), null);
          at = r.next();
        } else if (r.from() > at && all == null) {
          return null;
        } else {
          throw new IllegalStateException("the records of " + r.partitionKey() + " in one window do not follow the"
              + " records committed or mapped before them: " + describe(list, position) + ". A runner read them"
              + " again from another position; the run stops, and the next one reads them from the position"
              + " committed");
        }
      }
      if (all != null) {
        merged.add(all);
      }
    }
    return new Selection(merged, replayed);
  }

  /** A window's records to commit, one range per partition, and the ranges of it read again ({@link #select}). */
  record Selection(List<StreamRange> ranges, List<StreamRange> replayed) {}

  /**
   * A partition's {@code ranges} in a window, after its {@code position} (committed, or where the run began to read
   * it), for a message.
   */
  private static String describe(List<StreamRange> ranges, long position) {
    List<String> out = new ArrayList<>();
    ranges.forEach(r -> out.add(r.from() + " to " + r.next()));
    return "records " + String.join(", ", out) + " after position " + position;
  }

  /** The system property that names a point of a window's commit where a test kills the process. */
  static final String FAULT = "fhirbeam.stream_fault";

  /**
   * A test-only crash, as a SIGKILL at a named point of a commit: with the system property {@value #FAULT} (or the
   * environment variable {@code FHIRBEAM_STREAM_FAULT}) set to {@code <point>@<n>}, the process halts (no shutdown
   * hooks, nothing closed) at that point of the n-th window this run commits. Points: {@code after-files} (the
   * window's files staged), {@code in-commit} (its DuckDB transaction under way, not committed), {@code after-commit}
   * (committed, its files not yet in place); with the Delta sink, {@code in-delta} (after the first of its Delta
   * tables took it, as a SIGKILL in the middle of a Delta commit).
   */
  private void fault(String point) {
    if (faultAt(point)) {
      Runtime.getRuntime().halt(137);
    }
  }

  /** Whether the test-only crash ({@link #fault}) is asked for at {@code point} of the window being committed. */
  private boolean faultAt(String point) {
    String wanted = System.getProperty(FAULT, System.getenv("FHIRBEAM_STREAM_FAULT"));
    return wanted != null && wanted.equals(point + "@" + (windows + 1));
  }

  /** The window's (or the run's) figures as a run summary; its balance is the window's. */
  private RunSummary summary(JobPlan plan, Tally tally, String id, List<StreamRange> ranges) {
    PipelineCounts counts = PipelineCounts.of(plan, tally);
    Map<String, Long> resourcesOut = new LinkedHashMap<>();
    plan.mappings().forEach(m -> resourcesOut.put(m.resourceType(),
        counts.committedLines(MapWithDuckDb.resourceFileSet(m.resourceType()))));
    Map<String, Long> rowsIn = counts.rowsInBySource();
    if (ranges != null) {
      // Every record the window read is a row of each mapping of its source.
      Map<String, Long> read = new LinkedHashMap<>();
      ranges.forEach(r -> read.merge(r.source(), r.records(), Long::sum));
      read.forEach((source, n) -> {
        if (!n.equals(rowsIn.getOrDefault(source, 0L))) {
          throw new JobRunner.UnbalancedRunException("window " + id + " read " + n + " records of source " + source
              + " but its mappings counted " + rowsIn.getOrDefault(source, 0L));
        }
      });
    }
    return new RunSummary(id, job.runner(), plan.config().file(), rowsIn, counts.perMapping(), resourcesOut,
        counts.committedLines(PartFile.REJECTS), (System.nanoTime() - started) / 1e9, Map.of(), job.database(),
        Map.of(), counts.validation(), Map.of(), Map.of());
  }

  /** The run's figures so far. */
  synchronized RunSummary runSummary() {
    return summary(job.plan(), runTally, job.runId(), null);
  }

  /** Rewrites {@code run-summary.json} with the run's figures so far (written beside it, then moved over it). */
  private void writeSummary() throws IOException {
    Map<String, Object> json = runSummary().toJson();
    Map<String, Object> stream = new LinkedHashMap<>();
    stream.put("windows_committed", windows);
    stream.put("positions", new TreeMap<>(positions));
    json.put("stream", stream);
    Path file = output.resolve("run-summary.json");
    Path temp = output.resolve(".run-summary.json.tmp");
    Files.write(temp, new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(json));
    Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /**
   * The window's row of {@code quality.stream_windows}: its records, resources and rejects, the earliest and latest
   * Kafka timestamps of its records, {@code lag_ms} (from the earliest record's timestamp to when it was read) and
   * {@code latency_ms} (from then to now, as its commit starts: the longest a record of the window waited).
   */
  private List<Object> windowRow(String windowId, Instant windowStart, RunSummary counted, List<StreamRange> ranges) {
    long minTime = ranges.stream().mapToLong(StreamRange::minTimestamp).min().orElse(0);
    long maxTime = ranges.stream().mapToLong(StreamRange::maxTimestamp).max().orElse(0);
    long firstPoll = ranges.stream().mapToLong(StreamRange::firstPollMillis).min().orElse(0);
    long now = System.currentTimeMillis();
    return java.util.Arrays.asList(windowId, job.runId(), windowStart.toString(), Instant.ofEpochMilli(now)
        .toString(), counted.rowsIn(), counted.resourcesTotal(), counted.rejected(), Instant.ofEpochMilli(minTime)
        .toString(), Instant.ofEpochMilli(maxTime).toString(), Math.max(0, firstPoll - minTime),
        Math.max(0, now - minTime));
  }

  /** The window's rows of {@code quality.stream_positions}: the records it read of each partition. */
  private static List<List<Object>> positionRows(String windowId, List<StreamRange> ranges) {
    List<List<Object>> rows = new ArrayList<>();
    for (StreamRange r : ranges) {
      rows.add(List.of(windowId, r.source(), r.topic(), r.partition(), r.from(), r.next(), r.records()));
    }
    return rows;
  }

  /**
   * The window's DuckDB transaction: its resources appended to their tables, its rejects to {@code quality.rejects},
   * its rows of {@code quality.stream_windows} and {@code quality.stream_positions} added; all or nothing.
   */
  private void load(JobPlan plan, Window w) {
    try (DuckDbTables.Transaction tx = DuckDbTables.begin(db, DuckDbLoad.SCHEMAS)) {
      Map<String, Long> before = new HashMap<>();
      for (Map.Entry<String, List<String>> e : w.resourceFiles().entrySet()) {
        String table = e.getKey().toLowerCase(Locale.ROOT);
        before.put(table, DuckDb.rows(db, "fhir_resources", table));
        tx.load(new DuckDbTables.JsonTable("fhir_resources", table, DuckDbLoad.tableColumns(plan, e.getKey(), true),
            e.getValue(), WriteMode.APPEND));
      }
      for (CompiledMapping m : plan.mappings()) {
        if (w.resourceFiles().containsKey(m.resourceType()) || tableExists("fhir_resources",
            m.resourceType().toLowerCase(Locale.ROOT))) {
          tx.view("transformed_data", m.name(), DuckDbLoad.transformedView(m));
        }
      }
      QualityTables.STREAM.forEach((table, columns) -> tx.run("stream_tables", QualityTables.createTable("quality",
          table, columns, table.equals("stream_windows") ? "window_id" : null)));
      if (!w.rejectFiles().isEmpty()) {
        tx.run("rejects", "INSERT INTO quality.rejects BY NAME " + QualityTables.streamRejectsQuery(w.rejectFiles(),
            w.windowId()));
      }
      w.rows().forEach((table, rows) -> tx.run(table, "INSERT INTO quality." + table + " BY NAME "
          + DeltaCommit.valuesQuery(QualityTables.STREAM.get(table), rows)));
      fault("in-commit");
      job.config().sinks().views().forEach((name, sql) -> tx.userView(
          new DuckDbTables.View(name, sql, job.config().sinks().viewLocations().get(name))));
      tx.commit(w.windowId(), counts -> w.resourceFiles().keySet().forEach(type -> {
        String table = type.toLowerCase(Locale.ROOT);
        long expected = before.get(table) + w.resourcesOut().get(type);
        long loaded = counts.get("fhir_resources." + table);
        if (loaded != expected) {
          throw new JobRunner.UnbalancedRunException("DuckDB table fhir_resources." + table + " would hold " + loaded
              + " rows but should hold " + expected + " after window " + w.windowId());
        }
      }));
    }
  }

  private boolean tableExists(String schema, String table) {
    try {
      return DuckDb.tableExists(db, schema, table);
    } catch (SQLException e) {
      throw DuckDb.failure("reading the tables of " + schema + " failed", e);
    }
  }

  /** Moves a committed window's pending files into place under the output, then deletes its folder. */
  private void moveIntoPlace(Path pending) throws IOException {
    List<Path> files;
    try (Stream<Path> walk = Files.walk(pending)) {
      files = walk.filter(Files::isRegularFile).toList();
    }
    for (Path f : files) {
      if (f.getFileName().toString().equals(DESCRIPTION)) {
        continue; // deleted with the folder
      }
      Path to = output.resolve(pending.relativize(f).toString());
      Files.createDirectories(to.getParent());
      Files.move(f, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
    FileTrees.deleteTree(pending);
  }

  private void closeDatabase() {
    if (db != null) {
      try {
        db.close();
      } catch (SQLException e) {
        // closing: the last window's transaction has committed or rolled back by now
      }
    }
  }

  /** Closes the output's database. */
  @Override
  public synchronized void close() {
    closeDatabase();
  }
}
