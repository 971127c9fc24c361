package org.fhirbeam.cluster;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.fhirbeam.pipeline.FhirBeam;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The application jar submitted to a standalone Spark cluster of a master and two one-core workers, each its own
 * JVM: the default job writes what the DirectRunner writes in this JVM, also when a mapping task fails after it has
 * written its output and Spark runs it again on the same or the other worker.
 */
@Tag("servers")
class StandaloneClusterTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Path HOME = Path.of(System.getProperty("fhirbeam.home")).toAbsolutePath().normalize();
  private static final Path JAR = Path.of(System.getProperty("fhirbeam.cluster.jar"));

  @TempDir
  static Path tmp;
  static StandaloneCluster cluster;

  @BeforeAll
  static void startCluster() throws IOException, InterruptedException {
    cluster = StandaloneCluster.start(Path.of(System.getProperty("fhirbeam.spark.home")), tmp.resolve("cluster"),
        System.getProperty("fhirbeam.jvm.opens"), 2, "1g");
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void theDefaultJobOnTheClusterWritesWhatTheDirectRunnerWritesThoughATaskFailsOnce() throws Exception {
    Path direct = tmp.resolve("direct");
    // A run that does not balance throws.
    FhirBeam.run(Map.of("FHIRBEAM_HOME", HOME.toString()), "--output", direct.toString(),
        "--set", "sinks.duckdb.enabled=false");

    // The second of the default job's three files fails once after writing its parts; two attempts per task.
    Path onCluster = tmp.resolve("cluster-run");
    int code = cluster.submit("default-job", JAR, Map.of("FHIRBEAM_HOME", HOME.toString()),
        Map.of("spark.executor.memory", "768m", "spark.task.maxFailures", "2",
            "spark.executorEnv.FHIRBEAM_FAIL_ONCE", "patient/1"),
        "run", "--runner", "spark", "--output", onCluster.toString(), "--set", "sinks.duckdb.enabled=false");
    String driver = Files.readString(cluster.log("default-job"));
    assertThat(driver, code, equalTo(0));
    assertThat(driver, containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    // Each of the three files was mapped, the failed one twice: once in the fault's marker, once in the output.
    assertThat(driver, containsString("task 1 of mapping patient failed once after writing its output"));
    assertThat(lines(onCluster.resolve("fhir")), equalTo(lines(direct.resolve("fhir"))));
    assertThat(rejectsWithoutRunId(onCluster), equalTo(rejectsWithoutRunId(direct)));
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

  static List<String> rejectsWithoutRunId(Path out) throws IOException {
    List<String> rejects = new ArrayList<>();
    for (String line : lines(out.resolve("rejects"))) {
      ObjectNode reject = (ObjectNode) JSON.readTree(line);
      reject.remove("run_id");
      rejects.add(reject.toString());
    }
    rejects.sort(null);
    return rejects;
  }
}
