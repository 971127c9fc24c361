package org.fhirbeam.config;

import java.io.Serializable;

/**
 * A named source of rows: files, or a SQL query over the file sources that DuckDB runs.
 *
 * @param name the name mappings refer to
 * @param path a file, directory or glob ({@code *}, {@code **}, {@code {a,b}}); relative to the working directory
 *     (or the configuration's {@code input_dir}); null for a query source
 * @param sql a DuckDB query that reads file sources by name, for example a join; null for a file source
 * @param format the file format, or {@link Format#AUTO} to decide by each file's extension
 * @param optional whether a path that matches no file is allowed (the source then has no rows)
 * @param location the line of its {@code path}, {@code sql}, {@code jdbc} or {@code http} key, for error messages
 * @param sheet Excel files: the sheet, by name or 1-based number; null for the first
 * @param headerRow Excel files: the 1-based row that holds the column names; the rows below it are the data
 * @param jdbc a database table or query read over JDBC; null for other sources
 * @param http a REST API whose JSON pages are fetched before the run; null for other sources
 * @param csv how CSV files are read (delimiter, quote, escape, encoding); {@link CsvOptions#DETECT} by default
 * @param skipBadFiles {@code on_error: skip_file}: a file that cannot be read is left out and reported instead of
 *     stopping the run
 * @param s3 for an {@code s3://} path: the endpoint, region and addressing style
 * @param unnest JSON files: dotted path to an array in each record whose elements are the rows; null for none
 * @param fields JSON files: extra columns (name to dotted path within the record or unnested element)
 * @param delta a Delta table (whose folder is {@code path}): which of its snapshots is read; null for other sources
 * @param kafka Kafka topics read as a stream; null for other sources
 */
public record SourceConfig(String name, String path, String sql, Format format, boolean optional,
    String location, String sheet, int headerRow, JdbcSource jdbc, HttpSource http, CsvOptions csv,
    boolean skipBadFiles, S3Settings s3, String unnest, java.util.Map<String, String> fields, DeltaRead delta,
    KafkaSource kafka) implements Serializable {

  /**
   * Which rows of a Delta table a run reads: a snapshot (the latest, or as of {@code version} or {@code timestamp}),
   * or of it only the rows added after version {@code sinceVersion}. Null fields are not given. With {@code poll}
   * (null for a batch read), the table is a stream: the rows each version adds, read as versions are committed, the
   * table checked for new ones every {@code poll}; a job that has committed none starts after {@code sinceVersion}
   * (null: at version 0).
   */
  public record DeltaRead(Long version, String timestamp, Long sinceVersion, java.time.Duration poll)
      implements Serializable {
    /** A batch read. */
    public DeltaRead(Long version, String timestamp, Long sinceVersion) {
      this(version, timestamp, sinceVersion, null);
    }

    /** Whether the table is read as a stream. */
    public boolean streaming() {
      return poll != null;
    }
  }

  public SourceConfig {
    fields = fields == null ? java.util.Map.of()
        : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(fields));
  }

  /** A source that is not a stream. */
  public SourceConfig(String name, String path, String sql, Format format, boolean optional, String location,
      String sheet, int headerRow, JdbcSource jdbc, HttpSource http, CsvOptions csv, boolean skipBadFiles,
      S3Settings s3, String unnest, java.util.Map<String, String> fields, DeltaRead delta) {
    this(name, path, sql, format, optional, location, sheet, headerRow, jdbc, http, csv, skipBadFiles, s3, unnest,
        fields, delta, null);
  }

  /** Whether the source is a stream: Kafka topics, or a Delta table read as versions are committed. */
  public boolean streams() {
    return kafka != null || (delta != null && delta.streaming());
  }

  /** {@code file:line: sources.NAME.KEY}: how an error about one of the source's keys begins. */
  public String at(String key) {
    return location + ": sources." + name + "." + key;
  }

  /** File formats: CSV, Parquet and JSON are read by DuckDB; Excel sheets are converted to CSV first. */
  public enum Format {
    AUTO, CSV, PARQUET, JSON, XLSX
  }

  /** A file source with Excel options. */
  public SourceConfig(String name, String path, String sql, Format format, boolean optional, String location,
      String sheet, int headerRow) {
    this(name, path, sql, format, optional, location, sheet, headerRow, null, null, CsvOptions.DETECT, false,
        S3Settings.DEFAULT, null, java.util.Map.of(), null, null);
  }

  /** What to do with a file that cannot be read. */
  public enum OnError { FAIL, SKIP_FILE }

  /** A source without Excel options. */
  public SourceConfig(String name, String path, String sql, Format format, boolean optional, String location) {
    this(name, path, sql, format, optional, location, null, 1, null, null, CsvOptions.DETECT, false,
        S3Settings.DEFAULT, null, java.util.Map.of(), null, null);
  }
}
