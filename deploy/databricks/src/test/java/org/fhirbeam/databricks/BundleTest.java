package org.fhirbeam.databricks;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.startsWith;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.empty;

import com.databricks.sdk.core.utils.SerDeUtils;
import com.databricks.sdk.service.compute.ClusterSpec;
import com.databricks.sdk.service.compute.DataSecurityMode;
import com.databricks.sdk.service.jobs.SubmitRun;
import com.databricks.sdk.service.jobs.SubmitTask;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.ZipFile;
import org.fhirbeam.config.InputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bundle file as Databricks would read it, checked against what it names: the classes in the application jar,
 * its variables, the files it syncs, the Jobs API's task shape, and the seed's cluster profiles.
 */
class BundleTest {
  static final Path HOME = SubmitTest.HOME;
  static final Bundle BUNDLE = Bundle.read(SubmitTest.BUNDLE);
  static final List<String> JOBS = List.of("fhirbeam_batch", "fhirbeam_stream");

  /** A target resolved as `submit` resolves it (home is the one value only a deployment knows otherwise). */
  private static Bundle.Target target(String name) {
    return BUNDLE.target(name, Map.of("service_principal", SubmitTest.PRINCIPAL, "home", "/Volumes/c/s/v/home"),
        Map.of());
  }

  @Test
  void everyMainClassAndSparkClassTheBundleNamesIsInTheApplicationJar() throws IOException {
    Path jar = HOME.resolve("deploy/cluster/target/fhirbeam-cluster.jar");
    assertThat("the application jar is built before this module's tests (mvn verify; or mvn -pl deploy/cluster -am"
        + " package)", Files.isRegularFile(jar), equalTo(true));
    Set<String> classes = new LinkedHashSet<>();
    for (String t : BUNDLE.targetNames()) {
      for (String job : JOBS) {
        for (SubmitTask task : Submit.submitRun(target(t), job, "/Volumes/c/s/v/app.jar", "t").getTasks()) {
          classes.add(task.getSparkJarTask().getMainClassName());
          ClusterSpec cluster = task.getNewCluster();
          classes.add(cluster.getSparkConf().get("spark.kryo.registrator"));
        }
      }
    }
    assertThat(classes, equalTo(Set.of("org.fhirbeam.pipeline.DatabricksJob",
        "org.apache.beam.runners.spark.coders.SparkRunnerKryoRegistrator")));
    try (ZipFile zip = new ZipFile(jar.toFile())) {
      for (String c : classes) {
        assertThat(c, zip.getEntry(c.replace('.', '/') + ".class") != null, equalTo(true));
      }
    }
  }

  @Test
  void everyVariableUsedIsDeclaredAndEveryDeclaredOneIsUsed() {
    assertThat(BUNDLE.variablesUsed(), equalTo(BUNDLE.variables()));
  }

  @Test
  void everyTargetGivesEveryJobTasksTheJobsApiTakesOnADedicatedRuntime164Cluster() throws IOException {
    // The SDK's own mapper, which leaves out the fields a request does not set; read back as JSON is read.
    ObjectMapper json = SerDeUtils.createMapper();
    for (String t : List.of("dev", "prod")) {
      for (String job : JOBS) {
        SubmitRun run = Submit.submitRun(target(t), job, "/Volumes/c/s/v/app.jar", "t");
        assertThat(t + " " + job, run.getTasks(), not(empty()));
        for (SubmitTask task : run.getTasks()) {
          ClusterSpec cluster = task.getNewCluster();
          assertThat(cluster.getSparkVersion(), equalTo("16.4.x-scala2.12"));
          assertThat(cluster.getDataSecurityMode(), equalTo(DataSecurityMode.SINGLE_USER));
          assertThat(cluster.getSingleUserName(), equalTo(SubmitTest.PRINCIPAL));
          assertThat(cluster.getSparkConf().get("spark.serializer"),
              equalTo("org.apache.spark.serializer.KryoSerializer"));
          assertThat(cluster.getSparkEnvVars().get("FHIRBEAM_HOME"), equalTo("/Volumes/c/s/v/home"));
          // Both jobs run on the target's one cluster definition.
          assertThat(json.readTree(json.writeValueAsString(cluster)), equalTo((JsonNode) new ObjectMapper()
              .valueToTree(target(t).variable("cluster"))));
          assertThat(task.getLibraries().iterator().next().getJar(), equalTo("/Volumes/c/s/v/app.jar"));
        }
        assertThat(run.getRunAs().getServicePrincipalName(), equalTo(SubmitTest.PRINCIPAL));
      }
    }
  }

  /** The seed's cluster profiles, on a current LTS runtime. */
  @Test
  void theTargetsClustersAreTheSeedsProfiles() {
    JsonNode dev = new ObjectMapper().valueToTree(target("dev").variable("cluster"));
    assertThat(dev.path("node_type_id").asText(), equalTo("i3.xlarge"));
    assertThat(dev.path("autoscale").toString(), equalTo("{\"min_workers\":1,\"max_workers\":4}"));
    assertThat(target("dev").variable("run_timeout_seconds"), equalTo(7200));
    JsonNode prod = new ObjectMapper().valueToTree(target("prod").variable("cluster"));
    assertThat(prod.path("node_type_id").asText(), equalTo("i3.2xlarge"));
    assertThat(prod.path("autoscale").toString(), equalTo("{\"min_workers\":2,\"max_workers\":20}"));
    assertThat(prod.path("aws_attributes").path("availability").asText(), equalTo("SPOT_WITH_FALLBACK"));
    assertThat(prod.path("aws_attributes").path("first_on_demand").asInt(), equalTo(1));
    for (String aqe : List.of("spark.sql.adaptive.enabled", "spark.sql.adaptive.coalescePartitions.enabled",
        "spark.sql.adaptive.skewJoin.enabled")) {
      assertThat(aqe, prod.path("spark_conf").path(aqe).asText(), equalTo("true"));
    }
    assertThat(target("prod").variable("run_timeout_seconds"), equalTo(0));
    assertThat(target("dev").variable("catalog"), equalTo("fhir_catalog"));
    assertThat(List.of(target("dev").variable("raw_schema"), target("dev").variable("transformed_schema"),
        target("dev").variable("resources_schema")), equalTo(List.of("raw_data", "transformed_data",
        "fhir_resources")));
  }

  @Test
  void theSyncedFilesHoldTheDefaultJobAndNoSourceCode() {
    List<String> synced = new ArrayList<>();
    for (Path p : BUNDLE.syncPaths()) {
      assertThat(p.toString(), Files.isDirectory(p), equalTo(true));
      synced.add(BUNDLE.syncRoot().relativize(p).toString());
    }
    assertThat(BUNDLE.syncRoot(), equalTo(HOME));
    assertThat(synced, equalTo(List.of("config/pipelines", "config/mappings", "config/packages",
        "testdata/patients")));
    assertThat(target("dev").variable("config"), equalTo("config/pipelines/default.yaml"));
  }

  /** A bundle of the shape {@code submit} reads, written for a test. */
  private static Bundle bundle(Path dir, String text) throws IOException {
    return Bundle.read(Files.writeString(dir.resolve("databricks.yml"), text));
  }

  @Test
  void variablesResolveAsTheBundleCliResolvesThem(@TempDir Path dir) throws IOException {
    Bundle b = bundle(dir, """
        bundle: {name: b}
        variables:
          a: {default: from-default}
          b: {default: from-default}
          c: {default: from-default}
          d: {default: from-default}
          e: {default: "${var.d}/and-${bundle.name}-${bundle.target}"}
          loop: {default: "${var.loop2}"}
          loop2: {default: "x${var.loop}"}
          deployed: {default: "${workspace.file_path}"}
          unset: {}
        targets:
          t:
            default: true
            variables: {a: from-target, b: from-target, c: from-target}
        """);
    Bundle.Target t = b.target("t", Map.of("a", "from-option"), Map.of("BUNDLE_VAR_a", "from-env", "BUNDLE_VAR_b",
        "from-env"));
    assertThat(List.of(t.variable("a"), t.variable("b"), t.variable("c"), t.variable("d"), t.variable("e")),
        equalTo(List.of("from-option", "from-env", "from-target", "from-default", "from-default/and-b-t")));
    assertThat(assertThrows(InputException.class, () -> t.variable("loop")).getMessage(), equalTo(dir.resolve(
        "databricks.yml") + ": variable 'loop' refers to itself (loop -> loop2 -> loop)"));
    assertThat(assertThrows(InputException.class, () -> t.variable("deployed")).getMessage(), equalTo(dir.resolve(
        "databricks.yml") + ": ${workspace.file_path} is known only to a bundle deployment (`databricks bundle"
        + " deploy`); `fhirbeam submit` sets the variables that use it"));
    assertThat(assertThrows(InputException.class, () -> t.variable("unset")).getMessage(), equalTo(dir.resolve(
        "databricks.yml") + ": variable 'unset' has no value for target t: give --var unset=VALUE or set"
        + " BUNDLE_VAR_unset"));
    assertThat(assertThrows(InputException.class, () -> b.target("t", Map.of("nope", "x"), Map.of())).getMessage(),
        equalTo("--var nope: " + dir.resolve("databricks.yml") + " declares no such variable (variables: a, b, c, d,"
            + " e, loop, loop2, deployed, unset)"));
  }

  @Test
  void whatSubmitDoesNotReadIsRefusedNotIgnored(@TempDir Path dir) throws IOException {
    String job = """
        resources:
          jobs:
            fhirbeam_batch:
              name: j
              timeout_seconds: ${var.timeout}
              tasks: [{task_key: k, spark_jar_task: {main_class_name: M}}]
        """;
    Bundle b = bundle(dir, "bundle: {name: b}\nvariables: {timeout: {default: 0}}\n" + job + """
        targets:
          t: {default: true, resources: {jobs: {fhirbeam_batch: {name: other}}}}
          u: {default: false}
        """);
    assertThat(assertThrows(InputException.class, () -> b.target("t", Map.of(), Map.of())).getMessage(), equalTo(
        dir.resolve("databricks.yml") + ": target t sets resources, which `fhirbeam submit` does not read: it would run"
            + " something else than the deployed bundle (it reads default, mode, workspace, run_as, variables)"));
    // A number given as --var (a string) is a number of seconds; anything else is refused.
    assertThat(Submit.submitRun(b.target("u", Map.of("timeout", "3600"), Map.of()), Submit.BATCH_JOB, "/j.jar", "t")
        .getTimeoutSeconds(), equalTo(3600L));
    assertThat(assertThrows(InputException.class, () -> Submit.submitRun(b.target("u", Map.of("timeout", "1h"),
        Map.of()), Submit.BATCH_JOB, "/j.jar", "t")).getMessage(), equalTo("u: job fhirbeam_batch: timeout_seconds"
        + " '1h' is not a number of seconds"));
    Bundle extra = bundle(dir, "bundle: {name: b}\nvariables: {timeout: {default: 0}}\n" + job.replace("name: j",
        "name: j\n      email_notifications: {on_failure: [a@example.org]}") + "targets: {u: {default: true}}\n");
    assertThat(assertThrows(InputException.class, () -> Submit.submitRun(extra.target("u", Map.of(), Map.of()),
        Submit.BATCH_JOB, "/j.jar", "t")).getMessage(), startsWith("u: job fhirbeam_batch sets email_notifications,"
        + " which `submit` does not send"));
  }
}
