package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.is;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Delta table as a streaming source, written by an independent Delta implementation (Spark 3.5 with delta-spark,
 * local mode) while the job reads it: rows appended in three commits reach the outputs once each, across runs that
 * resume where the last one committed, in the middle of a version too; and they give the resources the same rows
 * give as a CSV file.
 */
class DeltaStreamTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  static Path tmp;

  /** The writer (a Spark session of this JVM), and the CSV's rows it writes; stopped before a run on Spark. */
  SparkSession spark;
  Dataset<Row> rows;

  @BeforeEach
  void start() {
    spark = DeltaReader.start("delta-stream-writer", tmp);
    rows = spark.read().option("header", "true").csv(DeltaSourceTest.CSV.toString());
  }

  @AfterEach
  void stop() {
    spark.stop();
  }

  /** The resources and rejects (rule and reason) the default job gives the same rows as a CSV file. */
  private static List<List<String>> fromCsv() throws IOException {
    Path csvOut = tmp.resolve("csv-out");
    if (!Files.exists(csvOut)) {
      run(DefaultJobTest.HOME.resolve("config/pipelines/default.yaml"), csvOut, "--set",
          "sources.patients.path=" + DeltaSourceTest.CSV, "--set", "sinks.duckdb.enabled=false");
    }
    return List.of(lines(csvOut.resolve("fhir")).stream().sorted().toList(), reasons(csvOut));
  }

  private static List<String> reasons(Path out) throws IOException {
    List<String> reasons = new ArrayList<>();
    for (String l : lines(out.resolve("rejects"))) {
      JsonNode r = JSON.readTree(l);
      reasons.add(r.get("rule").asText() + " " + r.get("reason").asText());
    }
    reasons.sort(null);
    return reasons;
  }

  private static Path config(String name, Path table) throws IOException {
    return Files.writeString(tmp.resolve(name + ".yaml"), """
        name: %s
        duckdb:
          database: %s
          memory_limit: 256MB
        sources:
          patients:
            delta: {table: %s, streaming: true, poll: 200ms}
        mappings:
          - %s
        streaming:
          window: 1s
        """.formatted(name, tmp.resolve(name + ".db"), table, DefaultJobTest.HOME.resolve(
        "config/mappings/patient.yaml")));
  }

  private static Cli run(Path cfg, Path out, String... options) {
    List<String> args = new ArrayList<>(List.of("run", "--config", cfg.toString(), "--output", out.toString()));
    args.addAll(List.of(options));
    Cli r = Cli.run(args.toArray(String[]::new));
    assertThat(r.err(), r.code(), is(0));
    return r;
  }

  private static List<String> lines(Path folder) throws IOException {
    List<String> out = new ArrayList<>();
    if (Files.isDirectory(folder)) {
      try (Stream<Path> files = Files.list(folder)) {
        for (Path f : files.sorted().toList()) {
          out.addAll(Files.readAllLines(f));
        }
      }
    }
    return out;
  }

  @Test
  void rowsAppendedInThreeCommitsReachTheOutputsOnceAcrossRuns() throws Exception {
    Path table = tmp.resolve("patient_updates");
    Dataset<Row> first = rows.filter("patient_id <= 'p007'");
    first.coalesce(1).write().format("delta").save(table.toString());
    Path cfg = config("updates", table);
    Path out = tmp.resolve("updates-out");

    // Version 0 alone; then versions 1 and 2, read by a run that stops after 5 records (in version 1) and one that
    // reads the rest; then a run that finds nothing new.
    assertThat(run(cfg, out, "--drain").out(), containsString("balance: rows in " + first.count() + " = resources"));
    rows.filter("patient_id > 'p007' AND patient_id <= 'p014'").coalesce(1).write().format("delta")
        .mode(SaveMode.Append).save(table.toString());
    // The rows without an id too.
    rows.filter("patient_id IS NULL OR patient_id > 'p014'").coalesce(1).write().format("delta")
        .mode(SaveMode.Append).save(table.toString());
    assertThat(run(cfg, out, "--max-records", "5").out(), containsString("balance: rows in 5 = resources"));
    assertThat(run(cfg, out, "--drain").out(), containsString("balance: rows in " + (rows.count() - first.count()
        - 5) + " = resources"));
    assertThat(run(cfg, out, "--drain").err(), containsString(": 0 windows committed"));

    // The resources and rejects the same rows give as a CSV file, byte for byte.
    List<List<String>> expected = fromCsv();
    assertThat(expected.get(0).size(), is(15));
    assertThat(lines(out.resolve("fhir")).stream().sorted().toList(), equalTo(expected.get(0)));
    assertThat(reasons(out), equalTo(expected.get(1)));
    for (String l : lines(out.resolve("rejects"))) {
      assertThat(JSON.readTree(l).get("topic").asText(), equalTo(table.toString()));
    }

    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("updates.db"));
        Statement st = db.createStatement()) {
      // Every row once: its offset is its version times 10^9 plus its row in the version.
      assertThat(single(st, "SELECT sum(records) FROM quality.stream_positions"), is(rows.count()));
      assertThat(single(st, "SELECT max(next_offset) FROM quality.stream_positions"), is(3_000_000_000L));
      assertThat(single(st, "SELECT count(*) FROM (SELECT from_offset, lag(next_offset) OVER (ORDER BY"
          + " from_offset) AS before FROM quality.stream_positions) WHERE before IS NOT NULL AND before <>"
          + " from_offset"), is(0L));
      assertThat(single(st, "SELECT count(*) FROM quality.rejects WHERE \"offset\" // 1000000000 NOT IN (0, 1, 2)"),
          is(0L));
      assertThat(single(st, "SELECT count(*) FROM fhir_resources.patient"), is(15L));
    }

    // A version that rewrites rows stops the stream: it reads appended rows only.
    rows.filter("patient_id <= 'p003'").coalesce(1).write().format("delta").mode(SaveMode.Overwrite)
        .save(table.toString());
    Cli refused = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--drain");
    assertThat(refused.code() == 0, is(false));
    assertThat(refused.err(), containsString("the Delta table " + table + ": version 3 removes rows (an overwrite,"
        + " a delete, an update or a compaction), and a streaming read takes appended rows only"));
  }

  @Test
  void onSparkTheTableGivesTheSameResources() throws Exception {
    Path table = tmp.resolve("spark_updates");
    rows.filter("patient_id <= 'p010'").coalesce(1).write().format("delta").save(table.toString());
    rows.filter("patient_id IS NULL OR patient_id > 'p010'").coalesce(1).write().format("delta")
        .mode(SaveMode.Append).save(table.toString());
    long total = rows.count();
    spark.stop(); // the run's Spark context is the only one this JVM may have
    Path out = tmp.resolve("spark-out");
    assertThat(run(config("spark_updates", table), out, "--runner", "spark", "--drain").out(),
        containsString("balance: rows in " + total + " = resources"));
    List<List<String>> expected = fromCsv();
    assertThat(lines(out.resolve("fhir")).stream().sorted().toList(), equalTo(expected.get(0)));
    assertThat(reasons(out), equalTo(expected.get(1)));
    spark = DeltaReader.start("delta-stream-writer", tmp);
  }

  private static long single(Statement st, String sql) throws Exception {
    try (ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }
}
