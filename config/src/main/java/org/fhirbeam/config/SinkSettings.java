package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Which outputs a run writes besides the FHIR NDJSON files, rejects and summary that it always writes, and how
 * each resource sink treats the previous run's output.
 *
 * @param duckdb whether resources are loaded into tables of the DuckDB database
 * @param rawCopy whether the ingested source rows are copied into schema {@code raw_data}
 * @param views SQL views (name to SELECT statement) created in the database after the tables are loaded
 * @param viewLocations where each view is declared, for error messages
 * @param duckdbMode how {@code fhir_resources} and {@code transformed_data} tables take this run's resources
 * @param ndjsonCompression whether the FHIR NDJSON files are gzip-compressed
 * @param ndjsonMode how the {@code fhir/} files take this run's resources
 * @param parquet whether a Parquet dataset per resource type is written
 * @param parquetMode how the {@code parquet/} datasets take this run's resources
 * @param delta the Delta tables the run commits its resources to; null for none
 */
public record SinkSettings(boolean duckdb, boolean rawCopy, Map<String, String> views,
    Map<String, String> viewLocations, WriteMode duckdbMode, Compression ndjsonCompression, WriteMode ndjsonMode,
    boolean parquet, WriteMode parquetMode, Delta delta) implements Serializable {

  /**
   * The Delta sink: a table per resource type, {@code <location>/fhir_resources/<type>} (the type in lower case), or
   * {@code <catalog>.<schema>.<type>} in a catalog of the job's Spark session (Unity Catalog on Databricks), each
   * committed once per run.
   *
   * @param location the folder the tables are in (a path; relative to the working directory); null for a catalog
   * @param catalog the catalog the tables are in; null for a location
   * @param schemas the catalog's schema of each of the job's schemas ({@code fhir_resources}, {@code raw_data},
   *     {@code transformed_data}, {@code quality}; each its own name unless given); empty for a location
   * @param mode how the tables take this run's resources
   * @param rawCopy whether the ingested source rows are copied into tables {@code raw_data.<source>}, as
   *     {@code sinks.duckdb.raw_copy} does into the database (off unless asked: the copy reads every source again
   *     on the machine that runs the command)
   */
  public record Delta(String location, String catalog, Map<String, String> schemas, WriteMode mode, boolean rawCopy)
      implements Serializable {
    public Delta {
      schemas = Collections.unmodifiableMap(new LinkedHashMap<>(schemas));
    }

    /** The catalog's schema of the job's schema {@code schema} (as in DuckDB). */
    public String schema(String schema) {
      return schemas.getOrDefault(schema, schema);
    }
  }

  /** Compression of the FHIR NDJSON files. */
  public enum Compression {
    NONE, GZIP;

    /** What the files' names end with. */
    public String extension() {
      return this == GZIP ? ".ndjson.gz" : ".ndjson";
    }
  }

  public SinkSettings {
    views = Map.copyOf(views);
    viewLocations = Map.copyOf(viewLocations);
  }

  /**
   * The defaults of every setting this does not name: uncompressed NDJSON, no Parquet, no Delta, every sink
   * overwrites.
   */
  public SinkSettings(boolean duckdb, boolean rawCopy, Map<String, String> views, Map<String, String> viewLocations) {
    this(duckdb, rawCopy, views, viewLocations, WriteMode.OVERWRITE, Compression.NONE, WriteMode.OVERWRITE, false,
        WriteMode.OVERWRITE, null);
  }

  /** These settings for a streaming job: each window is appended to the outputs, and no source rows are copied. */
  public SinkSettings streaming() {
    return new SinkSettings(duckdb, false, views, viewLocations, WriteMode.APPEND, ndjsonCompression, WriteMode.APPEND,
        parquet, WriteMode.APPEND, delta == null ? null : new Delta(delta.location(), delta.catalog(), delta.schemas(),
        WriteMode.APPEND, false));
  }
}
