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
 * compared as the calendar date the CSV carries.
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
        "--set", "validation.mode=sample", "--set", "validation.sample_rate=0.02");
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
      }
    }
    System.out.println("Agreement with Synthea's own FHIR, " + compared + " patients:\n" + a.table());
    assertThat(compared, equalTo(10));
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

  /** Per field: how many comparisons agreed, and the ones that did not. */
  static final class Agreement {
    final Map<String, int[]> counts = new LinkedHashMap<>();
    final List<String> disagreements = new ArrayList<>();

    void check(String field, String patient, Object ours, Object theirs) {
      int[] c = counts.computeIfAbsent(field, k -> new int[2]);
      c[1]++;
      if (Objects.equals(ours, theirs)) {
        c[0]++;
      } else {
        disagreements.add(field + " of patient " + patient + ": ours " + ours + ", Synthea's " + theirs);
      }
    }

    List<String> disagreements() {
      return disagreements;
    }

    String table() {
      StringBuilder sb = new StringBuilder();
      counts.forEach((field, c) -> sb.append(String.format("  %-40s %3d/%-3d %6.1f%%%n", field, c[0], c[1],
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
