package org.fhirbeam.transforms;

import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvParser;
import java.io.IOException;

/**
 * Stream records that are CSV lines of declared columns (the records carry no header): each read on its own with
 * Jackson's CSV parser (RFC 4180 quoting), so that a malformed record cannot swallow the ones after it, as it could
 * in a file. An empty field is a missing value, as DuckDB reads one in a CSV file.
 */
final class CsvRecords {
  /** The record as the rows it holds (one, unless it is malformed), each as an array of its fields. */
  private static final ObjectReader READER = new CsvMapper().enable(CsvParser.Feature.WRAP_AS_ARRAY)
      .readerFor(String[][].class);

  private CsvRecords() {}

  /** A record's fields, or why it has none: the rule and reason of its reject, as for a CSV file's bad lines. */
  record Line(String[] fields, String rule, String reason) {}

  static Line read(String value, int columns) {
    if (value == null) {
      return new Line(null, "csv-empty-record", "the record has no value");
    }
    String[] fields;
    try {
      String[][] rows = READER.readValue(value);
      if (rows.length > 1) {
        return new Line(null, "csv-several-lines", "the record holds more than one CSV line");
      }
      fields = rows.length == 0 ? new String[0] : rows[0];
    } catch (IOException | RuntimeException e) {
      return new Line(null, "csv-unreadable", "the line cannot be read as CSV");
    }
    if (fields.length > columns) {
      return new Line(null, "csv-too-many-columns", "the line has more fields than the header");
    }
    if (fields.length < columns) {
      return new Line(null, "csv-missing-columns", "the line has fewer fields than the header");
    }
    for (int i = 0; i < fields.length; i++) {
      if (fields[i].isEmpty()) {
        fields[i] = null;
      }
    }
    return new Line(fields, null, null);
  }
}
