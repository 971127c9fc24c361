package org.fhirbeam.config;

import java.io.Serializable;

/**
 * How CSV files of a source are read, where DuckDB should not guess: each null keeps DuckDB's detection.
 *
 * @param delimiter the field separator, e.g. {@code ;} or {@code \t}
 * @param quote the quote character
 * @param escape the character that escapes a quote inside a quoted value
 * @param encoding {@code utf-8} (default), {@code utf-16} or {@code latin-1}
 */
public record CsvOptions(String delimiter, String quote, String escape, String encoding) implements Serializable {
  /** DuckDB's detection for everything. */
  public static final CsvOptions DETECT = new CsvOptions(null, null, null, null);
}
