package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Validation inside a run, on both runners: resources that break base R4 or the US Core profile they claim become
 * rejects of stage validation with the element and the validator's message id, and the run still balances.
 */
class ValidationJobTest {
  static final Path US_CORE = DefaultJobTest.HOME.resolve("config/packages/hl7.fhir.us.core-3.1.1.tgz");

  @TempDir
  Path tmp;

  Path job(String validation) throws IOException {
    // p2 has no name, which US Core requires; p3 has a phone number without a system, which FHIR's invariant
    // cpt-2 forbids. Neither is something the mapping can see.
    Files.writeString(tmp.resolve("people.csv"),
        "id,name,sex,phone\np1,Ann,female,\np2,,male,\np3,Cy,female,555-0100\np4,Di,other,\n");
    Files.writeString(tmp.resolve("m.yaml"), """
        source: people
        resource: Patient
        id: {column: id}
        elements:
          meta.profile[0]: {value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}
          identifier[0].system: {value: "urn:example:mrn"}
          identifier[0].value: {column: id}
          name[0].family: {column: name}
          gender: {column: sex}
          telecom[0].value: {column: phone}
        """);
    return Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  people: {path: people.csv}\n"
        + "mappings: [m.yaml]\nvalidation:\n" + validation.indent(2));
  }

  /** Each reject record of a run's output as {@code line} shows it, sorted. */
  static List<String> rejects(Path out, java.util.function.Function<JsonNode, String> line) throws IOException {
    List<String> rejects = new ArrayList<>();
    try (var files = Files.list(out.resolve("rejects"))) {
      for (Path f : files.sorted().toList()) {
        for (String text : Files.readAllLines(f)) {
          rejects.add(line.apply(DefaultJobTest.JSON.readTree(text)));
        }
      }
    }
    rejects.sort(null);
    return rejects;
  }

  @ParameterizedTest
  @EnumSource(Runner.class)
  void invalidResourcesAreRejectedWithTheirLocationAndTheRunBalances(Runner runner) throws IOException {
    Path config = job("mode: full\npackages: [" + US_CORE + "]\n");
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", config.toString(), "--runner", runner.label(), "--output", out.toString(),
        "--set", "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 2 + rejected 2: OK"));
    assertThat(r.out(), containsString("validation (full): 4 resources checked, 2 rejected; issues: 3 error,"));
    // The progress (a line each, as the output is no terminal) names each stage with its own counts, then the
    // driver's phases in order.
    int stages = r.err().indexOf("mapping: 1 of 1 file, 4 rows\nvalidation: 4 of 4 resources\n");
    int verifying = r.err().indexOf("verifying counts\n");
    int writing = r.err().indexOf("writing files\n");
    int loading = r.err().indexOf("loading DuckDB\n");
    assertThat(r.err(), List.of(stages >= 0, verifying > stages, writing > verifying, loading > writing),
        equalTo(List.of(true, true, true, true)));
    List<String> ids = new ArrayList<>();
    for (String line : Files.readAllLines(out.resolve("fhir/Patient-00000-of-00001.ndjson"))) {
      ids.add(DefaultJobTest.JSON.readTree(line).get("id").asText());
    }
    assertThat(ids, equalTo(List.of("p1", "p4")));
    List<String> rejects = rejects(out, j -> j.get("resource_id").asText() + " " + j.get("stage").asText() + " "
        + j.get("element").asText() + " " + j.get("rule").asText() + " " + j.get("issues").size());
    assertThat(rejects, equalTo(List.of("p2 validation Patient Validation_VAL_Profile_Minimum 1",
        "p3 validation Patient.telecom[0] http://hl7.org/fhir/StructureDefinition/ContactPoint#cpt-2 2")));
    JsonNode summary = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.at("/mappings/0/mapped").asLong(), equalTo(2L));
    assertThat(summary.at("/mappings/0/rejected").asLong(), equalTo(2L));
    assertThat(summary.at("/validation/validated/m").asLong(), equalTo(4L));
    assertThat(summary.at("/validation/rejected/m").asLong(), equalTo(2L));
    assertThat(summary.at("/validation/issues_by_severity/error").asLong(), equalTo(3L));
  }

  /**
   * The same job in mode compiled (the default): no validator is built; the profile's checks run in the mapping's
   * query, and the same two rows are rejected at the same elements, with their lines and the ids their resources would
   * have had.
   */
  @ParameterizedTest
  @EnumSource(Runner.class)
  void compiledChecksRejectTheSameRowsWithoutTheValidator(Runner runner) throws IOException {
    Path config = job("packages: [" + US_CORE + "]\n");
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", config.toString(), "--runner", runner.label(), "--output", out.toString(),
        "--set", "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 2 + rejected 2: OK"));
    assertThat(r.out(), containsString("validation (compiled): 4 resources checked, 2 rejected; issues: 2 error\n"));
    List<String> rejects = rejects(out, j -> j.get("resource_id").asText() + " line " + j.get("line").asText() + " "
        + j.get("stage").asText() + " " + j.get("element").asText() + " " + j.get("rule").asText() + ": "
        + j.get("reason").asText());
    assertThat(rejects, equalTo(List.of("p2 line 3 validation Patient Validation_VAL_Profile_Minimum: Patient.name:"
            + " minimum required = 1, but only found 0 (from http://hl7.org/fhir/us/core/StructureDefinition/"
            + "us-core-patient|3.1.1)",
        "p3 line 4 validation Patient.telecom[0] Validation_VAL_Profile_Minimum: Patient.telecom.system: minimum"
            + " required = 1, but only found 0 (from http://hl7.org/fhir/us/core/StructureDefinition/"
            + "us-core-patient|3.1.1)")));
    JsonNode summary = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.at("/validation/mode").asText(), equalTo("compiled"));
    assertThat(summary.at("/validation/validated/m").asLong(), equalTo(4L));
    assertThat(summary.at("/validation/rejected/m").asLong(), equalTo(2L));
    assertThat(summary.at("/validation/issues/0/message_id").asText(), equalTo("Validation_VAL_Profile_Minimum"));
    assertThat(summary.at("/validation/issues/0/count").asLong(), equalTo(2L));
  }

  /**
   * Mode sample: the compiled checks reject, and the validator checks a stable share of the rest (here all); each
   * resource it finds an error in would be a failure of the quality check {@code validator_agrees}.
   */
  @Test
  void sampleModeCrossChecksTheCompiledVerdicts() throws IOException {
    Path config = job("mode: sample\nsample_rate: 1\npackages: [" + US_CORE + "]\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(),
        "--set", "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 2 + rejected 2: OK"));
    assertThat(r.out(), containsString("validation (sample 1.0): 4 resources checked, 2 rejected; issues:"));
    // The two resources the compiled checks passed, the validator passes too.
    JsonNode report = DefaultJobTest.JSON.readTree(tmp.resolve("out/report/quality.json").toFile());
    List<String> agreement = new ArrayList<>();
    report.get("checks").forEach(c -> {
      if (c.get("check").asText().equals("validator_agrees")) {
        agreement.add(c.get("failed").asLong() + " of " + c.get("total").asLong());
      }
    });
    assertThat(agreement, equalTo(List.of("0 of 2")));
  }

  @Test
  void rejectOnNeverOnlyCountsTheIssues() throws IOException {
    Path config = job("mode: full\npackages: [" + US_CORE + "]\nreject_on: never\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(),
        "--set", "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 4 + rejected 0: OK"));
    assertThat(r.out(), containsString("validation (full): 4 resources checked, 0 rejected; issues: 3 error,"));
  }

  @Test
  void aPackageThatIsNotAFhirPackageStopsTheRunBeforeItStarts() throws IOException {
    Path bad = Files.writeString(tmp.resolve("bad.tgz"), "not a package");
    Path config = job("mode: sample\nsample_rate: 0.5\npackages: [" + bad + "]\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(),
        "--set", "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString("validation.packages: cannot load FHIR definitions from " + bad));
    assertThat(Files.exists(tmp.resolve("out/fhir")), equalTo(false));
  }

  @Test
  void theValidateCommandPrintsEachErrorWithFileLineAndLocationAndExitsWithOne() throws IOException {
    Path file = Files.writeString(tmp.resolve("r.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"female\"}\n"
            + "{\"resourceType\":\"Patient\",\"id\":\"b\",\"active\":\"yes\"}\n");
    Cli r = Cli.run("validate", file.toString(), "--outcome", tmp.resolve("oo.json").toString());
    assertThat(r.err(), r.code(), equalTo(1));
    assertThat(r.out(), containsString(file + ":2  error  Patient.active  Type_Specific_Checks_DT_Boolean_Value"
        + "  Boolean values must be 'true' or 'false'\n"));
    assertThat(r.out(), containsString("INVALID: 2 resource(s) in 1 file(s), 1 with errors\n"));
    // The compiled checks decide the first (clean); the validator checks the second, which they do not prove.
    assertThat(r.out(), containsString("  compiled checks decided 1 resource(s) (their information notes are not"
        + " listed); HAPI's validator checked the other 1\n"));
    JsonNode oo = DefaultJobTest.JSON.readTree(tmp.resolve("oo.json").toFile());
    assertThat(oo.get("resourceType").asText(), equalTo("OperationOutcome"));
    assertThat(oo.at("/issue/0/diagnostics").asText(), equalTo(file + ":2"));
    // The validator alone: the first resource's note (it has no narrative) is listed too.
    Cli full = Cli.run("validate", file.toString(), "--mode", "full", "--outcome", tmp.resolve("oo.json").toString());
    assertThat(full.err(), full.code(), equalTo(1));
    assertThat(full.out(), containsString(file + ":2  error  Patient.active  Type_Specific_Checks_DT_Boolean_Value"));
    oo = DefaultJobTest.JSON.readTree(tmp.resolve("oo.json").toFile());
    assertThat(oo.at("/issue/0/diagnostics").asText(), equalTo(file + ":1"));
    assertThat(oo.at("/issue/0/severity").asText(), equalTo("information"));

    Cli good = Cli.run("validate", file.toString().replace("r.ndjson", "g.json"));
    assertThat(good.code(), equalTo(2));
    Files.writeString(tmp.resolve("g.json"), "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"female\"}");
    good = Cli.run("validate", tmp.resolve("g.json").toString(), "--profile",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient", "--package", US_CORE.toString());
    assertThat(good.code(), equalTo(1));
    assertThat(good.out(), containsString("Patient.identifier: minimum required = 1"));

    Cli missingProfile = Cli.run("validate", tmp.resolve("g.json").toString(), "--profile", "no-such-profile.json");
    assertThat(missingProfile.code(), equalTo(2));
    assertThat(missingProfile.err(), containsString("--profile no-such-profile.json: neither a canonical URL nor a file"));
  }
}
