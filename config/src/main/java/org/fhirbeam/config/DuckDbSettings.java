package org.fhirbeam.config;

import java.io.Serializable;
import java.util.List;

/**
 * How every DuckDB connection of a run is opened: the database file, its access mode, and the settings and
 * extensions applied to each connection (the driver's file database and the workers' in-memory ones).
 *
 * @param database path of the DuckDB file the run writes its tables into
 * @param readOnly whether that file is opened read-only (then no DuckDB tables are written)
 * @param memoryLimit DuckDB's {@code memory_limit}, for example {@code 1GB}; null keeps DuckDB's default
 * @param threads DuckDB's {@code threads}; 0 means auto (DuckDB's default, the number of cores)
 * @param extensions extensions loaded on every connection
 * @param tempDirectory DuckDB's {@code temp_directory} (where it spills when over its memory limit); null keeps
 *     DuckDB's default
 * @param extensionDirectory DuckDB's {@code extension_directory}, where extensions that are not built in are
 *     looked for (never downloaded); null keeps DuckDB's default ({@code ~/.duckdb/extensions})
 * @param preserveInsertionOrder DuckDB's {@code preserve_insertion_order}; false lets DuckDB load and copy with
 *     less memory, in any order. The mapping tasks keep it on whatever it says: reject line numbers count rows in
 *     file order.
 */
public record DuckDbSettings(String database, boolean readOnly, String memoryLimit, int threads,
    List<String> extensions, String tempDirectory, String extensionDirectory, boolean preserveInsertionOrder)
    implements Serializable {

  /** Extensions statically linked into the DuckDB JDBC driver: loading them never needs a file. */
  public static final List<String> BUILT_IN = List.of("json", "parquet", "icu", "core_functions");

  public DuckDbSettings {
    extensions = List.copyOf(extensions);
  }

  /** Settings with DuckDB's default temporary and extension directories. */
  public DuckDbSettings(String database, boolean readOnly, String memoryLimit, int threads, List<String> extensions) {
    this(database, readOnly, memoryLimit, threads, extensions, null, null);
  }

  /** Settings that keep rows in insertion order. */
  public DuckDbSettings(String database, boolean readOnly, String memoryLimit, int threads, List<String> extensions,
      String tempDirectory, String extensionDirectory) {
    this(database, readOnly, memoryLimit, threads, extensions, tempDirectory, extensionDirectory, true);
  }

  /** Access mode of the database file. */
  public enum Mode {
    READ_WRITE, READ_ONLY
  }
}
