package org.fhirbeam.transforms;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.ReadTask;

/**
 * Applies one compiled mapping to the files of its source, one file per task, in parallel. For each file a
 * worker's in-memory DuckDB reads the file and runs the mapping's SQL in one pass, writing two NDJSON part
 * files itself: the resources ({@code fhir/<Type>-...}) and the reject records ({@code rejects/rejects-...}).
 * The output is the list of part files; no row passes through the JVM. Rows are counted in
 * {@link Counters#rowsIn} (an independent count of the file's rows), {@link Counters#mapped} and
 * {@link Counters#rejected}, by mapping name.
 */
public final class MapWithDuckDb extends PTransform<PBegin, PCollection<PartFile>> {
  private final CompiledMapping mapping;
  private final List<ReadTask> tasks;
  private final DuckDbSettings settings;
  private final String partsDirectory;
  private final String runId;

  private MapWithDuckDb(CompiledMapping mapping, List<ReadTask> tasks, DuckDbSettings settings,
      String partsDirectory, String runId) {
    this.mapping = mapping;
    this.tasks = tasks;
    this.settings = settings;
    this.partsDirectory = partsDirectory;
    this.runId = runId;
  }

  public static MapWithDuckDb of(CompiledMapping mapping, List<ReadTask> tasks) {
    Objects.requireNonNull(mapping, "mapping");
    if (tasks == null || tasks.isEmpty()) {
      throw new IllegalArgumentException("at least one read task is required");
    }
    return new MapWithDuckDb(mapping, List.copyOf(tasks), null, null, null);
  }

  public MapWithDuckDb withSettings(DuckDbSettings settings) {
    return new MapWithDuckDb(mapping, tasks, Objects.requireNonNull(settings, "settings"), partsDirectory, runId);
  }

  /** Where workers write part files (a directory every worker can reach). */
  public MapWithDuckDb withPartsDirectory(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("parts directory must not be empty");
    }
    return new MapWithDuckDb(mapping, tasks, settings, directory, runId);
  }

  /** The run id written into every reject record. */
  public MapWithDuckDb withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new MapWithDuckDb(mapping, tasks, settings, partsDirectory, runId);
  }

  /** The file set of this mapping's resources, relative to the output root. */
  public static String resourceFileSet(String resourceType) {
    return PartFile.RESOURCES + resourceType;
  }

  @Override
  public PCollection<PartFile> expand(PBegin input) {
    if (settings == null || partsDirectory == null || runId == null) {
      throw new IllegalStateException("withSettings(), withPartsDirectory() and withRunId() are required");
    }
    return input
        .apply("ListFiles", Create.of(tasks).withCoder(SerializableCoder.of(ReadTask.class)))
        .apply("MapFiles", ParDo.of(new MapFileFn(new SqlMapping(mapping), settings, partsDirectory, runId)))
        .setCoder(SerializableCoder.of(PartFile.class));
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("mapping", mapping.name()))
        .add(DisplayData.item("resourceType", mapping.resourceType()))
        .add(DisplayData.item("files", tasks.size()));
  }

  /**
   * COPY options (without the closing parenthesis) that write one text column as raw lines: no quote character
   * (with one, DuckDB quotes every value holding a '#'), and JSON text never holds the raw \1 delimiter, so
   * DuckDB writes each line exactly as it is.
   */
  private static final String RAW_LINES = " (FORMAT csv, HEADER false, DELIMITER '\u0001', QUOTE '', ESCAPE ''";

  static final class MapFileFn extends DoFn<ReadTask, PartFile> {
    private final SqlMapping sql;
    private final DuckDbSettings settings;
    private final String partsDirectory;
    private final String runId;
    private transient Connection db;

    MapFileFn(SqlMapping sql, DuckDbSettings settings, String partsDirectory, String runId) {
      this.sql = sql;
      this.settings = settings;
      this.partsDirectory = partsDirectory;
      this.runId = runId;
    }

    @Setup
    public void setup() throws SQLException {
      db = DuckDb.openInMemory(settings);
      try (Statement st = db.createStatement()) {
        // Row positions in rejects count rows in file order, whatever the configuration says.
        st.execute("SET preserve_insertion_order = true");
      }
    }

    @ProcessElement
    public void process(@Element ReadTask task, OutputReceiver<PartFile> out) throws IOException {
      CompiledMapping m = sql.mapping();
      String id = UUID.randomUUID().toString().replace("-", "");
      String badLines = "bad_lines_" + id;
      Path dir = Path.of(partsDirectory, m.name() + "-" + id);
      Files.createDirectories(dir.getParent());
      long started = System.nanoTime();
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
        // The i-th left-out line L (1-based, in order) comes after L - first - i + 1 rows that were read. Files
        // whose records are not one per line report row numbers among the rows read instead.
        String skipped = null;
        if (task.skipsBadLines() && task.kind() == ReadTask.LocationKind.LINE) {
          skipped = badLines + "_shift";
          // Consecutive left-out lines share a row number: the row after them moves down by all of them.
          st.execute("CREATE TEMP TABLE " + DuckDb.identifier(skipped) + " AS SELECT line - " + task.firstLocation()
              + " - n + 2 AS \"#from\", max(n) AS \"#lines\" FROM (SELECT line, row_number() OVER (ORDER BY line)"
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
            origin) + ") TO " + DuckDb.literal(dir.toString()) + RAW_LINES + ", PARTITION_BY (kind))");
        if (task.skipsBadLines()) {
          // Lines DuckDB could not read as CSV become rejects of the ingest stage, with their line numbers.
          Path bad = dir.resolve("bad-lines.ndjson");
          badLineCount = st.executeLargeUpdate("COPY (" + badLinesQuery(badLines, origin, m.name()) + ") TO "
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
      Metrics.counter(Counters.NAMESPACE, Counters.rowsIn(m.name())).inc(rowsIn + badLineCount);
      Metrics.counter(Counters.NAMESPACE, Counters.millis(m.name())).inc((System.nanoTime() - started) / 1_000_000);

      Metrics.counter(Counters.NAMESPACE, Counters.rowsRead(m.name())).inc(rowsIn);
      for (int i = 0; i < populated.length; i++) {
        Metrics.counter(Counters.NAMESPACE, Counters.columnPopulated(m.name(), task.columns().get(i)))
            .inc(populated[i]);
      }
      for (int i = 0; i < checks.size(); i++) {
        String element = checks.get(i).element() == null ? "" : checks.get(i).element();
        Metrics.counter(Counters.NAMESPACE, Counters.checkFailed(m.name(), checks.get(i).check(), element))
            .inc(checkCounts[i][0]);
        Metrics.counter(Counters.NAMESPACE, Counters.checkTotal(m.name(), checks.get(i).check(), element))
            .inc(checkCounts[i][1]);
      }
      List<PartFile> rejects = new ArrayList<>(parts(dir.resolve("kind=" + SqlMapping.REJECT), PartFile.REJECTS, id,
          true));
      long mappingRejects = rejects.stream().mapToLong(PartFile::lines).sum();
      rejects.addAll(ingestRejects);
      List<PartFile> resources = parts(dir.resolve("kind=" + SqlMapping.RESOURCE),
          resourceFileSet(m.resourceType()), id, false);
      if (resources.size() == 1) {
        PartFile only = resources.get(0);
        resources = List.of(new PartFile(only.target(), only.path(), written - mappingRejects));
      } else {
        resources = parts(dir.resolve("kind=" + SqlMapping.RESOURCE), resourceFileSet(m.resourceType()), id, true);
      }
      long mapped = resources.stream().mapToLong(PartFile::lines).sum();
      Metrics.counter(Counters.NAMESPACE, Counters.mapped(m.name())).inc(mapped);
      Metrics.counter(Counters.NAMESPACE, Counters.rejected(m.name())).inc(mappingRejects + badLineCount);
      for (PartFile p : resources) {
        out.output(p);
      }
      for (PartFile p : rejects) {
        out.output(p);
      }
    }

    /** Reject records for the lines DuckDB set aside, one per line, in line order. */
    private static String badLinesQuery(String table, SqlMapping.Origin origin, String mapping) {
      return "SELECT '{\"run_id\":' || to_json(" + DuckDb.literal(origin.runId()) + ") || ',\"source\":' || to_json("
          + DuckDb.literal(origin.source()) + ") || ',\"file\":' || to_json(" + DuckDb.literal(origin.file())
          + ") || ',\"line\":' || line || ',\"stage\":\"ingest\",\"mapping\":' || to_json("
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
    private static List<PartFile> parts(Path dir, String fileSet, String id, boolean count) throws IOException {
      List<PartFile> out = new ArrayList<>();
      if (!Files.isDirectory(dir)) {
        return out;
      }
      List<Path> files = new ArrayList<>();
      try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
        s.forEach(files::add);
      }
      files.sort(null);
      for (int i = 0; i < files.size(); i++) {
        out.add(new PartFile(fileSet + "-" + id + "-" + i + ".ndjson", files.get(i).toString(),
            count ? FileTrees.countLines(files.get(i)) : -1));
      }
      return out;
    }

    @Teardown
    public void teardown() throws SQLException {
      if (db != null) {
        db.close();
      }
    }
  }
}
