package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tables named by catalog, written through the job's own Spark session: here the test's local session with
 * delta-spark, whose session catalog ({@code spark_catalog}) takes the three-part names as Unity Catalog does on
 * Databricks. The default job overwrites, appends, then upserts changed rows, each run read back by the session.
 */
class DeltaCatalogTest {
  @TempDir
  static Path tmp;

  static SparkSession spark;
  static final Map<String, Cli> RUNS = new TreeMap<>();
  static final Map<String, List<String>> RESOURCES = new TreeMap<>();

  @BeforeAll
  static void runs() throws IOException {
    spark = DeltaReader.start("catalog", tmp);
    String csv = Files.readString(DefaultJobTest.HOME.resolve("testdata/patients/patients.csv"));
    Path changed = Files.writeString(tmp.resolve("changed.csv"), csv.replace("p001,Maria,Garcia,",
        "p001,Maria,Garcia-Lopez,") + "p099,Ada,Lovelace,1815-12-10,F\n");
    run("a", "overwrite");
    run("b", "append");
    run("c", "upsert", "--set", "sources.patients.path=" + changed);
    run("renamed", "overwrite", "--set", "sinks.delta.schema=fhir", "--set", "sinks.delta.raw_schema=raw", "--set",
        "sinks.delta.transformed_schema=mapped", "--set", "sinks.delta.quality_schema=dq");
  }

  @AfterAll
  static void stop() {
    if (spark != null) {
      spark.stop();
    }
  }

  static void run(String name, String mode, String... more) throws IOException {
    // With the DuckDB database, whose quality figures the quality tables take.
    List<String> args = new ArrayList<>(List.of("run", "--output", tmp.resolve(name).toString(), "--set",
        "duckdb.database=" + tmp.resolve(name + ".db"), "--set", "sinks.delta={enabled: true, catalog: spark_catalog,"
            + " raw_copy: true, mode: " + mode + "}"));
    args.addAll(List.of(more));
    Cli r = Cli.run(args.toArray(String[]::new));
    assertThat(r.err(), r.code(), equalTo(0));
    RUNS.put(name, r);
    RESOURCES.put(name, DeltaSinkTest.ndjson(tmp.resolve(name).resolve("fhir")).get("Patient"));
  }

  static List<String> resources(long version) {
    List<String> out = new ArrayList<>(spark.read().option("versionAsOf", version)
        .table("spark_catalog.fhir_resources.patient").select("resource")
        .as(org.apache.spark.sql.Encoders.STRING()).collectAsList());
    out.sort(null);
    return out;
  }

  @Test
  void eachRunIsOneVersionOfTheCatalogsTables() throws IOException {
    assertThat(RUNS.get("a").out(), containsString("  delta: spark_catalog (spark_catalog.fhir_resources.patient v0,"
        + " spark_catalog.quality.rejects v0; 8 more tables in run-summary.json)"));
    List<Row> history = spark.sql("DESCRIBE HISTORY spark_catalog.fhir_resources.patient").orderBy("version")
        .select("version", "operation").collectAsList();
    assertThat(history.toString(), equalTo("[[0,CREATE OR REPLACE TABLE AS SELECT], [1,WRITE], [2,MERGE]]"));
    assertThat(resources(0), equalTo(RESOURCES.get("a")));
    List<String> twice = new ArrayList<>(RESOURCES.get("a"));
    twice.addAll(RESOURCES.get("b"));
    twice.sort(null);
    assertThat(resources(1), equalTo(twice));
    // The latest run's rejects: those of the changed CSV alone.
    assertThat(spark.table("spark_catalog.quality.rejects").count(), equalTo((long) DeltaSinkTest.ndjson(
        tmp.resolve("c/rejects")).get("rejects").size()));
    assertThat(spark.table("spark_catalog.quality.rejects").count(), equalTo(5L));
    String comment = spark.sql("DESCRIBE TABLE EXTENDED spark_catalog.fhir_resources.patient")
        .filter("col_name = 'Comment'").select("data_type").as(org.apache.spark.sql.Encoders.STRING()).first();
    assertThat(comment, equalTo("FHIR R4 patient resources of mapping patient (fhirbeam job default)"));
    List<String> tuning = spark.sql("SHOW TBLPROPERTIES spark_catalog.fhir_resources.patient")
        .filter("key LIKE 'delta.autoOptimize.%'").selectExpr("concat(key, '=', value)")
        .as(org.apache.spark.sql.Encoders.STRING()).collectAsList();
    assertThat(tuning.stream().sorted().toList(), equalTo(List.of("delta.autoOptimize.autoCompact=true",
        "delta.autoOptimize.optimizeWrite=true")));
  }

  @Test
  void anUpsertIsAMergeOnId() {
    // Appended twice, each id is there twice; the merge replaces both rows of a changed id, adds the new one.
    Map<String, List<String>> byId = new TreeMap<>();
    for (String r : resources(1)) {
      byId.computeIfAbsent(DeltaSourceTest.ids(List.of(r)).get(0), k -> new ArrayList<>()).add(r);
    }
    for (String r : RESOURCES.get("c")) {
      String id = DeltaSourceTest.ids(List.of(r)).get(0);
      byId.put(id, byId.containsKey(id) ? List.of(r, r) : List.of(r));
    }
    List<String> expected = new ArrayList<>();
    byId.values().forEach(expected::addAll);
    expected.sort(null);
    assertThat(resources(2), equalTo(expected));
    assertThat(expected.size(), equalTo(69));
  }

  @Test
  void theMappingsViewTheRawRowsAndTheQualityHistoryAreInTheCatalogToo() {
    // transformed_data: a view of the resource table, with the mapping's columns.
    assertThat(spark.table("spark_catalog.transformed_data.patient").collectAsList().stream().map(Row::toString)
        .sorted().toList(), equalTo(spark.table("spark_catalog.fhir_resources.patient").select("id", "gender",
        "birth_date").collectAsList().stream().map(Row::toString).sorted().toList()));
    assertThat(spark.sql("DESCRIBE TABLE EXTENDED spark_catalog.transformed_data.patient").filter("col_name = 'Type'")
        .select("data_type").as(org.apache.spark.sql.Encoders.STRING()).first(), equalTo("VIEW"));
    // raw_data: the latest run's rows, as read (the changed CSV: its 20 rows and one more).
    assertThat(spark.table("spark_catalog.raw_data.patients").count(), equalTo(21L));
    assertThat(List.of(spark.table("spark_catalog.raw_data.patients").columns()), equalTo(List.of("patient_id",
        "first_name", "last_name", "birth_date", "gender", "_source_file")));
    // quality: a row per run, appended; one version per run.
    assertThat(spark.table("spark_catalog.quality.runs").selectExpr("concat(rows_in, '|', resources, '|', rejected)")
        .as(org.apache.spark.sql.Encoders.STRING()).collectAsList().stream().sorted().toList(),
        equalTo(List.of("21|16|5", "40|34|6", "40|34|6")));
    assertThat(spark.sql("DESCRIBE HISTORY spark_catalog.quality.runs").count(), equalTo(3L));
  }

  @Test
  void eachSchemaCanHaveAnotherNameInTheCatalog() {
    assertThat(RUNS.get("renamed").out(), containsString("  delta: spark_catalog (spark_catalog.fhir.patient v0,"
        + " spark_catalog.dq.rejects v0; 8 more tables in run-summary.json)"));
    assertThat(spark.table("spark_catalog.fhir.patient").count(), equalTo(34L));
    assertThat(spark.table("spark_catalog.mapped.patient").count(), equalTo(34L));
    assertThat(spark.table("spark_catalog.raw.patients").count(), equalTo(40L));
    assertThat(spark.table("spark_catalog.dq.rejects").count(), equalTo(6L));
    assertThat(spark.table("spark_catalog.dq.runs").selectExpr("concat(rows_in, '|', resources, '|', rejected)")
        .as(org.apache.spark.sql.Encoders.STRING()).collectAsList(), equalTo(List.of("40|34|6")));
  }
}
