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
 * @param location where the source is declared, for error messages
 */
public record SourceConfig(String name, String path, String sql, Format format, boolean optional,
    String location) implements Serializable {

  /** File formats read through DuckDB. */
  public enum Format {
    AUTO, CSV, PARQUET, JSON
  }
}
