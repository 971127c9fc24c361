package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.fhirbeam.io.DeltaFiles;

/**
 * What a run did, counted by the pipeline: rows in per source, rows mapped and rejected per mapping, and
 * resources and rejects written. It balances when every mapping accounts for every row of its source
 * ({@code rows_in == mapped + rejected}) and the files hold exactly what the mappings produced; with one mapping
 * per source that is {@code rows_in == sum(resources_out) + rejected}. Written as {@code run-summary.json}.
 */
public record RunSummary(String runId, String runner, String config, Map<String, Long> rowsInBySource,
    List<MappingCount> mappings, Map<String, Long> resourcesOut, long rejected, double elapsedSeconds,
    Map<String, Long> duckdbTables, String database, Map<String, Double> stageSeconds, Validation validation,
    Map<String, Map<String, List<String>>> columnDrift, Map<String, Map<String, String>> skippedFiles,
    Checks checks, Map<String, Double> loadSeconds, Delta delta, Deployment deployment) {

  /**
   * The Delta tables a run committed: their folder (or catalog), each table's version holding the run (by table
   * name, {@code fhir_resources.patient}), and the tables the terminal names: the resource tables, then the rejects
   * (the others, raw_data, transformed_data and the quality figures, it counts).
   */
  public record Delta(String location, Map<String, Long> versions, List<String> shown) {
    public Delta {
      versions = java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(versions));
      shown = List.copyOf(shown);
    }

    /** Whether the terminal names table {@code table} ({@code <schema>/<name>} of {@link DeltaFiles}). */
    static boolean shown(String table) {
      return table.startsWith(DeltaFiles.RESOURCE_SCHEMA + "/") || table.equals(DeltaFiles.REJECTS);
    }
  }

  /** The data-quality checks of the run: how many ran, and each that failed as a line (no record values). */
  public record Checks(int run, List<String> failed) {
    public Checks {
      failed = List.copyOf(failed);
    }

    /** The report's one-line account, e.g. {@code 52 run, all passed}. */
    String line() {
      return String.format(Locale.ROOT, "%,d run, %s", run,
          failed.isEmpty() ? "all passed" : failed.size() + " failed: " + String.join("; ", failed));
    }
  }

  public RunSummary {
    stageSeconds = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(stageSeconds));
    loadSeconds = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(loadSeconds));
  }

  /** A summary without quality checks (no DuckDB tables, or before they are computed). */
  public RunSummary(String runId, String runner, String config, Map<String, Long> rowsInBySource,
      List<MappingCount> mappings, Map<String, Long> resourcesOut, long rejected, double elapsedSeconds,
      Map<String, Long> duckdbTables, String database, Map<String, Double> stageSeconds, Validation validation,
      Map<String, Map<String, List<String>>> columnDrift, Map<String, Map<String, String>> skippedFiles) {
    this(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds, duckdbTables,
        database, stageSeconds, validation, columnDrift, skippedFiles, null, Map.of(), null, null);
  }

  /** The same summary with one more stage timed (the commit, which ends after the summary file is written). */
  RunSummary withStage(String stage, double seconds) {
    Map<String, Double> stages = new LinkedHashMap<>(stageSeconds);
    stages.put(stage, seconds);
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds,
        duckdbTables, database, stages, validation, columnDrift, skippedFiles, checks, loadSeconds, delta,
        deployment);
  }

  /** The same summary once its sinks are written: the run's time so far, the DuckDB tables and every stage's time. */
  RunSummary loaded(double seconds, Map<String, Long> tables, Map<String, Double> stages) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, seconds, tables,
        database, stages, validation, columnDrift, skippedFiles, checks, loadSeconds, delta,
        deployment);
  }

  /** The same summary with the run's time so far. */
  RunSummary withElapsed(double seconds) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, seconds,
        duckdbTables, database, stageSeconds, validation, columnDrift, skippedFiles, checks, loadSeconds, delta,
        deployment);
  }

  /** The same summary with the run's quality checks. */
  RunSummary withChecks(Checks checks) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds,
        duckdbTables, database, stageSeconds, validation, columnDrift, skippedFiles, checks, loadSeconds, delta,
        deployment);
  }

  /** The same summary with where the run ran ({@link Deployment}). */
  RunSummary withDeployment(Deployment where) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds,
        duckdbTables, database, stageSeconds, validation, columnDrift, skippedFiles, checks, loadSeconds, delta,
        where);
  }

  /** The same summary with the Delta tables the run committed. */
  RunSummary withDelta(Delta committed) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds,
        duckdbTables, database, stageSeconds, validation, columnDrift, skippedFiles, checks, loadSeconds, committed,
        deployment);
  }

  /** The same summary with the time of each table and statement of the DuckDB load. */
  RunSummary withLoadSeconds(Map<String, Double> seconds) {
    return new RunSummary(runId, runner, config, rowsInBySource, mappings, resourcesOut, rejected, elapsedSeconds,
        duckdbTables, database, stageSeconds, validation, columnDrift, skippedFiles, checks, seconds, delta,
        deployment);
  }

  /** Per source, the files left out because they could not be read ({@code on_error: skip_file}), with why. */
  static Map<String, Map<String, String>> skipped(Map<String, org.fhirbeam.io.FileSourcePlanner.PlannedSource>
      sources) {
    Map<String, Map<String, String>> out = new LinkedHashMap<>();
    sources.forEach((name, s) -> {
      if (!s.skipped().isEmpty()) {
        out.put(name, s.skipped());
      }
    });
    return out;
  }

  /**
   * Per source, the files that lack some of the source's columns (the union over its files, aligned by name), with
   * the columns each lacks: those values are null for that file's rows. Empty when every file has every column.
   */
  static Map<String, Map<String, List<String>>> drift(Map<String, org.fhirbeam.io.FileSourcePlanner.PlannedSource>
      sources) {
    Map<String, Map<String, List<String>>> out = new LinkedHashMap<>();
    for (Map.Entry<String, org.fhirbeam.io.FileSourcePlanner.PlannedSource> e : sources.entrySet()) {
      Map<String, List<String>> missing = new LinkedHashMap<>();
      for (org.fhirbeam.io.ReadTask t : e.getValue().tasks()) {
        List<String> lacks = e.getValue().columns().stream().filter(c -> !t.columns().contains(c)).toList();
        if (!lacks.isEmpty()) {
          missing.put(t.file(), lacks);
        }
      }
      if (!missing.isEmpty()) {
        out.put(e.getKey(), missing);
      }
    }
    return out;
  }

  /**
   * What validation found, when the job validates: resources validated and rejected per mapping, and every issue
   * counted by mapping, severity, category and message id (most frequent first).
   */
  public record Validation(String mode, double sampleRate, String rejectOn, double startupSeconds,
      Map<String, Long> validatedByMapping, Map<String, Long> invalidByMapping, List<IssueCount> issues) {

    public long validated() {
      return validatedByMapping.values().stream().mapToLong(Long::longValue).sum();
    }

    public long invalid() {
      return invalidByMapping.values().stream().mapToLong(Long::longValue).sum();
    }

    /** Issue counts summed by severity, then category. */
    Map<String, Long> bySeverity() {
      Map<String, Long> out = new java.util.TreeMap<>();
      for (IssueCount i : issues) {
        out.merge(i.severity() + (i.category().equals("content") ? "" : " (" + i.category() + ")"), i.count(),
            Long::sum);
      }
      return out;
    }

    Map<String, Object> toJson() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("mode", mode);
      if (mode.equals("sample")) {
        m.put("sample_rate", sampleRate);
      }
      m.put("reject_on", rejectOn);
      m.put("startup_s", Math.round(startupSeconds * 1000) / 1000.0);
      m.put("validated", validatedByMapping);
      m.put("rejected", invalidByMapping);
      m.put("issues_by_severity", bySeverity());
      List<Map<String, Object>> list = new ArrayList<>();
      for (IssueCount i : issues) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("mapping", i.mapping());
        e.put("severity", i.severity());
        e.put("category", i.category());
        e.put("message_id", i.messageId());
        e.put("count", i.count());
        list.add(e);
      }
      m.put("issues", list);
      return m;
    }
  }

  /** How often one kind of issue was found in one mapping's resources. */
  public record IssueCount(String mapping, String severity, String category, String messageId, long count) {}

  /**
   * The rows one mapping read, turned into resources, and rejected, and the seconds its tasks spent reading,
   * mapping and writing them (one DuckDB query per file, summed over tasks).
   */
  /**
   * One mapping's figures; {@code rejectedBy} counts its committed reject records by {@code stage/rule}, in that
   * order of keys.
   */
  public record MappingCount(String mapping, String source, String resourceType, long rowsIn, long mapped,
      long rejected, double seconds, Map<String, Long> rejectedBy) {
    public MappingCount {
      rejectedBy = java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(rejectedBy));
    }

    public MappingCount(String mapping, String source, String resourceType, long rowsIn, long mapped, long rejected,
        double seconds) {
      this(mapping, source, resourceType, rowsIn, mapped, rejected, seconds, Map.of());
    }

    boolean balanced() {
      return rowsIn == mapped + rejected;
    }
  }

  /** Every way the counts fail to balance, in words; empty when the run balances. */
  public List<String> imbalances() {
    List<String> out = new ArrayList<>();
    Map<String, Long> mappedByType = new LinkedHashMap<>();
    long rejectedByMappings = 0;
    for (MappingCount m : mappings) {
      if (!m.balanced()) {
        out.add(String.format(Locale.ROOT, "mapping %s: rows in %d != mapped %d + rejected %d", m.mapping(),
            m.rowsIn(), m.mapped(), m.rejected()));
      }
      mappedByType.merge(m.resourceType(), m.mapped(), Long::sum);
      rejectedByMappings += m.rejected();
    }
    mappedByType.forEach((type, mapped) -> {
      long written = resourcesOut.getOrDefault(type, 0L);
      if (mapped != written) {
        out.add(String.format(Locale.ROOT, "%s: %d mapped but %d written", type, mapped, written));
      }
    });
    Map<String, Long> bySource = new LinkedHashMap<>();
    for (MappingCount m : mappings) {
      Long first = bySource.putIfAbsent(m.source(), m.rowsIn());
      if (first != null && first != m.rowsIn()) {
        out.add(String.format(Locale.ROOT, "source %s: mappings read %d and %d rows", m.source(), first, m.rowsIn()));
      }
    }
    if (rejectedByMappings != rejected) {
      out.add(String.format(Locale.ROOT, "rejects: %d rejected but %d written", rejectedByMappings, rejected));
    }
    return out;
  }

  public long rowsIn() {
    return rowsInBySource.values().stream().mapToLong(Long::longValue).sum();
  }

  public long resourcesTotal() {
    return resourcesOut.values().stream().mapToLong(Long::longValue).sum();
  }

  public boolean balanced() {
    return imbalances().isEmpty();
  }

  public double rowsPerSecond() {
    return elapsedSeconds <= 0 ? 0 : rowsIn() / elapsedSeconds;
  }

  Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("run_id", runId);
    m.put("runner", runner);
    if (deployment != null) {
      Map<String, Object> environment = new LinkedHashMap<>();
      environment.put("name", deployment.name());
      environment.put("detected_by", deployment.why());
      m.put("environment", environment);
    }
    m.put("config", config);
    m.put("rows_in", rowsIn());
    m.put("rows_in_by_source", rowsInBySource);
    m.put("resources_out", resourcesOut);
    m.put("rejected", rejected);
    List<Map<String, Object>> perMapping = new ArrayList<>();
    for (MappingCount c : mappings) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mapping", c.mapping());
      e.put("source", c.source());
      e.put("resource_type", c.resourceType());
      e.put("rows_in", c.rowsIn());
      e.put("mapped", c.mapped());
      e.put("rejected", c.rejected());
      e.put("rejected_by", c.rejectedBy());
      e.put("seconds", Math.round(c.seconds() * 1000) / 1000.0);
      perMapping.add(e);
    }
    m.put("mappings", perMapping);
    m.put("balanced", balanced());
    m.put("elapsed_s", Math.round(elapsedSeconds * 1000) / 1000.0);
    m.put("rows_per_s", Math.round(rowsPerSecond()));
    Map<String, Double> stages = new LinkedHashMap<>();
    stageSeconds.forEach((k, v) -> stages.put(k, Math.round(v * 1000) / 1000.0));
    m.put("stages_s", stages);
    m.put("column_drift", columnDrift == null ? Map.of() : columnDrift);
    m.put("skipped_files", skippedFiles == null ? Map.of() : skippedFiles);
    if (validation != null) {
      m.put("validation", validation.toJson());
    }
    if (checks != null) {
      Map<String, Object> q = new LinkedHashMap<>();
      q.put("checks_run", checks.run());
      q.put("failed_checks", checks.failed());
      m.put("quality", q);
    }
    if (database != null) {
      Map<String, Object> db = new LinkedHashMap<>();
      db.put("database", database);
      db.put("tables", duckdbTables);
      Map<String, Double> load = new LinkedHashMap<>();
      loadSeconds.forEach((k, v) -> load.put(k, Math.round(v * 1000) / 1000.0));
      db.put("load_s", load);
      m.put("duckdb", db);
    }
    if (delta != null) {
      Map<String, Object> d = new LinkedHashMap<>();
      d.put("location", delta.location());
      d.put("versions", delta.versions());
      m.put("delta", d);
    }
    return m;
  }

  void write(Path file) throws IOException {
    java.nio.file.Files.write(file, json());
  }

  /** The summary as {@code run-summary.json} holds it. */
  byte[] json() throws IOException {
    return new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(toJson());
  }

  /** The short human summary printed at the end of a run. */
  void print(PrintStream out, String output, boolean byManifest, boolean profile) {
    out.printf(Locale.ROOT, "Run %s on %s: %,d rows in %.1f s (%,d rows/s)%n", runId, runner, rowsIn(),
        elapsedSeconds, Math.round(rowsPerSecond()));
    for (Map.Entry<String, Long> e : resourcesOut.entrySet()) {
      out.printf(Locale.ROOT, "  %-18s %,12d resources%n", e.getKey(), e.getValue());
    }
    out.printf(Locale.ROOT, "  %-18s %,12d rows%n", "rejected", rejected);
    out.printf(Locale.ROOT, "  balance: rows in %,d = resources %,d + rejected %,d: %s%n", rowsIn(),
        resourcesTotal(), rejected, balanced() ? "OK" : "MISMATCH (" + String.join("; ", imbalances()) + ")");
    if (deployment != null) {
      out.printf(Locale.ROOT, "  environment: %s (%s)%n", deployment.name(), deployment.why());
    }
    if (skippedFiles != null) {
      skippedFiles.forEach((source, files) -> files.forEach((file, why) -> out.printf(Locale.ROOT,
          "  skipped (on_error: skip_file): source %s: %s%n", source, file)));
    }
    if (columnDrift != null) {
      columnDrift.forEach((source, files) -> files.forEach((file, lacks) -> out.printf(Locale.ROOT,
          "  column drift: source %s: %s lacks %s (null there)%n", source, file, String.join(", ", lacks))));
    }
    if (validation != null) {
      List<String> severities = new ArrayList<>();
      validation.bySeverity().forEach((k, v) -> severities.add(String.format(Locale.ROOT, "%,d %s", v, k)));
      out.printf(Locale.ROOT, "  validation (%s%s): %,d resources checked, %,d rejected; issues: %s%n",
          validation.mode(), validation.mode().equals("sample") ? " " + validation.sampleRate() : "",
          validation.validated(), validation.invalid(), severities.isEmpty() ? "none" : String.join(", ", severities));
    }
    if (profile) {
      List<String> parts = new ArrayList<>();
      stageSeconds.forEach((k, v) -> parts.add(String.format(Locale.ROOT, "%s %.2f s", k, v)));
      out.println("  stages: " + String.join(", ", parts));
      if (!loadSeconds.isEmpty()) {
        // The raw copies run beside the pipeline, so they are not part of the load_duckdb stage.
        out.println("  duckdb load (raw_data beside the pipeline):");
        loadSeconds.forEach((k, v) -> out.printf(Locale.ROOT, "    %-40s %7.2f s%n", k, v));
      }
      out.println("  per mapping (read, map and write are one DuckDB query per file):");
      for (MappingCount c : mappings) {
        out.printf(Locale.ROOT, "    %-28s %,10d rows in %,10d mapped %,8d rejected %7.2f s %,10d rows/s%n",
            c.mapping(), c.rowsIn(), c.mapped(), c.rejected(), c.seconds(),
            c.seconds() > 0 ? Math.round(c.rowsIn() / c.seconds()) : 0);
      }
    }
    if (delta != null) {
      List<String> versions = new ArrayList<>();
      delta.shown().forEach(t -> versions.add(t + " v" + delta.versions().get(t)));
      int others = delta.versions().size() - delta.shown().size();
      out.printf("  delta: %s (%s%s)%n", delta.location(), String.join(", ", versions), others == 0 ? ""
          : "; " + others + " more table" + (others == 1 ? "" : "s") + " in run-summary.json");
    }
    if (byManifest) {
      out.printf("  output: %s (run-summary.json, report/ and the files the manifest lists), committed by %s%n",
          ObjectStoreCommit.runPrefix(output, runId), ObjectStoreCommit.manifest(output));
      if (checks != null) {
        out.println("  quality checks: " + checks.line());
      }
      out.printf("  quality report: %sreport/quality.html%n", ObjectStoreCommit.runPrefix(output, runId));
      return;
    }
    Path outputDir = Path.of(output);
    out.printf("  output: %s (fhir/, %srejects/, report/, run-summary.json)%n", outputDir,
        java.nio.file.Files.isDirectory(outputDir.resolve("parquet")) ? "parquet/, " : "");
    if (database != null) {
      out.printf("  duckdb: %s%n", database);
      if (checks != null) {
        out.println("  quality checks: " + checks.line());
      }
      out.printf("  quality report: %s%n", outputDir.resolve("report").resolve("quality.html"));
    }
  }
}
