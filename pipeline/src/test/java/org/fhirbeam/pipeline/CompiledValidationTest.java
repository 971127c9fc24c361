package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.startsWith;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Validation mode {@code compiled} against HAPI's validator as the oracle. A mutation corpus is built from the Synthea
 * sample and vital signs of the shared Synthea export: every row as it is, and for every row of each file, each column
 * in turn left empty or set to a code no value set holds (and, for dates, set before the start or to a year or a month
 * only). The shipped Synthea job runs on it twice, in mode {@code compiled} (no validator) and in mode {@code full}
 * (HAPI's validator on every resource); both must reject the same rows at validation, each at the same element, and
 * each kind of defect must reach at least 50 resources.
 */
class CompiledValidationTest {
  @TempDir
  Path tmp;

  @Test
  void compiledChecksRejectWhatTheValidatorRejectsAtTheSameElement() throws Exception {
    Path corpus = mutationCorpus(DefaultJobTest.HOME.resolve("testdata/synthea"), tmp.resolve("corpus"));
    Map<String, List<List<String>>> compiled = validationRejects("compiled", corpus);
    Map<String, List<List<String>>> full = validationRejects("full", corpus);
    // By the validator's first issue: how many resources it rejected, how many of them the compiled checks rejected,
    // and how many of those at an element and with a rule among the validator's errors for that resource.
    Map<String, int[]> table = new TreeMap<>();
    List<String> disagreements = new ArrayList<>();
    full.forEach((resource, rejects) -> {
      // Rows that give the same id are told apart by their issues: each compiled reject pairs with one of the
      // validator's whose errors include it.
      List<List<String>> theirs = new ArrayList<>(rejects);
      List<String> mine = new ArrayList<>();
      compiled.getOrDefault(resource, List.of()).forEach(m -> mine.add(m.get(0)));
      for (List<String> issues : rejects) {
        table.computeIfAbsent(rule(issues.get(0)), k -> new int[3])[0]++;
      }
      for (String first : mine) {
        List<String> match = theirs.stream().filter(t -> t.contains(first)).findFirst().orElse(null);
        if (match == null) {
          disagreements.add(resource + ": compiled " + first + ", validator " + theirs);
          continue;
        }
        theirs.remove(match);
        int[] counts = table.get(rule(match.get(0)));
        counts[1]++;
        counts[2]++;
      }
      theirs.forEach(t -> disagreements.add(resource + ": only the validator rejects it: " + t));
    });
    compiled.forEach((resource, rejects) -> {
      if (!full.containsKey(resource)) {
        rejects.forEach(m -> disagreements.add(resource + ": only compiled rejects it: " + m));
      }
    });
    StringBuilder report = new StringBuilder("validator's first issue: validator rejects / compiled rejects /"
        + " agreeing\n");
    table.forEach((rule, n) -> report.append(rule).append(": ").append(n[0]).append(" / ").append(n[1])
        .append(" / ").append(n[2]).append('\n'));
    System.out.print(report);
    assertThat(report.toString(), disagreements, equalTo(List.of()));
    // The corpus reaches every kind of check the compiler claims.
    assertThat(report.toString(), table.keySet().stream().toList(), equalTo(List.of(
        "Terminology_PassThrough_TX_Message", "Validation_VAL_Profile_Minimum", "Validation_VAL_Profile_Minimum_SLICE",
        "Validation_VAL_Profile_NotSlice", "http://hl7.org/fhir/StructureDefinition/Period#per-1",
        "http://hl7.org/fhir/StructureDefinition/bmi#vs-1", "http://hl7.org/fhir/StructureDefinition/bodyheight#vs-1",
        "http://hl7.org/fhir/StructureDefinition/bodyweight#vs-1",
        "http://hl7.org/fhir/StructureDefinition/heartrate#vs-1",
        "http://hl7.org/fhir/StructureDefinition/vitalsigns#vs-2")));
    // At least 50 resources with each kind of defect.
    table.forEach((rule, n) -> assertThat(report + rule, n[0], greaterThanOrEqualTo(50)));
  }

  /**
   * An invariant that is not SQL (Range's {@code rng-2} compares two quantities) is checked on the built resources with
   * HAPI's FHIRPath engine, at each element it applies to: the same reject as the validator's.
   */
  @Test
  void anInvariantThatIsNotSqlIsCheckedWithTheFhirPathEngine() throws IOException {
    Files.writeString(tmp.resolve("obs.csv"), "id,low,high\no1,10,20\no2,30,20\no3,10,\n");
    Files.writeString(tmp.resolve("m.yaml"), """
        source: obs
        resource: Observation
        id: {column: id}
        elements:
          status: {value: final}
          code.text: {value: "hemoglobin"}
          referenceRange[0].text: {value: "adults"}
          referenceRange[0].age.low.value: {column: low}
          referenceRange[0].age.high.value: {column: high}
        """);
    Path config = Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  obs: {path: obs.csv}\n"
        + "mappings: [m.yaml]\nvalidation: {}\n");
    Cli check = Cli.run("check-config", config.toString());
    assertThat(check.err(), check.code(), equalTo(0));
    assertThat(check.out(), containsString("warning: mapping m: invariant rng-2 (low.empty() or high.empty() or (low <="
        + " high)) at Observation.referenceRange[0].age[0] is not compiled to SQL: HAPI's FHIRPath engine checks it on"
        + " each resource\n"));
    List<String> byMode = new ArrayList<>();
    for (String mode : List.of("compiled", "full")) {
      Path out = runIn(mode, config, "rows in 3 = resources 2 + rejected 1");
      byMode.addAll(ValidationJobTest.rejects(out, j -> j.get("resource_id").asText() + " " + j.get("stage").asText()
          + " " + j.get("element").asText() + " " + j.get("rule").asText()));
    }
    assertThat(byMode, equalTo(List.of(
        "o2 validation Observation.referenceRange[0].age http://hl7.org/fhir/StructureDefinition/Range#rng-2",
        "o2 validation Observation.referenceRange[0].age http://hl7.org/fhir/StructureDefinition/Range#rng-2")));
  }

  /**
   * Slices told apart by value: a profile of Patient whose identifiers must include exactly one of system
   * {@code urn:oid:1.2.3.4}, whose telecoms must include a phone and may include e-mails, nothing else (closed), and
   * one of whose names must have a use (a slice by existence).
   * The compiled checks reject the rows HAPI's validator rejects, each with an element and message id among the
   * validator's errors for it, whichever repetition holds the slice's item: the first identifier's system comes from
   * the row, the second's is a constant, written only when the row gives that identifier a value.
   */
  @Test
  void requiredSlicesByValueAreCheckedLikeTheValidatorChecksThem() throws IOException {
    Path profile = Files.writeString(tmp.resolve("mrn-patient.json"), """
        {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/mrn-patient",
         "name": "MrnPatient", "status": "active", "fhirVersion": "4.0.1", "kind": "resource", "abstract": false,
         "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
         "derivation": "constraint", "differential": {"element": [
          {"id": "Patient.identifier", "path": "Patient.identifier",
           "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
          {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
          {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1,
           "fixedUri": "urn:oid:1.2.3.4"},
          {"id": "Patient.name", "path": "Patient.name",
           "slicing": {"discriminator": [{"type": "exists", "path": "use"}], "rules": "open"}},
          {"id": "Patient.name:used", "path": "Patient.name", "sliceName": "used", "min": 1, "max": "*"},
          {"id": "Patient.name:used.use", "path": "Patient.name.use", "min": 1},
          {"id": "Patient.telecom", "path": "Patient.telecom",
           "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
          {"id": "Patient.telecom:phone", "path": "Patient.telecom", "sliceName": "phone", "min": 1, "max": "*"},
          {"id": "Patient.telecom:phone.system", "path": "Patient.telecom.system", "min": 1, "fixedCode": "phone"},
          {"id": "Patient.telecom:email", "path": "Patient.telecom", "sliceName": "email", "min": 0, "max": "*"},
          {"id": "Patient.telecom:email.system", "path": "Patient.telecom.system", "min": 1, "fixedCode": "email"}
         ]}}
        """);
    Files.writeString(tmp.resolve("p.csv"), """
        id,sys1,v1,v2,tsys,tval,tsys2,tval2,use,family
        p1,urn:oid:1.2.3.4,A,,phone,555-1,email,a@example.org,official,Ng
        p2,urn:other,B,C,phone,555-2,,,usual,Ng
        p3,urn:other,D,,phone,555-3,,,official,Ng
        p4,urn:oid:1.2.3.4,E,,email,e@example.org,,,official,Ng
        p5,,,F,,,,,official,Ng
        p6,urn:oid:1.2.3.4,G,,phone,555-6,fax,555-7,official,Ng
        p7,urn:oid:1.2.3.4,H,,phone,555-8,,555-9,official,Ng
        p8,urn:oid:1.2.3.4,I,J,phone,555-10,,,official,Ng
        p9,urn:oid:1.2.3.4,K,,phone,555-11,,,,Ng
        """);
    Files.writeString(tmp.resolve("m.yaml"), """
        source: p
        resource: Patient
        id: {column: id}
        elements:
          meta.profile[0]: {value: "http://example.org/StructureDefinition/mrn-patient"}
          identifier[0].system: {column: sys1}
          identifier[0].value: {column: v1}
          identifier[1].system: {value: "urn:oid:1.2.3.4"}
          identifier[1].value: {column: v2}
          telecom[0].system: {column: tsys}
          telecom[0].value: {column: tval}
          telecom[1].system: {column: tsys2}
          telecom[1].value: {column: tval2}
          name[0].use: {column: use}
          name[0].family: {column: family}
        """);
    Path config = Files.writeString(tmp.resolve("j.yaml"), "input_dir: " + tmp + "\nsources:\n  p: {path: p.csv}\n"
        + "mappings: [m.yaml]\nvalidation: {packages: [" + profile + "]}\n");
    Cli check = Cli.run("check-config", config.toString());
    assertThat(check.err(), check.code(), equalTo(0));
    Map<String, List<String>> byMode = new TreeMap<>();
    for (String mode : List.of("compiled", "full")) {
      Path out = runIn(mode, config, "rows in 9 = resources 2 + rejected 7");
      // Compiled: the first check the row fails. HAPI's validator: every error it finds, the first first.
      byMode.put(mode, ValidationJobTest.rejects(out, j -> {
        StringBuilder line = new StringBuilder(j.get("resource_id").asText() + " " + j.get("element").asText() + " "
            + j.get("rule").asText());
        j.path("issues").forEach(i -> line.append(" | ").append(i.get("location").asText()).append(' ')
            .append(i.get("message_id").asText()));
        return line.toString();
      }));
    }
    assertThat(byMode.get("compiled"), equalTo(List.of(
        "p3 Patient Validation_VAL_Profile_Minimum_SLICE",
        "p4 Patient Validation_VAL_Profile_Minimum_SLICE",
        "p5 Patient Validation_VAL_Profile_Minimum_SLICE",
        "p6 Patient.telecom[1] Validation_VAL_Profile_NotSlice",
        "p7 Patient.telecom[1] Validation_VAL_Profile_NotSlice",
        "p8 Patient Validation_VAL_Profile_Maximum",
        "p9 Patient Validation_VAL_Profile_Minimum_SLICE")));
    // The same rows, each compiled reject among the validator's errors for its resource.
    List<String> full = byMode.get("full");
    assertThat(full.toString(), full.size(), equalTo(7));
    for (int i = 0; i < full.size(); i++) {
      String compiled = byMode.get("compiled").get(i);
      assertThat(full.get(i), containsString(" | " + compiled.substring(compiled.indexOf(' ') + 1)));
      assertThat(full.get(i), startsWith(compiled.substring(0, compiled.indexOf(' ') + 1)));
    }
  }

  /**
   * Runs the job of {@code config} in validation mode {@code mode}, without the DuckDB sink, into a folder of the
   * mode's own, and checks that it ends well and balances as {@code balance} says; returns the folder.
   */
  private Path runIn(String mode, Path config, String balance) {
    Path out = tmp.resolve("out-" + mode);
    Cli r = Cli.run("run", "--config", config.toString(), "--output", out.toString(), "--set", "validation.mode="
        + mode, "--set", "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: " + balance + ": OK"));
    return out;
  }

  private static String rule(String issue) {
    return issue.substring(issue.lastIndexOf(' ') + 1);
  }

  /**
   * Runs the Synthea job on {@code input} and returns its validation rejects by "mapping resource-id" (a mutated row
   * can give the id of another): for each, "element rule" of every rejecting issue, the first first.
   */
  private Map<String, List<List<String>>> validationRejects(String mode, Path input) throws IOException {
    Path out = tmp.resolve(mode);
    Cli r = Cli.run("run", "--config", SyntheaJobTest.CONFIG.toString(), "--output", out.toString(), "--set",
        "input_dir=" + input, "--set", "validation.mode=" + mode, "--set", "quality.duplicate_ids=keep", "--set",
        "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString(": OK"));
    Map<String, List<List<String>>> rejects = new TreeMap<>();
    try (var files = Files.list(out.resolve("rejects"))) {
      for (Path f : files.toList()) {
        for (String line : Files.readAllLines(f)) {
          JsonNode j = DefaultJobTest.JSON.readTree(line);
          if (j.get("stage").asText().equals("validation")) {
            List<String> issues = new ArrayList<>(List.of(j.get("element").asText() + " " + j.get("rule").asText()));
            if (j.has("issues")) {
              j.get("issues").forEach(i -> issues.add(i.get("location").asText() + " " + i.get("message_id").asText()));
            }
            rejects.computeIfAbsent(j.get("mapping").asText() + " " + j.get("resource_id").asText(),
                k -> new ArrayList<>()).add(issues);
          }
        }
      }
    }
    return rejects;
  }

  /**
   * The vital signs of four kinds in the shared Synthea export's own FHIR output (its CSV has no observations.csv), as
   * rows of Synthea's observations.csv: with the sample's, each kind's rows give the corpus 50 or more resources with
   * each defect a vital sign can have (the validation issue's floor). All 33 BMIs; the first 40 of the others, by id.
   */
  private static final String VITAL_SIGNS = "SELECT r->>'effectiveDateTime' AS DATE,"
      + " replace(r->>'$.subject.reference', 'urn:uuid:', '') AS PATIENT,"
      + " replace(r->>'$.encounter.reference', 'urn:uuid:', '') AS ENCOUNTER, 'vital-signs' AS CATEGORY,"
      + " r->>'$.code.coding[0].code' AS CODE, r->>'$.code.coding[0].display' AS DESCRIPTION,"
      + " r->>'$.valueQuantity.value' AS VALUE, r->>'$.valueQuantity.code' AS UNITS, 'numeric' AS TYPE"
      + " FROM (SELECT e->'resource' AS r FROM (SELECT unnest(entry) AS e FROM read_json('"
      + SyntheaAgreementTest.SHARED.resolve("fhir") + "/*.json', records = true, columns = {entry: 'JSON[]'},"
      + " maximum_object_size = 100000000)))"
      + " WHERE (r->>'resourceType') = 'Observation' AND (r->>'$.code.coding[0].code') IN ('39156-5', '8302-2',"
      + " '29463-7', '8867-4')"
      + " QUALIFY row_number() OVER (PARTITION BY r->>'$.code.coding[0].code' ORDER BY r->>'id') <= 40";

  /**
   * Each CSV of {@code from} into {@code to}: its rows, then for each of its rows one row per column and change (the
   * column empty; a code no value set holds; an end date before any start; a date of a year or a month only). The
   * observations get the shared export's vital signs ({@link #VITAL_SIGNS}) first.
   */
  static Path mutationCorpus(Path from, Path to) throws IOException, SQLException {
    Files.createDirectories(to);
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:"); Statement st = db.createStatement();
        var csvs = Files.list(from)) {
      for (Path csv : csvs.filter(p -> p.toString().endsWith(".csv")).sorted().toList()) {
        st.execute("CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('" + csv + "', all_varchar = true,"
            + " header = true)");
        if (csv.getFileName().toString().equals("observations.csv")) {
          st.execute("INSERT INTO t BY NAME " + VITAL_SIGNS);
        }
        List<String> columns = new ArrayList<>();
        try (ResultSet rs = st.executeQuery("SELECT column_name FROM (DESCRIBE t)")) {
          while (rs.next()) {
            columns.add(rs.getString(1));
          }
        }
        List<String> parts = new ArrayList<>(List.of("SELECT * FROM t"));
        for (String c : columns) {
          List<String> values = new ArrayList<>(List.of("NULL", "'zz-not-a-code'"));
          if (c.equals("STOP") || c.equals("DEATHDATE")) {
            values.addAll(List.of("'1901-01-01'", "'1950-06-15T08:30:00Z'"));
          }
          if (c.equals("DATE") || c.equals("START") || c.equals("STOP")) {
            // A year, a month: less precise than a vital sign's or a comparison's other side.
            values.addAll(List.of("'2019'", "'2019-05'"));
          }
          for (String v : values) {
            parts.add("SELECT * REPLACE (" + v + " AS \"" + c + "\") FROM t");
          }
        }
        st.execute("COPY (" + String.join(" UNION ALL ", parts) + ") TO '" + to.resolve(csv.getFileName())
            + "' (HEADER)");
      }
    }
    return to;
  }
}
