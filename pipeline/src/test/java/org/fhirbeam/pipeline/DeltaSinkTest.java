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
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructField;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Delta sink, read back by an independent Delta implementation: Spark 3.5 with delta-spark, in local mode. The
 * runs go first (the Spark runner's run needs the JVM's one Spark context), then one reading session checks every
 * table: rows, columns, history, time travel, and the same resources as the run's NDJSON files.
 */
class DeltaSinkTest {
  @TempDir
  static Path tmp;

  static SparkSession spark;
  /** By scenario, the NDJSON files of the run's output, by resource type: every line. */
  static final Map<String, Map<String, List<String>>> NDJSON = new TreeMap<>();
  /** By scenario, the reject records of the run's output, sorted. */
  static final Map<String, List<String>> REJECTS = new TreeMap<>();
  /** After the killed run: by table, its log's commit files; and the ledgers left. */
  static Map<String, List<String>> logsAfterKill;
  static List<String> ledgersAfterKill;

  @BeforeAll
  static void runThenRead() throws Exception {
    run("synthea-direct", "direct", synthea("overwrite"));
    run("synthea spark", "spark", synthea("overwrite"));
    // The default job: overwrite, append, overwrite; then upserts of changed rows, twice.
    for (String[] r : new String[][] {{"a", "overwrite"}, {"b", "append"}, {"c", "overwrite"}}) {
      run("history-" + r[0], "direct", List.of("--set", "sinks.delta.mode=" + r[1]), "history");
    }
    String csv = Files.readString(DefaultJobTest.HOME.resolve("testdata/patients/patients.csv"));
    Path changed = Files.writeString(tmp.resolve("changed.csv"), csv.replace("p001,Maria,Garcia,",
        "p001,Maria,Garcia-Lopez,") + "p099,Ada,Lovelace,1815-12-10,F\n");
    for (String r : List.of("d", "e")) {
      run("history-" + r, "direct", List.of("--set", "sinks.delta.mode=upsert", "--set",
          "sources.patients.path=" + changed), "history");
    }
    // A run halted after committing its first table, then the next run.
    killed("killed", synthea("append"));
    logsAfterKill = logs(tmp.resolve("killed-delta"));
    try (Stream<Path> s = Files.list(tmp.resolve("killed-delta/_fhirbeam/commits"))) {
      ledgersAfterKill = s.map(p -> p.getFileName().toString()).toList();
    }
    run("after-kill", "direct", synthea("append"), "killed");
    spark = DeltaReader.start("delta-reader", tmp);
  }

  @AfterAll
  static void stop() {
    if (spark != null) {
      spark.stop();
    }
  }

  static List<String> synthea(String mode) {
    return List.of("--config", SyntheaJobTest.CONFIG.toString(), "--set", "validation.mode=off",
        "--set", "sinks.delta.mode=" + mode);
  }

  static void run(String scenario, String runner, List<String> options) throws IOException {
    run(scenario, runner, options, scenario);
  }

  /** Runs the job into output {@code <scenario>-out} and Delta tables {@code <tables>-delta}. */
  static void run(String scenario, String runner, List<String> options, String tables) throws IOException {
    List<String> args = new ArrayList<>(List.of("run", "--runner", runner, "--output",
        tmp.resolve(scenario + "-out").toString(), "--set", "duckdb.database=" + tmp.resolve(scenario + ".db"),
        "--set", "sinks.delta.enabled=true", "--set", "sinks.delta.location=" + tmp.resolve(tables + "-delta"),
        "--set", "sinks.delta.raw_copy=true"));
    args.addAll(options);
    Cli r = Cli.run(args.toArray(String[]::new));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("  delta: " + tmp.resolve(tables + "-delta")));
    NDJSON.put(scenario, ndjson(tmp.resolve(scenario + "-out/fhir")));
    REJECTS.put(scenario, ndjson(tmp.resolve(scenario + "-out/rejects")).get("rejects"));
  }

  /** The run in a JVM of its own that halts (as if killed) once it has committed its first table. */
  static void killed(String scenario, List<String> options) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-D" + DeltaCommit.HALT_AFTER_TABLES + "=1", "-cp", System.getProperty("java.class.path"),
        FhirBeam.class.getName(), "run", "--output", tmp.resolve(scenario + "-out").toString(),
        "--set", "duckdb.database=" + tmp.resolve(scenario + ".db"), "--set", "sinks.delta.enabled=true",
        "--set", "sinks.delta.location=" + tmp.resolve(scenario + "-delta")));
    cmd.addAll(options);
    Process p = new ProcessBuilder(cmd).redirectOutput(tmp.resolve("killed.out").toFile())
        .redirectError(tmp.resolve("killed.err").toFile()).start();
    try {
      assertThat(p.waitFor(180, TimeUnit.SECONDS), equalTo(true));
      assertThat(Files.readString(tmp.resolve("killed.err")), p.exitValue(), equalTo(137));
    } finally {
      p.destroyForcibly();
    }
  }

  static Map<String, List<String>> ndjson(Path fhir) throws IOException {
    Map<String, List<String>> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(fhir)) {
      for (Path f : s.sorted().toList()) {
        String type = f.getFileName().toString().substring(0, f.getFileName().toString().indexOf('-'));
        out.computeIfAbsent(type, t -> new ArrayList<>()).addAll(Files.readAllLines(f));
      }
    }
    out.values().forEach(l -> l.sort(null));
    return out;
  }

  /** By table folder ({@code fhir_resources/<type>}), the commit files of its log. */
  static Map<String, List<String>> logs(Path delta) throws IOException {
    Map<String, List<String>> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(delta.resolve("fhir_resources"))) {
      for (Path table : s.toList()) {
        Path log = table.resolve("_delta_log");
        List<String> commits = new ArrayList<>();
        if (Files.isDirectory(log)) {
          try (Stream<Path> l = Files.list(log)) {
            l.map(p -> p.getFileName().toString()).filter(n -> n.matches("\\d{20}\\.json")).sorted()
                .forEach(commits::add);
          }
        }
        out.put(table.getFileName().toString(), commits);
      }
    }
    return out;
  }

  static Dataset<Row> table(String delta, String type, Long version) {
    var reader = spark.read().format("delta");
    if (version != null) {
      reader = reader.option("versionAsOf", version);
    }
    return reader.load(tmp.resolve(delta + "-delta/fhir_resources/" + type.toLowerCase()).toString());
  }

  static List<String> resources(Dataset<Row> table) {
    List<String> out = new ArrayList<>(table.select("resource").as(org.apache.spark.sql.Encoders.STRING())
        .collectAsList());
    out.sort(null);
    return out;
  }

  @Test
  void everyTableHoldsTheRunsResourcesOnBothRunners() {
    for (String scenario : List.of("synthea-direct", "synthea spark")) {
      Map<String, List<String>> expected = NDJSON.get(scenario);
      assertThat(expected.keySet().size(), equalTo(10));
      expected.forEach((type, lines) -> assertThat(scenario + " " + type, resources(table(scenario, type, null)),
          equalTo(lines)));
    }
    assertThat(NDJSON.get("synthea spark"), equalTo(NDJSON.get("synthea-direct")));
    // In a folder with a space in its name, a mapping's table names its type's files by their absolute paths.
    assertThat(spark.read().format("delta").load(tmp.resolve("synthea spark-delta/transformed_data/synthea_patient")
        .toString()).count(), equalTo((long) NDJSON.get("synthea spark").get("Patient").size()));
  }

  @Test
  void theRunsRejectsAreInQualityRejectsWithTheirRowsAsInDuckDb() {
    for (String scenario : List.of("synthea-direct", "synthea spark")) {
      Dataset<Row> rejects = spark.read().format("delta").load(tmp.resolve(scenario + "-delta/quality/rejects")
          .toString());
      List<String> columns = new ArrayList<>();
      for (StructField f : rejects.schema().fields()) {
        columns.add(f.name() + " " + f.dataType().simpleString());
      }
      assertThat(columns, equalTo(List.of("run_id string", "source string", "file string", "line bigint",
          "row_number bigint", "key string", "stage string", "mapping string", "element string", "rule string",
          "reason string", "row_json string")));
      // Each reject record of the run's output, by its file, line, rule and reason.
      List<String> expected = new ArrayList<>();
      for (String r : REJECTS.get(scenario)) {
        expected.add(r.replaceFirst(".*\"file\":\"([^\"]*)\".*\"line\":(\\d+).*\"rule\":\"([^\"]*)\".*",
            "$1:$2 $3"));
      }
      expected.sort(null);
      List<String> actual = new ArrayList<>(rejects.selectExpr("concat(file, ':', line, ' ', rule)")
          .as(org.apache.spark.sql.Encoders.STRING()).collectAsList());
      actual.sort(null);
      assertThat(actual, equalTo(expected));
      assertThat(actual.size(), equalTo(2));
    }
    // The default job's history table: each run's rejects replace the previous run's.
    Dataset<Row> latest = spark.read().format("delta").load(tmp.resolve("history-delta/quality/rejects").toString());
    assertThat(latest.count(), equalTo((long) REJECTS.get("history-e").size()));
  }

  @Test
  void tablesHaveTheParquetSinksTypedColumns() throws IOException {
    List<String> columns = new ArrayList<>();
    for (StructField f : table("synthea-direct", "Patient", null).schema().fields()) {
      columns.add(f.name() + " " + f.dataType().simpleString());
    }
    assertThat(columns, equalTo(List.of("id string", "last_updated timestamp", "source_key string",
        "gender string", "birth_date date", "deceased_date_time string", "resource string")));
    // One file per table and run: the parts of the three sample files are merged.
    assertThat(table("history", "Patient", 0L).inputFiles().length, equalTo(1));
    // Statistics of the key columns only: no birth date, no resource, in the log.
    List<String> indexed = new ArrayList<>();
    for (String action : Files.readAllLines(tmp.resolve("history-delta/fhir_resources/patient/_delta_log/"
        + "00000000000000000000.json"))) {
      var add = new com.fasterxml.jackson.databind.ObjectMapper().readTree(action).get("add");
      if (add != null) {
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(add.get("stats").asText()).get("minValues")
            .fieldNames().forEachRemaining(indexed::add);
      }
    }
    assertThat(indexed, equalTo(List.of("id", "last_updated", "source_key")));
  }

  @Test
  void oneVersionPerRunWithTimeTravelToEachEarlierRun() {
    List<Row> history = spark.sql("DESCRIBE HISTORY delta.`" + tmp.resolve("history-delta/fhir_resources/patient")
        + "`").orderBy("version").select("version", "operation").collectAsList();
    assertThat(history.toString(), equalTo("[[0,CREATE TABLE], [1,WRITE], [2,REPLACE TABLE], [3,REPLACE TABLE],"
        + " [4,REPLACE TABLE]]"));
    List<String> a = NDJSON.get("history-a").get("Patient");
    List<String> both = new ArrayList<>(a);
    both.addAll(NDJSON.get("history-b").get("Patient"));
    both.sort(null);
    assertThat(resources(table("history", "Patient", 0L)), equalTo(a));
    assertThat(resources(table("history", "Patient", 1L)), equalTo(both));
    assertThat(resources(table("history", "Patient", 2L)), equalTo(NDJSON.get("history-c").get("Patient")));
    assertThat(a.size(), equalTo(34));
  }

  @Test
  void anUpsertKeepsOneResourcePerIdTheRunsReplacingTheTables() {
    // Without meta.lastUpdated, the run's resource wins: run c's resources, those of the changed rows replaced.
    Map<String, String> byId = new TreeMap<>();
    NDJSON.get("history-c").get("Patient").forEach(r -> byId.put(DeltaSourceTest.ids(List.of(r)).get(0), r));
    List<String> changed = NDJSON.get("history-d").get("Patient");
    changed.forEach(r -> byId.put(DeltaSourceTest.ids(List.of(r)).get(0), r));
    List<String> expected = new ArrayList<>(byId.values());
    expected.sort(null);
    assertThat(resources(table("history", "Patient", 3L)), equalTo(expected));
    // The same rows again: the same table.
    assertThat(resources(table("history", "Patient", 4L)), equalTo(expected));
    assertThat(expected.size(), equalTo(35));
    assertThat(expected.stream().filter(r -> r.contains("Garcia-Lopez")).count(), equalTo(1L));
  }

  @Test
  void aRunKilledWhileCommittingIsCompletedOnceByTheNextRun() throws IOException {
    // Killed once its first table was committed (the test's halt commits one table at a time): that table holds
    // the run, the other tables nothing yet, and the ledger is left.
    long holding = logsAfterKill.values().stream().filter(c -> c.equals(List.of("00000000000000000000.json")))
        .count();
    long empty = logsAfterKill.values().stream().filter(List::isEmpty).count();
    assertThat(logsAfterKill.toString(), holding == 1 && empty == 9, equalTo(true));
    assertThat(ledgersAfterKill.size(), equalTo(1));
    // The next run completed the killed run's commit (without adding it twice to the first table), then its own.
    Map<String, List<String>> after = NDJSON.get("after-kill");
    after.forEach((type, lines) -> {
      List<String> twice = new ArrayList<>(lines);
      twice.addAll(lines);
      twice.sort(null);
      assertThat(type, resources(table("killed", type, null)), equalTo(twice));
      assertThat(type, resources(table("killed", type, 0L)), equalTo(lines));
    });
    logs(tmp.resolve("killed-delta")).forEach((table, commits) -> assertThat(table, commits,
        equalTo(List.of("00000000000000000000.json", "00000000000000000001.json"))));
    assertThat(tmp.resolve("killed-delta/_fhirbeam/commits").toFile().list().length, equalTo(0));
  }

  /** Every row of {@code table} (a path under the test's folder), its columns' values as text, sorted. */
  static List<String> deltaRows(String table, List<String> columns, String where) {
    List<String> values = new ArrayList<>();
    columns.forEach(c -> values.add("coalesce(cast(`" + c + "` as string), 'NULL')"));
    List<String> out = new ArrayList<>(spark.read().format("delta").load(tmp.resolve(table).toString()).where(where)
        .selectExpr("concat_ws('|', " + String.join(", ", values) + ")").as(org.apache.spark.sql.Encoders.STRING())
        .collectAsList());
    out.sort(null);
    return out;
  }

  /** The same of a table of a run's DuckDB database. */
  static List<String> duckDbRows(String scenario, String table, List<String> columns) throws java.sql.SQLException {
    List<String> values = new ArrayList<>();
    columns.forEach(c -> values.add("coalesce(CAST(\"" + c + "\" AS VARCHAR), 'NULL')"));
    java.util.Properties readOnly = new java.util.Properties();
    readOnly.setProperty("duckdb.read_only", "true");
    List<String> out = new ArrayList<>();
    try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve(scenario + ".db"),
        readOnly); java.sql.Statement st = c.createStatement();
        java.sql.ResultSet rs = st.executeQuery("SELECT concat_ws('|', " + String.join(", ", values) + ") FROM "
            + table)) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    out.sort(null);
    return out;
  }

  static List<String> columns(String table) {
    List<String> out = new ArrayList<>();
    for (StructField f : spark.read().format("delta").load(tmp.resolve(table).toString()).schema().fields()) {
      out.add(f.name() + " " + f.dataType().simpleString());
    }
    return out;
  }

  @Test
  void eachMappingHasATransformedDataTableOfItsTypesFilesVersionByVersion() {
    assertThat(columns("history-delta/transformed_data/patient"), equalTo(List.of("id string", "gender string",
        "birth_date date")));
    for (long v = 0; v <= 4; v++) {
      Dataset<Row> resources = table("history", "Patient", v);
      Dataset<Row> mapped = spark.read().format("delta").option("versionAsOf", v).load(tmp.resolve(
          "history-delta/transformed_data/patient").toString());
      assertThat("version " + v, mapped.collectAsList().stream().map(Row::toString).sorted().toList(), equalTo(
          resources.select("id", "gender", "birth_date").collectAsList().stream().map(Row::toString).sorted()
              .toList()));
    }
    // The data files are the resource table's, not copies.
    assertThat(tmp.resolve("history-delta/transformed_data/patient").toFile().list(), equalTo(new String[]
        {"_delta_log"}));
  }

  @Test
  void theRawRowsAndTheQualityFiguresAreTheDuckDbDatabasesOfTheSameRun() throws Exception {
    // The Synthea job: every source's rows, every quality table's rows of the run, as the run's database has them.
    Path raw = tmp.resolve("synthea-direct-delta/raw_data");
    List<String> sources = new ArrayList<>(List.of(raw.toFile().list()));
    sources.sort(null);
    assertThat(sources, equalTo(duckDbRows("synthea-direct", "information_schema.tables WHERE table_schema ="
        + " 'raw_data'", List.of("table_name"))));
    assertThat(sources.size(), equalTo(11));
    for (String source : sources) {
      List<String> names = new ArrayList<>();
      columns("synthea-direct-delta/raw_data/" + source).forEach(c -> names.add(c.substring(0, c.indexOf(' '))));
      assertThat(source, deltaRows("synthea-direct-delta/raw_data/" + source, names, "true"),
          equalTo(duckDbRows("synthea-direct", "raw_data." + source, names)));
    }
    String runId = spark.read().format("delta").load(tmp.resolve("synthea-direct-delta/quality/runs").toString())
        .first().getString(0);
    for (Map.Entry<String, List<String[]>> t : org.fhirbeam.io.QualityTables.HISTORY.entrySet()) {
      List<String> names = new ArrayList<>();
      t.getValue().forEach(c -> names.add(c[0]));
      names.remove("time");
      assertThat(t.getKey(), deltaRows("synthea-direct-delta/quality/" + t.getKey(), names, "true"),
          equalTo(duckDbRows("synthea-direct", "quality." + t.getKey(), names)));
    }
    assertThat(deltaRows("synthea-direct-delta/quality/runs", List.of("run_id"), "true"), equalTo(List.of(runId)));
    // The default job's five runs: one row each in quality.runs, the raw rows of the latest.
    List<String> runs = new ArrayList<>();
    for (String r : List.of("a", "b", "c", "d", "e")) {
      long resources = NDJSON.get("history-" + r).get("Patient").size();
      long rejected = REJECTS.get("history-" + r).size();
      runs.add((resources + rejected) + "|" + resources + "|" + rejected);
    }
    runs.sort(null);
    assertThat(deltaRows("history-delta/quality/runs", List.of("rows_in", "resources", "rejected"), "true"),
        equalTo(runs));
    assertThat(runs.get(0), equalTo("21|16|5"));
    assertThat(spark.read().format("delta").load(tmp.resolve("history-delta/raw_data/patients").toString()).count(),
        equalTo(21L));
  }
}
