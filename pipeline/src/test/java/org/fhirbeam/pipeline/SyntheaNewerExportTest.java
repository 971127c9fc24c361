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
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shipped Synthea Patient mapping on a newer export's patients.csv (testdata/synthea-v3: 28 columns, with
 * MIDDLE, FIPS and INCOME, and addresses in Sweden): every patient is written, a state outside the USA as the
 * export has it, and the middle name as the second given name. {@link SyntheaJobTest} runs the same mapping on
 * the older 25-column layout, which has no MIDDLE column.
 */
class SyntheaNewerExportTest {
  static final Path HOME = DefaultJobTest.HOME;

  @TempDir
  Path tmp;

  @Test
  void everyPatientOfANewerExportWithForeignAddressesIsWritten() throws IOException {
    Path config = Files.writeString(tmp.resolve("synthea-v3.yaml"), """
        name: synthea_v3
        input_dir: %s
        validation:
          mode: full
          packages: [%s]
          reject_on: error
        sources:
          patients: {path: patients.csv}
        mappings:
          - %s
        """.formatted(HOME.resolve("testdata/synthea-v3"), HOME.resolve("config/packages/hl7.fhir.us.core-3.1.1.tgz"),
        HOME.resolve("config/mappings/synthea/patient.yaml")));
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("fhir.db"), "--direct-checks");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(DefaultJobTest.rejectsWithoutRunAndFile(out), equalTo(List.of()));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 3 + rejected 0: OK"));
    // US Core binds address.state extensibly: the validator accepts a state that is no USPS code.
    assertThat(r.out(), containsString("validation (full): 3 resources checked, 0 rejected"));
    // The elements the export's new layout touches, exactly: MIDDLE is the second given name when there is one; a
    // Swedish state stays as written, and only a US state gets its USPS code and the country US.
    List<String> written = new ArrayList<>();
    for (String line : resources(out)) {
      JsonNode p = DefaultJobTest.JSON.readTree(line);
      written.add(p.get("id").asText().substring(0, 8) + " " + p.get("name") + " " + p.get("address"));
    }
    assertThat(written, equalTo(List.of(
        "7c1e5a90 [{\"use\":\"official\",\"family\":\"Bergström771\",\"given\":[\"Astrid512\",\"Linnea308\"],"
            + "\"prefix\":[\"Mrs.\"]},{\"use\":\"maiden\",\"family\":\"Holm204\",\"given\":[\"Astrid512\"]}]"
            + " [{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/geolocation\",\"extension\":"
            + "[{\"url\":\"latitude\",\"valueDecimal\":59.3391},{\"url\":\"longitude\",\"valueDecimal\":18.0552}]}],"
            + "\"line\":[\"Tegnérgatan 14\"],\"city\":\"Stockholm\",\"district\":\"Stockholms län\","
            + "\"state\":\"Stockholm\",\"postalCode\":\"113 58\"}]",
        "a4f09d27 [{\"use\":\"official\",\"family\":\"Lindgren663\",\"given\":[\"Oskar219\"],\"prefix\":"
            + "[\"Mr.\"]}] [{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/geolocation\","
            + "\"extension\":[{\"url\":\"latitude\",\"valueDecimal\":59.8586},{\"url\":\"longitude\","
            + "\"valueDecimal\":17.6389}]}],\"line\":[\"Kungsgatan 7\"],\"city\":\"Uppsala\",\"district\":"
            + "\"Uppsala län\",\"state\":\"Uppsala\",\"postalCode\":\"753 21\"}]",
        "e2b86c54 [{\"use\":\"official\",\"family\":\"Pruitt318\",\"given\":[\"Walter145\",\"James802\"],"
            + "\"prefix\":[\"Mr.\"]}] [{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
            + "geolocation\",\"extension\":[{\"url\":\"latitude\",\"valueDecimal\":42.2731},{\"url\":"
            + "\"longitude\",\"valueDecimal\":-71.8102}]}],\"line\":[\"88 Quarry Hill Road\"],\"city\":"
            + "\"Worcester\",\"district\":\"Worcester County\",\"state\":\"MA\",\"postalCode\":\"01609\","
            + "\"country\":\"US\"}]")));
  }

  /** The lines of every file the run wrote to fhir/, in file order. */
  static List<String> resources(Path out) throws IOException {
    List<String> lines = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.sorted().toList()) {
        lines.addAll(Files.readAllLines(f));
      }
    }
    return lines;
  }
}
