package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * What a run did, counted by the pipeline: rows in per source, resources out per type, rows rejected, and the
 * balance {@code rows_in == sum(resources_out) + rejected}. Written as {@code run-summary.json} and printed.
 */
public record RunSummary(String runId, String runner, String config, Map<String, Long> rowsInBySource,
    Map<String, Long> resourcesOut, long rejected, double elapsedSeconds, Map<String, Long> duckdbTables,
    String database) {

  public long rowsIn() {
    return rowsInBySource.values().stream().mapToLong(Long::longValue).sum();
  }

  public long resourcesTotal() {
    return resourcesOut.values().stream().mapToLong(Long::longValue).sum();
  }

  public boolean balanced() {
    return rowsIn() == resourcesTotal() + rejected;
  }

  public double rowsPerSecond() {
    return elapsedSeconds <= 0 ? 0 : rowsIn() / elapsedSeconds;
  }

  Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("run_id", runId);
    m.put("runner", runner);
    m.put("config", config);
    m.put("rows_in", rowsIn());
    m.put("rows_in_by_source", rowsInBySource);
    m.put("resources_out", resourcesOut);
    m.put("rejected", rejected);
    m.put("balanced", balanced());
    m.put("elapsed_s", Math.round(elapsedSeconds * 1000) / 1000.0);
    m.put("rows_per_s", Math.round(rowsPerSecond()));
    if (database != null) {
      Map<String, Object> db = new LinkedHashMap<>();
      db.put("database", database);
      db.put("tables", duckdbTables);
      m.put("duckdb", db);
    }
    return m;
  }

  void write(Path file) throws IOException {
    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(file.toFile(), toJson());
  }

  /** The short human summary printed at the end of a run. */
  void print(PrintStream out, Path outputDir) {
    out.printf(Locale.ROOT, "Run %s on %s: %,d rows in %.1f s (%,d rows/s)%n", runId, runner, rowsIn(),
        elapsedSeconds, Math.round(rowsPerSecond()));
    for (Map.Entry<String, Long> e : resourcesOut.entrySet()) {
      out.printf(Locale.ROOT, "  %-18s %,12d resources%n", e.getKey(), e.getValue());
    }
    out.printf(Locale.ROOT, "  %-18s %,12d rows%n", "rejected", rejected);
    out.printf(Locale.ROOT, "  balance: rows in %,d = resources %,d + rejected %,d: %s%n", rowsIn(),
        resourcesTotal(), rejected, balanced() ? "OK" : "MISMATCH");
    out.printf("  output: %s (fhir/, rejects/, run-summary.json)%n", outputDir);
    if (database != null) {
      out.printf("  duckdb: %s%n", database);
    }
  }
}
