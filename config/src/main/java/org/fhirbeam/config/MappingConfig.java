package org.fhirbeam.config;

import java.io.Serializable;
import java.util.List;

/**
 * A declarative mapping from the rows of one source to one FHIR resource type, as written in its YAML file.
 * The transforms module checks it against the FHIR R4 definitions and compiles it.
 *
 * @param name the mapping's name, used in rejects and reports
 * @param file the file it was loaded from
 * @param source the name of the source whose rows it maps
 * @param resourceType the FHIR resource type it builds, for example {@code Patient}
 * @param id how the resource id is made
 * @param elements element rules in file order
 * @param rules data-quality rules in file order
 * @param optionalColumns columns the rules may read that the source need not have: where it has none of them,
 *     their values are missing in every row
 * @param sourceLocation the line of its {@code source} key
 * @param resourceLocation the line of its {@code resource} key
 */
public record MappingConfig(String name, String file, String source, String resourceType, ValueRule id,
    List<ValueRule> elements, List<QualityRule> rules, List<String> optionalColumns,
    String sourceLocation, String resourceLocation) implements Serializable {

  public MappingConfig {
    elements = List.copyOf(elements);
    rules = List.copyOf(rules);
    optionalColumns = List.copyOf(optionalColumns);
  }
}
