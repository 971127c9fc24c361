package org.fhirbeam.config;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

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
 * @param externalReferences reference targets outside the run: resource types ({@code Practitioner}) or
 *     reference prefixes ({@code https://fhir.example.org/}), which the reference check counts apart
 * @param quality data-quality policies that change what is written
 * @param streaming how a job with a streaming source commits its windows; null for a batch job
 */
public record PipelineConfig(String file, String name, DuckDbSettings duckdb, Map<String, SourceConfig> sources,
    List<MappingConfig> mappings, SinkSettings sinks, ValidationSettings validation,
    List<String> externalReferences, QualitySettings quality, StreamingSettings streaming)
    implements java.io.Serializable {

  public PipelineConfig {
    Objects.requireNonNull(quality, "quality");
    sources = Collections.unmodifiableMap(new LinkedHashMap<>(sources));
    mappings = List.copyOf(mappings);
    externalReferences = List.copyOf(externalReferences);
  }

  public PipelineConfig(String file, String name, DuckDbSettings duckdb, Map<String, SourceConfig> sources,
      List<MappingConfig> mappings, SinkSettings sinks, ValidationSettings validation) {
    this(file, name, duckdb, sources, mappings, sinks, validation, List.of(), QualitySettings.DEFAULTS, null);
  }

  /** Whether the job reads streams (its sources are Kafka topics) and runs until stopped. */
  public boolean streams() {
    return streaming != null;
  }

  /** The prefixes of references to external targets: {@code Type/} for a resource type. */
  public List<String> externalPrefixes() {
    List<String> out = new java.util.ArrayList<>();
    for (String e : externalReferences) {
      out.add(e.matches("[A-Z][A-Za-z]*") ? e + "/" : e);
    }
    return out;
  }
}
