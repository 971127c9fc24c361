package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shipped Synthea job on the bundled sample (testdata/synthea, invented rows): the same bytes on both
 * runners, every resource as HAPI writes it, every reference pointing at a resource of the same run, and the two
 * deliberately bad rows rejected with their lines.
 */
class SyntheaJobTest {
  static final Path CONFIG = DefaultJobTest.HOME.resolve("config/pipelines/synthea.yaml");

  @TempDir
  static Path tmp;
  static Map<String, String> direct;
  static Map<String, String> spark;

  @BeforeAll
  static void runOnBothRunners() throws IOException {
    direct = run(Runner.DIRECT);
    spark = run(Runner.SPARK);
  }

  static Map<String, String> run(Runner runner) throws IOException {
    Path out = tmp.resolve(runner.label());
    // The shipped job checks its profiles compiled; here HAPI's validator checks every resource too (sample mode at
    // rate 1), so that it, not only the compiled checks, finds no error.
    Cli r = Cli.run("run", "--config", CONFIG.toString(), "--runner", runner.label(), "--output", out.toString(),
        "--set", "duckdb.database=" + tmp.resolve(runner.label() + ".db"), "--set", "validation.mode=sample",
        "--set", "validation.sample_rate=1");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 117 = resources 115 + rejected 2: OK"));
    // Every resource validated against base R4 and the US Core profiles it claims: no errors, so none rejected.
    assertThat(r.out(), containsString("validation (sample 1.0): 115 resources checked, 0 rejected; issues: "));
    assertThat(r.out(), not(containsString(" error")));
    assertThat(r.out(), containsString("quality checks: "));
    assertThat(r.out(), not(containsString("validator_agrees")));
    Map<String, String> files = new TreeMap<>();
    for (String set : List.of("fhir", "rejects")) {
      try (var s = Files.list(out.resolve(set))) {
        for (Path f : s.toList()) {
          files.put(set + "/" + f.getFileName(), Files.readString(f));
        }
      }
    }
    return files;
  }

  @Test
  void bothRunnersWriteTheSameResources() {
    assertThat(spark.keySet(), equalTo(direct.keySet()));
    for (String f : direct.keySet()) {
      if (f.startsWith("fhir/")) {
        assertThat(f, spark.get(f), equalTo(direct.get(f)));
      }
    }
  }

  @Test
  void everyResourceIsWhatHapiWritesAndEveryReferenceResolvesInTheRun() throws IOException {
    IParser strict = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
    Map<String, Integer> counts = new TreeMap<>();
    Set<String> ids = new HashSet<>();
    List<String> references = new ArrayList<>();
    for (Map.Entry<String, String> f : direct.entrySet()) {
      if (!f.getKey().startsWith("fhir/")) {
        continue;
      }
      for (String line : f.getValue().split("\n")) {
        IBaseResource r = strict.parseResource(line);
        assertThat(strict.encodeResourceToString(r), equalTo(line));
        JsonNode json = DefaultJobTest.JSON.readTree(line);
        String type = json.get("resourceType").asText();
        counts.merge(type, 1, Integer::sum);
        assertThat(line, ids.add(type + "/" + json.get("id").asText()), equalTo(true));
        json.findValues("reference").forEach(v -> references.add(v.asText()));
      }
    }
    assertThat(counts, equalTo(new TreeMap<>(Map.of("AllergyIntolerance", 5, "Condition", 11, "Encounter", 18,
        "Immunization", 10, "MedicationRequest", 8, "Observation", 43, "Organization", 3, "Patient", 5,
        "Practitioner", 4, "Procedure", 8))));
    // Encounters 18 x 3 (subject, participant, serviceProvider), MedicationRequests 8 x 3 (subject, encounter,
    // requester), Conditions 11, Observations 43, Procedures 8, Immunizations 10, Allergies 5 x 2 each.
    assertThat(references.size(), equalTo(18 * 3 + 8 * 3 + (11 + 43 + 8 + 10 + 5) * 2));
    List<String> dangling = references.stream().filter(ref -> !ids.contains(ref)).toList();
    assertThat(dangling, equalTo(List.of()));
  }

  @Test
  void theTwoBadRowsAreRejectedWithTheirLinesRulesAndReasons() throws IOException {
    List<String> rejects = new ArrayList<>();
    for (Map.Entry<String, String> f : direct.entrySet()) {
      if (f.getKey().startsWith("rejects/")) {
        for (String line : f.getValue().split("\n")) {
          JsonNode r = DefaultJobTest.JSON.readTree(line);
          rejects.add(Path.of(r.get("file").asText()).getFileName() + ":" + r.get("line").asText() + " "
              + r.get("mapping").asText() + " " + r.get("element").asText() + " " + r.get("rule").asText() + ": "
              + r.get("reason").asText());
        }
      }
    }
    rejects.sort(null);
    assertThat(rejects, equalTo(List.of(
        "conditions.csv:13 synthea_condition Condition.onsetDateTime dateTime: value is not a FHIR dateTime"
            + " (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time",
        "observations.csv:45 synthea_observation Observation.valueQuantity.value decimal: value is not a decimal"
            + " number")));
  }
}
