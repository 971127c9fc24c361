package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Data-quality rules declared in mappings, through the command line on both runners: a reject SQL rule and a
 * reject FHIRPath rule move their rows and resources to the rejects (stage quality) and the run still balances;
 * warn rules, valid codes of code-mapped elements and ranges of numbers are counted in quality.checks, the JSON
 * and HTML report and the report command; references to declared external targets are counted apart; every
 * source column's populated share is measured. Bad rules
 * stop the run before it reads anything, naming file, line and key.
 */
class QualityRulesTest {
  @TempDir
  Path tmp;

  static final String LABS_MAPPING = """
      source: labs
      resource: Observation
      id: {column: id}
      rules:
        not_in_error: {severity: reject, sql: "coalesce(lower(status), '') <> 'entered-in-error'"}
        has_unit: {severity: warn, sql: "unit IS NOT NULL"}
        has_value:
          severity: reject
          fhirpath: "value.exists()"
        dated: {severity: warn, fhirpath: "effective.exists()"}
      elements:
        status:
          column: status
          map: {final: final, prelim: preliminary}
          default: unknown
        code.coding[0].system: {value: "http://loinc.org"}
        code.coding[0].code: {column: code}
        subject.reference: {expr: "ref('Patient', patient)"}
        effectiveDateTime: {column: date}
        performer[0].reference: {expr: "ref('Practitioner', performer)"}
        valueQuantity.value: {column: value, range: {min: 0, max: 300}}
        valueQuantity.unit: {column: unit}
      """;

  static final String PATIENT_MAPPING = """
      source: people
      resource: Patient
      id: {column: id}
      elements:
        gender: {column: sex, map: {m: male, f: female}, ignore_case: true, default: unknown}
      """;

  Path job(String extra) throws IOException {
    // o2 and o5 lie outside the range, the statuses of o3 and o5 are not in the map, o3 is entered in error (a
    // reject SQL rule), o4 has no value (a reject FHIRPath rule), o4 and o6 have no unit, o5 no date; o6's patient
    // p7 is not in the run; the performers are external. Checks counted while mapping (has_unit, valid_code,
    // in_range) count every row read; FHIRPath warn rules (dated) the resources that stay.
    Files.writeString(tmp.resolve("labs.csv"), """
        id,patient,performer,status,code,value,unit,date
        o1,p1,d1,final,718-7,13.5,g/dL,2024-01-05
        o2,p1,d2,prelim,718-7,450,g/dL,2024-01-06
        o3,p2,d1,entered-in-error,718-7,12,g/dL,2024-01-07
        o4,p2,d1,final,718-7,,,2024-01-08
        o5,p2,d3,done,718-7,-1,g/dL,
        o6,p7,d1,final,718-7,200,,2024-01-09
        """);
    Files.writeString(tmp.resolve("people.csv"), "id,sex\np1,f\np2,x\np3,M\n");
    Files.writeString(tmp.resolve("labs.yaml"), LABS_MAPPING);
    Files.writeString(tmp.resolve("patients.yaml"), PATIENT_MAPPING);
    return Files.writeString(tmp.resolve("p.yaml"), "name: rules\ninput_dir: " + tmp + "\nsources:\n"
        + "  labs: {path: labs.csv}\n  people: {path: people.csv}\nmappings: [patients.yaml, labs.yaml]\n" + extra);
  }

  @ParameterizedTest
  @EnumSource(Runner.class)
  void rulesRejectRowsAndResourcesAndCountWarningsCodesRangesAndExternalReferences(Runner runner)
      throws IOException, SQLException {
    Path config = job("external_references: [Practitioner]\n");
    Path out = tmp.resolve("out");
    Path db = tmp.resolve("q.db");
    Cli r = Cli.run("run", "--config", config.toString(), "--runner", runner.label(), "--output", out.toString(),
        "--set", "duckdb.database=" + db, "--direct-checks");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 9 = resources 7 + rejected 2: OK"));
    // The progress (a line each, as the output is no terminal) ends with each stage's own counts: the FHIRPath rules
    // went through the 5 Observations the SQL rule left.
    assertThat(r.err(), containsString("mapping: 2 of 2 files, 9 rows\nrules: 5 of 5 resources\n"));

    List<String> ids = new ArrayList<>();
    for (String line : Files.readAllLines(out.resolve("fhir/Observation-00000-of-00001.ndjson"))) {
      ids.add(DefaultJobTest.JSON.readTree(line).get("id").asText());
    }
    assertThat(ids, equalTo(List.of("o1", "o2", "o5", "o6")));

    List<String> rejects = new ArrayList<>();
    try (var files = Files.list(out.resolve("rejects"))) {
      for (Path f : files.sorted().toList()) {
        for (String line : Files.readAllLines(f)) {
          JsonNode j = DefaultJobTest.JSON.readTree(line);
          rejects.add(j.get("stage").asText() + " " + j.get("mapping").asText() + " " + j.get("element").asText()
              + " " + j.get("rule").asText() + ": " + j.get("reason").asText() + " | "
              + (j.has("row") ? "line " + j.get("line") + " row " + j.get("row") : "resource " + j.get("resource")));
        }
      }
    }
    rejects.sort(null);
    assertThat(rejects, equalTo(List.of(
        "quality labs Observation has_value: the resource does not meet the rule's FHIRPath invariant: value.exists()"
            + " | resource {\"resourceType\":\"Observation\",\"id\":\"o4\",\"status\":\"final\",\"code\":{\"coding\":"
            + "[{\"system\":\"http://loinc.org\",\"code\":\"718-7\"}]},\"subject\":{\"reference\":\"Patient/p2\"},"
            + "\"effectiveDateTime\":\"2024-01-08\",\"performer\":[{\"reference\":\"Practitioner/d1\"}]}",
        "quality labs Observation not_in_error: the row does not meet the rule's SQL condition:"
            + " coalesce(lower(status), '') <> 'entered-in-error' | line 4 row {\"id\":\"o3\",\"patient\":\"p2\","
            + "\"performer\":\"d1\",\"status\":\"entered-in-error\",\"code\":\"718-7\",\"value\":\"12\",\"unit\":"
            + "\"g/dL\",\"date\":\"2024-01-07\"}")));

    JsonNode summary = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.at("/mappings/1/mapped").asLong() + " " + summary.at("/mappings/1/rejected").asLong(),
        equalTo("4 2"));
    // The run's own summary counts the checks too, printed and in run-summary.json.
    String failedChecks = "patients valid_code(gender) 1 of 3; labs dated 1 of 4; labs has_unit 2 of 6;"
        + " labs in_range(valueQuantity.value) 2 of 5; labs reference_resolves(Observation.subject.reference) 1 of 4;"
        + " labs valid_code(status) 2 of 6";
    assertThat(r.out(), containsString("  quality checks: 13 run, 6 failed: " + failedChecks + "\n"));
    assertThat(summary.at("/quality/checks_run").asInt(), equalTo(13));
    assertThat(String.join("; ", DefaultJobTest.JSON.convertValue(summary.at("/quality/failed_checks"),
        String[].class)), equalTo(failedChecks));

    // The checks, in the report file and in the database alike.
    List<String> expected = EXPECTED_CHECKS;
    JsonNode report = DefaultJobTest.JSON.readTree(out.resolve("report/quality.json").toFile());
    assertThat(checks(report), equalTo(expected));
    assertThat(rejectsByReason(report), equalTo(List.of("labs quality has_value 1", "labs quality not_in_error 1")));
    // Every column of every source, mapped or not, with how many of the rows read have a value.
    List<String> columns = sourceColumns(report);
    List<String> expectedColumns = EXPECTED_COLUMNS;
    assertThat(columns, equalTo(expectedColumns));
    Properties ro = new Properties();
    ro.setProperty("duckdb.read_only", "true");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db, ro); Statement st = c.createStatement()) {
      List<String> rows = new ArrayList<>();
      for (List<String> row : QualityReportTest.rows(st, "SELECT k.mapping, k.\"check\", k.element, k.failed, k.total"
          + " FROM quality.checks AS k JOIN quality.mappings AS m USING (run_id, mapping)"
          + " ORDER BY m.position, k.\"check\", k.element")) {
        rows.add(row.get(0) + " " + row.get(1) + " " + row.get(2) + " " + row.get(3) + "/" + row.get(4));
      }
      assertThat(rows, equalTo(expected));
      List<String> columnRows = new ArrayList<>();
      for (List<String> row : QualityReportTest.rows(st, "SELECT source, column_name, populated, total,"
          + " round(share, 4) FROM quality.source_columns ORDER BY source, position")) {
        columnRows.add(row.get(0) + "." + row.get(1) + " " + row.get(2) + "/" + row.get(3));
        assertThat(row.get(4), equalTo(String.valueOf(Math.round(Double.parseDouble(row.get(2))
            / Double.parseDouble(row.get(3)) * 10000) / 10000.0)));
      }
      assertThat(columnRows, equalTo(expectedColumns));
      assertThat(QualityReportTest.rows(st, "SELECT stage, rule, resource_id IS NULL, json_extract_string(row_json,"
          + " '$.id') FROM (SELECT *, NULL AS resource_id FROM quality.rejects) ORDER BY rule"),
          equalTo(List.of(List.of("quality", "has_value", "true", "o4"), List.of("quality", "not_in_error", "true",
              "o3"))));
      assertThat(QualityReportTest.rows(st, "SELECT mapping, failed_checks FROM main.data_quality_report"),
          equalTo(List.of(List.of("patients", "1"), List.of("labs", "8"))));
    }
    String html = Files.readString(out.resolve("report/quality.html"));
    assertThat(html, containsString("<h3>source labs</h3>"));
    assertThat(html, containsString("66.7% (4 of 6)"));
    assertThat(html, containsString("<td>labs</td><td>has_unit</td><td></td><td>2</td><td>6</td>"
        + "<td class=\"fail\">failed</td>"));
    Cli printed = Cli.run("report", "--db", db.toString());
    assertThat(printed.err(), printed.code(), equalTo(0));
    assertThat(printed.out(), containsString("checks: 13 run, 6 failed: patients valid_code(gender) 1 of 3;"
        + " labs dated 1 of 4; labs has_unit 2 of 6; labs in_range(valueQuantity.value) 2 of 5;"
        + " labs reference_resolves(Observation.subject.reference) 1 of 4; labs valid_code(status) 2 of 6"));
  }

  /**
   * With no DuckDB load, a run committed by a manifest has its tasks measure what it commits: the same checks, rejects
   * and source columns as the database computes (the references resolved by a group over the whole run), in the
   * report the manifest lists; and the report command reads it from there.
   */
  @ParameterizedTest
  @EnumSource(Runner.class)
  void aRunCommittedByAManifestReportsTheSameFiguresWithoutTheDatabase(Runner runner) throws IOException {
    Path volume = tmp.resolve("volume");
    Cli r = Cli.run("run", "--config", job("external_references: [Practitioner]\n").toString(), "--runner",
        runner.label(), "--commit", "manifest", "--output", volume.toString(), "--set", "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("  quality checks: 13 run, 6 failed: patients valid_code(gender) 1 of 3;"));
    JsonNode manifest = DefaultJobTest.JSON.readTree(volume.resolve("_manifest.json").toFile());
    String runId = manifest.get("run_id").asText();
    assertThat(manifest.get("report").asText(), equalTo("runs/" + runId + "/report/quality.json"));
    JsonNode report = DefaultJobTest.JSON.readTree(volume.resolve(manifest.get("report").asText()).toFile());
    assertThat(checks(report), equalTo(EXPECTED_CHECKS));
    assertThat(rejectsByReason(report), equalTo(List.of("labs quality has_value 1", "labs quality not_in_error 1")));
    assertThat(sourceColumns(report), equalTo(EXPECTED_COLUMNS));
    List<String> completeness = new ArrayList<>();
    report.get("completeness").forEach(c -> completeness.add(c.get("mapping").asText() + " "
        + c.get("element").asText() + " " + c.get("populated").asLong() + "/" + c.get("total").asLong()));
    assertThat(completeness, equalTo(List.of("patients gender 3/3", "labs status 4/4",
        "labs code.coding[0].system 4/4", "labs code.coding[0].code 4/4", "labs subject.reference 4/4",
        "labs effectiveDateTime 3/4", "labs performer[0].reference 4/4", "labs valueQuantity.value 4/4",
        "labs valueQuantity.unit 3/4")));
    assertThat(Files.readString(volume.resolve("runs/" + runId + "/report/quality.html")),
        containsString("<td>labs</td><td>has_unit</td><td></td><td>2</td><td>6</td><td class=\"fail\">failed</td>"));
    Cli printed = Cli.run("report", "--output", volume.toString());
    assertThat(printed.err(), printed.code(), equalTo(0));
    assertThat(printed.out(), containsString("Data quality of run " + runId + " (rules, "));
    assertThat(printed.out(), containsString("checks: 13 run, 6 failed: patients valid_code(gender) 1 of 3;"));
    assertThat(printed.out(), containsString("  HTML report: " + volume + "/runs/" + runId
        + "/report/quality.html\n"));
  }

  /**
   * A mapping whose source has no files measures nothing, yet its checks have their rows (0 of 0), as the DuckDB load
   * gives them.
   */
  @Test
  void aMappingWithoutFilesHasItsCheckRowsInAReportOfMeasuredFigures() throws IOException {
    Path config = job("external_references: [Practitioner]\n");
    String[] noLabs = {"--set", "sources.labs.path=none-*.csv", "--set", "sources.labs.optional=true"};
    Cli loaded = Cli.run(concat(new String[] {"run", "--config", config.toString(), "--output",
        tmp.resolve("out").toString(), "--set", "duckdb.database=" + tmp.resolve("q.db")}, noLabs));
    assertThat(loaded.err(), loaded.code(), equalTo(0));
    Path volume = tmp.resolve("volume");
    Cli measured = Cli.run(concat(new String[] {"run", "--config", config.toString(), "--commit", "manifest",
        "--output", volume.toString(), "--set", "sinks.duckdb.enabled=false"}, noLabs));
    assertThat(measured.err(), measured.code(), equalTo(0));
    JsonNode manifest = DefaultJobTest.JSON.readTree(volume.resolve("_manifest.json").toFile());
    List<String> checks = checks(DefaultJobTest.JSON.readTree(volume.resolve(manifest.get("report").asText())
        .toFile()));
    assertThat(checks, equalTo(checks(DefaultJobTest.JSON.readTree(tmp.resolve("out/report/quality.json")
        .toFile()))));
    assertThat(checks.stream().filter(c -> c.startsWith("labs ")).toList(), equalTo(List.of(
        "labs duplicate_id null 0/0",
        "labs not_in_future effectiveDateTime 0/0",
        "labs reference_external Observation.performer[0].reference 0/0",
        "labs reference_external Observation.subject.reference 0/0",
        "labs reference_resolves Observation.performer[0].reference 0/0",
        "labs reference_resolves Observation.subject.reference 0/0")));
  }

  private static String[] concat(String[] a, String[] b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  static final List<String> EXPECTED_CHECKS = List.of(
      "patients birth_before_death deceasedDateTime 0/0",
      "patients duplicate_id null 0/3",
      "patients valid_code gender 1/3",
      "labs dated null 1/4",
      "labs duplicate_id null 0/4",
      "labs has_unit null 2/6",
      "labs in_range valueQuantity.value 2/5",
      "labs not_in_future effectiveDateTime 0/3",
      "labs reference_external Observation.performer[0].reference 0/4",
      "labs reference_external Observation.subject.reference 0/0",
      "labs reference_resolves Observation.performer[0].reference 0/0",
      "labs reference_resolves Observation.subject.reference 1/4",
      "labs valid_code status 2/6");

  static final List<String> EXPECTED_COLUMNS = List.of("labs.id 6/6", "labs.patient 6/6", "labs.performer 6/6",
      "labs.status 6/6", "labs.code 6/6", "labs.value 5/6", "labs.unit 4/6", "labs.date 5/6", "people.id 3/3",
      "people.sex 3/3");

  /** A report's checks as {@code mapping check element failed/total}. */
  static List<String> checks(JsonNode report) {
    List<String> checks = new ArrayList<>();
    report.get("checks").forEach(c -> checks.add(c.get("mapping").asText() + " " + c.get("check").asText() + " "
        + (c.get("element").isNull() ? "null" : c.get("element").asText()) + " " + c.get("failed").asLong() + "/"
        + c.get("total").asLong()));
    return checks;
  }

  private static List<String> rejectsByReason(JsonNode report) {
    List<String> out = new ArrayList<>();
    report.get("rejects_by_reason").forEach(x -> out.add(x.get("mapping").asText() + " "
        + x.get("stage").asText() + " " + x.get("rule").asText() + " " + x.get("count").asLong()));
    return out;
  }

  private static List<String> sourceColumns(JsonNode report) {
    List<String> out = new ArrayList<>();
    report.get("source_columns").forEach(x -> out.add(x.get("source").asText() + "." + x.get("column").asText()
        + " " + x.get("populated").asLong() + "/" + x.get("total").asLong()));
    return out;
  }

  @Test
  void previewShowsTheRowsASqlRuleRejects() throws IOException {
    Cli r = Cli.run("preview", "--config", job("").toString(), "--mapping", "labs", "--rows", "3");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("-- row 3: REJECTED by a quality rule\n   Observation  rule not_in_error: the"
        + " row does not meet the rule's SQL condition: coalesce(lower(status), '') <> 'entered-in-error'\n"));
  }

  @Test
  void withoutExternalTargetsEveryReferenceOutsideTheRunFails() throws IOException {
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", job("").toString(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("q.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    JsonNode report = DefaultJobTest.JSON.readTree(out.resolve("report/quality.json").toFile());
    List<String> refs = new ArrayList<>();
    report.get("checks").forEach(c -> {
      if (c.get("check").asText().startsWith("reference_")) {
        refs.add(c.get("mapping").asText() + " " + c.get("check").asText() + " " + c.get("element").asText() + " "
            + c.get("failed").asLong() + "/" + c.get("total").asLong());
      }
    });
    // One row per reference element: every subject but p7's resolves, no performer does. The Patients have no
    // reference to check.
    assertThat(refs, equalTo(List.of("labs reference_resolves Observation.performer[0].reference 4/4",
        "labs reference_resolves Observation.subject.reference 1/4")));
  }

  @Test
  void rulesThatDuckDbOrHapiCannotRunStopTheRunNamingFileLineAndKey() throws IOException {
    Path config = job("");
    Path mapping = Files.writeString(tmp.resolve("labs.yaml"), LABS_MAPPING.replace("""
          dated: {severity: warn, fhirpath: "effective.exists()"}
        """, """
          bad_sql: {severity: warn, sql: "unit IS NOT"}
          unknown_column: {severity: reject, sql: "units IS NOT NULL"}
          not_a_condition: {severity: warn, sql: "upper(unit)"}
          bad_path: {severity: reject, fhirpath: "value.exists("}
        """).replace("valueQuantity.unit: {column: unit}", "valueQuantity.unit: {column: unit, range: {min: 0}}"));
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(), "--set",
        "duckdb.database=" + tmp.resolve("q.db"));
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), equalTo("error: mapping labs has 5 errors:\n"
        + "  " + mapping + ":25: valueQuantity.unit: 'range' applies to decimal and integer elements only\n"
        + "  " + mapping + ":10: rules.bad_sql.sql: syntax error at or near \")\"\n"
        + "  " + mapping + ":11: rules.unknown_column.sql: Referenced column \"units\" not found in FROM clause!"
        + " (the source's columns: id, patient, performer, status, code, value, unit, date)\n"
        + "  " + mapping + ":12: rules.not_a_condition.sql: is not a condition: it gives varchar, not true or false\n"
        + "  " + mapping + ":13: rules.bad_path.fhirpath: is not a FHIRPath expression: Error @1, 14: Expression"
        + " terminated unexpectedly\n"));
    assertThat(Files.exists(tmp.resolve("out/fhir")), equalTo(false));
  }

  @Test
  void badRuleDeclarationsAreConfigurationErrors() throws IOException {
    Path config = job("");
    Path mapping = tmp.resolve("labs.yaml");
    List<String> errors = new ArrayList<>();
    for (String[] edit : new String[][] {
        {"severity: reject, sql: \"coalesce", "severity: fatal, sql: \"coalesce"},
        {"severity: warn, sql: \"unit IS NOT NULL\"", "severity: warn, sql: \"unit IS NOT NULL\", fhirpath: \"id\""},
        {"has_unit:", "in_range:"},
        {"has_unit:", "2nd:"},
        {"range: {min: 0, max: 300}", "range: {min: 300, max: 0}"},
        {"range: {min: 0, max: 300}", "range: {low: 0}"}}) {
      Files.writeString(mapping, LABS_MAPPING.replace(edit[0], edit[1]));
      Cli r = Cli.run("check-config", config.toString());
      assertThat(r.out(), r.code(), equalTo(2));
      errors.add(r.err().replace(mapping.toString(), "labs.yaml"));
    }
    assertThat(errors, equalTo(List.of(
        "error: labs.yaml:5: rules.not_in_error.severity: 'fatal' is not one of warn, reject\n",
        "error: labs.yaml:6: rules.has_unit: give exactly one of 'sql' (a predicate over the source row) or"
            + " 'fhirpath' (an invariant over the built resource)\n",
        "error: labs.yaml:6: rules.in_range: 'in_range' is the name of a built-in check; give the rule another"
            + " name\n",
        "error: labs.yaml:6: rules.2nd: rule names are letters, digits, '_' and '-', starting with a letter (the"
            + " name is the rule of its rejects and the name of its check)\n",
        "error: labs.yaml:21: elements.valueQuantity.value.range.min: min is greater than max\n",
        "error: labs.yaml:21: elements.valueQuantity.value.range.low: unknown key (expected one of: max, min)\n")));
    // check-config reads the files' headers, so it checks a predicate's columns as a run does.
    Files.writeString(mapping, LABS_MAPPING.replace("unit IS NOT NULL", "units IS NOT NULL"));
    Cli columns = Cli.run("check-config", config.toString());
    assertThat(columns.err(), equalTo("error: " + mapping + ":6: rules.has_unit.sql: Referenced column \"units\" not"
        + " found in FROM clause! (the source's columns: id, patient, performer, status, code, value, unit, date)\n"));
    Files.writeString(mapping, LABS_MAPPING.replace("unit IS NOT NULL", "unit IS NOT"));
    Cli syntax = Cli.run("check-config", config.toString());
    assertThat(syntax.err(), equalTo("error: " + mapping + ":6: rules.has_unit.sql: syntax error at or near \")\"\n"));
    Files.writeString(mapping, LABS_MAPPING);
    Cli r = Cli.run("check-config", job("external_references: [Practitioner, 'not a prefix']\n").toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), equalTo("error: " + config + ":7: external_references[1]: 'not a prefix' is neither a"
        + " resource type (like Practitioner) nor a reference prefix (like https://fhir.example.org/ or urn:oid:)\n"));
  }
}
