package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Map;

/**
 * How CSV files of a source are read, where DuckDB should not guess: each null keeps DuckDB's detection.
 *
 * @param delimiter the field separator, e.g. {@code ;} or {@code \t}
 * @param quote the quote character
 * @param escape the character that escapes a quote inside a quoted value
 * @param encoding {@code utf-8} (default), {@code utf-16} or {@code latin-1}
 * @param types column to DuckDB type ({@code INTEGER}, {@code DATE}, {@code DECIMAL(10,2)}, ...) for columns that
 *     must convert: a line whose value does not becomes a reject of the ingest stage. Other columns stay text.
 */
public record CsvOptions(String delimiter, String quote, String escape, String encoding, Map<String, String> types)
    implements Serializable {
  /** DuckDB's detection for everything. */
  public static final CsvOptions DETECT = new CsvOptions(null, null, null, null, Map.of());

  public CsvOptions {
    types = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(types));
  }

  /** The same options without column types. */
  public CsvOptions(String delimiter, String quote, String escape, String encoding) {
    this(delimiter, quote, escape, encoding, Map.of());
  }

  /** Only the column types: how the CSV written from an Excel sheet is read. */
  public CsvOptions typesOnly() {
    return new CsvOptions(null, null, null, null, types);
  }
}
