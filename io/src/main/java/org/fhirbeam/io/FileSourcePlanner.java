package org.fhirbeam.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;
import org.fhirbeam.config.CsvOptions;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.config.SourceConfig.Format;
import org.fhirbeam.io.ReadTask.LocationKind;

/**
 * Turns a file source into read tasks, one per file, before the pipeline starts: expands the path, decides
 * each file's format, and asks DuckDB for each file's columns so that unreadable files and unknown columns are
 * reported before anything is written. Files of several formats form one logical source aligned by column name.
 * A CSV file's task also notes where the file can be cut into pieces mapped side by side, and reads it with the
 * options DuckDB detected on it. The sources of one planner share one in-memory database: close the planner after.
 */
public final class FileSourcePlanner implements AutoCloseable {

  /**
   * The planned source: its files as read tasks, the union of their columns in first-seen order, and the files
   * left out because they could not be read ({@code on_error: skip_file}), with the reason.
   */
  public record PlannedSource(SourceConfig config, List<ReadTask> tasks, List<String> columns,
      Map<String, String> skipped) {
    public PlannedSource {
      skipped = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(skipped));
    }

    public PlannedSource(SourceConfig config, List<ReadTask> tasks, List<String> columns) {
      this(config, tasks, columns, Map.of());
    }
  }

  private final DuckDbSettings settings;
  /** Whether the tasks serve only for their columns: see {@link #forColumns}. */
  private final boolean columnsOnly;
  /**
   * One in-memory database for every source this planner plans, each plan on a connection of its own: a database
   * costs 50-90 ms to open, fill with a file's first buffers and close (ten of them 1.3 s against 0.47 s for the ten
   * files of the Synthea set). Opened on first use; {@link #close} closes it.
   */
  private Connection database;
  /**
   * Where the samples of objects on object storage are kept while planning (a query source binds against them);
   * created on first use, deleted by {@link #close}, so no task can read a sample in place of its object.
   */
  private Path samples;

  public FileSourcePlanner(DuckDbSettings settings) {
    this(settings, false);
  }

  private FileSourcePlanner(DuckDbSettings settings, boolean columnsOnly) {
    this.settings = settings;
    this.columnsOnly = columnsOnly;
  }

  /**
   * A planner whose tasks serve only for their columns and to bind queries over them ({@code check-config}): it
   * lists the files and reads their headers, and leaves out the passes over whole CSV and NDJSON files that find
   * where records start and where a file can be cut. Its tasks must not be run.
   */
  public static FileSourcePlanner forColumns(DuckDbSettings settings) {
    return new FileSourcePlanner(settings, true);
  }

  /** A connection of its own to this planner's database. */
  private synchronized Connection connection() throws SQLException {
    if (database == null) {
      database = DuckDb.openInMemory(settings);
    }
    return database.unwrap(org.duckdb.DuckDBConnection.class).duplicate();
  }

  @Override
  public synchronized void close() {
    if (database != null) {
      DuckDb.closeQuietly(database);
      database = null;
    }
    if (samples != null) {
      FileTrees.deleteScratch(samples);
      samples = null;
    }
  }

  /** A new folder for the sample of one object. */
  private synchronized Path sampleFolder() throws IOException {
    if (samples == null) {
      samples = Files.createTempDirectory("fhirbeam-samples-");
    }
    return Files.createTempDirectory(samples, "object-");
  }

  public PlannedSource plan(SourceConfig source) {
    boolean remote = source.path() != null && ObjectStorage.isRemote(source.path());
    return plan(source, remote ? objects(source) : expand(source).stream().map(Path::toString).toList());
  }

  /**
   * Plans {@code files} as the files of {@code source}: those its path names ({@link #plan(SourceConfig)}), or those
   * a Delta table's snapshot lists.
   */
  public PlannedSource plan(SourceConfig source, List<String> files) {
    // An object on object storage is planned from a sample here and fetched by the task that reads it.
    boolean remote = source.path() != null && ObjectStorage.isRemote(source.path());
    List<ReadTask> tasks = new ArrayList<>();
    Set<String> columns = new LinkedHashSet<>();
    Map<String, String> skipped = new java.util.LinkedHashMap<>();
    try (Connection db = connection()) {
      for (String file : files) {
        try {
          ReadTask t = remote ? planObject(db, source, file)
              : planFile(db, source, Path.of(file), columnsOnly, EXCEL_CACHE);
          columns.addAll(t.columns());
          tasks.add(t);
        } catch (InputException | java.io.UncheckedIOException e) {
          if (!source.skipBadFiles()) {
            throw e;
          }
          skipped.put(file, e.getMessage()); // on_error: skip_file: reported, not read
        }
      }
    } catch (SQLException e) {
      throw new InputException("source " + source.name() + ": DuckDB failed: " + DuckDb.firstLine(e.getMessage()), e);
    }
    // DuckDB ignores a type for a column a file lacks: a misspelt column would silently stay text.
    for (String typed : source.csv().types().keySet()) {
      if (!tasks.isEmpty() && !columns.contains(typed)) {
        throw new InputException(source.at("types." + typed) + ": no file of source " + source.name()
            + " has a column '" + typed + "' (columns: " + String.join(", ", columns) + ")");
      }
    }
    return new PlannedSource(source, List.copyOf(tasks), List.copyOf(columns), skipped);
  }

  /**
   * The objects an {@code s3://} path names, sorted: a glob matched by Beam's file system ({@code *} within a
   * "folder", {@code **} across them), else one object, else a "folder": the objects below it with known extensions.
   * None is an error unless the source is optional.
   */
  private static List<String> objects(SourceConfig source) {
    String uri = source.path();
    List<String> found = new ArrayList<>();
    try {
      if (hasGlob(uri)) {
        found.addAll(ObjectStorage.list(uri));
      } else if (!uri.endsWith("/") && ObjectStorage.exists(uri)) {
        found.add(uri);
      } else {
        for (String o : ObjectStorage.list(uri.replaceAll("/+$", "") + "/**")) {
          if (knownExtension(Path.of(o.substring(o.lastIndexOf('/') + 1)))) {
            found.add(o);
          }
        }
      }
    } catch (IOException e) {
      throw new InputException("source " + source.name() + ": " + uri + ": " + DuckDb.firstLine(e.getMessage()), e);
    }
    found.removeIf(o -> o.endsWith("/"));
    found.sort(null);
    if (found.isEmpty() && !source.optional()) {
      throw new InputException(source.at("path") + ": no object matches " + uri);
    }
    return found;
  }

  /**
   * An object on object storage as a task that the worker running it fetches ({@link ReadTask#remote}), planned here
   * for its columns from a sample: the object's first {@link #SNIFF_BUFFER_BYTES} (what a sniff of a local file
   * reads) up to the last whole line for CSV and NDJSON; the whole object for formats whose layout needs all of it
   * (Parquet, Excel, JSON that may be an array, and gzip). The sample lasts until the planner is closed, before the
   * run: no task can read it in place of the object.
   */
  private ReadTask planObject(Connection db, SourceConfig source, String uri) {
    String name = uri.substring(uri.lastIndexOf('/') + 1);
    Format format;
    try {
      format = formatOf(source, Path.of(name));
    } catch (InputException e) {
      throw new InputException(e.getMessage().replace(name, uri), e);
    }
    String lower = name.toLowerCase(Locale.ROOT);
    boolean byLines = !lower.endsWith(".gz") && (format == Format.CSV
        || format == Format.JSON && (lower.endsWith(".ndjson") || lower.endsWith(".jsonl")));
    try {
      Path folder = sampleFolder();
      Path sample = folder.resolve("object-" + name);
      if (byLines) {
        byte[] head = ObjectStorage.head(uri, SNIFF_BUFFER_BYTES + 1);
        int end = head.length;
        if (head.length > SNIFF_BUFFER_BYTES) {
          end = 0;
          for (int i = SNIFF_BUFFER_BYTES - 1; i >= 0 && end == 0; i--) {
            end = head[i] == '\n' ? i + 1 : 0;
          }
          if (end == 0) {
            throw new InputException("source " + source.name() + ": " + uri + " has no line break in its first "
                + SNIFF_BUFFER_BYTES + " bytes");
          }
        }
        Files.write(sample, java.util.Arrays.copyOf(head, end));
      } else {
        ObjectStorage.copyToFile(uri, sample);
      }
      try {
        return planFile(db, source, sample, true, folder).asRemote(uri, source);
      } catch (InputException e) {
        throw new InputException(e.getMessage().replace(sample.toString(), uri), e);
      }
    } catch (IOException e) {
      throw new InputException("source " + source.name() + ": cannot read " + uri + ": "
          + DuckDb.firstLine(e.getMessage()), e);
    }
  }

  /** A task as its worker reads it ({@link #fetch}), and the folder of the objects fetched for it, if any. */
  public record Fetched(ReadTask task, Path folder) implements AutoCloseable {
    /** Deletes the objects fetched for the task. */
    @Override
    public void close() {
      if (folder != null) {
        FileTrees.deleteScratch(folder);
      }
    }
  }

  /**
   * {@code task} as the worker that runs it reads it ({@link #readable}), the objects it reads fetched into a
   * temporary folder of the worker's, deleted when the result is closed; a task that reads no object as it is.
   */
  public static Fetched fetch(Connection db, ReadTask task) throws IOException {
    if (!task.fetchesObjects()) {
      return new Fetched(task, null);
    }
    Path folder = Files.createTempDirectory("fhirbeam-object-");
    try {
      return new Fetched(readable(db, task, folder), folder);
    } catch (IOException | RuntimeException e) {
      FileTrees.deleteScratch(folder);
      throw e;
    }
  }

  /**
   * {@code task} as the worker that runs it reads it: a task over an object on object storage
   * ({@link ReadTask#remote}) fetches the whole object into a folder of its own under {@code dir} (the worker's disk)
   * and plans it there as a local file of its source, its rows reported at the object's URI and read with the
   * columns it was planned with (those the object has: columns that appear past the planning sample are left out,
   * as they are of every task's figures); a query over such objects ({@link ReadTask#inputs}) fetches each of them
   * so; any other task as it is.
   */
  private static ReadTask readable(Connection db, ReadTask task, Path dir) throws IOException {
    if (!task.inputs().isEmpty()) {
      List<ReadTask> fetched = new ArrayList<>();
      for (ReadTask.QueryInput in : task.inputs()) {
        fetched.add(readable(db, in.task(), dir));
      }
      return task.withFetchedInputs(fetched);
    }
    if (task.remote() == null) {
      return task;
    }
    String uri = task.file();
    Path folder = Files.createTempDirectory(dir, "object-");
    Path copy = folder.resolve("object-" + uri.substring(uri.lastIndexOf('/') + 1));
    ObjectStorage.copyToFile(uri, copy);
    try {
      ReadTask whole = planFile(db, task.remote(), copy, false, folder);
      return whole.withFile(uri).withColumns(task.columns().stream().filter(whole.columns()::contains).toList());
    } catch (InputException e) {
      throw new InputException(e.getMessage().replace(copy.toString(), uri), e);
    }
  }

  /**
   * One file of a source as a read task, its columns asked of DuckDB; an InputException if it cannot be read. With
   * {@code columnsOnly} the task serves only for its columns (see {@link #forColumns}). An Excel sheet is converted
   * to a CSV file in {@code excelCache}.
   */
  private static ReadTask planFile(Connection db, SourceConfig source, Path file, boolean columnsOnly,
      Path excelCache) {
    Format format = formatOf(source, file);
    if (format == Format.JSON && (source.unnest() != null || !source.fields().isEmpty())) {
      return planNestedJson(db, source, file);
    }
    // An Excel sheet becomes a CSV file first (streamed, cached per workbook version), read like any CSV.
    Path readFile = format == Format.XLSX
        ? ExcelSheets.toCsv(source.name(), file, source.sheet(), source.headerRow(), excelCache) : file;
    String scan = scan(readFile, format == Format.XLSX ? Format.CSV : format,
        format == Format.XLSX ? source.csv().typesOnly() : source.csv());
    List<String> fileColumns = null;
    if (format == Format.CSV || format == Format.XLSX) {
      Detected detected = detected(db, readFile, scan);
      if (detected != null) {
        scan = detected.read();
        fileColumns = detected.columns();
      }
    }
    if (fileColumns == null) {
      // Malformed CSV lines must not sway the sniffer (a ragged line can make it see one column): the reads
      // set them aside the same way.
      String sniffed = format == Format.CSV || format == Format.XLSX
          ? scan.substring(0, scan.lastIndexOf(')')) + ", ignore_errors = true)" : scan;
      try {
        fileColumns = describe(db, sniffed);
      } catch (SQLException e) {
        throw new InputException(DuckDb.failure("source " + source.name() + ": cannot read " + file + " as "
            + format.name().toLowerCase(Locale.ROOT), e).getMessage());
      }
    }
    for (String c : fileColumns) {
      if (c.startsWith("#")) {
        throw new InputException("source " + source.name() + ": " + file + " has a column named '" + c
            + "'; names starting with '#' are reserved for fhirbeam's own columns, so rename it");
      }
    }
    if (columnsOnly) {
      return new ReadTask(source.name(), file.toString(), format == Format.JSON ? jsonAsText(file, fileColumns) : scan,
          fileColumns, LocationKind.ROW, 1, format == Format.CSV || format == Format.XLSX);
    }
    if (format == Format.XLSX || format == Format.CSV) {
      // DuckDB skips blank lines and reads quoted newlines, so a record's line is known only when neither occurs.
      char quote = format == Format.XLSX || source.csv().quote() == null ? '"' : source.csv().quote().charAt(0);
      LineLayout layout = lineLayout(readFile, quote);
      if (!layout.onePerLine()) {
        return new ReadTask(source.name(), file.toString(), scan, fileColumns, LocationKind.ROW, 1, true);
      }
      // Line n of an Excel sheet's CSV is row headerRow + n - 1 of the sheet: rejects name the sheet's row.
      ReadTask task = new ReadTask(source.name(), file.toString(), scan, fileColumns, LocationKind.LINE,
          format == Format.XLSX ? source.headerRow() + 1 : 2, true);
      return cuttable(layout, format == Format.XLSX ? null : source.csv())
          && scan.startsWith(ReadTask.detectedHead(readFile.toString()))
          ? task.withCuts(new ReadTask.Cuts(readFile.toString(), layout.headerEnd(), layout.size(), layout.offsets(),
              layout.lines()))
          : task;
    }
    return task(source, file, format, format == Format.JSON ? jsonAsText(file, fileColumns) : scan,
        fileColumns);
  }

  /** The columns of a read. */
  private static List<String> describe(Connection db, String scan) throws SQLException {
    List<String> columns = new ArrayList<>();
    // A fresh statement per file: DuckDB closes one whose query failed, and a skipped file must not end the loop.
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery("DESCRIBE SELECT * FROM " + scan)) {
      while (rs.next()) {
        columns.add(rs.getString(1));
      }
    }
    return columns;
  }

  /**
   * The read of a CSV file with the options DuckDB detects on it spelt out ({@code auto_detect=false}, its dialect
   * and columns), or null when they cannot be had: DuckDB otherwise detects them on every read of the file (30-60 ms
   * for a Synthea file, on each task's count and mapping), and a piece of the file read on its own could be detected
   * otherwise (a run without the file's malformed lines, say). Detected as the mapping reads, with malformed lines set
   * aside (they must not sway the detection); reads that must stop at a malformed line still do. DuckDB spells the
   * options out as a {@code read_csv} call, which is used only when it reads the very columns DuckDB detected (it
   * does not escape quotes in column names, for one).
   */
  private static Detected detected(Connection db, Path file, String scan) {
    String sniff = "sniff_csv" + scan.substring("read_csv".length(), scan.lastIndexOf(')'))
        + ", ignore_errors = true, buffer_size = " + SNIFF_BUFFER_BYTES + ")";
    String prompt = null;
    List<String> columns = new ArrayList<>();
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery("SELECT Prompt, unnest(list_transform("
        + "Columns, c -> c.name)) FROM " + sniff)) {
      while (rs.next()) {
        prompt = rs.getString(1);
        columns.add(rs.getString(2));
      }
    } catch (SQLException e) {
      return null; // the file's read reports what is wrong with it
    }
    // The buffer size is the sniff's own, and the reads that must stop at a malformed line add no ignore_errors: the
    // mapping's reads keep DuckDB's buffer and say themselves whether they set lines aside.
    prompt = withoutOnce(withoutOnce(prompt, ", buffer_size=" + SNIFF_BUFFER_BYTES), ", ignore_errors=true");
    if (prompt == null || !prompt.startsWith("FROM " + ReadTask.detectedHead(file.toString()))
        || !prompt.endsWith(");")) {
      return null;
    }
    String read = prompt.substring("FROM ".length(), prompt.length() - 1);
    try {
      return describe(db, read.substring(0, read.length() - 1) + ", ignore_errors = true)").equals(columns)
          ? new Detected(read, List.copyOf(columns)) : null;
    } catch (SQLException e) {
      return null;
    }
  }

  /**
   * The read buffer of a {@link #detected} sniff. With DuckDB's default buffer (32 MB) the first sniff of a large file
   * in a process costs most of the planning of its source, though the sample rows start the file: the 1M-row
   * Patient file's sniff took 180 ms with it, 57 ms with this one (fresh processes), with the same options detected
   * on every CSV file of the repository, the bench and the shared reference data. At least DuckDB's longest line
   * (2 MB), which a buffer must hold.
   */
  static final int SNIFF_BUFFER_BYTES = 4 << 20;

  /** A {@link #detected} read and its columns. */
  private record Detected(String read, List<String> columns) {}

  /** {@code text} without {@code part}, or null unless {@code part} occurs in it exactly once. */
  private static String withoutOnce(String text, String part) {
    int at = text == null ? -1 : text.indexOf(part);
    return at < 0 || at != text.lastIndexOf(part) ? null : text.substring(0, at) + text.substring(at + part.length());
  }

  /**
   * Whether a file can be cut where its layout says: its records are one per line as DuckDB reads them when quotes
   * are escaped by doubling (or not at all), which the layout's pass follows; and the encoding keeps line breaks as
   * single bytes.
   */
  private static boolean cuttable(LineLayout layout, CsvOptions csv) {
    if (layout.offsets() == null) {
      return false;
    }
    if (csv == null) {
      return true;
    }
    boolean doubled = csv.escape() == null || csv.escape().isEmpty() || csv.escape().equals(csv.quote())
        || csv.quote() == null && csv.escape().equals("\"");
    boolean bytewise = csv.encoding() == null
        || List.of("utf-8", "utf8", "latin-1", "latin1").contains(csv.encoding().toLowerCase(Locale.ROOT));
    return doubled && bytewise;
  }

  /**
   * A JSON file whose rows are the elements of an array in each record ({@code unnest}) and/or that gains columns
   * reached by path ({@code fields}). Each record is read as JSON text; the columns are the elements' (or records')
   * top-level fields, in first-seen order, plus the declared fields, every value as text (objects and arrays as
   * JSON). Rows are numbered in order ({@code row_number} in rejects).
   */
  private static ReadTask planNestedJson(Connection db, SourceConfig source, Path file) {
    String records = "read_json_objects(" + DuckDb.literal(file.toString()) + ", format = 'auto')";
    String items = source.unnest() == null ? "SELECT json AS \"#j\" FROM " + records
        : "SELECT unnest(json_extract(json, " + DuckDb.literal("$." + source.unnest() + "[*]") + ")) AS \"#j\" FROM "
            + records;
    List<String> keys = new ArrayList<>();
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery("SELECT k FROM (SELECT"
        + " unnest(json_keys(\"#j\")) AS k, row_number() OVER () AS n FROM (" + items + ") WHERE json_type(\"#j\")"
        + " = 'OBJECT') GROUP BY k ORDER BY min(n)")) {
      while (rs.next()) {
        keys.add(rs.getString(1));
      }
    } catch (SQLException e) {
      throw new InputException(DuckDb.failure("source " + source.name() + ": cannot read " + file + " as json", e)
          .getMessage());
    }
    List<String> columns = new ArrayList<>();
    List<String> select = new ArrayList<>();
    for (String k : keys) {
      if (!source.fields().containsKey(k)) {
        columns.add(k);
        select.add("json_extract_string(\"#j\", " + DuckDb.literal("$." + jsonKey(k)) + ") AS " + DuckDb.identifier(k));
      }
    }
    for (Map.Entry<String, String> f : source.fields().entrySet()) {
      columns.add(f.getKey());
      select.add("json_extract_string(\"#j\", " + DuckDb.literal("$." + f.getValue()) + ") AS "
          + DuckDb.identifier(f.getKey()));
    }
    if (columns.isEmpty()) {
      throw new InputException("source " + source.name() + ": " + file + " has no "
          + (source.unnest() != null ? "objects in '" + source.unnest() + "' (unnest)" : "fields"));
    }
    String scan = "(SELECT " + String.join(", ", select) + " FROM (" + items + "))";
    return new ReadTask(source.name(), file.toString(), scan, columns, LocationKind.ROW, 1, false);
  }

  /** A field name as a JSON path step: quoted unless it is a plain identifier. */
  private static String jsonKey(String k) {
    return k.matches("[A-Za-z_][A-Za-z0-9_]*") ? k : "\"" + k.replace("\"", "\\\"") + "\"";
  }

  /**
   * Plans a query source: one task that runs the source's SQL, in which each given file source is a table of
   * text columns (all its files, aligned by column name). Malformed lines in those files stop the query with an
   * error rather than vanishing from it. Rows are numbered in query order ({@code row_number} in rejects).
   */
  public PlannedSource planQuery(SourceConfig source, Map<String, PlannedSource> fileSources) {
    List<String> ctes = new ArrayList<>();
    List<ReadTask.QueryInput> inputs = new ArrayList<>();
    List<String> withoutFiles = new ArrayList<>();
    for (PlannedSource f : fileSources.values()) {
      if (f.config().jdbc() != null) {
        throw new InputException(source.at("sql") + ": names " + f.config().name() + ", a jdbc source; a sql source"
            + " reads file sources only (give the jdbc source a query: instead)");
      }
      if (f.tasks().isEmpty()) {
        withoutFiles.add(f.config().name());
        continue;
      }
      List<String> parts = new ArrayList<>();
      for (ReadTask t : f.tasks()) {
        if (t.remote() != null) {
          inputs.add(new ReadTask.QueryInput(t, f.columns()));
        }
        parts.add(t.textRows(f.columns(), null));
      }
      ctes.add(DuckDb.identifier(f.config().name()) + " AS (" + String.join(" UNION ALL ", parts) + ")");
    }
    String scan = "(" + (ctes.isEmpty() ? "" : "WITH " + String.join(", ", ctes) + " ") + queryText(source)
        + "\n)";
    List<String> columns = new ArrayList<>();
    try (Connection db = connection(); Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("DESCRIBE SELECT * FROM " + scan)) {
      while (rs.next()) {
        columns.add(rs.getString(1));
      }
    } catch (SQLException e) {
      throw new InputException(DuckDb.failure(source.at("sql") + ": the query failed", e).getMessage()
          + (withoutFiles.isEmpty() ? "" : " (optional source(s) without files, so not available to the query: "
              + String.join(", ", withoutFiles) + ")"));
    }
    for (String c : columns) {
      if (c.startsWith("#")) {
        throw new InputException(source.at("sql") + ": column '" + c + "' starts with '#', which is"
            + " reserved for fhirbeam's own columns");
      }
    }
    ReadTask task = new ReadTask(source.name(), ReadTask.QUERY + source.name(), scan, columns, LocationKind.ROW, 1,
        false).withInputs(inputs);
    return new PlannedSource(source, List.of(task), List.copyOf(columns));
  }

  /** A query source's SQL as it goes into parentheses. It may end in a -- comment: close them on a line of its own. */
  private static String queryText(SourceConfig source) {
    return source.sql().strip().replaceAll(";\\s*$", "");
  }

  /**
   * Parses a query source's SQL as {@link #planQuery} would run it, without binding it: for when the sources it
   * reads have no files to bind it against. An InputException names the key and DuckDB's reason.
   */
  public void parseQuery(SourceConfig source) {
    String parsed = "SELECT * FROM (" + queryText(source) + "\n)";
    try (Connection db = connection(); PreparedStatement st = db.prepareStatement("SELECT j ->> 'error_type', j ->>"
        + " 'error_message' FROM (SELECT json_serialize_sql(?::VARCHAR)::JSON AS j) WHERE j ->> 'error' = 'true'")) {
      st.setString(1, parsed);
      try (ResultSet rs = st.executeQuery()) {
        if (rs.next()) {
          // As DuckDB words a failed bind of the same text: "Parser Error: syntax error at or near ...".
          String type = rs.getString(1);
          String kind = type == null || type.isEmpty() ? "DuckDB error"
              : type.substring(0, 1).toUpperCase(Locale.ROOT) + type.substring(1) + " Error";
          throw new InputException(source.at("sql") + ": the query failed: " + kind + ": "
              + DuckDb.firstLine(rs.getString(2)));
        }
      }
    } catch (SQLException e) {
      throw new InputException(DuckDb.failure(source.at("sql") + ": cannot parse the query", e).getMessage(), e);
    }
  }

  private static ReadTask task(SourceConfig config, Path file, Format format, String sql, List<String> columns) {
    String source = config.name();
    return switch (format) {
      case PARQUET -> new ReadTask(source, file.toString(), sql, columns, LocationKind.ROW, 1, false);
      case JSON -> !isJsonArray(file) && oneObjectPerLine(file)
          ? new ReadTask(source, file.toString(), sql, columns, LocationKind.LINE, 1, false)
          : new ReadTask(source, file.toString(), sql, columns, LocationKind.ROW, 1, false);
      case CSV, AUTO, XLSX -> throw new IllegalStateException("format must be decided per file; CSV and Excel are"
          + " planned by planFile");
    };
  }

  /** DuckDB's {@code types} option: the named columns are converted while reading; a value that fails is an error. */
  private static String types(Map<String, String> types) {
    if (types.isEmpty()) {
      return "";
    }
    List<String> pairs = new ArrayList<>();
    types.forEach((column, type) -> pairs.add(DuckDb.literal(column) + ": " + DuckDb.literal(type)));
    return ", types = {" + String.join(", ", pairs) + "}";
  }

  private static String csvOption(String name, String value) {
    return value == null ? "" : ", " + name + " = " + DuckDb.literal(value.equals("\\t") ? "\t" : value);
  }

  /** Where Excel sheets are converted to CSV, shared by runs on this machine. */
  static final Path EXCEL_CACHE = Path.of(System.getProperty("java.io.tmpdir"), "fhirbeam-excel");

  /** The DuckDB table function call that reads one file. */
  static String scan(Path file, Format format, CsvOptions csv) {
    String f = DuckDb.literal(file.toString());
    return switch (format) {
      // Header on line 1, no comment lines, no skipped lines: DuckDB must not guess these, or rows vanish.
      case CSV -> "read_csv(" + f + ", header = true, skip = 0, comment = '', all_varchar = true"
          + csvOption("delim", csv.delimiter()) + csvOption("quote", csv.quote()) + csvOption("escape", csv.escape())
          + csvOption("encoding", csv.encoding()) + types(csv.types()) + ")";
      case PARQUET -> "read_parquet(" + f + ")";
      case JSON -> "read_json(" + f + ")";
      case AUTO, XLSX -> throw new IllegalStateException("format must be decided per file; Excel is read as CSV");
    };
  }

  /**
   * Reads every field of a JSON file as text (nested values as JSON text): DuckDB's guessed types come from a
   * sample, and a value of another type further down would otherwise stop the whole read.
   */
  private static String jsonAsText(Path file, List<String> columns) {
    List<String> fields = new ArrayList<>();
    for (String c : columns) {
      fields.add(DuckDb.literal(c) + ": 'VARCHAR'");
    }
    return "read_json(" + DuckDb.literal(file.toString()) + ", columns = {" + String.join(", ", fields) + "})";
  }

  static Format formatOf(SourceConfig source, Path file) {
    if (source.format() != Format.AUTO) {
      return source.format();
    }
    // DuckDB reads gzip-compressed CSV and JSON itself, by the .gz extension.
    String name = file.getFileName().toString().toLowerCase(Locale.ROOT).replaceAll("\\.gz$", "");
    if (name.endsWith(".csv")) {
      return Format.CSV;
    }
    if (name.endsWith(".parquet")) {
      return Format.PARQUET;
    }
    if (name.endsWith(".json") || name.endsWith(".ndjson") || name.endsWith(".jsonl")) {
      return Format.JSON;
    }
    if (name.endsWith(".xlsx")) {
      return Format.XLSX;
    }
    throw new InputException("source " + source.name() + ": cannot tell the format of " + file
        + " from its extension (.csv, .parquet, .json, .ndjson, .jsonl, .xlsx, and .gz of the text ones); set sources."
        + source.name()
        + ".format");
  }

  /** The smallest distance between two places a file can be cut: pieces are read side by side only past this size. */
  static final long CUT_GRAIN = 1 << 20;

  /** At most this many places to cut a file are kept (the distance between them grows with the file). */
  static final int MAX_CUTS = 256;

  /**
   * How the records of a text file sit on its lines.
   *
   * @param onePerLine whether every line after the header holds exactly one record: no blank lines and no line
   *     breaks inside quoted values
   * @param headerEnd the header line's length in bytes, its line break included
   * @param size the file's length in bytes
   * @param offsets when the file has one record per line, is stored as it is read (not gzip), spans at least two
   *     {@link #CUT_GRAIN}s and has no quote right after a backslash (DuckDB may read that as an escaped quote, which
   *     the pass does not follow): starts of lines about every grain, the first right after the header, the last the
   *     file's end; else null
   * @param lines the line number at each offset (1 = the header)
   */
  record LineLayout(boolean onePerLine, long headerEnd, long size, long[] offsets, long[] lines) {}

  /** One pass over the file's bytes, far cheaper than the read itself. */
  static LineLayout lineLayout(Path file, char quote) {
    boolean gzip = file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gz");
    try (InputStream in = open(file)) {
      long size = gzip ? -1 : Files.size(file);
      long grain = Math.max(CUT_GRAIN, size / MAX_CUTS);
      List<long[]> cuts = new ArrayList<>();
      long nextCut = 0;
      long position = 0;
      long line = 1;
      long headerEnd = -1;
      byte[] buf = new byte[1 << 16];
      boolean inQuote = false;
      boolean backslashQuote = false;
      int previous = '\n';
      int n;
      while ((n = in.read(buf)) > 0) {
        for (int i = 0; i < n; i++) {
          int b = buf[i];
          if (b == quote) {
            inQuote = !inQuote;
            backslashQuote |= previous == '\\';
          } else if (b == '\n') {
            if (inQuote || previous == '\n') {
              return new LineLayout(false, -1, size, null, null);
            }
            line++;
            long start = position + i + 1;
            if (headerEnd < 0) {
              headerEnd = start;
              nextCut = start;
            }
            if (start >= nextCut) {
              cuts.add(new long[] {start, line});
              nextCut = start + grain;
            }
          } else if (b == '\r') {
            if (inQuote) {
              return new LineLayout(false, -1, size, null, null);
            }
            continue; // CRLF: judge the line by its LF
          }
          previous = b;
        }
        position += n;
      }
      // The last line may lack its line break; a cut at the very end is the end itself.
      if (!cuts.isEmpty() && cuts.get(cuts.size() - 1)[0] >= position) {
        cuts.remove(cuts.size() - 1);
      }
      if (gzip || headerEnd < 0 || cuts.size() < 2 || backslashQuote) {
        return new LineLayout(true, headerEnd, size, null, null);
      }
      cuts.add(new long[] {position, previous == '\n' ? line : line + 1});
      long[] offsets = new long[cuts.size()];
      long[] lines = new long[cuts.size()];
      for (int k = 0; k < offsets.length; k++) {
        offsets[k] = cuts.get(k)[0];
        lines[k] = cuts.get(k)[1];
      }
      return new LineLayout(true, headerEnd, position, offsets, lines);
    } catch (IOException e) {
      throw new InputException("cannot read " + file + ": " + e.getClass().getSimpleName(), e);
    }
  }

  /** Whether an NDJSON file has one object on every line: no blank lines, no objects spread over lines. */
  static boolean oneObjectPerLine(Path file) {
    try (java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(open(file),
        java.nio.charset.StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        String t = line.strip();
        if (!t.startsWith("{") || !t.endsWith("}")) {
          return false;
        }
      }
      return true;
    } catch (IOException e) {
      throw new InputException("cannot read " + file + ": " + e.getClass().getSimpleName(), e);
    }
  }

  /** The file's bytes, decompressed when it is gzip (.gz). */
  private static InputStream open(Path file) throws IOException {
    InputStream in = new java.io.BufferedInputStream(Files.newInputStream(file), 1 << 16);
    return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gz")
        ? new java.util.zip.GZIPInputStream(in, 1 << 16) : in;
  }

  private static boolean isJsonArray(Path file) {
    try (InputStream in = open(file)) {
      int c;
      while ((c = in.read()) >= 0) {
        if (!Character.isWhitespace(c) && c != 0xEF && c != 0xBB && c != 0xBF) {
          return c == '[';
        }
      }
      return false;
    } catch (IOException e) {
      throw new InputException("cannot read " + file + ": " + e.getClass().getSimpleName(), e);
    }
  }

  /**
   * Expands a source path: a file, a directory (its files with known extensions), or a glob. Matches are
   * absolute and sorted; none is an error unless the source is optional.
   */
  static List<Path> expand(SourceConfig source) {
    String pattern = source.path();
    Path literal = Paths.get(pattern).toAbsolutePath().normalize();
    List<Path> files = new ArrayList<>();
    if (!hasGlob(pattern) || Files.isRegularFile(literal)) {
      if (Files.isRegularFile(literal)) {
        files.add(literal);
      } else if (Files.isDirectory(literal)) {
        try (Stream<Path> s = Files.list(literal)) {
          s.filter(Files::isRegularFile).filter(FileSourcePlanner::knownExtension).forEach(files::add);
        } catch (IOException e) {
          throw new InputException("source " + source.name() + ": cannot list " + literal, e);
        }
      }
    } else {
      Path base = globBase(pattern);
      // Match paths relative to the base, so glob characters in the base's own name cannot interfere.
      String rest = normalizeGlob(pattern).substring(normalizeGlob(globBaseText(pattern)).length());
      rest = rest.startsWith("/") ? rest.substring(1) : rest;
      List<PathMatcher> matchers = new ArrayList<>();
      matchers.add(FileSystems.getDefault().getPathMatcher("glob:" + rest));
      // As in shells, '**/' also matches no directory at all.
      if (rest.contains("**/")) {
        matchers.add(FileSystems.getDefault().getPathMatcher("glob:" + rest.replace("**/", "")));
      }
      if (Files.isDirectory(base)) {
        try (Stream<Path> s = Files.walk(base)) {
          s.filter(Files::isRegularFile).map(p -> p.toAbsolutePath().normalize())
              .filter(p -> matchers.stream().anyMatch(m -> m.matches(base.relativize(p))))
              .forEach(files::add);
        } catch (IOException e) {
          throw new InputException("source " + source.name() + ": cannot list " + base, e);
        }
      }
    }
    if (files.isEmpty() && !source.optional()) {
      throw new InputException(source.at("path") + ": " + pattern + " matches no file");
    }
    files.sort(null);
    return files;
  }

  private static boolean knownExtension(Path p) {
    String n = p.getFileName().toString().toLowerCase(Locale.ROOT).replaceAll("\\.gz$", "");
    return n.endsWith(".csv") || n.endsWith(".parquet") || n.endsWith(".json") || n.endsWith(".ndjson")
        || n.endsWith(".jsonl") || n.endsWith(".xlsx");
  }

  private static boolean hasGlob(String s) {
    return s.indexOf('*') >= 0 || s.indexOf('?') >= 0 || s.indexOf('{') >= 0 || s.indexOf('[') >= 0;
  }

  /** The deepest directory of the pattern that has no glob characters. */
  private static Path globBase(String pattern) {
    String text = globBaseText(pattern);
    return Paths.get(text.isEmpty() ? "." : text).toAbsolutePath().normalize();
  }

  /**
   * The leading directories of the pattern taken literally, as written: those without glob characters, and those
   * that exist as named (a directory called {@code in [2024]} is a name, not a character class).
   */
  private static String globBaseText(String pattern) {
    String[] parts = pattern.split("/", -1);
    StringBuilder base = new StringBuilder(pattern.startsWith("/") ? "/" : "");
    for (int i = 0; i < parts.length - 1; i++) {
      if (hasGlob(parts[i]) && !Files.isDirectory(Paths.get(base + parts[i]))) {
        break;
      }
      if (!parts[i].isEmpty()) {
        base.append(parts[i]).append('/');
      }
    }
    return base.toString();
  }

  /** Removes {@code ./} and {@code ..} segments that the matcher would otherwise take literally. */
  private static String normalizeGlob(String glob) {
    List<String> out = new ArrayList<>();
    for (String part : glob.split("/", -1)) {
      if (part.equals(".") || (part.isEmpty() && !out.isEmpty())) {
        continue;
      }
      if (part.equals("..") && !out.isEmpty() && !hasGlob(out.get(out.size() - 1))) {
        out.remove(out.size() - 1);
        continue;
      }
      out.add(part);
    }
    return String.join("/", out);
  }
}
