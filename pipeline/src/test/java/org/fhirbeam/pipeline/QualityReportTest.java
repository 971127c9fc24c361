package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.closeTo;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The data-quality report of the shipped Synthea job, run twice into the same output and database: the quality
 * schema answers the same numbers as report/quality.json, the second run adds to the history and shows a trend,
 * the report command prints it, and headless Chromium renders the HTML page.
 */
class QualityReportTest {
  @TempDir
  static Path tmp;
  static Path out;
  static Path db;
  static JsonNode first;
  static JsonNode second;

  @BeforeAll
  static void runTwice() throws IOException {
    out = tmp.resolve("out");
    db = tmp.resolve("synthea.db");
    first = run();
    second = run();
  }

  static JsonNode run() throws IOException {
    Cli r = Cli.run("run", "--config", SyntheaJobTest.CONFIG.toString(), "--output", out.toString(),
        "--set", "duckdb.database=" + db);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("quality report: " + out.resolve("report/quality.html")));
    return DefaultJobTest.JSON.readTree(out.resolve("report/quality.json").toFile());
  }

  @Test
  void theReportCountsTheSampleExactlyAndTheDatabaseAgrees() throws SQLException {
    JsonNode run = first.get("run");
    assertThat(List.of(run.get("job").asText(), run.get("rows_in").asLong(), run.get("resources").asLong(),
        run.get("rejected").asLong(), run.get("validated").asLong()), equalTo(List.of("synthea", 117L, 115L, 2L, 115L)));
    assertThat(first.get("previous_run").isNull(), equalTo(true));
    Map<String, String> mappings = new TreeMap<>();
    for (JsonNode m : first.get("mappings")) {
      mappings.put(m.get("mapping").asText(), m.get("rows_in") + " " + m.get("resources") + " " + m.get("rejected")
          + " " + m.get("failed_checks"));
    }
    assertThat(mappings, equalTo(new TreeMap<>(Map.of("synthea_allergy_intolerance", "5 5 0 0",
        "synthea_condition", "12 11 1 0", "synthea_encounter", "18 18 0 0", "synthea_immunization", "10 10 0 0",
        "synthea_medication_request", "8 8 0 0", "synthea_observation", "44 43 1 0", "synthea_organization", "3 3 0 0",
        "synthea_patient", "5 5 0 0", "synthea_practitioner", "4 4 0 0", "synthea_procedure", "8 8 0 0"))));
    List<String> rejects = new ArrayList<>();
    first.get("rejects_by_reason").forEach(r -> rejects.add(r.get("mapping").asText() + " " + r.get("stage").asText()
        + " " + r.get("rule").asText() + " " + r.get("count").asLong()));
    assertThat(rejects, equalTo(List.of("synthea_condition mapping dateTime 1", "synthea_observation mapping decimal 1")));
    // Every reference resolves (SyntheaJobTest counts 232), no id repeats, no date lies in the future, every coded
    // value is in its code map (16 valid_code checks).
    long references = 0;
    long failed = 0;
    for (JsonNode c : first.get("checks")) {
      failed += c.get("failed").asLong();
      if (c.get("check").asText().equals("reference_resolves")) {
        references += c.get("total").asLong();
      }
    }
    assertThat(List.of(first.get("checks").size(), references, failed), equalTo(List.of(61, 232L, 0L)));
    Map<String, String> patient = new java.util.LinkedHashMap<>();
    for (JsonNode c : first.get("completeness")) {
      if (c.get("mapping").asText().equals("synthea_patient") && c.get("share").asDouble() < 1) {
        patient.put(c.get("element").asText(), c.get("populated") + "/" + c.get("total"));
      }
    }
    String race = "extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension";
    assertThat(patient.toString(), equalTo("{" + race + "[ombCategory].valueCoding.system=4/5, " + race
        + "[ombCategory].valueCoding.code=4/5, " + race + "[ombCategory].valueCoding.display=4/5, " + race
        + "[detailed].valueCoding.system=1/5, " + race + "[detailed].valueCoding.code=1/5, " + race
        + "[detailed].valueCoding.display=1/5, identifier[3].type.coding[0].system=4/5,"
        + " identifier[3].type.coding[0].code=4/5, identifier[3].type.coding[0].display=4/5,"
        + " identifier[3].type.text=4/5, identifier[3].system=4/5, identifier[3].value=4/5,"
        + " identifier[4].type.coding[0].system=4/5, identifier[4].type.coding[0].code=4/5,"
        + " identifier[4].type.coding[0].display=4/5, identifier[4].type.text=4/5, identifier[4].system=4/5,"
        + " identifier[4].value=4/5, name[0].given[1]=0/5, name[0].prefix[0]=4/5, name[0].suffix[0]=1/5, name[1].use=1/5,"
        + " name[1].family=1/5, name[1].given[0]=1/5, deceasedDateTime=1/5}"));
    assertThat(first.get("completeness").size(), equalTo(204));

    // The DuckDB tables answer the same numbers as the JSON, for the first run as for the second.
    String runId = run.get("run_id").asText();
    try (Connection c = readOnly(); Statement st = c.createStatement()) {
      String where = " WHERE run_id = '" + runId + "'";
      assertThat(rows(st, "SELECT job, rows_in, resources, rejected, validated FROM quality.runs" + where),
          equalTo(List.of(List.of("synthea", "117", "115", "2", "115"))));
      assertThat(json(rows(st, "SELECT mapping, element, populated, total, share FROM quality.completeness" + where
          + " ORDER BY (SELECT position FROM quality.mappings AS m WHERE m.run_id = completeness.run_id"
          + " AND m.mapping = completeness.mapping), position")), equalTo(json(first.get("completeness"))));
      assertThat(json(rows(st, "SELECT mapping, stage, rule, count FROM quality.rejects_by_reason" + where
          + " ORDER BY count DESC, mapping")), equalTo(json(first.get("rejects_by_reason"))));
      assertThat(rows(st, "SELECT count(*), sum(failed), sum(total) FILTER (WHERE \"check\" = 'reference_resolves')"
          + " FROM quality.checks" + where), equalTo(List.of(List.of("61", "0", "232"))));
      // quality.rejects keeps the latest run's rejects with their original rows.
      assertThat(rows(st, "SELECT mapping, stage, rule, line, json_type(row_json) = 'OBJECT' FROM quality.rejects"
          + " ORDER BY mapping"), equalTo(List.of(List.of("synthea_condition", "mapping", "dateTime", "13", "true"),
              List.of("synthea_observation", "mapping", "decimal", "45", "true"))));
    }
  }

  /**
   * Elements inside extensions have no column in transformed_data, yet count in completeness: found in the resources.
   * Four of the five sample patients have an OMB race category, the fifth ("other") a detailed race.
   */
  @Test
  void completenessCoversTheElementsInsideExtensions() throws SQLException {
    List<String> extensions = new ArrayList<>();
    for (JsonNode c : first.get("completeness")) {
      if (c.get("element").asText().contains("extension[")) {
        extensions.add(c.get("mapping").asText() + " " + c.get("element").asText().replace(
            "http://hl7.org/fhir/us/core/StructureDefinition/", "").replace("http://hl7.org/fhir/StructureDefinition/",
            "") + " " + c.get("populated") + "/" + c.get("total"));
      }
    }
    assertThat(extensions, equalTo(List.of(
        "synthea_patient extension[us-core-race].extension[ombCategory].valueCoding.system 4/5",
        "synthea_patient extension[us-core-race].extension[ombCategory].valueCoding.code 4/5",
        "synthea_patient extension[us-core-race].extension[ombCategory].valueCoding.display 4/5",
        "synthea_patient extension[us-core-race].extension[detailed].valueCoding.system 1/5",
        "synthea_patient extension[us-core-race].extension[detailed].valueCoding.code 1/5",
        "synthea_patient extension[us-core-race].extension[detailed].valueCoding.display 1/5",
        "synthea_patient extension[us-core-race].extension[text].valueString 5/5",
        "synthea_patient extension[us-core-ethnicity].extension[ombCategory].valueCoding.system 5/5",
        "synthea_patient extension[us-core-ethnicity].extension[ombCategory].valueCoding.code 5/5",
        "synthea_patient extension[us-core-ethnicity].extension[ombCategory].valueCoding.display 5/5",
        "synthea_patient extension[us-core-ethnicity].extension[text].valueString 5/5",
        "synthea_patient extension[us-core-birthsex].valueCode 5/5",
        "synthea_patient extension[patient-birthPlace].valueAddress.city 5/5",
        "synthea_patient extension[patient-birthPlace].valueAddress.state 5/5",
        "synthea_patient extension[patient-birthPlace].valueAddress.country 5/5",
        "synthea_patient address[0].extension[geolocation].extension[latitude].valueDecimal 5/5",
        "synthea_patient address[0].extension[geolocation].extension[longitude].valueDecimal 5/5")));
    // In the database with no column, in mapping order among the other elements; the mapping's completeness
    // (the mean of its elements' shares) counts them.
    try (Connection c = readOnly(); Statement st = c.createStatement()) {
      String where = " WHERE run_id = '" + first.get("run").get("run_id").asText()
          + "' AND mapping = 'synthea_patient'";
      assertThat(rows(st, "SELECT position, element, coalesce(column_name, 'null') FROM quality.completeness"
          + where + " AND position <= 4 ORDER BY position"), equalTo(List.of(
              List.of("0", "meta.profile[0]", "meta_profile_0"),
              List.of("1", "extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension"
                  + "[ombCategory].valueCoding.system", "null"),
              List.of("2", "extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension"
                  + "[ombCategory].valueCoding.code", "null"),
              List.of("3", "extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension"
                  + "[ombCategory].valueCoding.display", "null"),
              List.of("4", "extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension"
                  + "[detailed].valueCoding.system", "null"))));
      assertThat(rows(st, "SELECT count(*), round(avg(share), 4) FROM quality.completeness" + where),
          equalTo(List.of(List.of("66", "0.8394"))));
    }
  }

  /** Each reference element has a row of its own, named by its path. */
  @Test
  void referencesAreCheckedPerReferenceElement() {
    List<String> refs = new ArrayList<>();
    for (JsonNode c : first.get("checks")) {
      if (c.get("check").asText().equals("reference_resolves") && c.get("mapping").asText().matches(
          "synthea_(condition|encounter)")) {
        refs.add(c.get("mapping").asText() + " " + c.get("element").asText() + " " + c.get("failed") + "/"
            + c.get("total"));
      }
    }
    assertThat(refs, equalTo(List.of(
        "synthea_encounter Encounter.participant[0].individual.reference 0/18",
        "synthea_encounter Encounter.serviceProvider.reference 0/18",
        "synthea_encounter Encounter.subject.reference 0/18",
        "synthea_condition Condition.encounter.reference 0/11",
        "synthea_condition Condition.subject.reference 0/11")));
  }

  @Test
  void theSecondRunAddsToTheHistoryAndShowsATrend() throws SQLException, IOException {
    String firstId = first.get("run").get("run_id").asText();
    String secondId = second.get("run").get("run_id").asText();
    assertThat(second.get("previous_run").get("run_id").asText(), equalTo(firstId));
    try (Connection c = readOnly(); Statement st = c.createStatement()) {
      assertThat(rows(st, "SELECT run_id, rows_in, resources, rejected FROM quality.runs ORDER BY time"),
          equalTo(List.of(List.of(firstId, "117", "115", "2"), List.of(secondId, "117", "115", "2"))));
      assertThat(rows(st, "SELECT run_id, count(*) FROM quality.completeness GROUP BY run_id ORDER BY run_id"),
          equalTo(List.of(List.of(firstId, "204"), List.of(secondId, "204"))));
      assertThat(rows(st, "SELECT count(DISTINCT run_id), count(*) FROM quality.rejects"),
          equalTo(List.of(List.of("1", "2"))));
      // The view shows the latest run, one row per mapping.
      assertThat(rows(st, "SELECT mapping, rows_in, resources, rejected, round(reject_rate, 4), failed_checks"
          + " FROM main.data_quality_report WHERE mapping IN ('synthea_condition', 'synthea_patient')"),
          equalTo(List.of(List.of("synthea_patient", "5", "5", "0", "0.0", "0"),
              List.of("synthea_condition", "12", "11", "1", "0.0833", "0"))));
      assertThat(rows(st, "SELECT DISTINCT run_id FROM main.data_quality_report"), equalTo(List.of(List.of(secondId))));
    }
    String html = Files.readString(out.resolve("report/quality.html"));
    assertThat(html, containsString("Against the previous run <code>" + firstId + "</code>"));
    assertThat(html, containsString("rows in +0, resources +0, rejected +0."));
  }

  /**
   * The same job committed by a manifest, without the DuckDB load (and without validation, which only adds figures
   * of its own): its tasks measure the completeness, checks, rejects and source columns the database computed, and
   * the next run's report shows the trend against it.
   */
  @Test
  void aRunCommittedByAManifestReportsWhatTheDatabaseComputed() throws IOException {
    Path volume = tmp.resolve("volume");
    JsonNode measured = manifestRun(volume);
    for (String part : List.of("completeness", "checks", "rejects_by_reason", "source_columns")) {
      assertThat(part, measured.get(part), equalTo(first.get(part)));
    }
    for (int i = 0; i < first.get("mappings").size(); i++) {
      com.fasterxml.jackson.databind.node.ObjectNode m = measured.get("mappings").get(i).deepCopy();
      com.fasterxml.jackson.databind.node.ObjectNode d = first.get("mappings").get(i).deepCopy();
      // A mean of the same shares, added up in another order.
      assertThat(m.remove("completeness").asDouble(), closeTo(d.remove("completeness").asDouble(), 1e-12));
      assertThat(m, equalTo(d));
    }
    JsonNode run = measured.get("run");
    assertThat(List.of(run.get("job").asText(), run.get("rows_in").asLong(), run.get("resources").asLong(),
        run.get("rejected").asLong(), run.get("validated").isNull()), equalTo(List.of("synthea", 117L, 115L, 2L,
            true)));
    assertThat(measured.get("previous_run").isNull(), equalTo(true));

    JsonNode next = manifestRun(volume);
    String firstId = run.get("run_id").asText();
    String nextId = next.get("run").get("run_id").asText();
    assertThat(next.get("previous_run").get("run_id").asText(), equalTo(firstId));
    List<String> history = new ArrayList<>();
    next.get("history").forEach(h -> history.add(h.get("run_id").asText()));
    assertThat(history, equalTo(List.of(firstId, nextId)));
    String html = Files.readString(volume.resolve("runs/" + nextId + "/report/quality.html"));
    assertThat(html, containsString("Against the previous run <code>" + firstId + "</code>"));
  }

  /** Runs the job committed by a manifest into {@code volume}, and returns the report its manifest lists. */
  private static JsonNode manifestRun(Path volume) throws IOException {
    Cli r = Cli.run("run", "--config", SyntheaJobTest.CONFIG.toString(), "--commit", "manifest", "--output",
        volume.toString(), "--set", "sinks.duckdb.enabled=false", "--set", "validation.mode=off");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("quality checks: 61 run, all passed"));
    JsonNode manifest = DefaultJobTest.JSON.readTree(volume.resolve("_manifest.json").toFile());
    return DefaultJobTest.JSON.readTree(volume.resolve(manifest.get("report").asText()).toFile());
  }

  @Test
  void theReportCommandPrintsTheLatestRun() {
    // Without --output the command finds the HTML page where the run wrote it.
    Cli r = Cli.run("report", "--db", db.toString());
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("Data quality of run " + second.get("run").get("run_id").asText()
        + " (synthea, "));
    assertThat(r.out(), containsString("117 rows in, 115 resources, 2 rejected"));
    assertThat(r.out(), containsString("  synthea_patient                        5         5        0     0.0%"
        + "      83.9%       0"));
    assertThat(r.out(), containsString("    1  synthea_condition mapping dateTime"));
    assertThat(r.out(), containsString("checks: 61 run, all passed"));
    assertThat(r.out(), containsString("HTML report: " + out.toAbsolutePath().normalize()
        .resolve("report/quality.html") + "\n"));
    assertThat(r.out(), containsString("trend against " + first.get("run").get("run_id").asText()));
    Cli missing = Cli.run("report", "--db", tmp.resolve("none.db").toString());
    assertThat(missing.code(), equalTo(2));
  }

  /** Chromium, without network or profile, renders the page: the text it shows, and a screenshot of it. */
  @Tag("servers")
  @Test
  void chromiumRendersTheReport() throws IOException, InterruptedException {
    Path page = out.resolve("report/quality.html");
    String dom = chromium(page, "--dump-dom");
    assertThat(dom, containsString("synthea_patient"));
    assertThat(dom, containsString("synthea_observation"));
    assertThat(dom, containsString("83.9%"));
    assertThat(dom, containsString("20.0% (1 of 5)"));
    assertThat(dom.contains("<svg") && dom.contains("class=\"bar\""), equalTo(true));
    assertThat(dom, containsString("Against the previous run"));
    Path png = tmp.resolve("quality.png");
    chromium(page, "--screenshot=" + png, "--window-size=1200,2000");
    assertThat(Files.size(png), greaterThan(20_000L));
  }

  private static String chromium(Path page, String... what) throws IOException, InterruptedException {
    Path profile = Files.createTempDirectory(tmp, "chromium");
    List<String> cmd = new ArrayList<>(List.of("chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--user-data-dir=" + profile));
    cmd.addAll(List.of(what));
    cmd.add(page.toUri().toString());
    Path stdout = tmp.resolve("chromium.out");
    // Fails (not skips) without chromium: .ci/run installs it.
    Process p = new ProcessBuilder(cmd).redirectOutput(stdout.toFile())
        .redirectError(tmp.resolve("chromium.err").toFile()).start();
    assertThat("chromium finished", p.waitFor(120, TimeUnit.SECONDS), equalTo(true));
    assertThat(Files.readString(tmp.resolve("chromium.err")), p.exitValue(), equalTo(0));
    return Files.readString(stdout);
  }

  private static Connection readOnly() throws SQLException {
    Properties p = new Properties();
    p.setProperty("duckdb.read_only", "true");
    return DriverManager.getConnection("jdbc:duckdb:" + db, p);
  }

  /** Rows as the JSON the report writes, so numbers compare by value (1.0 and 1 alike). */
  private static String json(List<List<String>> rows) {
    List<String> out = new ArrayList<>();
    for (List<String> r : rows) {
      out.add(String.join("|", r.stream().map(v -> v == null ? "null" : v.matches("-?[0-9.E-]+")
          ? new java.math.BigDecimal(v).stripTrailingZeros().toPlainString() : v).toList()));
    }
    return String.join("\n", out);
  }

  private static String json(JsonNode array) {
    List<String> out = new ArrayList<>();
    for (JsonNode e : array) {
      List<String> values = new ArrayList<>();
      e.fields().forEachRemaining(f -> values.add(f.getValue().isNull() ? "null" : f.getValue().isNumber()
          ? f.getValue().decimalValue().stripTrailingZeros().toPlainString() : f.getValue().asText()));
      out.add(String.join("|", values));
    }
    return String.join("\n", out);
  }

  static List<List<String>> rows(Statement st, String sql) throws SQLException {
    List<List<String>> rows = new ArrayList<>();
    try (ResultSet rs = st.executeQuery(sql)) {
      ResultSetMetaData md = rs.getMetaData();
      while (rs.next()) {
        List<String> row = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
          row.add(rs.getString(i));
        }
        rows.add(row);
      }
    }
    return rows;
  }
}
