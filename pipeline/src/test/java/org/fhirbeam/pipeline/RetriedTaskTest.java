package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A mapping task that fails after writing its output, and that Spark runs again, leaves no second copy of what it
 * wrote and counts its rows once: the run balances and writes what a run without the failure writes.
 */
class RetriedTaskTest {
  @TempDir
  Path tmp;

  @AfterEach
  void clearProperties() {
    System.clearProperty("spark.master");
    System.clearProperty("fhirbeam.fail_once");
  }

  Cli runOnSpark(Path out) {
    return Cli.run("run", "--runner", "spark", "--output", out.toString(), "--set", "sinks.duckdb.enabled=false");
  }

  @Test
  void aTaskRetriedAfterWritingItsOutputWritesItOnce() throws IOException {
    Cli plain = runOnSpark(tmp.resolve("plain"));
    assertThat(plain.err(), plain.code(), equalTo(0));

    // The second of the default job's three files fails once; Spark gives each task two attempts.
    System.setProperty("fhirbeam.fail_once", "patient/1");
    System.setProperty("spark.master", "local[2,2]");
    Cli retried = runOnSpark(tmp.resolve("retried"));
    assertThat(retried.err(), retried.code(), equalTo(0));
    assertThat(retried.out(), containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    assertThat(lines(tmp.resolve("retried/fhir")), equalTo(lines(tmp.resolve("plain/fhir"))));
    assertThat(DefaultJobTest.rejectsWithoutRunAndFile(tmp.resolve("retried")),
        equalTo(DefaultJobTest.rejectsWithoutRunAndFile(tmp.resolve("plain"))));

    // With one attempt per task the same fault fails the run: the retry above did happen.
    System.setProperty("spark.master", "local[2]");
    Cli failed = runOnSpark(tmp.resolve("failed"));
    assertThat(failed.code(), equalTo(1));
    assertThat(failed.err(), containsString("task 1 of mapping patient failed once after writing its output"));
  }

  /** Every line of the NDJSON files in {@code dir}, sorted. */
  static List<String> lines(Path dir) throws IOException {
    List<String> out = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      for (Path f : files.toList()) {
        out.addAll(Files.readAllLines(f, StandardCharsets.UTF_8));
      }
    }
    out.sort(null);
    return out;
  }
}
