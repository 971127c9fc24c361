package org.fhirbeam.io;

import java.io.IOException;
import java.io.Serializable;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.fhirbeam.config.SourceConfig;

/**
 * One unit of parallel work: one file of a source (or a piece of one, see {@link #cut}), as a DuckDB table function
 * call that reads it.
 *
 * @param source the source's name
 * @param file the file read (absolute path)
 * @param scan the DuckDB table expression that reads the file, e.g. {@code read_csv('/x.csv', ...)}
 * @param columns the file's columns, in file order
 * @param kind how row positions are counted in this file
 * @param firstLocation the position of the first row (2 for a CSV file whose header is line 1)
 * @param skipsBadLines whether the scan can set malformed lines aside (CSV): then {@link #textRows} names a table
 *     that receives them, and they become rejects instead of stopping the run
 * @param jdbc for a database source: the partition to copy into DuckDB before {@code scan} can be read (see
 *     {@link #prepare}); null for files
 * @param cuts for a CSV file with one record per line, where it can be cut into pieces (see {@link #cut}); for a
 *     piece, the run of lines it covers; null when the task is read as a whole only
 * @param remote for an object on object storage ({@code file} is its URI): its source, whose settings plan the
 *     object as a local file once the worker that runs the task has fetched it ({@link FileSourcePlanner#readable});
 *     {@code scan} names the sample it was planned from, gone after planning: only its {@code columns} are to be used.
 *     Null for a local file, a database partition or a query.
 * @param inputs for a query over sources on object storage: the objects' tasks and the columns the query reads them
 *     with; the worker that runs the query fetches them and reads them in place of the samples {@code scan} reads
 *     ({@link FileSourcePlanner#readable}). Empty otherwise.
 */
public record ReadTask(String source, String file, String scan, List<String> columns, LocationKind kind,
    long firstLocation, boolean skipsBadLines, JdbcRead jdbc, Cuts cuts, SourceConfig remote,
    List<QueryInput> inputs) implements Serializable {

  /** An object a query reads: its task, read with {@code columns} (its source's, aligned by name). */
  public record QueryInput(ReadTask task, List<String> columns) implements Serializable {
    public QueryInput {
      columns = List.copyOf(columns);
    }

    /** The rows the query reads of the object. */
    String rows() {
      return task.textRows(columns, null);
    }
  }

  /**
   * Where a CSV file whose records are one per line can be cut: a piece is the header line followed by a run of whole
   * lines.
   *
   * @param path the file read (for an Excel sheet, its CSV)
   * @param headerEnd the length of the header line in bytes, its line break included
   * @param size the file's length in bytes
   * @param offsets where pieces may start or end, ascending: starts of lines, the first after the header, the last
   *     the file's end; a piece has two, its start and its end
   * @param lines the line number (1 = the header) at each offset
   */
  public record Cuts(String path, long headerEnd, long size, long[] offsets, long[] lines) implements Serializable {
    public Cuts {
      if (offsets.length < 2 || offsets.length != lines.length) {
        throw new IllegalArgumentException("cuts need a start and an end, each with its line number");
      }
    }

    /** Whether these cuts cover the whole file (a whole-file task), not a run of its lines (a piece). */
    boolean wholeFile() {
      return offsets[0] == headerEnd && offsets[offsets.length - 1] == size;
    }
  }

  /** How a row's position in its file is reported in rejects. */
  public enum LocationKind {
    /** Line number in a text file (CSV with header, NDJSON): reported as {@code line}. */
    LINE,
    /** 1-based record number (Parquet, JSON arrays, irregular text files): reported as {@code row_number}. */
    ROW;

    /** The field name of the position in a reject record. */
    public String field() {
      return this == LINE ? "line" : "row_number";
    }
  }

  public ReadTask {
    columns = List.copyOf(columns);
    inputs = List.copyOf(inputs);
  }

  /** A task over a file, read as a whole. */
  public ReadTask(String source, String file, String scan, List<String> columns, LocationKind kind,
      long firstLocation, boolean skipsBadLines) {
    this(source, file, scan, columns, kind, firstLocation, skipsBadLines, null, null, null, List.of());
  }

  /** A task over a database partition. */
  public ReadTask(String source, String file, String scan, List<String> columns, LocationKind kind,
      long firstLocation, boolean skipsBadLines, JdbcRead jdbc) {
    this(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc, null, null, List.of());
  }

  /** The same task, with the places it can be cut. */
  public ReadTask withCuts(Cuts cuts) {
    return new ReadTask(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc, cuts, remote, inputs);
  }

  /**
   * How many bytes the task reads: its run of lines for a piece, else the file's size when it is a local file; 0 if
   * unknown.
   */
  public long bytes() {
    if (cuts != null) {
      return cuts.offsets()[cuts.offsets().length - 1] - cuts.offsets()[0];
    }
    try {
      return jdbc == null ? Files.size(Path.of(file)) : 0;
    } catch (IOException | RuntimeException e) {
      return 0; // not a local path (an object's URI, a query source): nothing to weigh the task by
    }
  }

  /**
   * The share of its file this task reads, in units of which a file has {@code unit}: {@code unit} for a whole file;
   * the pieces of a file ({@link #cut}) add up to exactly {@code unit}, whatever their sizes.
   */
  public long fileShare(long unit) {
    if (cuts == null || cuts.wholeFile()) {
      return unit;
    }
    long body = cuts.size() - cuts.headerEnd();
    long start = cuts.offsets()[0] - cuts.headerEnd();
    long end = cuts.offsets()[cuts.offsets().length - 1] - cuts.headerEnd();
    // Each piece rounds its end down as the next piece rounds its start, so the shares add up.
    return end * unit / body - start * unit / body;
  }

  /**
   * This task as pieces of about {@code pieceBytes} each (cut at the nearest places it can be cut), in file order, so
   * that they can be mapped side by side; the task itself when it cannot be cut or is not larger than that. A piece
   * reports its rows at their lines in the file and names the file, as the whole task would.
   */
  public List<ReadTask> cut(long pieceBytes) {
    if (cuts == null || !cuts.wholeFile() || pieceBytes <= 0 || bytes() <= pieceBytes) {
      return List.of(this);
    }
    long[] at = cuts.offsets();
    long[] lines = cuts.lines();
    int pieces = (int) Math.min(at.length - 1, (bytes() + pieceBytes - 1) / pieceBytes);
    List<ReadTask> out = new ArrayList<>();
    int from = 0;
    for (int k = 1; k <= pieces && from < at.length - 1; k++) {
      // The cut nearest to an even share of the bytes, past the previous one.
      long target = at[0] + (at[at.length - 1] - at[0]) * k / pieces;
      int to = from + 1;
      while (to < at.length - 1 && Math.abs(at[to + 1] - target) <= Math.abs(at[to] - target)) {
        to++;
      }
      if (k == pieces) {
        to = at.length - 1;
      }
      out.add(new ReadTask(source, file, scan, columns, kind, lines[from], skipsBadLines, jdbc,
          new Cuts(cuts.path(), cuts.headerEnd(), cuts.size(), new long[] {at[from], at[to]},
              new long[] {lines[from], lines[to]}), remote, inputs));
      from = to;
    }
    return out.size() == 1 ? List.of(this) : List.copyOf(out);
  }

  /** Whether this task is a piece of its file (see {@link #cut}): then it is read from {@link #writePiece}'s copy. */
  public boolean isPiece() {
    return cuts != null && !cuts.wholeFile();
  }

  /**
   * Writes this piece to {@code copy} (the file's header line, then the piece's lines) and returns the task that
   * reads the copy as the whole file is read, with the options DuckDB detected on the whole file (see
   * {@link FileSourcePlanner}). Rows are still reported at their lines in the file ({@link #firstLocation} is the
   * piece's first line); line numbers DuckDB gives are lines of the copy (see {@link #lineShift}).
   */
  public ReadTask writePiece(Path copy) throws IOException {
    String head = detectedHead(cuts.path());
    if (!isPiece() || !scan.startsWith(head)) {
      throw new IllegalStateException("not a piece of a file read with detected options");
    }
    try (FileChannel in = FileChannel.open(Path.of(cuts.path()));
        FileChannel out = FileChannel.open(copy, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      transfer(in, 0, cuts.headerEnd(), out);
      transfer(in, cuts.offsets()[0], cuts.offsets()[1] - cuts.offsets()[0], out);
    }
    return new ReadTask(source, file, detectedHead(copy.toString()) + scan.substring(head.length()), columns, kind,
        firstLocation, skipsBadLines, jdbc, null, null, List.of());
  }

  /**
   * How the read of {@code path} with the options DuckDB detected on it starts (see {@link FileSourcePlanner}): a piece
   * is read with the options of its whole file.
   */
  static String detectedHead(String path) {
    return "read_csv(" + DuckDb.literal(path) + ", auto_detect=false, ";
  }

  private static void transfer(FileChannel in, long position, long count, FileChannel out) throws IOException {
    long done = 0;
    while (done < count) {
      long n = in.transferTo(position + done, count - done, out);
      if (n <= 0) {
        throw new IOException("the file ended before byte " + (position + count) + "; was it changed while read?");
      }
      done += n;
    }
  }

  /**
   * What to add to a line number DuckDB reports for this task's read (its header on line 1) to get the line in the
   * file: 0 for a whole file, more for a piece or a sheet whose header is further down. Only lines of
   * {@link LocationKind#LINE} tasks map to the file this way.
   */
  public long lineShift() {
    return kind == LocationKind.LINE && skipsBadLines ? firstLocation - 2 : 0;
  }

  /** How a query source's task names its "file": this, then the source's name. */
  public static final String QUERY = "sql:";

  /** Whether this task reads a query source (a query over other sources' files, see {@link #materialize}). */
  public boolean isQuery() {
    return file.startsWith(QUERY) && jdbc == null;
  }

  /**
   * Runs this task's query once into the temporary table {@code table} on {@code db}, in the query's order, and
   * returns the task that reads the table: a query that joins and sorts other sources would otherwise run again for
   * every read of the task (its row count, then its mapping). Drop the table when done.
   */
  public ReadTask materialize(Connection db, String table) throws SQLException {
    try (Statement st = db.createStatement()) {
      st.execute("CREATE TEMP TABLE " + DuckDb.identifier(table) + " AS " + textRows(columns, null));
    }
    return new ReadTask(source, file, DuckDb.identifier(table), columns, kind, firstLocation, skipsBadLines, null,
        null, null, List.of());
  }

  /** The columns that identify a row in rejects besides its position (a database source's key); often none. */
  public List<String> keyColumns() {
    return jdbc == null ? List.of() : jdbc.source().key();
  }

  /**
   * The task over an object on object storage at {@code uri}, planned from a sample of it (this task): its task
   * fetches the whole object and plans it with {@code config}'s settings.
   */
  ReadTask asRemote(String uri, SourceConfig config) {
    return new ReadTask(source, uri, scan, columns, kind, firstLocation, skipsBadLines, null, null, config, List.of());
  }

  /**
   * Whether the task reads objects on object storage, which the worker that runs it fetches first
   * ({@link FileSourcePlanner#readable}): an object's task, or a query over objects.
   */
  public boolean fetchesObjects() {
    return remote != null || !inputs.isEmpty();
  }

  /** The same task, reading only {@code columns} of its file (all of them among its own). */
  ReadTask withColumns(List<String> columns) {
    if (!this.columns.containsAll(columns)) {
      throw new IllegalArgumentException("a task reads only columns its file has");
    }
    return new ReadTask(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc, cuts, remote, inputs);
  }

  /** The same query, over {@code inputs} on object storage (see {@link #inputs}). */
  ReadTask withInputs(List<QueryInput> inputs) {
    return new ReadTask(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc, cuts, remote, inputs);
  }

  /**
   * The same query reading the objects' copies: {@code fetched} holds, for each of {@link #inputs} in order, the task
   * that reads its fetched copy.
   */
  ReadTask withFetchedInputs(List<ReadTask> fetched) {
    String read = scan;
    for (int i = 0; i < inputs.size(); i++) {
      QueryInput in = inputs.get(i);
      if (!read.contains(in.rows())) {
        throw new IllegalStateException("the query of " + source + " does not read " + in.task().file()
            + " as planned");
      }
      read = read.replace(in.rows(), new QueryInput(fetched.get(i), in.columns()).rows());
    }
    return new ReadTask(source, file, read, columns, kind, firstLocation, skipsBadLines, jdbc, cuts, remote,
        List.of());
  }

  /** The same task, named {@code file} in rejects and summaries (a fetched object by its URI, for example). */
  public ReadTask withFile(String file) {
    return new ReadTask(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc, cuts, remote, inputs);
  }

  /**
   * Makes the task readable on {@code db}: a database partition is copied into the table its {@link #scan} names
   * (drop it with {@link #release}); a file needs nothing.
   */
  public void prepare(Connection db) throws SQLException {
    if (jdbc != null) {
      jdbc.copyInto(db, source, scan);
    }
  }

  /** Drops what {@link #prepare} made. */
  public void release(Connection db) throws SQLException {
    if (jdbc != null) {
      try (Statement st = db.createStatement()) {
        st.execute("DROP TABLE IF EXISTS " + DuckDb.identifier(scan));
      }
    }
  }

  /**
   * A query over the file with every column as text, plus {@code wanted} columns the file lacks as NULL, so every
   * file of a source offers the same columns (aligned by name). For a file that {@link #skipsBadLines}, malformed
   * lines are left out and recorded in the temporary table {@code badLines} (DuckDB's {@code reject_errors}
   * layout: {@code line}, {@code error_type}, {@code csv_line}, ...); null reads them as errors.
   */
  public String textRows(List<String> wanted, String badLines) {
    List<String> select = new ArrayList<>();
    for (String c : columns) {
      select.add("CAST(" + DuckDb.identifier(c) + " AS VARCHAR) AS " + DuckDb.identifier(c));
    }
    for (String c : wanted) {
      if (!columns.contains(c)) {
        select.add("CAST(NULL AS VARCHAR) AS " + DuckDb.identifier(c));
      }
    }
    String from = jdbc != null ? DuckDb.identifier(scan) : scan;
    if (skipsBadLines && badLines != null) {
      from = scan.substring(0, scan.lastIndexOf(')')) + ", ignore_errors = true, store_rejects = true, rejects_table = "
          + DuckDb.literal(badLines) + ", rejects_scan = " + DuckDb.literal(badLines + "_scans") + ")";
    }
    return "SELECT " + String.join(", ", select) + " FROM " + from;
  }
}
