package org.fhirbeam.config;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A whole job: where rows come from, which mappings turn them into FHIR resources, and where results go.
 *
 * @param file the configuration file this was loaded from
 * @param name the job's name
 * @param duckdb DuckDB settings for every connection of the run
 * @param sources sources by name, in declaration order
 * @param mappings the mappings to apply, each loaded from its own file
 * @param sinks optional outputs
 * @param validation how the built resources are validated
 */
public record PipelineConfig(String file, String name, DuckDbSettings duckdb, Map<String, SourceConfig> sources,
    List<MappingConfig> mappings, SinkSettings sinks, ValidationSettings validation) {

  public PipelineConfig {
    sources = Collections.unmodifiableMap(new LinkedHashMap<>(sources));
    mappings = List.copyOf(mappings);
  }
}
