package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Map;

/**
 * Which outputs a run writes besides the FHIR NDJSON files, rejects and summary that it always writes.
 *
 * @param duckdb whether resources are loaded into tables of the DuckDB database
 * @param rawCopy whether the ingested source rows are copied into schema {@code raw_data}
 * @param views SQL views (name to SELECT statement) created in the database after the tables are loaded
 * @param viewLocations where each view is declared, for error messages
 */
public record SinkSettings(boolean duckdb, boolean rawCopy, Map<String, String> views,
    Map<String, String> viewLocations) implements Serializable {

  public SinkSettings {
    views = Map.copyOf(views);
    viewLocations = Map.copyOf(viewLocations);
  }
}
