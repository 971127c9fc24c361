package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.fhirbeam.config.InputException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The default job with {@code DATABRICKS_RUNTIME_VERSION} set, in a JVM whose Spark session already runs (as the
 * cluster's does on Databricks; here a local one with delta-spark, whose {@code spark_catalog} stands for Unity
 * Catalog): the run takes the Spark runner on that context and leaves it running, writes Delta tables instead of the
 * DuckDB file, and says where it ran and why.
 */
class DatabricksDetectionTest {
  @TempDir
  static Path tmp;

  static SparkSession cluster;
  static final Map<String, String> ENV = Map.of(Deployment.RUNTIME, "16.4", "FHIRBEAM_HOME",
      DefaultJobTest.HOME.toString());

  @BeforeAll
  static void clusterContext() {
    cluster = DeltaReader.start("databricks", tmp);
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.stop();
    }
  }

  @Test
  void theDefaultJobRunsOnTheClustersContextAndWritesDeltaTablesNotTheDuckDbFile() throws Exception {
    RunSummary summary = FhirBeam.run(ENV, "--output", tmp.resolve("out").toString(), "--set",
        "sinks.delta.catalog=spark_catalog");
    assertThat(summary.runner(), equalTo("spark"));
    assertThat(summary.database(), equalTo(null));
    assertThat(summary.delta().versions().get("spark_catalog.fhir_resources.patient"), equalTo(0L));
    assertThat(cluster.table("spark_catalog.fhir_resources.patient").count(), equalTo(34L));
    // The cluster's context goes on running after the job.
    assertThat(cluster.sparkContext().isStopped(), equalTo(false));
    JsonNode written = new ObjectMapper().readTree(tmp.resolve("out/run-summary.json").toFile());
    assertThat(written.get("environment").toString(), equalTo(
        "{\"name\":\"databricks\",\"detected_by\":\"DATABRICKS_RUNTIME_VERSION=16.4\"}"));
    assertThat(written.get("runner").asText(), equalTo("spark"));
  }

  @Test
  void theDuckDbFileIsRefusedThere() {
    InputException e = assertThrows(InputException.class, () -> FhirBeam.run(ENV, "--output",
        tmp.resolve("refused").toString(), "--set", "sinks.duckdb.enabled=true"));
    assertThat(e.getMessage(), equalTo("--set sinks.duckdb: on Databricks (DATABRICKS_RUNTIME_VERSION=16.4) a run"
        + " writes no DuckDB file: it would be on the driver's disk, which goes with the cluster. Leave the DuckDB"
        + " sink out there; the run writes Delta tables (sinks.delta) instead"));
  }
}
