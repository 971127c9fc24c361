package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FhirBeam#run} is the pipeline as a library call (a Databricks JAR task's entry point): it returns the run's
 * summary or throws, and never exits the JVM, which would end this test.
 */
class LibraryEntryTest {
  @TempDir
  Path tmp;

  @Test
  void aRunReturnsItsSummary() {
    Path out = tmp.resolve("out");
    RunSummary summary = FhirBeam.run(Map.of(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("fhir.db"));
    assertThat(summary.balanced(), equalTo(true));
    assertThat(summary.rowsIn(), equalTo(40L));
    assertThat(summary.resourcesOut(), equalTo(Map.of("Patient", 34L)));
    assertThat(summary.rejected(), equalTo(6L));
    assertThat(summary.runner(), equalTo("direct"));
    assertThat(Files.isRegularFile(out.resolve("run-summary.json")), equalTo(true));
  }

  @Test
  void badOptionsAndBadInputThrowInsteadOfExiting() {
    InputException option = assertThrows(InputException.class, () -> FhirBeam.run(Map.of(), "--outptu", "x"));
    assertThat(option.getMessage(), equalTo("Unknown options: '--outptu', 'x'"));
    InputException input = assertThrows(InputException.class, () -> FhirBeam.run(Map.of(), "--output",
        tmp.resolve("out").toString(), "--set", "sources.patients.path=" + tmp.resolve("none/*.csv")));
    assertThat(input.getMessage(), containsString("matches no file"));
  }
}
