package org.fhirbeam.config;

import java.io.Serializable;

/**
 * A named source of rows.
 *
 * @param name the name mappings refer to
 * @param path a file, directory or glob ({@code *}, {@code **}, {@code {a,b}}); relative to the working directory
 * @param format the file format, or {@link Format#AUTO} to decide by each file's extension
 * @param optional whether a path that matches no file is allowed (the source then has no rows)
 * @param location where the source is declared, for error messages
 */
public record SourceConfig(String name, String path, Format format, boolean optional, String location) implements Serializable {

  /** File formats read through DuckDB. */
  public enum Format {
    AUTO, CSV, PARQUET, JSON
  }
}
