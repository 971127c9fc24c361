package org.fhirbeam.validation;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Runs the HL7 validator test cases in ../shared/data and compares valid/invalid with the HL7 Java validator. */
@Tag("shared-data")
class ValidatorCasesTest {
  private static final Path CASES = Path.of("../../shared/data/validator-cases");

  @Test
  void agreesWithTheHl7ValidatorOnValidity() throws Exception {
    ObjectMapper json = new ObjectMapper();
    JsonNode manifest = json.readTree(CASES.resolve("manifest.json").toFile());
    int compared = 0;
    int agreed = 0;
    List<String> disagreements = new ArrayList<>();
    List<String> skipped = new ArrayList<>();
    for (JsonNode t : manifest.get("tests")) {
      Boolean expectedValid = expectedValid(json, t.get("java"));
      if (expectedValid == null) {
        skipped.add(t.get("name").asText());
        continue;
      }
      List<Path> defs = new ArrayList<>();
      for (String key : List.of("profiles", "supporting")) {
        if (t.has(key)) {
          for (JsonNode f : t.get(key)) {
            defs.add(CASES.resolve(f.asText()));
          }
        }
      }
      String text = new String(Files.readAllBytes(CASES.resolve(t.get("file").asText())), java.nio.charset.StandardCharsets.UTF_8);
      FhirValidation v;
      List<FhirValidation.Issue> issues;
      try {
        v = FhirValidation.build(defs);
        issues = v.validate(text, List.of());
      } catch (RuntimeException e) {
        disagreements.add(t.get("name").asText() + ": exception " + e);
        compared++;
        continue;
      }
      boolean valid = issues.stream().noneMatch(i -> i.severity().isError());
      compared++;
      if (valid == expectedValid) {
        agreed++;
      } else {
        disagreements.add(t.get("name").asText() + ": expected " + (expectedValid ? "valid" : "invalid") + ", got "
            + issues.stream().filter(i -> i.severity().isError()).map(i -> i.messageId() + " " + i.location() + " " + i.message()).toList());
      }
    }
    System.out.println("validator cases: " + agreed + "/" + compared + " agree; no expected outcome: " + skipped);
    disagreements.forEach(d -> System.out.println("  " + d));
    assertThat(agreed * 100.0 / compared, greaterThanOrEqualTo(95.0));
  }

  /** The HL7 validator's verdict: a path to its OperationOutcome, the outcome inline, or an error count. */
  private static Boolean expectedValid(ObjectMapper json, JsonNode java) throws java.io.IOException {
    if (java == null || java.isNull()) {
      return null;
    }
    if (java.isTextual()) {
      Path file = CASES.resolve("outcomes").resolve(java.asText());
      return Files.exists(file) ? !hasErrors(json.readTree(file.toFile())) : null;
    }
    if (java.has("outcome")) {
      return !hasErrors(java.get("outcome"));
    }
    return java.has("errorCount") ? java.get("errorCount").asInt() == 0 : null;
  }

  private static boolean hasErrors(JsonNode outcome) {
    for (JsonNode i : outcome.path("issue")) {
      String s = i.path("severity").asText();
      if (s.equals("error") || s.equals("fatal")) {
        return true;
      }
    }
    return false;
  }
}
