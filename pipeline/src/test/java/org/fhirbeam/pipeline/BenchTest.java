package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Runs the benchmark command for real on a few hundred rows: separate processes, checks, table and JSON. */
class BenchTest {
  @TempDir
  Path tmp;

  @Test
  void benchRunsEachCaseAsAProcessAndReportsMedians() throws Exception {
    Path json = tmp.resolve("bench.json");
    Cli r = Cli.run("bench", "--rows", "300", "--runs", "1", "--cases", "direct,duckdb-sql,analytics", "--data",
        tmp.resolve("data").toString(), "--json", json.toString(), "--java-opts", "-Xmx512m");
    assertThat(r.out() + r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("(medians of 1 run(s); (d) = duckdb-sql"));
    assertThat(Files.exists(tmp.resolve("data/patients-300.csv")), equalTo(true));
    assertThat(Files.exists(tmp.resolve("data/patients-300.parquet")), equalTo(true));
    JsonNode results = new ObjectMapper().readTree(json.toFile());
    assertThat(results.size(), equalTo(3));
    JsonNode direct = results.get(0);
    JsonNode baseline = results.get(1);
    assertThat(direct.get("case").asText(), equalTo("direct"));
    assertThat(direct.get("rows").asLong(), equalTo(300L));
    // Rows 0 (empty id) and 211 (1990-02-30) are the generator's only bad rows below 300.
    assertThat(direct.get("resources").asLong(), equalTo(298L));
    assertThat(baseline.get("case").asText(), equalTo("duckdb-sql"));
    assertThat(baseline.get("resources").asLong(), equalTo(300L));
    assertThat(baseline.get("ratio_to_duckdb").asDouble(), equalTo(1.0));
    assertThat(direct.get("peak_rss_bytes").asLong(), greaterThan(0L));
    assertThat(direct.get("wall_s").asDouble(), greaterThan(0.0));
    // The analytics case queried the database of a run on the same 300 rows: each query has a time.
    JsonNode analytics = results.get(2);
    assertThat(analytics.get("case").asText(), equalTo("analytics"));
    List<String> names = new java.util.ArrayList<>();
    analytics.get("query_median_ms").fieldNames().forEachRemaining(names::add);
    assertThat(names, equalTo(List.of(
        "count_by_gender", "count_by_age_band", "data_quality_report", "lookup_by_id")));
    for (JsonNode ms : analytics.get("query_median_ms")) {
      assertThat(ms.asDouble(), greaterThan(0.0));
    }
    assertThat(r.out(), containsString("analytics: queries on the DuckDB database of the 300-row Patient run"));
  }

  @Test
  void medianOfOddAndEvenCounts() {
    assertThat(org.fhirbeam.pipeline.bench.BenchAccess.median(new double[] {3, 1, 2}), equalTo(2.0));
    assertThat(org.fhirbeam.pipeline.bench.BenchAccess.median(new double[] {4, 1, 3, 2}), equalTo(2.5));
  }
}
