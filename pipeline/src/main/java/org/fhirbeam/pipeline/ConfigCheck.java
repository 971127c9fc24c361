package org.fhirbeam.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.fhirbeam.config.ConfigException;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.transforms.MappingCompiler;
import org.fhirbeam.transforms.MappingException;
import org.fhirbeam.transforms.ProfileConformance;
import org.fhirbeam.validation.FhirValidation;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * {@code check-config}: the checks of a run's planning, short of reading rows, connecting to databases or APIs and
 * fetching objects. The sources a run plans are planned the same way, so their paths must match files (unless
 * optional) and the files' headers give the columns; query sources are bound against those columns, or only parsed
 * when a source they read has no files here; mappings compile against their sources' columns where known. Every
 * problem is collected, so that one check shows them all.
 */
final class ConfigCheck {
  private ConfigCheck() {}

  /** A configuration that passed the checks, and what they warn of (one line each, with its file:line). */
  record Checked(PipelineConfig config, List<String> warnings) {}

  /** Loads and checks {@code file}; throws an {@link InputException} listing every problem found. */
  static Checked check(Path file, Map<String, String> overrides, Map<String, String> variables) {
    ConfigLoader.Loaded loaded = new ConfigLoader(variables).loadAll(file, overrides);
    List<InputException> problems = new ArrayList<>(loaded.problems());
    List<String> warnings = new ArrayList<>();
    problems.addAll(problems(loaded.config(), warnings));
    if (!problems.isEmpty()) {
      throw InputException.together(problems);
    }
    return new Checked(loaded.config(), warnings);
  }

  /**
   * The mappings against the profiles they claim ({@code meta.profile} constants, and {@code validation.profiles} of
   * their resource type), from the validator's definitions: {@link ProfileConformance}'s errors are problems, its
   * warnings go to {@code warnings}.
   */
  private static List<InputException> conformance(PipelineConfig config, List<String> warnings) {
    Map<MappingConfig, Set<String>> claimed = new LinkedHashMap<>();
    for (MappingConfig m : config.mappings()) {
      m.elements().stream().filter(r -> r.path().matches("meta\\.profile(\\[\\d+])?") && r.constant() != null)
          .forEach(r -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>()).add(r.constant()));
    }
    List<String> everyResource = config.validation().mode() == ValidationSettings.Mode.OFF ? List.of()
        : config.validation().profiles();
    if (claimed.isEmpty() && everyResource.isEmpty()) {
      return List.of();
    }
    FhirValidation definitions;
    try {
      definitions = FhirValidation.shared(config.validation().packages().stream().map(Path::of).toList());
    } catch (IllegalArgumentException | IllegalStateException e) {
      return List.of(new InputException("validation.packages: " + e.getMessage()));
    }
    List<InputException> problems = new ArrayList<>();
    // A run validates every resource against these: one unknown, or of another type, fails them all.
    for (String url : everyResource) {
      StructureDefinition profile = definitions.profile(url);
      List<String> others = config.mappings().stream().filter(m -> profile != null
          && !profile.getType().equals(m.resourceType())).map(MappingConfig::name).toList();
      if (profile == null || !others.isEmpty()) {
        problems.add(new ConfigException(config.file(), "validation.profiles", profile == null ? url + " is not"
            + " among the loaded definitions (validation.packages): every resource would fail it" : url + " is a"
            + " profile of " + profile.getType() + ": every resource of mapping(s) " + String.join(", ", others)
            + " would fail it (name a mapping's profiles in its meta.profile)"));
      } else {
        config.mappings().forEach(m -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>()).add(url));
      }
    }
    Map<String, java.util.Optional<Set<String>>> valueSets = new java.util.HashMap<>();
    java.util.function.Function<String, Set<String>> codes = url -> valueSets.computeIfAbsent(url,
        u -> java.util.Optional.ofNullable(definitions.codesOf(u))).orElse(null);
    claimed.forEach((m, urls) -> {
      for (String url : urls) {
        StructureDefinition profile = definitions.profile(url);
        if (profile == null) {
          warnings.add(m.resourceLocation() + ": mapping " + m.name() + " claims profile " + url + ", which is not"
              + " among the loaded definitions (validation.packages): not checked");
        } else if (profile.getType().equals(m.resourceType())) {
          for (ProfileConformance.Finding f : ProfileConformance.check(m, profile, codes, definitions::profile)) {
            if (f.error()) {
              problems.add(new ConfigException(f.location(), null, f.message()));
            } else {
              warnings.add(f.location() + ": " + f.message());
            }
          }
        }
      }
    });
    return problems;
  }

  private static List<InputException> problems(PipelineConfig config, List<String> warnings) {
    // HAPI's definitions of the resource types load while DuckDB looks at the files, as in JobPlan.
    CompletableFuture<Void> definitions = CompletableFuture.runAsync(() -> MappingCompiler.loadDefinitions(
        config.mappings().stream().map(MappingConfig::resourceType).toList()));
    List<InputException> problems = new ArrayList<>();
    Set<String> planned = JobPlan.plannedSources(config);
    Set<String> used = JobPlan.readByMappings(config);
    Map<String, PlannedSource> files = new LinkedHashMap<>();
    Map<String, PlannedSource> sources = new LinkedHashMap<>();
    try (FileSourcePlanner planner = FileSourcePlanner.forColumns(config.duckdb())) {
      for (SourceConfig s : config.sources().values()) {
        if (planned.contains(s.name()) && isLocalFiles(s)) {
          try {
            files.put(s.name(), planner.plan(s));
          } catch (InputException e) {
            addOnce(problems, e);
          }
        }
      }
      sources.putAll(files);
      for (SourceConfig s : config.sources().values()) {
        if (s.sql() != null && used.contains(s.name())) {
          try {
            Map<String, PlannedSource> tables = JobPlan.tablesOf(s, config, files);
            if (tables.keySet().equals(JobPlan.namedBy(s, config))) {
              sources.put(s.name(), planner.planQuery(s, tables));
            } else {
              planner.parseQuery(s); // a table it reads is not here to bind it against
            }
          } catch (InputException e) {
            addOnce(problems, e);
          }
        }
      }
    }
    definitions.join();
    try {
      MappingCompiler.compileAll(config.mappings(), m -> {
        PlannedSource source = sources.get(m.source());
        return source == null || source.tasks().isEmpty() ? null : source.columns();
      });
      // Against the profiles, once the mappings compile (a misspelt element would also be "never written").
      problems.addAll(conformance(config, warnings));
    } catch (MappingException e) {
      problems.add(e);
    }
    return problems;
  }

  /**
   * Adds a problem unless one with the same message is there: a DuckDB setting that fails (an extension that is not
   * installed) fails every source's planning alike.
   */
  private static void addOnce(List<InputException> problems, InputException e) {
    if (problems.stream().noneMatch(p -> p.getMessage().equals(e.getMessage()))) {
      problems.add(e);
    }
  }

  /**
   * Whether the source reads local files, which check-config lists and whose headers it reads; s3:// objects would
   * have to be fetched first, and jdbc and http sources are reached only by a run.
   */
  private static boolean isLocalFiles(SourceConfig s) {
    return s.path() != null && !s.path().startsWith("s3://");
  }
}
