package org.fhirbeam.pipeline;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.ObjectStorage;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.HttpSourcePlanner;
import org.fhirbeam.io.JdbcSourcePlanner;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MappingCompiler;
import org.fhirbeam.validation.FhirValidation;

/**
 * Everything decided before the pipeline starts: the checked configuration, each source's files and columns,
 * and each mapping compiled against its source. Building it reads no rows and writes nothing, so every
 * configuration or input problem surfaces here.
 *
 * @param config the loaded configuration
 * @param sources planned sources by name (only those some mapping reads)
 * @param mappings compiled mappings in configuration order
 * @param validator the validator when HAPI's validator checks resources (built here, once per JVM, so loading
 *     definitions stays out of the pipeline); the definitions alone when only the compiled checks were worked out here;
 *     else null (no validation, or the compiled checks came from the cache)
 */
public record JobPlan(PipelineConfig config, Map<String, PlannedSource> sources, List<CompiledMapping> mappings,
    FhirValidation validator) {

  /** Loads, checks and plans a job. */
  public static JobPlan create(java.nio.file.Path configFile, Map<String, String> overrides,
      Map<String, String> variables) {
    PipelineConfig config = new ConfigLoader(variables).load(configFile, overrides);
    return fromConfig(config);
  }

  static JobPlan fromConfig(PipelineConfig config) {
    // HAPI's definitions of the resource types load while DuckDB looks at the files.
    java.util.concurrent.CompletableFuture<Void> definitions = java.util.concurrent.CompletableFuture.runAsync(
        () -> MappingCompiler.loadDefinitions(config.mappings().stream().map(MappingConfig::resourceType).toList()));
    // Compiled checks need the definitions only, unless a run with the same mappings and packages left their row
    // checks in the cache; HAPI's validator is built (and warmed up) when it checks resources.
    Conformance.Cached cached = config.validation().mode() == ValidationSettings.Mode.COMPILED
        ? Conformance.cache(config) : null;
    boolean compile = config.validation().compiled() && Conformance.claimsProfiles(config) && cached == null;
    java.util.concurrent.CompletableFuture<FhirValidation> validator = config.validation().usesValidator()
        ? java.util.concurrent.CompletableFuture.supplyAsync(() -> FhirValidation.shared(
            config.validation().packages().stream().map(java.nio.file.Path::of).toList()))
        : compile ? java.util.concurrent.CompletableFuture.supplyAsync(() -> Conformance.definitions(config))
            : java.util.concurrent.CompletableFuture.completedFuture(null);
    // The mappings against their profiles (R4's definitions load on first use: seconds), while DuckDB plans too.
    java.util.concurrent.CompletableFuture<Conformance> conformance = compile
        ? validator.thenApplyAsync(v -> Conformance.check(config, v)) : null;
    FileSourcePlanner planner = new FileSourcePlanner(config.duckdb());
    if (config.sources().values().stream().anyMatch(s -> s.path() != null && ObjectStorage.isRemote(s.path()))) {
      ObjectStorage.useBeforePipeline(ObjectStorage.settingsOf(config.sources().values()));
    }
    Set<String> used = readByMappings(config);
    // File sources first (those the mappings read, and those a query names), then the query sources over them.
    Set<String> needed = plannedSources(config);
    // Each source is planned on its own (DuckDB reads the files' headers, the reader checks their lines), so they are
    // planned side by side on the cores; a failure is reported for the first failing source in file order.
    Map<String, java.util.concurrent.Future<PlannedSource>> planned = new LinkedHashMap<>();
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(
        Runtime.getRuntime().availableProcessors(), r -> {
          Thread t = new Thread(r, "fhirbeam-plan");
          t.setDaemon(true);
          return t;
        });
    Map<String, PlannedSource> files = new LinkedHashMap<>();
    Map<String, PlannedSource> queries = new LinkedHashMap<>();
    try {
      for (SourceConfig s : config.sources().values()) {
        if (s.streams()) {
          // A stream has no files to plan: its columns are the ones its records are read with (a Delta table's: those
          // of its latest version).
          files.put(s.name(), new PlannedSource(s, List.of(), s.kafka() != null ? s.kafka().columns()
              : DeltaStream.columns(s)));
        } else if (s.jdbc() != null && needed.contains(s.name())) {
          planned.put(s.name(), pool.submit(() -> JdbcSourcePlanner.plan(s)));
        } else if (s.http() != null && needed.contains(s.name())) {
          planned.put(s.name(), pool.submit(() -> new HttpSourcePlanner(config.duckdb(), System.getenv()).plan(s)));
        } else if (s.delta() != null && needed.contains(s.name())) {
          planned.put(s.name(), pool.submit(() -> planner.plan(s, DeltaSource.files(s))));
        } else if (s.sql() == null && needed.contains(s.name())) {
          planned.put(s.name(), pool.submit(() -> planner.plan(s)));
        }
      }
      for (Map.Entry<String, java.util.concurrent.Future<PlannedSource>> e : planned.entrySet()) {
        files.put(e.getKey(), e.getValue().get());
      }
      for (SourceConfig s : config.sources().values()) {
        if (s.sql() != null && used.contains(s.name())) {
          queries.put(s.name(), planner.planQuery(s, tablesOf(s, config, files)));
        }
      }
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while planning", e);
    } finally {
      pool.shutdownNow();
      planner.close();
    }
    Map<String, PlannedSource> sources = new LinkedHashMap<>(files);
    sources.putAll(queries);
    definitions.join();
    // An optional source without files has no known columns: its mapping is still checked against FHIR.
    List<CompiledMapping> mappings = MappingCompiler.compileAll(config.mappings(), m -> {
      PlannedSource source = sources.get(m.source());
      return source.tasks().isEmpty() && !source.config().streams() ? null : source.columns();
    });
    FhirValidation v;
    try {
      v = validator.join();
    } catch (java.util.concurrent.CompletionException e) {
      if (e.getCause() instanceof IllegalArgumentException || e.getCause() instanceof IllegalStateException) {
        throw new InputException(config.file() + ": validation.packages: " + e.getCause().getMessage(), e.getCause());
      }
      throw e;
    }
    if (cached != null) {
      mappings = cached.apply(mappings);
    } else if (conformance != null) {
      Conformance.Applied applied = conformance.join().apply(mappings, v);
      if (!applied.problems().isEmpty()) {
        // A mapping that cannot give a conformant resource (a check-config error) stops the run here.
        throw InputException.together(applied.problems());
      }
      mappings = applied.mappings();
      if (config.validation().mode() == ValidationSettings.Mode.COMPILED) {
        Conformance.keep(config, applied.cached());
      }
    }
    return new JobPlan(config, sources, List.copyOf(mappings), v);
  }

  /** The sources the mappings read. */
  static Set<String> readByMappings(PipelineConfig config) {
    Set<String> used = new HashSet<>();
    for (MappingConfig m : config.mappings()) {
      used.add(m.source());
    }
    return used;
  }

  /** The sources a run plans: those the mappings read, and those the query sources among them name. */
  static Set<String> plannedSources(PipelineConfig config) {
    Set<String> used = readByMappings(config);
    Set<String> needed = new HashSet<>(used);
    for (SourceConfig s : config.sources().values()) {
      if (s.sql() != null && used.contains(s.name())) {
        needed.addAll(namedBy(s, config));
      }
    }
    return needed;
  }

  /** The planned sources a query source names, in configuration order: the tables it reads. */
  static Map<String, PlannedSource> tablesOf(SourceConfig query, PipelineConfig config,
      Map<String, PlannedSource> planned) {
    Map<String, PlannedSource> tables = new LinkedHashMap<>(planned);
    tables.keySet().retainAll(namedBy(query, config));
    return tables;
  }

  /** The sources other than queries whose names a query source's text holds: the tables it may read. */
  static Set<String> namedBy(SourceConfig query, PipelineConfig config) {
    Set<String> named = new HashSet<>();
    for (SourceConfig f : config.sources().values()) {
      if (f.sql() == null && Pattern.compile("\\b" + Pattern.quote(f.name()) + "\\b", Pattern.CASE_INSENSITIVE)
          .matcher(query.sql()).find()) {
        named.add(f.name());
      }
    }
    return named;
  }
}
