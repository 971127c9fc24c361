package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Runs the finished files of docs/TUTORIAL.md (testdata/tutorial) and checks what the tutorial says they give. */
class TutorialTest {
  @TempDir
  Path tmp;

  static String id(String sample, String test) {
    return UUID.nameUUIDFromBytes(("[\"lab-result\",\"" + sample + "\",\"" + test + "\"]")
        .getBytes(StandardCharsets.UTF_8)).toString();
  }

  @Test
  void theTutorialJobGivesWhatTheTutorialShows() throws IOException {
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", DefaultJobTest.HOME.resolve("testdata/tutorial/pipeline.yaml").toString(),
        "--output", out.toString(), "--set", "duckdb.database=" + tmp.resolve("t.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 6 = resources 4 + rejected 2: OK"));
    String category = "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
        + "observation-category\",\"code\":\"laboratory\"}]}]";
    String interpretation = ",\"interpretation\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
        + "v3-ObservationInterpretation\",\"code\":\"";
    String ucum = "\"system\":\"http://unitsofmeasure.org\",";
    assertThat(Files.readAllLines(out.resolve("fhir/Observation-00000-of-00001.ndjson")), equalTo(List.of(
        "{\"resourceType\":\"Observation\",\"id\":\"" + id("S-1001", "GLU") + "\",\"status\":\"final\"," + category
            + ",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"15074-8\"}],\"text\":\"GLU\"},"
            + "\"subject\":{\"reference\":\"Patient/MRN-7\"},\"effectiveDateTime\":\"2024-03-05T08:15:00+01:00\","
            + "\"valueQuantity\":{\"value\":5.4,\"unit\":\"mmol/L\"," + ucum + "\"code\":\"mmol/L\"}"
            + interpretation + "N\"}]}]}",
        "{\"resourceType\":\"Observation\",\"id\":\"" + id("S-1001", "HBA1C") + "\",\"status\":\"final\"," + category
            + ",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"4548-4\"}],\"text\":\"HBA1C\"},"
            + "\"subject\":{\"reference\":\"Patient/MRN-7\"},\"effectiveDateTime\":\"2024-03-05T08:15:00+01:00\","
            + "\"valueQuantity\":{\"value\":6.9,\"unit\":\"%\"," + ucum + "\"code\":\"%\"}" + interpretation
            + "H\"}]}]}",
        "{\"resourceType\":\"Observation\",\"id\":\"" + id("S-1002", "GLU") + "\",\"status\":\"final\"," + category
            + ",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"15074-8\"}],\"text\":\"GLU\"},"
            + "\"subject\":{\"reference\":\"Patient/MRN-9\"},\"effectiveDateTime\":\"2024-07-17T14:40:00+02:00\","
            + "\"valueQuantity\":{\"value\":3.1,\"unit\":\"mmol/L\"," + ucum + "\"code\":\"mmol/L\"}"
            + interpretation + "L\"}]}]}",
        "{\"resourceType\":\"Observation\",\"id\":\"" + id("S-1002", "CULT") + "\",\"status\":\"final\"," + category
            + ",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"600-7\"}],\"text\":\"CULT\"},"
            + "\"subject\":{\"reference\":\"Patient/MRN-9\"},\"effectiveDateTime\":\"2024-07-17T14:40:00+02:00\","
            + "\"valueString\":\"no growth\"}")));
    List<String> rejects = new ArrayList<>();
    try (var files = Files.list(out.resolve("rejects"))) {
      for (Path f : files.toList()) {
        for (String line : Files.readAllLines(f)) {
          JsonNode j = DefaultJobTest.JSON.readTree(line);
          rejects.add(j.get("line") + " " + j.get("element").asText() + " " + j.get("rule").asText());
        }
      }
    }
    rejects.sort(null);
    assertThat(rejects, equalTo(List.of("6 Observation.effectiveDateTime dateTime",
        "7 Observation.code.coding[0].code code-map")));
  }
}
