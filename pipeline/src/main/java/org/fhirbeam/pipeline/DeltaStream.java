package org.fhirbeam.pipeline;

import io.delta.kernel.Snapshot;
import io.delta.kernel.Table;
import io.delta.kernel.defaults.engine.DefaultEngine;
import io.delta.kernel.engine.Engine;
import io.delta.kernel.exceptions.TableNotFoundException;
import io.delta.kernel.types.StructField;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.KafkaBatchSource;
import org.fhirbeam.io.RecordBatch;
import org.fhirbeam.io.StreamStop;
import org.joda.time.Instant;

/**
 * A Delta table read as a stream ({@code sources.NAME.delta} with {@code streaming: true}): the rows each version adds,
 * read once the version is committed, the table checked for a new version every {@code poll}. Each row becomes a
 * record of the stream, a JSON object of its columns as text (as a file task reads a Parquet file's columns), so the
 * mapping's compiled query maps it as a Kafka source's JSON record ({@link org.fhirbeam.transforms.MapRecords}).
 *
 * <p>A table has one "partition" (0), named by the table's path as a topic is. A record's offset is its version's
 * number times {@link #PER_VERSION} plus its row in the version (the version's added files in path order, each
 * file's rows in order): version 3's row 17 is 3,000,000,017. So the job's committed position says which version and
 * row it resumes at, as for Kafka. A version that removes rows (an overwrite, a delete, an update, a compaction) is
 * refused: a stream reads appended rows only. One reader per table.
 */
final class DeltaStream extends UnboundedSource<RecordBatch, DeltaStream.Checkpoint> {
  private static final long serialVersionUID = 1L;
  /** Offsets a version spans: its rows are numbered from version × this. */
  static final long PER_VERSION = 1_000_000_000L;
  /** The most rows one element holds. */
  private static final int BATCH_ROWS = 10_000;

  /** The reader's position after the records it emitted, and how many it has emitted. */
  record Checkpoint(long position, long records) implements UnboundedSource.CheckpointMark, Serializable {
    @Override
    public void finalizeCheckpoint() {
      // Nothing to acknowledge: the job's position is committed with its outputs.
    }
  }

  private final String name;
  private final String table;
  private final long start;
  private final KafkaBatchSource.Bounds bounds;
  private final long pollMillis;
  private final DuckDbSettings duckdb;

  /**
   * @param source the source's configuration
   * @param start where it starts: an offset (see the class comment)
   * @param bounds where the run stops by itself; its end offsets keyed by {@link #key}
   */
  DeltaStream(SourceConfig source, long start, KafkaBatchSource.Bounds bounds, DuckDbSettings duckdb) {
    this.name = source.name();
    this.table = folder(source).toString();
    this.start = start;
    this.bounds = bounds;
    this.pollMillis = source.delta().poll().toMillis();
    this.duckdb = duckdb;
  }

  private static Path folder(SourceConfig source) {
    return Path.of(source.path()).toAbsolutePath().normalize();
  }

  /** The position key of {@code source}'s one partition: {@code <table path>/0}, as Kafka's {@code topic/partition}. */
  static String key(SourceConfig source) {
    return KafkaBatchSource.key(folder(source).toString(), 0);
  }

  /**
   * Where a run of {@code source} starts: at {@code committed} (the job's position) when it has one, else after its
   * {@code since_version}, else at version 0.
   */
  static long startPosition(SourceConfig source, Long committed) {
    if (committed != null) {
      return committed;
    }
    Long since = source.delta().sinceVersion();
    return since == null ? 0 : (since + 1) * PER_VERSION;
  }

  /** Where the table ends now, as an offset: after its latest version. Refuses a table that is not there. */
  static long endPosition(SourceConfig source) {
    return (latest(source).getVersion() + 1) * PER_VERSION;
  }

  /** The columns of the table's latest version: those of its records. */
  static List<String> columns(SourceConfig source) {
    List<String> out = new ArrayList<>();
    for (StructField f : latest(source).getSchema().fields()) {
      out.add(f.getName());
    }
    return out;
  }

  private static Snapshot latest(SourceConfig source) {
    Engine engine = DefaultEngine.create(new LocalFileIO());
    try {
      return Table.forPath(engine, LocalFileIO.name(folder(source))).getLatestSnapshot(engine);
    } catch (TableNotFoundException e) {
      throw new InputException(source.at("delta.table") + ": no Delta table at " + folder(source)
          + " (no _delta_log)", e);
    }
  }

  @Override
  public List<DeltaStream> split(int desiredNumSplits, PipelineOptions options) {
    return List.of(this);
  }

  @Override
  public UnboundedReader<RecordBatch> createReader(PipelineOptions options, Checkpoint checkpoint) {
    return checkpoint == null ? new Reader(this, start, 0) : new Reader(this, checkpoint.position(),
        checkpoint.records());
  }

  @Override
  public Coder<Checkpoint> getCheckpointMarkCoder() {
    return SerializableCoder.of(Checkpoint.class);
  }

  @Override
  public Coder<RecordBatch> getOutputCoder() {
    return RecordBatch.CODER;
  }

  /** Reads the table version by version; see the class comment. */
  static final class Reader extends UnboundedReader<RecordBatch> {
    private final DeltaStream source;
    private Engine engine;
    private Table table;
    /**
     * After the records emitted: where the next batch starts, and what a checkpoint holds (versions without rows
     * after it belong to the next batch).
     */
    private long emitted;
    /** Where reading goes on: past {@link #emitted} by the versions without rows read since. */
    private long position;
    private long records;
    /** The rows of the version being read ({@link #version}), as JSON; null before one is loaded. */
    private List<String> rows;
    private long version = -1;
    private long versionMillis;
    /** The data files of the version before {@link #version}: those a version's snapshot adds to. */
    private Set<String> previousFiles;
    private long latestVersion = -1;
    private long checkedAt;
    private RecordBatch current;
    private boolean done;

    Reader(DeltaStream source, long position, long records) {
      this.source = source;
      this.emitted = position;
      this.position = position;
      this.records = records;
    }

    @Override
    public boolean start() {
      engine = DefaultEngine.create(new LocalFileIO());
      table = Table.forPath(engine, LocalFileIO.name(Path.of(source.table)));
      return advance();
    }

    @Override
    public boolean advance() {
      current = null;
      while (!finished()) {
        long v = position / PER_VERSION;
        if (rows == null || version != v) {
          if (!load(v)) {
            return false; // no such version yet
          }
          if (rows.isEmpty() || position % PER_VERSION >= rows.size()) {
            position = (v + 1) * PER_VERSION; // a version that adds no rows (or all read): on to the next
            continue;
          }
        }
        int at = (int) (position % PER_VERSION);
        long room = source.bounds.maxRecords() > 0 ? source.bounds.maxRecords() - records : Long.MAX_VALUE;
        int n = (int) Math.min(Math.min(BATCH_ROWS, rows.size() - at), room);
        long[] offsets = new long[n];
        long[] timestamps = new long[n];
        String[] values = new String[n];
        for (int i = 0; i < n; i++) {
          offsets[i] = v * PER_VERSION + at + i;
          timestamps[i] = versionMillis;
          values[i] = rows.get(at + i);
        }
        position = at + n == rows.size() ? (v + 1) * PER_VERSION : v * PER_VERSION + at + n;
        records += n;
        Metrics.counter(Counters.NAMESPACE, Counters.streamRead(source.name)).inc(n);
        current = new RecordBatch(source.name, source.table, 0, emitted, position, System.currentTimeMillis(),
            offsets, timestamps, values);
        emitted = position;
        return true;
      }
      return false;
    }

    /**
     * Loads version {@code v}'s added rows, once it is committed (the table is asked for its latest version at most
     * every poll); returns false while it is not.
     */
    private boolean load(long v) {
      if (v > latestVersion) {
        long now = System.currentTimeMillis();
        if (now - checkedAt < source.pollMillis && checkedAt > 0) {
          return false;
        }
        checkedAt = now;
        try {
          latestVersion = table.getLatestSnapshot(engine).getVersion();
        } catch (TableNotFoundException e) {
          return false; // not created yet
        }
        if (v > latestVersion) {
          return false;
        }
      }
      String what = "the Delta table " + source.table;
      if (previousFiles == null || version != v - 1) {
        previousFiles = v == 0 ? Set.of()
            : new HashSet<>(DeltaSource.dataFiles(engine, table.getSnapshotAsOfVersion(engine, v - 1), what));
      }
      Snapshot snapshot = table.getSnapshotAsOfVersion(engine, v);
      List<String> files = DeltaSource.dataFiles(engine, snapshot, what);
      Set<String> now = new HashSet<>(files);
      for (String f : previousFiles) {
        if (!now.contains(f)) {
          throw new IllegalStateException(what + ": version " + v + " removes rows (an overwrite, a delete, an update"
              + " or a compaction), and a streaming read takes appended rows only; read the table in a batch job");
        }
      }
      List<String> added = files.stream().filter(f -> !previousFiles.contains(f)).sorted().toList();
      rows = added.isEmpty() ? List.of() : json(added, snapshot);
      version = v;
      versionMillis = snapshot.getTimestamp(engine);
      previousFiles = now;
      return true;
    }

    /** The rows of {@code files} in order, each as a JSON object of its columns as text. */
    private List<String> json(List<String> files, Snapshot snapshot) {
      List<String> pairs = new ArrayList<>();
      for (StructField f : snapshot.getSchema().fields()) {
        pairs.add(DuckDb.literal(f.getName()) + ", CAST(" + DuckDb.identifier(f.getName()) + " AS VARCHAR)");
      }
      List<String> out = new ArrayList<>();
      try (Connection db = DuckDb.openInMemory(source.duckdb);
          Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT json_object(" + String.join(", ", pairs) + ")::VARCHAR FROM "
              + DuckDbTables.parquetFiles(files))) {
        while (rs.next()) {
          out.add(rs.getString(1));
        }
      } catch (SQLException e) {
        throw DuckDb.failure("reading version " + snapshot.getVersion() + " of the Delta table " + source.table
            + " failed", e);
      }
      return out;
    }

    /** Whether the run's bound is reached (or it was asked to stop): nothing more is read. */
    private boolean finished() {
      if (!done) {
        KafkaBatchSource.Bounds b = source.bounds;
        Map<String, Long> end = b.endOffsets();
        done = StreamStop.requested() || (end != null && position >= end.get(KafkaBatchSource.key(source.table, 0)))
            || (b.maxRecords() > 0 && records >= b.maxRecords())
            || (b.deadlineMillis() > 0 && System.currentTimeMillis() >= b.deadlineMillis());
        if (done) {
          Metrics.counter(Counters.NAMESPACE, Counters.streamDone(source.name, 0, 1)).inc();
        }
      }
      return done;
    }

    @Override
    public RecordBatch getCurrent() {
      if (current == null) {
        throw new NoSuchElementException();
      }
      return current;
    }

    @Override
    public Instant getCurrentTimestamp() {
      return new Instant(getCurrent().pollMillis());
    }

    @Override
    public Instant getWatermark() {
      return done ? BoundedWindow.TIMESTAMP_MAX_VALUE : Instant.now();
    }

    @Override
    public Checkpoint getCheckpointMark() {
      return new Checkpoint(emitted, records);
    }

    @Override
    public DeltaStream getCurrentSource() {
      return source;
    }

    @Override
    public void close() throws IOException {
      // The kernel's engine holds nothing open between calls.
    }
  }
}
