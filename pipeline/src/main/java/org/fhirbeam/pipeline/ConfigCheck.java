package org.fhirbeam.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.transforms.MappingCompiler;
import org.fhirbeam.transforms.MappingException;
import org.fhirbeam.validation.FhirValidation;

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
      var compiled = MappingCompiler.compileAll(config.mappings(), m -> {
        PlannedSource source = sources.get(m.source());
        return source == null || source.tasks().isEmpty() ? null : source.columns();
      });
      // Against the profiles, once the mappings compile (a misspelt element would also be "never written").
      if (Conformance.claimsProfiles(config)) {
        FhirValidation profiles = null;
        try {
          profiles = Conformance.definitions(config);
        } catch (IllegalArgumentException | IllegalStateException e) {
          problems.add(new InputException("validation.packages: " + e.getMessage()));
        }
        if (profiles != null) {
          Conformance.Applied applied = Conformance.check(config, profiles).apply(compiled, profiles);
          problems.addAll(applied.problems());
          warnings.addAll(applied.warnings());
        }
      }
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
