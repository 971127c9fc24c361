package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Maps the shared Synthea CSV export with config/pipelines/synthea.yaml and compares the result with Synthea's own
 * FHIR bundles of the same run, patient by patient, field by field. Prints the agreement per field and requires
 * 100% on every field the CSV carries.
 *
 * <p>Deliberate differences, not compared: ids of Encounters (the CSV and the bundles use different UUIDs for the
 * same encounter) and of the resources the CSV has no id for (ours are name-based UUIDs of the row's key), and
 * references (ours are {@code Type/id}, the bundles use {@code urn:uuid:} and conditional references).
 * Time stamps are compared as instants: the CSV writes UTC, the bundles local offsets. Condition dates are
 * compared as the calendar date the CSV carries. Encounters are joined on patient, start and type code, and the
 * references to them (from Procedures) compared as the encounter they join to; references to Organizations and
 * Practitioners as the id they resolve to (the bundles name Practitioners by NPI, the CSV does not carry it).
 *
 * <p>What Synthea's CSV export loses, so is not compared or is compared as the CSV has it: commas in names and
 * addresses (the CSV writes a space for each), an Organization's phone when it has none (the bundles write
 * {@code (555) 555-5555}), a Practitioner's NPI identifier and e-mail address, a Procedure's end time (the CSV has
 * one DATE). Procedures' reasons are codes in the CSV and references to the Condition in the bundles: compared
 * as the Condition's code. Not compared, the mapping writes it and the bundles do not: the {@code text} of an
 * Encounter's reasonCode (the bundles have its coding only).
 */
@Tag("shared-data")
class SyntheaAgreementTest {
  static final Path SHARED = DefaultJobTest.HOME.resolve("../shared/data/synthea-mcode-100").normalize();
  static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  static Path run(Path tmp, Runner runner) {
    Path out = tmp.resolve("out-" + runner.label());
    Cli r = Cli.run("run", "--config", DefaultJobTest.HOME.resolve("config/pipelines/synthea.yaml").toString(),
        "--runner", runner.label(), "--set", "input_dir=" + SHARED.resolve("csv"), "--set",
        "duckdb.database=" + tmp.resolve(runner.label() + ".db"), "--output", out.toString(),
        // A stable 2% sample keeps the test short; an error in it would reject a resource and break the balance.
        "--set", "validation.mode=sample", "--set", "validation.sample_rate=0.02",
        // Every shipped mapping's id key must tell the export's rows apart: a repeated id fails the run, naming it.
        "--set", "quality.duplicate_ids=fail");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 16,052 = resources 16,052 + rejected 0: OK"));
    return out;
  }

  @Test
  void bothRunnersWriteTheSameResourcesForTheSharedExport() throws IOException {
    Path direct = run(tmp, Runner.DIRECT).resolve("fhir");
    Path spark = run(tmp, Runner.SPARK).resolve("fhir");
    List<String> names;
    try (Stream<Path> s = Files.list(direct)) {
      names = s.map(p -> p.getFileName().toString()).sorted().toList();
    }
    try (Stream<Path> s = Files.list(spark)) {
      assertThat(s.map(p -> p.getFileName().toString()).sorted().toList(), equalTo(names));
    }
    assertThat(names.size(), equalTo(9));
    for (String n : names) {
      assertThat(n, Files.mismatch(direct.resolve(n), spark.resolve(n)), equalTo(-1L));
    }
  }

  @Test
  void mappedCsvAgreesWithSyntheasOwnFhirOnEveryFieldTheCsvCarries() throws IOException {
    Path out = run(tmp, Runner.DIRECT);

    Map<String, List<JsonNode>> ours = byType(out.resolve("fhir"));
    Map<String, JsonNode> ourPatients = new HashMap<>();
    for (JsonNode p : ours.get("Patient")) {
      ourPatients.put(p.get("id").asText(), p);
    }
    Map<String, String> ourEncounters = new HashMap<>();
    for (JsonNode e : ours.get("Encounter")) {
      ourEncounters.put("Encounter/" + e.get("id").asText(), encounterKey(e));
    }
    Map<String, String> npis = new HashMap<>();
    for (JsonNode p : bundleResources("practitionerInformation.*", "Practitioner")) {
      npis.put(p.get("identifier").get(0).get("value").asText(), p.get("id").asText());
    }
    Agreement a = new Agreement();
    int compared = 0;
    try (Stream<Path> files = Files.list(SHARED.resolve("fhir"))) {
      for (Path bundle : files.filter(f -> !f.getFileName().toString().matches("(hospital|practitioner).*"))
          .sorted().toList()) {
        Map<String, List<JsonNode>> theirs = new HashMap<>();
        for (JsonNode e : JSON.readTree(bundle.toFile()).get("entry")) {
          theirs.computeIfAbsent(e.get("resource").get("resourceType").asText(), k -> new ArrayList<>())
              .add(e.get("resource"));
        }
        JsonNode their = theirs.get("Patient").get(0);
        String id = their.get("id").asText();
        JsonNode our = ourPatients.get(id);
        a.check("Patient present", id, our != null, true);
        if (our == null) {
          continue;
        }
        compared++;
        comparePatient(a, id, our, their);
        a.check("Condition (code, onset, abatement)", id,
            multiset(ours.get("Condition"), id, "subject", c -> code(c, "code") + " " + date(c, "onsetDateTime")
                + " " + date(c, "abatementDateTime")),
            multiset(theirs.get("Condition"), null, null, c -> code(c, "code") + " " + date(c, "onsetDateTime")
                + " " + date(c, "abatementDateTime")));
        a.check("Immunization (code, date)", id,
            multiset(ours.get("Immunization"), id, "patient", c -> code(c, "vaccineCode") + " "
                + instant(c.path("occurrenceDateTime").asText(null))),
            multiset(theirs.get("Immunization"), null, null, c -> code(c, "vaccineCode") + " "
                + instant(c.path("occurrenceDateTime").asText(null))));
        a.check("MedicationRequest (RxNorm code)", id,
            multiset(ours.get("MedicationRequest"), id, "subject", c -> code(c, "medicationCodeableConcept")),
            multiset(theirs.get("MedicationRequest"), null, null, c -> code(c, "medicationCodeableConcept")));
        compareEncounters(a, id, ours.get("Encounter"), theirs.getOrDefault("Encounter", List.of()), npis);
        Map<String, String> theirEncounters = new HashMap<>();
        for (JsonNode e : theirs.getOrDefault("Encounter", List.of())) {
          theirEncounters.put("urn:uuid:" + e.get("id").asText(), encounterKey(e));
        }
        Map<String, JsonNode> theirConditions = new HashMap<>();
        for (JsonNode c : theirs.getOrDefault("Condition", List.of())) {
          theirConditions.put("urn:uuid:" + c.get("id").asText(), c);
        }
        a.check("Procedure (code, status, performed, encounter, reason)", id,
            multiset(ours.get("Procedure"), id, "subject", p -> procedure(p, p.path("performedDateTime").asText(null),
                ourEncounters, coding(p.path("reasonCode").path(0)))),
            multiset(theirs.get("Procedure"), null, null, p -> procedure(p,
                p.path("performedPeriod").path("start").asText(null), theirEncounters,
                coding(theirConditions.getOrDefault(p.path("reasonReference").path(0).path("reference").asText(),
                    JSON.missingNode()).path("code")))));
        // The export has no allergies for these ten patients (nor does their bundle): this checks that none appear.
        a.check("AllergyIntolerance (code, status, recorded)", id,
            multiset(ours.get("AllergyIntolerance"), id, "patient", c -> allergy(c, "onsetDateTime")),
            multiset(theirs.get("AllergyIntolerance"), null, null, c -> allergy(c, "recordedDate")));
      }
    }
    compareOrganizations(a, ours.get("Organization"), bundleResources("hospitalInformation.*", "Organization"));
    comparePractitioners(a, ours.get("Practitioner"), bundleResources("practitionerInformation.*", "Practitioner"));
    System.out.println("Agreement with Synthea's own FHIR, " + compared + " patients:\n" + a.table());
    assertThat(compared, equalTo(10));
    assertThat(a.counts.get("Encounter present")[1], equalTo(97));
    assertThat(a.counts.get("Organization present")[1], equalTo(193));
    assertThat(a.counts.get("Practitioner present")[1], equalTo(194));
    assertThat(a.disagreements(), equalTo(List.of()));
  }

  private static void comparePatient(Agreement a, String id, JsonNode our, JsonNode their) {
    a.check("Patient.gender", id, our.path("gender").asText(null), their.path("gender").asText(null));
    a.check("Patient.birthDate", id, our.path("birthDate").asText(null), their.path("birthDate").asText(null));
    a.check("Patient.deceased (date)", id, date(our, "deceasedDateTime"), date(their, "deceasedDateTime"));
    a.check("Patient.name official", id, officialName(our), officialName(their));
    for (String type : List.of("SS", "DL", "PPN")) {
      a.check("Patient.identifier " + type, id, identifier(our, type), identifier(their, type));
    }
    a.check("Patient race (OMB code)", id, extensionCode(our, "us-core-race"), extensionCode(their, "us-core-race"));
    a.check("Patient ethnicity (OMB code)", id, extensionCode(our, "us-core-ethnicity"),
        extensionCode(their, "us-core-ethnicity"));
    a.check("Patient birth sex", id, extension(our, "us-core-birthsex").path("valueCode").asText(null),
        extension(their, "us-core-birthsex").path("valueCode").asText(null));
    a.check("Patient.maritalStatus", id, code(our, "maritalStatus"), code(their, "maritalStatus"));
    a.check("Patient.address", id, address(our), address(their));
  }

  /**
   * Each of the patient's encounters in Synthea's bundle against ours with the same patient, start and type code
   * (the CSV's encounter ids are other UUIDs than the bundle's).
   */
  private static void compareEncounters(Agreement a, String id, List<JsonNode> ours, List<JsonNode> theirs,
      Map<String, String> npis) {
    Map<String, JsonNode> byKey = new HashMap<>();
    for (JsonNode e : ours) {
      if (e.path("subject").path("reference").asText().equals("Patient/" + id)) {
        byKey.put(encounterKey(e), e);
      }
    }
    a.check("Encounter count", id, byKey.size(), theirs.size());
    for (JsonNode their : theirs) {
      String key = encounterKey(their);
      JsonNode our = byKey.get(key);
      a.check("Encounter present", id, our != null, true);
      if (our == null) {
        continue;
      }
      String what = "Encounter/" + their.get("id").asText() + " of patient " + id;
      a.check("Encounter.meta.profile", what, our.path("meta").path("profile"), their.path("meta").path("profile"));
      a.check("Encounter.status", what, our.path("status").asText(null), their.path("status").asText(null));
      a.check("Encounter.class", what, our.path("class"), their.path("class"));
      a.check("Encounter.type", what, our.path("type"), their.path("type"));
      a.check("Encounter.period", what, period(our.path("period")), period(their.path("period")));
      JsonNode ourParticipant = our.path("participant").path(0);
      JsonNode theirParticipant = their.path("participant").path(0);
      a.check("Encounter.participant.type", what, ourParticipant.path("type"), theirParticipant.path("type"));
      a.check("Encounter.participant.period", what, period(ourParticipant.path("period")),
          period(theirParticipant.path("period")));
      a.check("Encounter.participant.individual (practitioner id)", what,
          referencedId(ourParticipant.path("individual")),
          npis.get(referencedId(theirParticipant.path("individual"))));
      a.check("Encounter.serviceProvider (organization id)", what, referencedId(our.path("serviceProvider")),
          referencedId(their.path("serviceProvider")));
      a.check("Encounter.reasonCode (coding)", what, coding(our.path("reasonCode").path(0)),
          coding(their.path("reasonCode").path(0)));
    }
  }

  /** Every Organization of Synthea's hospital bundle against ours with the same id. */
  private static void compareOrganizations(Agreement a, List<JsonNode> ours, List<JsonNode> theirs) {
    Map<String, JsonNode> byId = byId(ours);
    for (JsonNode their : theirs) {
      String what = "Organization/" + their.get("id").asText();
      JsonNode our = byId.get(their.get("id").asText());
      a.check("Organization present", what, our != null, true);
      if (our == null) {
        continue;
      }
      for (String field : List.of("meta", "identifier", "active", "type")) {
        a.check("Organization." + field, what, our.path(field), their.path(field));
      }
      a.check("Organization.name", what, our.path("name").asText(null), csvText(their.path("name").asText(null)));
      // Synthea's FHIR export writes a made-up number for an organization without one; the CSV leaves it empty.
      JsonNode phone = their.path("telecom").path(0).path("value").asText().equals("(555) 555-5555")
          ? JSON.missingNode() : their.path("telecom");
      a.check("Organization.telecom", what, our.path("telecom"), phone);
      a.check("Organization.address", what, address(our), csvText(address(their)));
    }
  }

  /** Every Practitioner of Synthea's practitioner bundle against ours with the same id. */
  private static void comparePractitioners(Agreement a, List<JsonNode> ours, List<JsonNode> theirs) {
    Map<String, JsonNode> byId = byId(ours);
    for (JsonNode their : theirs) {
      String what = "Practitioner/" + their.get("id").asText();
      JsonNode our = byId.get(their.get("id").asText());
      a.check("Practitioner present", what, our != null, true);
      if (our == null) {
        continue;
      }
      for (String field : List.of("meta", "active", "name", "gender")) {
        a.check("Practitioner." + field, what, our.path(field), their.path(field));
      }
      a.check("Practitioner.address", what, address(our), csvText(address(their)));
    }
  }

  /** The resources of one type in the shared export's bundles whose file names match {@code files}. */
  static List<JsonNode> bundleResources(String files, String type) throws IOException {
    List<JsonNode> out = new ArrayList<>();
    try (Stream<Path> all = Files.list(SHARED.resolve("fhir"))) {
      for (Path bundle : all.filter(f -> f.getFileName().toString().matches(files)).sorted().toList()) {
        for (JsonNode e : JSON.readTree(bundle.toFile()).get("entry")) {
          if (e.get("resource").get("resourceType").asText().equals(type)) {
            out.add(e.get("resource"));
          }
        }
      }
    }
    return out;
  }

  static Map<String, JsonNode> byId(List<JsonNode> resources) {
    Map<String, JsonNode> out = new HashMap<>();
    resources.forEach(r -> out.put(r.get("id").asText(), r));
    return out;
  }

  /** What joins an encounter of the CSV to the same one in the bundles: patient, start (as an instant), type code. */
  static String encounterKey(JsonNode e) {
    return referencedId(e.path("subject")) + " " + instant(e.path("period").path("start").asText(null)) + " "
        + e.path("type").path(0).path("coding").path(0).path("code").asText();
  }

  static String procedure(JsonNode p, String performed, Map<String, String> encounters, String reason) {
    return code(p, "code") + " '" + p.path("code").path("text").asText() + "' " + p.path("status").asText() + " "
        + instant(performed) + " encounter " + encounters.get(p.path("encounter").path("reference").asText())
        + " reason " + reason + " " + p.path("meta").path("profile");
  }

  static String allergy(JsonNode c, String recorded) {
    return code(c, "code") + " " + code(c, "clinicalStatus") + " " + code(c, "verificationStatus") + " "
        + date(c, recorded);
  }

  /** A period's start and end as instants. */
  static String period(JsonNode period) {
    return instant(period.path("start").asText(null)) + " - " + instant(period.path("end").asText(null));
  }

  /** system|code|display of a CodeableConcept's first coding, null without one. */
  static String coding(JsonNode concept) {
    JsonNode c = concept.path("coding").path(0);
    return c.isMissingNode() ? null : c.path("system").asText() + "|" + c.path("code").asText() + "|"
        + c.path("display").asText();
  }

  /**
   * The id a reference names: ours are {@code Type/id}, the bundles' {@code urn:uuid:id} or conditional
   * ({@code Type?identifier=system|value}, the value being the id, or for Practitioners the NPI).
   */
  static String referencedId(JsonNode reference) {
    String r = reference.path("reference").asText(null);
    return r == null ? null : r.substring(Math.max(r.lastIndexOf('|'), Math.max(r.lastIndexOf('/'),
        r.lastIndexOf(':'))) + 1);
  }

  /** A bundle's text as Synthea's CSV export writes it: each comma a space. */
  static String csvText(String text) {
    return text == null ? null : text.replace(',', ' ');
  }

  /** Per field: how many comparisons agreed, and the ones that did not. */
  static final class Agreement {
    final Map<String, int[]> counts = new LinkedHashMap<>();
    final List<String> disagreements = new ArrayList<>();

    /** {@code patient} is the patient's id, or for what belongs to no patient its type and id. */
    void check(String field, String patient, Object ours, Object theirs) {
      int[] c = counts.computeIfAbsent(field, k -> new int[2]);
      c[1]++;
      if (Objects.equals(ours, theirs)) {
        c[0]++;
      } else {
        disagreements.add(field + " of " + (patient.contains("/") ? "" : "patient ") + patient + ": ours " + ours
            + ", Synthea's " + theirs);
      }
    }

    List<String> disagreements() {
      return disagreements;
    }

    String table() {
      StringBuilder sb = new StringBuilder();
      counts.forEach((field, c) -> sb.append(String.format("  %-56s %3d/%-3d %6.1f%%%n", field, c[0], c[1],
          100.0 * c[0] / c[1])));
      disagreements.forEach(d -> sb.append("  DISAGREES: ").append(d).append('\n'));
      return sb.toString();
    }
  }

  static Map<String, List<JsonNode>> byType(Path fhir) throws IOException {
    Map<String, List<JsonNode>> out = new HashMap<>();
    try (Stream<Path> files = Files.list(fhir)) {
      for (Path f : files.sorted().toList()) {
        for (String line : Files.readAllLines(f)) {
          JsonNode r = JSON.readTree(line);
          out.computeIfAbsent(r.get("resourceType").asText(), k -> new ArrayList<>()).add(r);
        }
      }
    }
    return out;
  }

  /** The values of the resources (of patient {@code id} by {@code refField} when given), counted. */
  static Map<String, Integer> multiset(List<JsonNode> resources, String id, String refField,
      Function<JsonNode, String> key) {
    Map<String, Integer> out = new TreeMap<>();
    for (JsonNode r : resources == null ? List.<JsonNode>of() : resources) {
      if (id == null || r.path(refField).path("reference").asText().equals("Patient/" + id)) {
        out.merge(key.apply(r), 1, Integer::sum);
      }
    }
    return out;
  }

  static String code(JsonNode r, String field) {
    JsonNode coding = r.path(field).path("coding").path(0);
    return coding.isMissingNode() ? null : coding.path("system").asText() + "|" + coding.path("code").asText();
  }

  /** The calendar date of a date or dateTime, as written (local to its offset). */
  static String date(JsonNode r, String field) {
    String v = r.path(field).asText(null);
    return v == null ? null : v.substring(0, Math.min(10, v.length()));
  }

  static String instant(String dateTime) {
    return dateTime == null ? null : OffsetDateTime.parse(dateTime).toInstant().toString();
  }

  static String officialName(JsonNode p) {
    for (JsonNode n : p.path("name")) {
      if (n.path("use").asText().equals("official")) {
        return n.path("family").asText() + " " + n.path("given") + " " + n.path("prefix") + " " + n.path("suffix");
      }
    }
    return null;
  }

  static String identifier(JsonNode p, String type) {
    for (JsonNode i : p.path("identifier")) {
      if (i.path("type").path("coding").path(0).path("code").asText().equals(type)) {
        return i.path("system").asText() + "|" + i.path("value").asText();
      }
    }
    return null;
  }

  static JsonNode extension(JsonNode r, String urlEnd) {
    for (JsonNode e : r.path("extension")) {
      if (e.path("url").asText().endsWith("/" + urlEnd)) {
        return e;
      }
    }
    return JSON.missingNode();
  }

  static String extensionCode(JsonNode r, String urlEnd) {
    for (JsonNode e : extension(r, urlEnd).path("extension")) {
      if (e.path("url").asText().equals("ombCategory")) {
        return e.path("valueCoding").path("system").asText() + "|" + e.path("valueCoding").path("code").asText();
      }
    }
    return null;
  }

  static String address(JsonNode p) {
    JsonNode a = p.path("address").path(0);
    List<String> geo = new ArrayList<>();
    for (JsonNode e : extension(a, "geolocation").path("extension")) {
      geo.add(e.path("url").asText() + "=" + e.path("valueDecimal").decimalValue().stripTrailingZeros());
    }
    return a.path("line") + " " + a.path("city").asText() + " " + a.path("state").asText() + " "
        + a.path("postalCode").asText() + " " + a.path("country").asText() + " " + geo;
  }
}
