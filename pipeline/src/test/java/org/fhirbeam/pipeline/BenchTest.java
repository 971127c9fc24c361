package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.closeTo;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.fhirbeam.pipeline.bench.BenchAccess;
import org.fhirbeam.pipeline.bench.BenchData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs the benchmark command for real on a few hundred rows: separate processes taking turns, checks, table and
 * JSON; and checks that its DuckDB-only baseline writes what the pipeline writes.
 */
class BenchTest {
  @TempDir
  Path tmp;

  @Test
  void benchRunsEachCaseAsAProcessAndReportsMedians() throws Exception {
    Path json = tmp.resolve("bench.json");
    Cli r = Cli.run("bench", "--rows", "300", "--runs", "2", "--cases", "direct,duckdb-sql,analytics", "--data",
        tmp.resolve("data").toString(), "--json", json.toString(), "--java-opts", "-Xmx512m");
    assertThat(r.out() + r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("(medians of 2 run(s), the cases taking turns run by run; (d) = duckdb-sql"));
    // The cases take turns: a, b, c, a, b, c.
    List<String> order = r.out().lines().filter(l -> l.matches("  \\S+ +run \\d:.*"))
        .map(l -> l.strip().replaceAll(":.*", "").replaceAll(" +", " ")).toList();
    assertThat(order, equalTo(List.of("direct run 1", "duckdb-sql run 1", "analytics run 1", "direct run 2",
        "duckdb-sql run 2", "analytics run 2")));
    assertThat(Files.exists(tmp.resolve("data/patients-300.csv")), equalTo(true));
    assertThat(Files.exists(tmp.resolve("data/patients-300.parquet")), equalTo(true));
    JsonNode results = new ObjectMapper().readTree(json.toFile());
    assertThat(results.size(), equalTo(3));
    JsonNode direct = results.get(0);
    JsonNode baseline = results.get(1);
    assertThat(direct.get("case").asText(), equalTo("direct"));
    assertThat(direct.get("rows").asLong(), equalTo(300L));
    // Rows 0 (empty id) and 211 (1990-02-30) are the generator's only bad rows below 300; the baseline skips them
    // as the pipeline rejects them.
    assertThat(direct.get("resources").asLong(), equalTo(298L));
    assertThat(baseline.get("case").asText(), equalTo("duckdb-sql"));
    assertThat(baseline.get("resources").asLong(), equalTo(298L));
    // Each case's ratio is its throughput over the baseline's, from the medians of the same bench.
    assertThat(direct.get("ratio_to_duckdb").asDouble(),
        closeTo(baseline.get("wall_s").asDouble() / direct.get("wall_s").asDouble(), 1e-9));
    assertThat(direct.get("peak_rss_bytes").asLong(), greaterThan(0L));
    assertThat(baseline.get("peak_rss_bytes").asLong(), greaterThan(0L));
    assertThat(direct.get("wall_s").asDouble(), greaterThan(0.0));
    // The analytics case queried the database of a run on the same 300 rows: each query has a time.
    JsonNode analytics = results.get(2);
    assertThat(analytics.get("case").asText(), equalTo("analytics"));
    List<String> names = new ArrayList<>();
    analytics.get("query_median_ms").fieldNames().forEachRemaining(names::add);
    assertThat(names, equalTo(List.of(
        "count_by_gender", "count_by_age_band", "data_quality_report", "lookup_by_id")));
    for (JsonNode ms : analytics.get("query_median_ms")) {
      assertThat(ms.asDouble(), greaterThan(0.0));
    }
    assertThat(r.out(), containsString("analytics: queries on the DuckDB database of the 300-row Patient run"));
  }

  /**
   * The DuckDB-only baseline writes exactly the pipeline's resources from the same generated rows: the rows the
   * pipeline rejects skipped (ids empty or malformed, impossible dates), empty elements left out, line for line.
   * 3,300 rows hold every kind of bad row and a row with neither name (row 3,233).
   */
  @Test
  void theBaselineWritesThePipelinesResourcesLineForLine() throws Exception {
    Path csv = BenchData.csv(tmp.resolve("data"), 3300);
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--output", out.toString(), "--set", "sources.patients.path=" + csv, "--set",
        "sinks.duckdb.enabled=false", "--direct-checks");
    assertThat(r.err(), r.code(), equalTo(0));
    List<String> pipeline = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.toList()) {
        pipeline.addAll(Files.readAllLines(f, StandardCharsets.UTF_8));
      }
    }
    Path baselineFile = tmp.resolve("baseline.ndjson");
    long written = BenchAccess.baseline(csv.toString(), baselineFile.toString());
    List<String> baseline = new ArrayList<>(Files.readAllLines(baselineFile, StandardCharsets.UTF_8));
    pipeline.sort(null);
    baseline.sort(null);
    assertThat(written, equalTo(3300L - 22));
    assertThat(baseline.size(), equalTo(3300 - 22));
    assertThat(baseline, equalTo(pipeline));
  }

  /**
   * The baseline given a database writes the default job's tables of the same rows: the resource table (its typed
   * columns and JSON) and the raw rows, equal row for row.
   */
  @Test
  void theDatabaseBaselineWritesTheDefaultJobsTables() throws Exception {
    Path csv = BenchData.csv(tmp.resolve("data"), 3300);
    Path jobDb = tmp.resolve("job.db");
    Cli r = Cli.run("run", "--output", tmp.resolve("out").toString(), "--set", "sources.patients.path=" + csv,
        "--set", "duckdb.database=" + jobDb);
    assertThat(r.err(), r.code(), equalTo(0));
    Path baselineDb = tmp.resolve("baseline.db");
    assertThat(BenchAccess.baselineWithDatabase(csv.toString(), tmp.resolve("baseline.ndjson").toString(),
        baselineDb.toString()), equalTo(3300L - 22));
    String resources = "SELECT * EXCLUDE (resource), CAST(resource AS VARCHAR) FROM fhir_resources.patient ORDER BY id";
    String raw = "SELECT * EXCLUDE (_source_file) FROM raw_data.patients ORDER BY ALL";
    String columns = "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name IN"
        + " ('fhir_resources', 'raw_data') ORDER BY table_name, column_index";
    for (String query : List.of(resources, raw, columns)) {
      assertThat(query, rows(baselineDb, query), equalTo(rows(jobDb, query)));
    }
    assertThat(rows(baselineDb, "SELECT count(*) FROM fhir_resources.patient"), equalTo(List.of(List.of("3278"))));
  }

  private static List<List<String>> rows(Path db, String query) throws Exception {
    try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:duckdb:" + db);
        java.sql.Statement st = c.createStatement()) {
      return SinksTest.rows(st, query);
    }
  }

  @Test
  void medianOfOddAndEvenCounts() {
    assertThat(BenchAccess.median(new double[] {3, 1, 2}), equalTo(2.0));
    assertThat(BenchAccess.median(new double[] {4, 1, 3, 2}), equalTo(2.5));
  }
}
