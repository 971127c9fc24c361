package org.fhirbeam.transforms;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.duckdb.DuckDBAppender;
import org.duckdb.DuckDBConnection;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.KafkaSource;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.RecordBatch;
import org.fhirbeam.io.StreamRange;

/**
 * Applies compiled mappings to stream records: the batches a runner's bundle holds of one window and one partition are
 * gathered and mapped by each mapping of their source in one DuckDB query, the same query a file task runs, writing
 * the same resource and reject part files (under {@link MapWithDuckDb#partsOf} the mapping's name). Mapping a bundle's
 * records rather than a whole window's keeps the window's records out of memory (only its part files wait for the
 * window's commit) and maps them while the next ones are read: on 1M drained records, peak RSS 1,278 -> 901 MB and
 * 116k -> 138k records/s against gathering each window with a GroupByKey. A group reaching {@link #FLUSH_RECORDS} is
 * mapped at once. A record is a row of the source's columns: a JSON object's top-level values, or the fields of a CSV
 * line ({@link CsvRecords}). One that is neither (not JSON, not an object, a CSV line with too few or too many fields)
 * is a reject of stage {@code ingest}; every reject names the topic, partition and offset of its record. Each group
 * also gives one {@link StreamRange} (under {@link #RANGES}): the window's commit records the ranges as the job's
 * position.
 *
 * <p>The figures ride on the parts as a file task's do ({@link Counters#rowsIn}, {@link Counters#mapped},
 * {@link Counters#rejected} by mapping), so that each window balances on its own.
 */
public final class MapRecords extends PTransform<PCollection<RecordBatch>, PCollectionTuple> {
  /** The output tag of the ranges of records mapped. */
  public static final TupleTag<StreamRange> RANGES = new TupleTag<>("ranges");

  /**
   * A stream source: its name, how its records read (JSON objects, or CSV lines of {@code columns}), the columns a row
   * has, and the mappings of it.
   */
  public record Source(String name, KafkaSource.Format format, List<String> columns, List<CompiledMapping> mappings)
      implements Serializable {
    public Source {
      columns = List.copyOf(columns);
      mappings = List.copyOf(mappings);
    }
  }

  private final List<Source> sources;
  private final DuckDbSettings settings;
  private final String partsDirectory;
  private final String runId;

  private MapRecords(List<Source> sources, DuckDbSettings settings, String partsDirectory, String runId) {
    this.sources = sources;
    this.settings = settings;
    this.partsDirectory = partsDirectory;
    this.runId = runId;
  }

  /** Maps the records of {@code sources} (each with at least one mapping; mapping names must differ). */
  public static MapRecords of(List<Source> sources, DuckDbSettings settings, String partsDirectory, String runId) {
    if (sources.isEmpty() || sources.stream().anyMatch(s -> s.mappings().isEmpty())) {
      throw new IllegalArgumentException("every source needs a mapping");
    }
    if (sources.stream().flatMap(s -> s.mappings().stream()).map(CompiledMapping::name).distinct().count()
        != sources.stream().mapToLong(s -> s.mappings().size()).sum()) {
      throw new IllegalArgumentException("mapping names must differ");
    }
    return new MapRecords(List.copyOf(sources), Objects.requireNonNull(settings, "settings"),
        Objects.requireNonNull(partsDirectory, "partsDirectory"), Objects.requireNonNull(runId, "runId"));
  }

  @Override
  public PCollectionTuple expand(PCollection<RecordBatch> batches) {
    List<TupleTag<PartFile>> tags = new ArrayList<>();
    sources.forEach(s -> s.mappings().forEach(m -> tags.add(MapWithDuckDb.partsOf(m.name()))));
    PCollectionTuple out = batches.apply("MapRecords", ParDo.of(new MapBatchesFn(sources, settings, partsDirectory,
        runId)).withOutputTags(RANGES, TupleTagList.of(new ArrayList<>(tags))));
    for (TupleTag<PartFile> tag : tags) {
      out.get(tag).setCoder(SerializableCoder.of(PartFile.class));
    }
    out.get(RANGES).setCoder(SerializableCoder.of(StreamRange.class));
    return out;
  }

  /**
   * The rows of the good records of {@code table}, by the source's columns, with their offsets: for JSON each
   * top-level value as text (a missing key: NULL), for CSV the fields as read.
   */
  static String rows(String table, List<String> columns, KafkaSource.Format format) {
    String good = " FROM " + DuckDb.identifier(table) + " WHERE \"#rule\" IS NULL";
    if (format == KafkaSource.Format.CSV) {
      List<String> select = new ArrayList<>();
      columns.forEach(c -> select.add(DuckDb.identifier(c)));
      return "SELECT " + SqlMapping.q(SqlMapping.OFFSET) + ", " + String.join(", ", select) + good;
    }
    List<String> pointers = new ArrayList<>();
    List<String> select = new ArrayList<>();
    for (int i = 0; i < columns.size(); i++) {
      pointers.add(DuckDb.literal("/" + columns.get(i).replace("~", "~0").replace("/", "~1")));
      select.add("\"#v\"[" + (i + 1) + "] AS " + DuckDb.identifier(columns.get(i)));
    }
    return "SELECT " + SqlMapping.q(SqlMapping.OFFSET) + ", " + String.join(", ", select) + " FROM (SELECT "
        + SqlMapping.q(SqlMapping.OFFSET) + ", json_extract_string(\"#value\", [" + String.join(", ", pointers)
        + "]) AS \"#v\"" + good + ")";
  }

  /** A window's records of one partition. */
  private record GroupKey(BoundedWindow window, String partition) {}

  private static final class Group {
    final List<RecordBatch> batches = new ArrayList<>();
    long records;
  }

  /**
   * Records of one window and partition mapped at once, before the bundle ends, when a bundle holds this many: a
   * runner's bundles are small on the DirectRunner (ten polls) but a Spark micro-batch's may be large.
   */
  static final int FLUSH_RECORDS = 250_000;

  static final class MapBatchesFn extends DoFn<RecordBatch, StreamRange> {
    private final List<Source> sources;
    private final DuckDbSettings settings;
    private final String partsDirectory;
    private final String runId;
    private transient Connection db;
    /** The bundle's batches not mapped yet, by window and partition. */
    private transient Map<GroupKey, Group> pending;

    MapBatchesFn(List<Source> sources, DuckDbSettings settings, String partsDirectory, String runId) {
      this.sources = sources;
      this.settings = settings;
      this.partsDirectory = partsDirectory;
      this.runId = runId;
    }

    @Setup
    public void setup() throws SQLException {
      db = MapWithDuckDb.openWorkerDatabase(settings);
    }

    @Teardown
    public void teardown() {
      if (db != null) {
        try {
          db.close();
        } catch (SQLException e) {
          // closing an in-memory database: nothing is lost
        }
        db = null;
      }
    }

    /** Where a group's outputs go: the element's receiver, or the bundle's end with the group's window. */
    private interface Emit {
      <T> void output(TupleTag<T> tag, T value);
    }

    @StartBundle
    public void startBundle() {
      pending = new LinkedHashMap<>();
    }

    @ProcessElement
    public void process(@Element RecordBatch batch, BoundedWindow window, MultiOutputReceiver out)
        throws IOException {
      Group group = pending.computeIfAbsent(new GroupKey(window, batch.partitionKey()), k -> new Group());
      group.batches.add(batch);
      group.records += batch.size();
      if (group.records >= FLUSH_RECORDS) {
        pending.remove(new GroupKey(window, batch.partitionKey()));
        map(batch.partitionKey(), group.batches, new Emit() {
          @Override
          public <T> void output(TupleTag<T> tag, T value) {
            out.get(tag).output(value);
          }
        });
      }
    }

    @FinishBundle
    public void finishBundle(FinishBundleContext c) throws IOException {
      for (Map.Entry<GroupKey, Group> e : pending.entrySet()) {
        BoundedWindow window = e.getKey().window();
        map(e.getKey().partition(), e.getValue().batches, new Emit() {
          @Override
          public <T> void output(TupleTag<T> tag, T value) {
            c.output(tag, value, window.maxTimestamp(), window);
          }
        });
      }
      pending = null;
    }

    /** Maps one partition's batches of one window (in offset order, each following the one before). */
    private void map(String key, List<RecordBatch> batches, Emit out) throws IOException {
      batches.sort(Comparator.comparingLong(RecordBatch::from));
      for (int i = 1; i < batches.size(); i++) {
        if (batches.get(i).from() != batches.get(i - 1).next()) {
          throw new IllegalStateException("the batches of " + key + " in one window do not follow each"
              + " other: one ends at " + batches.get(i - 1).next() + ", the next begins at " + batches.get(i).from());
        }
      }
      RecordBatch first = batches.get(0);
      Source source = sources.stream().filter(s -> s.name().equals(first.source())).findFirst()
          .orElseThrow(() -> new IllegalStateException("no mapping reads source " + first.source()));
      long records = 0;
      long minTimestamp = Long.MAX_VALUE;
      long maxTimestamp = Long.MIN_VALUE;
      for (RecordBatch b : batches) {
        records += b.size();
        for (long t : b.timestamps()) {
          minTimestamp = Math.min(minTimestamp, t);
          maxTimestamp = Math.max(maxTimestamp, t);
        }
      }
      String attempt = UUID.randomUUID().toString().replace("-", "");
      String table = "records_" + attempt;
      String id = first.source() + "." + first.partition() + "." + first.from() + "." + attempt.substring(0, 8);
      try {
        KafkaSource.Format format = source.format();
        List<String> columns = source.columns();
        try (Statement st = db.createStatement()) {
          // Each record with what is wrong with it (NULL rule: nothing) and, for CSV, its fields.
          StringBuilder ddl = new StringBuilder("CREATE TABLE " + DuckDb.identifier(table) + " ("
              + SqlMapping.q(SqlMapping.OFFSET) + " BIGINT, \"#value\" VARCHAR, \"#rule\" VARCHAR,"
              + " \"#reason\" VARCHAR");
          if (format == KafkaSource.Format.CSV) {
            columns.forEach(c -> ddl.append(", ").append(DuckDb.identifier(c)).append(" VARCHAR"));
          }
          st.execute(ddl.append(")").toString());
        }
        try (DuckDBAppender a = db.unwrap(DuckDBConnection.class).createAppender("main", table)) {
          for (RecordBatch b : batches) {
            for (int i = 0; i < b.size(); i++) {
              String value = b.values()[i];
              a.beginRow().append(b.offsets()[i]);
              append(a, value);
              if (format == KafkaSource.Format.CSV) {
                CsvRecords.Line line = CsvRecords.read(value, columns.size());
                append(a, line.rule());
                append(a, line.reason());
                for (int c = 0; c < columns.size(); c++) {
                  append(a, line.fields() == null ? null : line.fields()[c]);
                }
              } else {
                append(a, value == null ? "json-object" : null);
                append(a, value == null ? "the record has no value" : null);
              }
              a.endRow();
            }
          }
        }
        if (format == KafkaSource.Format.JSON) {
          try (Statement st = db.createStatement()) {
            // Parsed once here, to find the values that are not JSON objects. A CASE, not AND: DuckDB evaluates both
            // sides of an AND, and json_type fails on text that is not JSON.
            st.execute("UPDATE " + DuckDb.identifier(table) + " SET \"#rule\" = 'json-object', \"#reason\" ="
                + " 'the record''s value is not a JSON object' WHERE \"#rule\" IS NULL AND NOT CASE WHEN"
                + " json_valid(\"#value\") THEN json_type(\"#value\") = 'OBJECT' ELSE false END");
          }
        }
        for (CompiledMapping m : source.mappings()) {
          map(m, source, first, table, id, records, out);
        }
      } catch (SQLException e) {
        throw DuckDb.failure("mapping the records of " + key + " from offset " + first.from()
            + " failed", e);
      } finally {
        try (Statement st = db.createStatement()) {
          st.execute("DROP TABLE IF EXISTS " + DuckDb.identifier(table));
        } catch (SQLException e) {
          // the worker's database goes at teardown
        }
      }
      Metrics.counter(Counters.NAMESPACE, Counters.streamRecords(first.source())).inc(records);
      RecordBatch last = batches.get(batches.size() - 1);
      out.output(RANGES, new StreamRange(first.source(), first.topic(), first.partition(), first.from(),
          last.next(), records, first.pollMillis(), minTimestamp, maxTimestamp, id));
    }

    /** Maps the window's records of one partition with mapping {@code m}: its parts, the figures on the first. */
    private void map(CompiledMapping m, Source source, RecordBatch first, String table, String id, long records,
        Emit out) throws SQLException, IOException {
      long started = System.nanoTime();
      SqlMapping sql = new SqlMapping(m);
      List<String> columns = source.columns();
      Path dir = Path.of(partsDirectory, m.name() + "-" + id);
      Files.createDirectories(dir.getParent());
      SqlMapping.Origin origin = SqlMapping.Origin.ofRecords(runId, first.source(), first.topic(),
          first.partition(), columns);
      long badRecords;
      long objects;
      long written;
      try (Statement st = db.createStatement()) {
        written = st.executeLargeUpdate("COPY (" + sql.outputQuery(rows(table, columns, source.format()), origin)
            + ") TO "
            + DuckDb.literal(dir.toString()) + MapWithDuckDb.RAW_LINES + ", PARTITION_BY (kind))");
        Path bad = dir.resolve("bad-records.ndjson");
        badRecords = st.executeLargeUpdate("COPY (" + badRecordsQuery(table, origin, m.name()) + ") TO "
            + DuckDb.literal(bad.toString()) + MapWithDuckDb.RAW_LINES + ")");
        try (ResultSet rs = st.executeQuery("SELECT count(*) FILTER (WHERE \"#rule\" IS NULL) FROM "
            + DuckDb.identifier(table))) {
          rs.next();
          objects = rs.getLong(1);
        }
      }
      List<PartFile> rejects = MapWithDuckDb.MapFilesFn.parts(dir.resolve("kind=" + SqlMapping.REJECT),
          PartFile.REJECTS, id, true);
      long mappingRejects = rejects.stream().mapToLong(PartFile::lines).sum();
      List<PartFile> parts = new ArrayList<>(MapWithDuckDb.MapFilesFn.resourceParts(dir.resolve("kind="
          + SqlMapping.RESOURCE), MapWithDuckDb.resourceFileSet(m.resourceType()), id, written - mappingRejects));
      long mapped = parts.stream().mapToLong(PartFile::lines).sum();
      parts.addAll(rejects);
      if (badRecords > 0) {
        parts.add(PartFile.rejects(id, "ingest", dir.resolve("bad-records.ndjson").toString(), badRecords));
      } else {
        Files.deleteIfExists(dir.resolve("bad-records.ndjson"));
      }
      if (mapped + mappingRejects != objects) {
        throw new IllegalStateException("mapping " + m.name() + " wrote " + mapped + " resources and "
            + mappingRejects + " rejects for " + objects + " records");
      }
      Tally tally = Tally.builder()
          .count(Counters.rowsIn(m.name()), records)
          .count(Counters.rowsRead(m.name()), objects)
          .count(Counters.millis(m.name()), (System.nanoTime() - started) / 1_000_000)
          .count(Counters.mapped(m.name()), mapped)
          .count(Counters.rejected(m.name()), mappingRejects + badRecords)
          .build();
      TupleTag<PartFile> tag = MapWithDuckDb.partsOf(m.name());
      for (int i = 0; i < parts.size(); i++) {
        out.output(tag, i == 0 ? parts.get(i).plus(tally) : parts.get(i));
      }
    }

    /** Reject records for the records that cannot be read as rows, in offset order, their values kept as text. */
    private static String badRecordsQuery(String table, SqlMapping.Origin origin, String mapping) {
      return "SELECT '{\"run_id\":' || to_json(" + DuckDb.literal(origin.runId()) + ") || ',\"source\":' || to_json("
          + DuckDb.literal(origin.source()) + ") || " + origin.placeJson(SqlMapping.q(SqlMapping.OFFSET))
          + " || ',\"stage\":\"ingest\",\"mapping\":' || to_json(" + DuckDb.literal(mapping) + ")"
          + " || ',\"rule\":' || to_json(\"#rule\") || ',\"reason\":' || to_json(\"#reason\")"
          + " || ',\"raw\":' || coalesce(to_json(\"#value\"), 'null') || '}' FROM " + DuckDb.identifier(table)
          + " WHERE \"#rule\" IS NOT NULL ORDER BY " + SqlMapping.q(SqlMapping.OFFSET);
    }

    private static void append(DuckDBAppender a, String value) throws SQLException {
      if (value == null) {
        a.appendNull();
      } else {
        a.append(value);
      }
    }
  }
}
