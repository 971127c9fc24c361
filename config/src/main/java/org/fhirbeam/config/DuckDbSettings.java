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
 */
public record DuckDbSettings(String database, boolean readOnly, String memoryLimit, int threads,
    List<String> extensions) implements Serializable {

  public DuckDbSettings {
    extensions = List.copyOf(extensions);
  }

  /** Access mode of the database file. */
  public enum Mode {
    READ_WRITE, READ_ONLY
  }
}
