package org.fhirbeam.io;

import java.io.Serializable;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/**
 * One unit of parallel work: one file of a source, as a DuckDB table function call that reads it.
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
 */
public record ReadTask(String source, String file, String scan, List<String> columns, LocationKind kind,
    long firstLocation, boolean skipsBadLines, JdbcRead jdbc) implements Serializable {

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
  }

  /** A task over a file. */
  public ReadTask(String source, String file, String scan, List<String> columns, LocationKind kind,
      long firstLocation, boolean skipsBadLines) {
    this(source, file, scan, columns, kind, firstLocation, skipsBadLines, null);
  }

  /** The columns that identify a row in rejects besides its position (a database source's key); often none. */
  public List<String> keyColumns() {
    return jdbc == null ? List.of() : jdbc.source().key();
  }

  /** The same task, named {@code file} in rejects and summaries (a fetched object by its URI, for example). */
  public ReadTask withFile(String file) {
    return new ReadTask(source, file, scan, columns, kind, firstLocation, skipsBadLines, jdbc);
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
