package org.fhirbeam.data;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Consecutive rows of one source file, moved through Beam as one element so that per-element costs are paid
 * once per batch. Values are text (null when missing); row {@code i} is at {@code firstLocation + i} in the
 * file, counted in lines or rows as {@link #locationKind()} says.
 */
public final class RowBatch {
  /** How a row's position in its file is counted. */
  public enum LocationKind {
    /** Line number in a text file (CSV with header, NDJSON). */
    LINE,
    /** 1-based row or record number (Parquet, JSON arrays). */
    ROW
  }

  private final String source;
  private final String file;
  private final LocationKind locationKind;
  private final long firstLocation;
  private final String[] columns;
  private final String[][] rows;

  public RowBatch(String source, String file, LocationKind locationKind, long firstLocation, String[] columns,
      String[][] rows) {
    this.source = Objects.requireNonNull(source);
    this.file = Objects.requireNonNull(file);
    this.locationKind = Objects.requireNonNull(locationKind);
    this.firstLocation = firstLocation;
    this.columns = columns.clone();
    this.rows = rows;
  }

  public String source() {
    return source;
  }

  public String file() {
    return file;
  }

  public LocationKind locationKind() {
    return locationKind;
  }

  public long firstLocation() {
    return firstLocation;
  }

  /** Location of row {@code i} in its file. */
  public long location(int i) {
    return firstLocation + i;
  }

  public List<String> columns() {
    return List.of(columns);
  }

  public int columnCount() {
    return columns.length;
  }

  public String column(int c) {
    return columns[c];
  }

  public int size() {
    return rows.length;
  }

  public String value(int row, int column) {
    return rows[row][column];
  }

  String[][] rawRows() {
    return rows;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof RowBatch b && source.equals(b.source) && file.equals(b.file)
        && locationKind == b.locationKind && firstLocation == b.firstLocation
        && Arrays.equals(columns, b.columns) && Arrays.deepEquals(rows, b.rows);
  }

  @Override
  public int hashCode() {
    return Objects.hash(source, file, firstLocation);
  }

  @Override
  public String toString() {
    // Never the values: they may be PHI.
    return "RowBatch{" + source + ", " + file + ", " + locationKind + " " + firstLocation + ", " + rows.length
        + " rows}";
  }
}
