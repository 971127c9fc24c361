package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sinks' options on real runs: gzip NDJSON read back by every reader, the Parquet datasets read back with
 * DuckDB, and the append and upsert modes of the NDJSON, Parquet and DuckDB sinks.
 */
class SinksTest {
  static final Path EXPECTED = DefaultJobTest.EXPECTED;

  @TempDir
  Path tmp;

  static Cli run(String... args) {
    List<String> all = new ArrayList<>(List.of("run", "--direct-checks"));
    all.addAll(Arrays.asList(args));
    Cli r = Cli.run(all.toArray(String[]::new));
    assertThat(r.err(), r.code(), equalTo(0));
    return r;
  }

  static List<String> expectedPatients() throws IOException {
    return Files.readAllLines(EXPECTED.resolve("Patient.ndjson"), StandardCharsets.UTF_8);
  }

  static List<String> names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  static List<List<String>> rows(Statement st, String sql) throws SQLException {
    List<List<String>> out = new ArrayList<>();
    try (ResultSet rs = st.executeQuery(sql)) {
      while (rs.next()) {
        List<String> row = new ArrayList<>();
        for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
          row.add(rs.getString(i));
        }
        out.add(row);
      }
    }
    return out;
  }

  static List<List<String>> query(String sql) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      return rows(st, sql);
    }
  }

  static List<List<String>> queryDb(Path db, String sql) throws SQLException {
    java.util.Properties ro = new java.util.Properties();
    ro.setProperty("duckdb.read_only", "true");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db, ro); Statement st = c.createStatement()) {
      return rows(st, sql);
    }
  }

  @Test
  void gzipNdjsonHoldsTheSameResourcesAndIsLoadedAndValidated() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    run("--output", out.toString(), "--set", "duckdb.database=" + db, "--set", "sinks.ndjson.compression=gzip");
    List<String> files = names(out.resolve("fhir"));
    assertThat(files, equalTo(List.of("Patient-00000-of-00003.ndjson.gz", "Patient-00001-of-00003.ndjson.gz",
        "Patient-00002-of-00003.ndjson.gz")));
    assertThat(MixedFormatsTest.resources(out), equalTo(expectedPatients()));
    assertThat(queryDb(db, "SELECT count(*), count(DISTINCT id), count(birth_date) FROM fhir_resources.patient"),
        equalTo(List.of(List.of("34", "34", "31"))));
    assertThat(query("SELECT count(*) FROM read_ndjson_objects('" + out.resolve("fhir") + "/*.ndjson.gz')"),
        equalTo(List.of(List.of("34"))));
    Cli validate = Cli.run("validate", out.resolve("fhir").toString());
    assertThat(validate.out() + validate.err(), validate.code(), equalTo(0));
    assertThat(validate.out(), org.hamcrest.Matchers.containsString("VALID: 34 resource(s) in 3 file(s), 0 with errors"));
  }

  /** The Parquet rows the default job must write: one per expected resource, columns from its JSON. */
  static List<List<String>> expectedParquetRows() throws IOException {
    List<List<String>> rows = new ArrayList<>();
    for (String line : expectedPatients()) {
      JsonNode r = DefaultJobTest.JSON.readTree(line);
      rows.add(Arrays.asList(r.get("id").asText(), null, r.get("id").asText(), r.get("gender").asText(),
          r.has("birthDate") ? r.get("birthDate").asText() : null, line));
    }
    return rows;
  }

  static final String PARQUET_COLUMNS = "SELECT id, last_updated, source_key, gender, CAST(birth_date AS VARCHAR),"
      + " CAST(resource AS VARCHAR) FROM read_parquet('%s/*.parquet') ORDER BY id";

  @Test
  void parquetHoldsOneRowPerResourceWithTypedColumnsWithOrWithoutTheDuckDbSink() throws Exception {
    for (boolean duckdb : List.of(true, false)) {
      Path out = tmp.resolve("out-" + duckdb);
      run("--output", out.toString(), "--set", "duckdb.database=" + tmp.resolve("fhir.db"), "--set",
          "sinks.parquet.enabled=true", "--set", "sinks.duckdb.enabled=" + duckdb);
      Path dataset = out.resolve("parquet/Patient");
      List<String> parts = names(dataset);
      assertThat(parts.size(), equalTo(1));
      assertThat(parts.get(0).matches("part-\\d{8}T\\d{6}Z-[0-9a-f]{8}\\.parquet"), equalTo(true));
      assertThat(query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('" + dataset
          + "/*.parquet'))"), equalTo(List.of(List.of("id", "VARCHAR"), List.of("last_updated",
              "TIMESTAMP WITH TIME ZONE"), List.of("source_key", "VARCHAR"), List.of("gender", "VARCHAR"),
              List.of("birth_date", "DATE"), List.of("resource", "JSON"))));
      assertThat(query(String.format(PARQUET_COLUMNS, dataset)), equalTo(expectedParquetRows()));
      assertThat(query("SELECT CAST(key AS VARCHAR), CAST(value AS VARCHAR) FROM parquet_kv_metadata('" + dataset
          + "/*.parquet')"), equalTo(List.of(List.of("source_key_column", "patient_id"))));
    }
  }

  @Test
  void appendKeepsThePreviousResourcesInEverySinkAndAddsThisRunsOnes() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    String[] args = {"--output", out.toString(), "--set", "duckdb.database=" + db, "--set",
        "sinks.parquet.enabled=true", "--set", "sinks.parquet.mode=append", "--set", "sinks.ndjson.mode=append",
        "--set", "sinks.duckdb.mode=append"};
    run(args);
    String first = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile()).get("run_id").asText();
    run(args);
    String second = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile()).get("run_id").asText();
    List<String> expectedFiles = new ArrayList<>();
    for (String run : List.of(first, second)) {
      for (int i = 0; i < 3; i++) {
        expectedFiles.add("Patient-" + run + "-0000" + i + "-of-00003.ndjson");
      }
    }
    // Listed by name: two runs in the same second are ordered by their ids' random part, not by when they ran.
    expectedFiles.sort(null);
    assertThat(names(out.resolve("fhir")), equalTo(expectedFiles));
    List<String> twice = new ArrayList<>(expectedPatients());
    twice.addAll(expectedPatients());
    twice.sort(null);
    assertThat(MixedFormatsTest.resources(out), equalTo(twice));
    assertThat(names(out.resolve("parquet/Patient")),
        equalTo(java.util.stream.Stream.of("part-" + first + ".parquet", "part-" + second + ".parquet").sorted()
            .toList()));
    List<List<String>> parquetTwice = new ArrayList<>();
    for (List<String> row : expectedParquetRows()) {
      parquetTwice.add(row);
      parquetTwice.add(row);
    }
    assertThat(query(String.format(PARQUET_COLUMNS, out.resolve("parquet/Patient"))), equalTo(parquetTwice));
    assertThat(queryDb(db, "SELECT count(*), count(DISTINCT id) FROM fhir_resources.patient"),
        equalTo(List.of(List.of("68", "34"))));
    assertThat(queryDb(db, "SELECT count(*), count(DISTINCT id) FROM transformed_data.patient"),
        equalTo(List.of(List.of("68", "34"))));
    // The rejects and the summary are this run's.
    assertThat(DefaultJobTest.rejects(out).size(), equalTo(6));
    assertThat(DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile()).get("duckdb").get("tables")
        .get("fhir_resources.patient").asLong(), equalTo(68L));
  }

  /** A mapping with meta.lastUpdated, so the upsert's rule can be seen. */
  Path upsertJob() throws IOException {
    Files.writeString(tmp.resolve("mapping.yaml"), String.join("\n", "name: person", "source: people",
        "resource: Patient", "id: {column: pid}", "elements:", "  meta.lastUpdated: {column: updated}",
        "  name[0].family: {column: family}", "  birthDate: {column: born}", ""));
    return Files.writeString(tmp.resolve("job.yaml"), String.join("\n", "name: upserts", "sources:",
        "  people: {path: " + tmp.resolve("people.csv") + "}", "mappings: [mapping.yaml]", "sinks:",
        "  ndjson: {mode: upsert}", "  parquet: {enabled: true, mode: upsert}", "  duckdb: {mode: upsert}", ""));
  }

  static String patient(String id, String updated, String family) {
    return "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\"" + (updated.isEmpty() ? ""
        : ",\"meta\":{\"lastUpdated\":\"" + updated + "\"}") + ",\"name\":[{\"family\":\"" + family + "\"}]}";
  }

  @Test
  void upsertKeepsOneResourcePerIdTheNewestLastUpdatedWinningAndTiesGoingToTheNewerRun() throws Exception {
    Path job = upsertJob();
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    Path csv = tmp.resolve("people.csv");
    // Repeated ids within a run are kept for the upsert to reduce (by default the later ones would be rejects).
    String[] args = {"--config", job.toString(), "--output", out.toString(), "--set", "duckdb.database=" + db,
        "--set", "quality.duplicate_ids=keep"};
    Files.writeString(csv, String.join("\n", "pid,updated,family,born", "a,2024-01-01T00:00:00Z,A1,",
        "b,2024-01-01T00:00:00Z,B1,", "c,,C1,", "d,2024-06-01T00:00:00Z,D1,", ""));
    run(args);
    // a is newer now, b older, c has no lastUpdated, d the same instant (another offset), e is new; f twice in
    // this run: the newer one wins.
    Files.writeString(csv, String.join("\n", "pid,updated,family,born", "a,2024-02-01T00:00:00Z,A2,",
        "b,2023-12-01T00:00:00Z,B2,", "c,,C2,", "d,2024-06-01T02:00:00+02:00,D2,", "e,,E2,",
        "f,2024-03-01T00:00:00Z,F2,", "f,2024-03-02T00:00:00Z,F3,", ""));
    run(args);
    List<String> expected = List.of(patient("a", "2024-02-01T00:00:00Z", "A2"),
        patient("b", "2024-01-01T00:00:00Z", "B1"), patient("c", "", "C2"),
        patient("d", "2024-06-01T02:00:00+02:00", "D2"), patient("e", "", "E2"),
        patient("f", "2024-03-02T00:00:00Z", "F3"));
    assertThat(names(out.resolve("fhir")), equalTo(List.of("Patient-00000-of-00001.ndjson")));
    assertThat(Files.readAllLines(out.resolve("fhir/Patient-00000-of-00001.ndjson")), equalTo(expected));
    List<List<String>> parquet = query("SELECT id, CAST(last_updated AS VARCHAR), source_key, CAST(resource AS"
        + " VARCHAR) FROM read_parquet('" + out.resolve("parquet/Patient") + "/*.parquet') ORDER BY id");
    assertThat(parquet, equalTo(List.of(
        List.of("a", "2024-02-01 00:00:00+00", "a", expected.get(0)),
        List.of("b", "2024-01-01 00:00:00+00", "b", expected.get(1)),
        Arrays.asList("c", null, "c", expected.get(2)),
        List.of("d", "2024-06-01 00:00:00+00", "d", expected.get(3)),
        Arrays.asList("e", null, "e", expected.get(4)),
        List.of("f", "2024-03-02 00:00:00+00", "f", expected.get(5)))));
    List<List<String>> table = new ArrayList<>();
    for (String line : expected) {
      table.add(List.of(DefaultJobTest.JSON.readTree(line).get("id").asText(), line));
    }
    assertThat(queryDb(db, "SELECT id, CAST(resource AS VARCHAR) FROM fhir_resources.patient ORDER BY id"),
        equalTo(table));
    assertThat(queryDb(db, "SELECT id, name_0_family FROM transformed_data.person ORDER BY id"), equalTo(List.of(
        List.of("a", "A2"), List.of("b", "B1"), List.of("c", "C2"), List.of("d", "D2"), List.of("e", "E2"),
        List.of("f", "F3"))));
  }

  @Test
  void gzipUpsertOfTheSameResourcesKeepsOneCompressedLinePerId() throws Exception {
    Path out = tmp.resolve("out");
    String[] args = {"--output", out.toString(), "--set", "sinks.duckdb.enabled=false", "--set",
        "sinks.ndjson.compression=gzip", "--set", "sinks.ndjson.mode=upsert"};
    run(args);
    run(args);
    assertThat(names(out.resolve("fhir")), equalTo(List.of("Patient-00000-of-00001.ndjson.gz")));
    assertThat(MixedFormatsTest.resources(out), equalTo(expectedPatients()));
  }

  @Test
  void aFailedAppendOrUpsertLeavesThePreviousFilesAndTables() throws Exception {
    for (String mode : List.of("append", "upsert")) {
      Path out = tmp.resolve("out-" + mode);
      Path db = tmp.resolve(mode + ".db");
      List<String> args = new ArrayList<>(List.of("--output", out.toString(), "--set", "duckdb.database=" + db,
          "--set", "sinks.parquet.enabled=true", "--set", "sinks.parquet.mode=" + mode, "--set",
          "sinks.ndjson.mode=" + mode, "--set", "sinks.duckdb.mode=" + mode));
      run(args.toArray(String[]::new));
      java.util.Map<String, byte[]> before = DefaultJobTest.snapshot(out);
      List<List<String>> rows = queryDb(db, "SELECT id, CAST(resource AS VARCHAR) FROM fhir_resources.patient"
          + " ORDER BY ALL");
      // Fails after the files are staged and the tables loaded, just before the commit.
      args.addAll(List.of("--set", "sinks.duckdb.views={broken: SELECT * FROM no_such_table}"));
      List<String> all = new ArrayList<>(List.of("run"));
      all.addAll(args);
      assertThat(Cli.run(all.toArray(String[]::new)).code(), equalTo(2));
      java.util.Map<String, byte[]> after = DefaultJobTest.snapshot(out);
      assertThat(after.keySet(), equalTo(before.keySet()));
      for (String name : before.keySet()) {
        assertThat(name, Arrays.equals(after.get(name), before.get(name)), equalTo(true));
      }
      assertThat(queryDb(db, "SELECT id, CAST(resource AS VARCHAR) FROM fhir_resources.patient ORDER BY ALL"),
          equalTo(rows));
      assertThat(rows.size(), equalTo(34));
    }
  }
}
