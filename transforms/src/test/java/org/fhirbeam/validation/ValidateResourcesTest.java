package org.fhirbeam.validation;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.PipelineCounters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The validation step on the DirectRunner with its checks on: kept resources, reject records, counters. */
class ValidateResourcesTest {
  static final String VALID = "{\"resourceType\":\"Patient\",\"id\":\"ok\",\"gender\":\"female\"}";
  static final String BAD_CODE = "{\"resourceType\":\"Patient\",\"id\":\"bad-code\",\"gender\":\"x\"}";
  static final String BAD_TYPE = "{\"resourceType\":\"Patient\",\"id\":\"bad-type\",\"active\":\"yes\"}";

  @TempDir
  Path dir;

  /** Best-practice recommendations (a narrative, here) are counted as information, so they reject nothing. */
  @Test
  void invalidResourcesMoveToTheRejectsWithTheirIssuesAndEverythingIsCounted() throws IOException {
    Path part = dir.resolve("p0");
    Files.writeString(part, VALID + "\n" + BAD_CODE + "\n" + BAD_TYPE + "\n");
    Path rejects = dir.resolve("r0");
    Files.writeString(rejects, "{\"stage\":\"mapping\"}\n");
    ValidationSettings full = new ValidationSettings(ValidationSettings.Mode.FULL, 0.01, List.of(), List.of(),
        ValidationSettings.RejectOn.ERROR);

    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(true);
    PCollection<PartFile> out = p.apply(Create.of(new PartFile("fhir/Patient-abc-0.ndjson", part.toString(), 3),
            new PartFile("rejects/rejects-abc-0.ndjson", rejects.toString(), 1))
            .withCoder(SerializableCoder.of(PartFile.class)))
        .apply(ValidateResources.of("patient", "patients", full).withRunId("run-1"));
    PAssert.that(out).satisfies(new PartsAre(rejects.toString()));
    PipelineResult result = p.run();
    result.waitUntilFinish();
    Map<String, Long> counters = PipelineCounters.of(result);
    // Progress counters; the run's figures ride on the parts (PartsAre).
    assertThat(counters, equalTo(new TreeMap<>(Map.of("checked/validation/patient", 3L, "validated/patient", 3L,
        "invalid/patient", 2L, "rejected/patient", 2L))));
  }

  static final class PartsAre implements SerializableFunction<Iterable<PartFile>, Void> {
    private final String mappingRejects;

    PartsAre(String mappingRejects) {
      this.mappingRejects = mappingRejects;
    }

    @Override
    public Void apply(Iterable<PartFile> all) {
      Map<String, List<String>> byTarget = new TreeMap<>();
      Tally tally = Tally.EMPTY;
      for (PartFile part : all) {
        tally = tally.plus(part.tally());
        try {
          List<String> lines = Files.readAllLines(Path.of(part.path()));
          assertThat(part.target(), (long) lines.size(), equalTo(part.lines()));
          byTarget.put(part.target(), lines);
          if (part.target().equals("rejects/rejects-abc-0.ndjson")) {
            assertThat(part.path(), equalTo(mappingRejects)); // not a resource part: passed on untouched
          }
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
      assertThat(tally.counts(), equalTo(new TreeMap<>(Map.of("validated/patient", 3L, "invalid/patient", 2L,
          "rejected/patient", 2L,
          "issue/patient/error/content/Terminology_PassThrough_TX_Message", 1L,
          "issue/patient/error/content/Terminology_TX_NoValid_16", 1L,
          "issue/patient/error/content/", 1L,
          "issue/patient/error/content/Type_Specific_Checks_DT_Boolean_Value", 1L,
          "issue/patient/information/content/http://hl7.org/fhir/StructureDefinition/DomainResource#dom-6", 3L,
          // By the first rejecting issue's message id (the reject's rule): the boolean's has none.
          "validator_rejected/patient/Terminology_PassThrough_TX_Message", 1L, "validator_rejected/patient/", 1L))));
      assertThat(new ArrayList<>(byTarget.keySet()), equalTo(List.of("fhir/Patient-abc-0.ndjson",
          "rejects/rejects-Patient-abc-0-validation.ndjson", "rejects/rejects-abc-0.ndjson")));
      assertThat(byTarget.get("fhir/Patient-abc-0.ndjson"), equalTo(List.of(VALID)));
      List<String> rejects = byTarget.get("rejects/rejects-Patient-abc-0-validation.ndjson");
      assertThat(rejects.size(), equalTo(2));
      assertThat(rejects.get(0), equalTo("{\"run_id\":\"run-1\",\"source\":\"patients\",\"stage\":\"validation\","
          + "\"mapping\":\"patient\",\"element\":\"Patient.gender\",\"rule\":\"Terminology_PassThrough_TX_Message\","
          + "\"reason\":\"Unknown code 'http://hl7.org/fhir/administrative-gender#x'\",\"resource_id\":\"bad-code\","
          + "\"issues\":[{\"severity\":\"error\",\"location\":\"Patient.gender\",\"message_id\":"
          + "\"Terminology_PassThrough_TX_Message\",\"message\":\"Unknown code "
          + "'http://hl7.org/fhir/administrative-gender#x'\"},{\"severity\":\"error\",\"location\":\"Patient.gender\","
          + "\"message_id\":\"Terminology_TX_NoValid_16\",\"message\":\"The value provided ('x') was not found in the"
          + " value set 'AdministrativeGender' (http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1), and a code"
          + " is required from this value set  (error message = Unknown code 'http://hl7.org/fhir/administrative-gender#x';"
          + " Unknown code 'http://hl7.org/fhir/administrative-gender#x' for in-memory expansion of ValueSet"
          + " 'http://hl7.org/fhir/ValueSet/administrative-gender')\"}],\"resource\":" + BAD_CODE + "}"));
      assertThat(rejects.get(1), equalTo("{\"run_id\":\"run-1\",\"source\":\"patients\",\"stage\":\"validation\","
          + "\"mapping\":\"patient\",\"element\":\"Patient.active\",\"rule\":\"\",\"reason\":\"Error parsing JSON: the"
          + " primitive value must be a boolean\",\"resource_id\":\"bad-type\",\"issues\":[{\"severity\":\"error\","
          + "\"location\":\"Patient.active\",\"message_id\":\"\",\"message\":\"Error parsing JSON: the primitive value"
          + " must be a boolean\"},{\"severity\":\"error\",\"location\":\"Patient.active\",\"message_id\":"
          + "\"Type_Specific_Checks_DT_Boolean_Value\",\"message\":\"Boolean values must be 'true' or 'false'\"}],"
          + "\"resource\":" + BAD_TYPE + "}"));
      return null;
    }
  }
}
