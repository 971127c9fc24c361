package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;
import org.hl7.fhir.r4.model.Patient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Runs the shipped default job through the command line on both runners and compares every output with the
 * expected files in testdata/expected/default.
 */
class DefaultJobTest {
  static final Path HOME = Path.of("..").toAbsolutePath().normalize();
  static final Path EXPECTED = HOME.resolve("testdata/expected/default");
  static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  Cli runDefault(Runner runner, Path out, Path db) {
    return Cli.run("run", "--runner", runner.label(), "--output", out.toString(), "--set",
        "duckdb.database=" + db, "--direct-checks");
  }

  @ParameterizedTest
  @EnumSource(Runner.class)
  void defaultJobWritesExactlyTheExpectedOutputs(Runner runner) throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("db/fhir.db");
    Cli r = runDefault(runner, out, db);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    assertOutputs(out, db, runner);
  }

  @Test
  void reRunReplacesThePreviousResultsWithoutDuplicates() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    Files.writeString(out.resolve("fhir/Patient-stale.ndjson"), "{\"resourceType\":\"Patient\",\"id\":\"old\"}\n");
    Cli again = runDefault(Runner.DIRECT, out, db);
    assertThat(again.err(), again.code(), equalTo(0));
    assertOutputs(out, db, Runner.DIRECT);
  }

  @Test
  void aRunThatFailsWhileLoadingLeavesThePreviousOutputAndDatabase() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    Map<String, byte[]> before = snapshot(out);
    Cli failed = Cli.run("run", "--output", out.toString(), "--set", "duckdb.database=" + db, "--set",
        "sources.patients.path=" + Files.writeString(tmp.resolve("two.csv"),
            "patient_id,first_name,last_name,birth_date,gender\nz1,A,B,2000-01-01,F\nz2,C,D,2000-01-02,M\n"),
        "--set", "sinks.duckdb.views={broken: SELECT * FROM no_such_table}");
    assertThat(failed.code(), equalTo(2));
    assertThat(failed.err(), containsString("view broken: Catalog Error: Table with name no_such_table does not exist"));
    Map<String, byte[]> after = snapshot(out);
    assertThat(after.keySet(), equalTo(before.keySet()));
    for (String name : before.keySet()) {
      assertThat(name, java.util.Arrays.equals(after.get(name), before.get(name)), equalTo(true));
    }
    assertOutputs(out, db, Runner.DIRECT);
  }

  @Test
  void theNextRunPutsBackResultsSetAsideByARunKilledBeforeItsCommitAndDropsThoseOfOneKilledAfter()
      throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    String committedRun = JSON.readTree(out.resolve("run-summary.json").toFile()).get("run_id").asText();
    Map<String, byte[]> before = snapshot(out);
    String[] broken = {"run", "--output", out.toString(), "--set", "duckdb.database=" + db, "--set",
        "sinks.duckdb.views={broken: SELECT * FROM no_such_table}"};

    // Killed before its commit: its new fhir/ is in place, the previous one set aside.
    Files.move(out.resolve("fhir"), out.resolve(".previous-20260101T000000Z-deadbeef-fhir"));
    Files.createDirectories(out.resolve("fhir"));
    Files.writeString(out.resolve("fhir/Patient-00000-of-00001.ndjson"), "{\"half\":true}\n");
    assertThat(Cli.run(broken).code(), equalTo(2));
    Map<String, byte[]> restored = snapshot(out);
    assertThat(restored.keySet(), equalTo(before.keySet()));
    for (String name : before.keySet()) {
      assertThat(name, java.util.Arrays.equals(restored.get(name), before.get(name)), equalTo(true));
    }

    // Killed after its commit: what was set aside is garbage.
    Files.createDirectories(out.resolve(".previous-" + committedRun + "-rejects"));
    Files.writeString(out.resolve(".previous-" + committedRun + "-rejects/rejects-old.ndjson"), "{}\n");
    assertThat(Cli.run(broken).code(), equalTo(2));
    assertThat(snapshot(out).keySet(), equalTo(before.keySet()));
    try (Stream<Path> left = Files.list(out)) {
      assertThat(left.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".previous")).count(),
          equalTo(0L));
    }
  }

  static Map<String, byte[]> snapshot(Path dir) throws IOException {
    Map<String, byte[]> files = new java.util.TreeMap<>();
    try (Stream<Path> all = Files.walk(dir)) {
      for (Path p : all.filter(Files::isRegularFile).filter(p -> !p.endsWith(".fhirbeam.lock")).toList()) {
        files.put(dir.relativize(p).toString(), Files.readAllBytes(p));
      }
    }
    return files;
  }

  void assertOutputs(Path out, Path db, Runner runner) throws Exception {
    List<String> resources = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.sorted().toList()) {
        assertThat(f.getFileName().toString().matches("Patient-\\d{5}-of-\\d{5}\\.ndjson"), equalTo(true));
        resources.addAll(Files.readAllLines(f, StandardCharsets.UTF_8));
      }
    }
    resources.sort(null);
    assertThat(resources, equalTo(Files.readAllLines(EXPECTED.resolve("Patient.ndjson"), StandardCharsets.UTF_8)));

    IParser strict = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
    for (String line : resources) {
      assertThat(strict.encodeResourceToString(strict.parseResource(Patient.class, line)), equalTo(line));
    }

    List<JsonNode> rejects = new ArrayList<>();
    for (ObjectNode reject : rejects(out)) {
      assertThat(reject.remove("run_id").asText().isEmpty(), equalTo(false));
      reject.put("file", HOME.relativize(Path.of(reject.get("file").asText())).toString());
      rejects.add(reject);
    }
    List<JsonNode> expectedRejects = new ArrayList<>();
    for (String line : Files.readAllLines(EXPECTED.resolve("rejects.ndjson"), StandardCharsets.UTF_8)) {
      expectedRejects.add(JSON.readTree(line));
    }
    rejects.sort(Comparator.comparing(JsonNode::toString));
    expectedRejects.sort(Comparator.comparing(JsonNode::toString));
    assertThat(rejects, equalTo(expectedRejects));

    JsonNode summary = JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.get("runner").asText(), equalTo(runner.label()));
    assertThat(summary.get("rows_in").asLong(), equalTo(40L));
    assertThat(summary.get("resources_out"), equalTo(JSON.valueToTree(Map.of("Patient", 34))));
    assertThat(summary.get("rejected").asLong(), equalTo(6L));
    assertThat(summary.get("balanced").asBoolean(), equalTo(true));
    com.fasterxml.jackson.databind.node.ObjectNode mapping = (com.fasterxml.jackson.databind.node.ObjectNode)
        summary.get("mappings").get(0).deepCopy();
    assertThat(mapping.remove("seconds").asDouble(), greaterThan(0.0));
    assertThat(summary.get("mappings").size(), equalTo(1));
    // The six rejects by stage and rule, counted from the committed reject records.
    assertThat(mapping, equalTo(JSON.readTree("{\"mapping\":\"patient\",\"source\":\"patients\","
        + "\"resource_type\":\"Patient\",\"rows_in\":40,\"mapped\":34,\"rejected\":6,\"rejected_by\":"
        + "{\"mapping/date\":4,\"mapping/id\":1,\"mapping/required\":1}}")));
    assertThat(summary.get("elapsed_s").asDouble(), greaterThan(0.0));
    assertThat(summary.get("rows_per_s").asLong(), greaterThan(0L));
    assertThat(summary.get("duckdb").get("tables"), equalTo(JSON.valueToTree(Map.of("raw_data.patients", 40,
        "fhir_resources.patient", 34, "transformed_data.patient", 34))));
    // Each table and quality figure of the load is timed by name; the raw copy ran beside the pipeline.
    List<String> timed = new ArrayList<>();
    summary.get("duckdb").get("load_s").fieldNames().forEachRemaining(timed::add);
    assertThat(timed.subList(0, 2), equalTo(List.of("raw_data.patients", "fhir_resources.patient")));
    assertThat(timed.contains("quality.checks duplicate_id"), equalTo(true));
    try (Stream<Path> all = Files.list(out)) {
      assertThat(all.map(p -> p.getFileName().toString()).sorted().toList(),
          equalTo(List.of(".fhirbeam.lock", "fhir", "rejects", "report", "run-summary.json")));
    }

    Properties readOnly = new Properties();
    readOnly.setProperty("duckdb.read_only", "true");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db, readOnly);
        Statement st = c.createStatement()) {
      assertThat(row(st, "SELECT total_records, first_name_populated, last_name_populated, birth_date_populated,"
          + " valid_gender FROM raw_completeness"), equalTo(List.of("40", "37", "38", "37", "36")));
      assertThat(row(st, "SELECT count(*), count(DISTINCT id), count(birth_date) FROM fhir_resources.patient"),
          equalTo(List.of("34", "34", "31")));
      assertThat(row(st, "SELECT gender, birth_date, resource->>'$.name[0].family' FROM fhir_resources.patient"
          + " WHERE id = 'p018'"), equalTo(List.of("male", "2000-02-29", "Lopez")));
      assertThat(row(st, "SELECT name_0_use, name_0_family, name_0_given_0, gender, birth_date"
          + " FROM transformed_data.patient WHERE id = 'p010'"),
          equalTo(java.util.Arrays.asList("official", null, "Olga", "female", "1963-08-08")));
      assertThat(row(st, "SELECT count(*) FROM raw_data.patients WHERE _source_file LIKE '%.parquet'"),
          equalTo(List.of("10")));
      // Every flat column of the type's mappings is typed beside the resource; transformed_data is a view of them.
      assertThat(row(st, "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index)"
          + " FROM duckdb_columns() WHERE schema_name = 'fhir_resources' AND table_name = 'patient'"),
          equalTo(List.of("id VARCHAR, name_0_use VARCHAR, name_0_family VARCHAR, name_0_given_0 VARCHAR,"
              + " gender VARCHAR, birth_date DATE, resource JSON")));
      assertThat(row(st, "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'transformed_data'"
          + " AND view_name = 'patient'"), equalTo(List.of("1")));
    }
  }

  @Test
  void aRunThatFailsWhileTheRawCopyIsUnderWayLeavesTheDatabaseAsItWas() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    // Two rows with one id and duplicate ids failing the run: the pipeline fails after the raw copy began.
    Cli failed = Cli.run("run", "--output", out.toString(), "--set", "duckdb.database=" + db, "--set",
        "sources.patients.path=" + Files.writeString(tmp.resolve("twice.csv"),
            "patient_id,first_name,last_name,birth_date,gender\nz1,A,B,2000-01-01,F\nz1,C,D,2000-01-02,M\n"),
        "--set", "quality.duplicate_ids=fail");
    assertThat(failed.err(), failed.code(), equalTo(1));
    // The run's own failure is reported, not the rolled-back load's.
    assertThat(failed.err(), containsString("duplicate"));
    assertOutputs(out, db, Runner.DIRECT);
  }

  /**
   * Two mappings of one type that read a date differently (a full date, and a year alone allowed): the shared
   * column keeps the text of both, and the run's checks over it work.
   */
  @Test
  void twoMappingsOfATypeThatTypeADateDifferentlyShareItAsText() throws Exception {
    String patient = Files.readString(HOME.resolve("config/mappings/patient.yaml"));
    Path full = Files.writeString(tmp.resolve("full.yaml"), patient.replace("name: patient", "name: full"));
    Path years = Files.writeString(tmp.resolve("years.yaml"), patient.replace("name: patient", "name: years")
        .replace("formats: [yyyy-MM-dd]", "formats: [yyyy-MM-dd, yyyy]"));
    Path config = Files.writeString(tmp.resolve("p.yaml"), Files.readString(
        HOME.resolve("config/pipelines/default.yaml")).replace("  - ../mappings/patient.yaml",
            "  - " + years + "\n  - " + full));
    Path db = tmp.resolve("fhir.db");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(), "--set",
        "duckdb.database=" + db, "--set", "quality.duplicate_ids=keep");
    assertThat(r.err(), r.code(), equalTo(0));
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      assertThat(row(st, "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'fhir_resources'"
          + " AND table_name = 'patient' AND column_name = 'birth_date'"), equalTo(List.of("VARCHAR")));
      assertThat(row(st, "SELECT count(*), count(birth_date), count(DISTINCT id) FROM fhir_resources.patient"),
          equalTo(List.of("68", "62", "34")));
      assertThat(row(st, "SELECT count(*) FROM quality.checks WHERE \"check\" = 'not_in_future'"),
          equalTo(List.of("2")));
    }
  }

  @Test
  void anOverwriteDropsTheFlatViewsOfMappingsItNoLongerHasOverTheTypesItWrites() throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      // A mapping removed since, over the type this job writes; and one over a type it does not write.
      st.execute("CREATE VIEW transformed_data.removed AS SELECT id, name_0_family FROM fhir_resources.patient");
      st.execute("CREATE TABLE fhir_resources.observation (id VARCHAR, resource JSON)");
      st.execute("CREATE VIEW transformed_data.labs AS SELECT id FROM fhir_resources.observation");
    }
    assertThat(runDefault(Runner.DIRECT, out, db).code(), equalTo(0));
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      assertThat(row(st, "SELECT string_agg(view_name, ', ' ORDER BY view_name) FROM duckdb_views()"
          + " WHERE schema_name = 'transformed_data'"), equalTo(List.of("labs, patient")));
    }
  }

  @Test
  void aDatabaseOfAnEarlierVersionGainsTheNewColumnsFilledFromItsResourcesAndViewsForItsFlatTables()
      throws Exception {
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("fhir.db");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      st.execute("CREATE SCHEMA fhir_resources");
      st.execute("CREATE TABLE fhir_resources.patient (id VARCHAR, gender VARCHAR, birth_date DATE, resource JSON)");
      st.execute("INSERT INTO fhir_resources.patient VALUES ('old1', 'male', DATE '1950-01-02', '{\"resourceType\":"
          + "\"Patient\",\"id\":\"old1\",\"name\":[{\"use\":\"official\",\"family\":\"Earlier\"}],"
          + "\"gender\":\"male\",\"birthDate\":\"1950-01-02\"}')");
      st.execute("CREATE SCHEMA transformed_data");
      st.execute("CREATE TABLE transformed_data.patient AS SELECT id, gender FROM fhir_resources.patient");
    }
    Cli r = Cli.run("run", "--output", out.toString(), "--set", "duckdb.database=" + db, "--set",
        "sinks.duckdb.mode=append");
    assertThat(r.err(), r.code(), equalTo(0));
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      assertThat(row(st, "SELECT count(*), count(name_0_family) FROM fhir_resources.patient"),
          equalTo(List.of("35", "33")));
      assertThat(row(st, "SELECT name_0_use, name_0_family, name_0_given_0, gender, birth_date"
          + " FROM transformed_data.patient WHERE id = 'old1'"),
          equalTo(java.util.Arrays.asList("official", "Earlier", null, "male", "1950-01-02")));
      assertThat(row(st, "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'transformed_data'"),
          equalTo(List.of("1")));
    }
  }

  /** Runs the default mapping over one input file, without the DuckDB sink. */
  Cli runOn(Path input, Path out) {
    return Cli.run("run", "--output", out.toString(), "--set", "sources.patients.path=" + input, "--set",
        "sinks.duckdb.enabled=false", "--direct-checks");
  }

  /** Every reject record the run wrote, without its run id and file path (which vary), sorted. */
  static List<String> rejectsWithoutRunAndFile(Path out) throws IOException {
    List<String> rejects = new ArrayList<>();
    for (ObjectNode reject : rejects(out)) {
      reject.remove("run_id");
      reject.remove("file");
      rejects.add(reject.toString());
    }
    rejects.sort(null);
    return rejects;
  }

  /** Every reject record the run wrote. */
  static List<ObjectNode> rejects(Path out) throws IOException {
    List<ObjectNode> rejects = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("rejects"))) {
      for (Path f : files.toList()) {
        for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
          rejects.add((ObjectNode) JSON.readTree(line));
        }
      }
    }
    return rejects;
  }

  static List<String> row(Statement st, String sql) throws SQLException {
    try (ResultSet rs = st.executeQuery(sql)) {
      assertThat(sql, rs.next(), equalTo(true));
      List<String> values = new ArrayList<>();
      for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
        values.add(rs.getString(i));
      }
      assertThat(sql, rs.next(), equalTo(false));
      return values;
    }
  }

  @Test
  void malformedCsvLinesBecomeRejectsWithTheirLinesAndTheRunGoesOn() throws IOException {
    Path csv = Files.writeString(tmp.resolve("ragged.csv"), "patient_id,first_name,last_name,birth_date,gender\n"
        + "r1,Ann,Lee,2000-01-01,F\nr2,Bob,Ray,2000-01-02,M,EXTRA\nr3,Cy,Q,2000-01-03,o\nr4\nr5,Eve,Kay,bad,F\n");
    Path out = tmp.resolve("out");
    Cli r = runOn(csv, out);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 5 = resources 2 + rejected 3: OK"));
    List<String> rejects = rejectsWithoutRunAndFile(out);
    assertThat(rejects, equalTo(List.of(
        "{\"source\":\"patients\",\"line\":3,\"stage\":\"ingest\",\"mapping\":\"patient\",\"rule\":"
            + "\"csv-too-many-columns\",\"reason\":\"the line has more fields than the header\",\"raw\":"
            + "\"r2,Bob,Ray,2000-01-02,M,EXTRA\"}",
        "{\"source\":\"patients\",\"line\":5,\"stage\":\"ingest\",\"mapping\":\"patient\",\"rule\":"
            + "\"csv-missing-columns\",\"reason\":\"the line has fewer fields than the header\",\"raw\":\"r4\"}",
        "{\"source\":\"patients\",\"line\":6,\"stage\":\"mapping\",\"mapping\":\"patient\",\"element\":"
            + "\"Patient.birthDate\",\"rule\":\"date\",\"reason\":\"value is not a date in the expected format"
            + " (yyyy-MM-dd)\",\"row\":{\"patient_id\":\"r5\",\"first_name\":\"Eve\",\"last_name\":\"Kay\","
            + "\"birth_date\":\"bad\",\"gender\":\"F\"}}")));
  }

  @Test
  void aValueThatDoesNotConvertToItsDeclaredColumnTypeIsAnIngestRejectWithItsLine() throws IOException {
    Path csv = Files.writeString(tmp.resolve("typed.csv"), "patient_id,first_name,last_name,birth_date,gender,visits\n"
        + "t1,Ann,Lee,2000-01-01,F,3\nt2,Bob,Ray,2000-01-02,M,three\nt3,Cy,Q,2000-02-30,o,1\nt4,Di,Roe,,f,\n");
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--output", out.toString(), "--set", "sources.patients.path=" + csv, "--set",
        "sources.patients.types.visits=INTEGER", "--set", "sources.patients.types.birth_date=date", "--set",
        "duckdb.database=" + tmp.resolve("typed.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 2 + rejected 2: OK"));
    List<String> rejects = rejectsWithoutRunAndFile(out);
    assertThat(rejects, equalTo(List.of(
        "{\"source\":\"patients\",\"line\":3,\"stage\":\"ingest\",\"mapping\":\"patient\",\"rule\":\"csv-cast\","
            + "\"reason\":\"the value of column visits does not convert to the type declared for it in types\","
            + "\"raw\":\"t2,Bob,Ray,2000-01-02,M,three\"}",
        "{\"source\":\"patients\",\"line\":4,\"stage\":\"ingest\",\"mapping\":\"patient\",\"rule\":\"csv-cast\","
            + "\"reason\":\"the value of column birth_date does not convert to the type declared for it in types\","
            + "\"raw\":\"t3,Cy,Q,2000-02-30,o,1\"}")));

    Cli bad = Cli.run("run", "--output", tmp.resolve("bad").toString(), "--set", "sources.patients.path=" + csv,
        "--set", "sources.patients.types.visits=INTEGER; DROP", "--set", "duckdb.database=" + tmp.resolve("b.db"));
    assertThat(bad.code(), equalTo(2));
    assertThat(bad.err(), containsString("types.visits: 'INTEGER; DROP' is not a type name"));
    Cli misspelt = Cli.run("run", "--output", tmp.resolve("bad").toString(), "--set", "sources.patients.path="
        + csv, "--set", "sources.patients.types.visit=INTEGER", "--set", "duckdb.database=" + tmp.resolve("b.db"));
    assertThat(misspelt.code(), equalTo(2));
    assertThat(misspelt.err(), containsString("types.visit: no file of source patients has a column 'visit'"
        + " (columns: patient_id, first_name, last_name, birth_date, gender, visits)"));
  }

  @Test
  void lineNumbersStayTrueAroundRunsOfMalformedLines() throws IOException {
    Path csv = Files.writeString(tmp.resolve("runs.csv"), "patient_id,first_name,last_name,birth_date,gender\n"
        + "bad2\nk3,A,B,no-date,F\nbad4\nbad5\nk6,A,B,2000-13-01,F\nk7,A,B,2000-01-01,F\nbad8\n");
    Path out = tmp.resolve("out");
    Cli r = runOn(csv, out);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 7 = resources 1 + rejected 6: OK"));
    List<String> positions = new ArrayList<>();
    for (JsonNode reject : rejects(out)) {
      positions.add(reject.get("line").asLong() + " " + reject.get("stage").asText());
    }
    positions.sort(java.util.Comparator.comparingLong(p -> Long.parseLong(p.split(" ")[0])));
    assertThat(positions, equalTo(List.of("2 ingest", "3 mapping", "4 ingest", "5 ingest", "6 mapping",
        "8 ingest")));
  }

  @Test
  void aLineThatIsNotUtf8IsAnIngestRejectAndTheRunBalances() throws IOException {
    byte[] csv = ("patient_id,first_name,last_name,birth_date,gender\nu1,Ann,Lee,2000-01-01,F\nu2,B_b,Ray,2000-01-02,M\n"
        + "u3,Cy,Q,2000-01-03,o\n").getBytes(java.nio.charset.StandardCharsets.UTF_8);
    int underscore = new String(csv, java.nio.charset.StandardCharsets.UTF_8).indexOf("B_b") + 1;
    csv[underscore] = (byte) 0xFF; // the '_' in B_b becomes a byte that is not UTF-8
    Path file = Files.write(tmp.resolve("bad-bytes.csv"), csv);
    Path out = tmp.resolve("out");
    Cli r = runOn(file, out);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 2 + rejected 1: OK"));
    List<ObjectNode> rejects = rejects(out);
    assertThat(rejects.size(), equalTo(1));
    assertThat(rejects.get(0).get("line").asLong(), equalTo(3L));
    assertThat(rejects.get(0).get("stage").asText(), equalTo("ingest"));
    assertThat(rejects.get(0).get("rule").asText(), equalTo("csv-invalid-encoding"));
  }

  @Test
  void bothRunnersProduceTheSameResourcesFromOtherFilesGivenBySet() throws IOException {
    Path csv = Files.writeString(tmp.resolve("people.csv"),
        "patient_id,first_name,last_name,birth_date,gender\nq1,Ana,Lima,1970-01-01,F\nq2,,,bad,M\n");
    for (Runner runner : Runner.values()) {
      Path out = tmp.resolve("out-" + runner.label());
      Cli r = Cli.run("run", "--runner", runner.label(), "--output", out.toString(), "--set",
          "sources.patients.path=" + csv, "--set", "sinks.duckdb.enabled=false");
      assertThat(r.err(), r.code(), equalTo(0));
      try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
        List<String> lines = new ArrayList<>();
        for (Path f : files.toList()) {
          lines.addAll(Files.readAllLines(f));
        }
        assertThat(lines, equalTo(List.of("{\"resourceType\":\"Patient\",\"id\":\"q1\",\"name\":[{\"use\":"
            + "\"official\",\"family\":\"Lima\",\"given\":[\"Ana\"]}],\"gender\":\"female\","
            + "\"birthDate\":\"1970-01-01\"}")));
      }
      JsonNode summary = JSON.readTree(out.resolve("run-summary.json").toFile());
      assertThat(summary.get("rejected").asLong(), equalTo(1L));
      assertThat(summary.has("duckdb"), equalTo(false));
    }
  }
}
