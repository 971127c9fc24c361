package org.fhirbeam.pipeline;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.PipelineConfig;

/**
 * Where a run runs, told by its environment as the seed's {@code DatabaseAdapter} told it: on Databricks when
 * {@code DATABRICKS_RUNTIME_VERSION} is set, else on this machine (or a cluster reached by {@code spark-submit}). On
 * Databricks a run uses the Spark runner on the cluster's own context, which it never stops; writes Delta tables
 * (by default in catalog {@value #DEFAULT_CATALOG}) instead of the DuckDB file, which would live on the driver's disk
 * and go with the cluster; and keeps DuckDB's temporary files on the node's local disk. What the command line asks
 * for wins: {@code --runner}, and {@code --set} of those settings; asking for the DuckDB file there is refused.
 *
 * @param databricks whether the run is on Databricks
 * @param why what told: the variable and its value, or that it is not set
 */
record Deployment(boolean databricks, String why) {
  /** The variable Databricks sets on its clusters. */
  static final String RUNTIME = "DATABRICKS_RUNTIME_VERSION";
  /** The catalog of the Delta tables on Databricks when the configuration names none. */
  static final String DEFAULT_CATALOG = "fhir_catalog";
  /** A Databricks node's local disk. */
  static final Path LOCAL_DISK = Path.of("/local_disk0");

  static Deployment detect(Map<String, String> env) {
    String version = env.get(RUNTIME);
    return version != null && !version.isBlank() ? new Deployment(true, RUNTIME + "=" + version)
        : new Deployment(false, RUNTIME + " is not set");
  }

  /** {@code databricks} or {@code local}. */
  String name() {
    return databricks ? "databricks" : "local";
  }

  /** The runner of a run that asked for {@code asked} (null: none). */
  Runner runner(Runner asked) {
    return asked != null ? asked : databricks ? Runner.SPARK : Runner.DIRECT;
  }

  /**
   * The settings of a run of {@code asGiven} (the configuration with the command line's {@code overrides}): the
   * overrides, and on Databricks, where they are silent, no DuckDB file, Delta tables in {@value #DEFAULT_CATALOG}
   * when the configuration writes none, and DuckDB's temporary files on the local disk.
   */
  Map<String, String> settings(PipelineConfig asGiven, Map<String, String> overrides) {
    if (!databricks) {
      return overrides;
    }
    Map<String, String> out = new LinkedHashMap<>(overrides);
    if (asGiven.sinks().duckdb()) {
      if (overrides.keySet().stream().anyMatch(k -> k.startsWith("sinks.duckdb"))) {
        throw new InputException("--set sinks.duckdb: on Databricks (" + why + ") a run writes no DuckDB file: it"
            + " would be on the driver's disk, which goes with the cluster. Leave the DuckDB sink out there; the run"
            + " writes Delta tables (sinks.delta) instead");
      }
      out.put("sinks.duckdb.enabled", "false");
    }
    if (asGiven.sinks().delta() == null && !overrides.containsKey("sinks.delta.enabled")) {
      out.put("sinks.delta.enabled", "true");
      if (!overrides.containsKey("sinks.delta.location") && !overrides.containsKey("sinks.delta.catalog")) {
        out.put("sinks.delta.catalog", DEFAULT_CATALOG);
      }
    }
    if (asGiven.duckdb().tempDirectory() == null && Files.isDirectory(LOCAL_DISK)) {
      out.put("duckdb.temp_directory", LOCAL_DISK.resolve("tmp/fhirbeam-duckdb").toString());
    }
    return out;
  }
}
