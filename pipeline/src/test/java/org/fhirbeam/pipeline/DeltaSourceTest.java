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
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Delta table as the source of the default job, written by an independent Delta implementation (Spark 3.5 with
 * delta-spark, local mode): the sample CSV's first ten rows as version 0, the other ten appended as version 1. Read
 * whole, it gives the resources the CSV gives; as of version 0, the first ten rows' resources; since version 0, the
 * other ten's.
 */
class DeltaSourceTest {
  static final Path CSV = DefaultJobTest.HOME.resolve("testdata/patients/patients.csv");

  @TempDir
  static Path tmp;

  static SparkSession spark;
  static Path table;

  @BeforeAll
  static void writeTable() {
    spark = DeltaReader.start("delta-writer", tmp);
    Dataset<Row> rows = spark.read().option("header", "true").csv(CSV.toString());
    table = tmp.resolve("raw_patients");
    rows.filter("patient_id <= 'p010'").coalesce(1).write().format("delta").save(table.toString());
    rows.filter("patient_id > 'p010'").coalesce(1).write().format("delta").mode(SaveMode.Append)
        .save(table.toString());
  }

  @AfterAll
  static void stop() {
    if (spark != null) {
      spark.stop();
    }
  }

  /** The default job on {@code source} settings; returns its Patient resources, sorted, and prints the summary. */
  static List<String> run(String name, String... source) throws IOException {
    List<String> args = new ArrayList<>(List.of("run", "--output", tmp.resolve(name).toString(), "--set",
        "sinks.duckdb.enabled=false"));
    for (String s : source) {
      args.add("--set");
      args.add(s);
    }
    Cli r = Cli.run(args.toArray(String[]::new));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString(": OK"));
    Map<String, List<String>> fhir = DeltaSinkTest.ndjson(tmp.resolve(name).resolve("fhir"));
    return fhir.getOrDefault("Patient", List.of());
  }

  static List<String> ids(List<String> resources) {
    List<String> ids = new ArrayList<>();
    resources.forEach(r -> ids.add(r.replaceFirst(".*?\"id\":\"([^\"]+)\".*", "$1")));
    ids.sort(null);
    return ids;
  }

  @Test
  void theWholeTableGivesWhatItsCsvGives() throws IOException {
    List<String> fromCsv = run("csv", "sources.patients.path=" + CSV);
    assertThat(fromCsv.size(), equalTo(15));
    assertThat(run("delta", "sources.patients={delta: {table: " + table + "}}"), equalTo(fromCsv));
  }

  @Test
  void timeTravelAndTheRowsAddedSinceAVersion() throws IOException {
    List<String> first = run("v0", "sources.patients={delta: {table: " + table + ", version: 0}}");
    List<String> added = run("since0", "sources.patients={delta: {table: " + table + ", since_version: 0}}");
    List<String> all = new ArrayList<>(first);
    all.addAll(added);
    all.sort(null);
    assertThat(all, equalTo(run("latest", "sources.patients={delta: {table: " + table + "}}")));
    assertThat(ids(first).get(0), equalTo("p001"));
    assertThat(ids(added).get(0), equalTo("p011"));
    assertThat(ids(first).contains("p011"), equalTo(false));
  }

  @Test
  void tablesWhoseFilesDoNotHoldTheirRowsAreRefused() throws IOException {
    Path partitioned = tmp.resolve("partitioned");
    spark.read().option("header", "true").csv(CSV.toString()).write().format("delta").partitionBy("gender")
        .save(partitioned.toString());
    Cli r = Cli.run("run", "--output", tmp.resolve("refused").toString(), "--set", "sinks.duckdb.enabled=false",
        "--set", "sources.patients={delta: {table: " + partitioned + "}}");
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString("sources.patients.delta.table: the Delta table " + partitioned
        + " is partitioned (by gender), which this reader does not support yet"));
    Cli overwritten = Cli.run("run", "--output", tmp.resolve("refused").toString(), "--set",
        "sinks.duckdb.enabled=false", "--set", "sources.patients={delta: {table: " + tmp.resolve("nothing") + "}}");
    assertThat(overwritten.code(), equalTo(2));
    assertThat(overwritten.err(), containsString("no Delta table at " + tmp.resolve("nothing")));
  }
}
