package org.fhirbeam.databricks;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.matchesPattern;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.startsWith;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.databricks.RecordingWorkspace.Recorded;
import org.fhirbeam.databricks.RecordingWorkspace.State;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code fhirbeam submit} against {@link RecordingWorkspace}, a loopback server answering like the Files, Jobs and
 * OAuth endpoints of a workspace (no Databricks workspace is reachable from here): each request's method, path,
 * authentication and JSON body, checked against the bundle's target, and the failure paths.
 */
@Tag("servers")
class SubmitTest {
  /** The installation: this module is deploy/databricks. */
  static final Path HOME = Path.of("../..").toAbsolutePath().normalize();
  static final Path BUNDLE = HOME.resolve("deploy/databricks/databricks.yml");
  static final String PRINCIPAL = "5cf3a04b-a73c-4b46-9f3d-52da7999069e";
  static final String VOLUME = "/Volumes/fhir_catalog/raw_data/fhirbeam";

  @TempDir Path tmp;
  RecordingWorkspace workspace;
  Path jar;
  String output;

  @BeforeEach
  void start() throws IOException {
    workspace = new RecordingWorkspace(tmp.resolve("workspace"));
    // A stand-in for the 320 MB application jar: what matters here is that its bytes arrive whole.
    byte[] bytes = new byte[3 << 20];
    new Random(7).nextBytes(bytes);
    jar = tmp.resolve("app.jar");
    Files.write(jar, bytes);
  }

  @AfterEach
  void stop() {
    workspace.close();
  }

  private Map<String, String> pat() {
    return Map.of("DATABRICKS_HOST", workspace.host(), "DATABRICKS_TOKEN", RecordingWorkspace.PAT,
        "FHIRBEAM_HOME", HOME.toString(), "BUNDLE_VAR_service_principal", PRINCIPAL);
  }

  private Map<String, String> oauth() {
    return Map.of("DATABRICKS_HOST", workspace.host(), "DATABRICKS_CLIENT_ID", RecordingWorkspace.CLIENT_ID,
        "DATABRICKS_CLIENT_SECRET", RecordingWorkspace.CLIENT_SECRET, "FHIRBEAM_HOME", HOME.toString(),
        "BUNDLE_VAR_service_principal", PRINCIPAL);
  }

  private int submit(Map<String, String> env, String... args) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    List<String> all = new ArrayList<>(List.of("--jar", jar.toString(), "--poll-interval", "20ms"));
    all.addAll(List.of(args));
    try (PrintStream ps = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
      int code = Submit.run(env, ps, ps, all.toArray(String[]::new));
      output = bytes.toString(StandardCharsets.UTF_8);
      return code;
    }
  }

  /** The files the bundle syncs, relative to the installation, which {@code submit} uploads. */
  private static List<String> synced() throws IOException {
    List<String> files = new ArrayList<>();
    for (String dir : List.of("config/pipelines", "config/mappings", "config/packages", "testdata/patients")) {
      try (Stream<Path> walk = Files.walk(HOME.resolve(dir))) {
        walk.filter(Files::isRegularFile).sorted().forEach(f -> files.add(HOME.relativize(f).toString()));
      }
    }
    return files;
  }

  /** The target's cluster as the bundle defines it, with the values {@code submit} gives its variables. */
  private static JsonNode cluster(String target, String remoteHome) {
    Bundle.Target t = Bundle.read(BUNDLE).target(target, Map.of("service_principal", PRINCIPAL, "home", remoteHome),
        Map.of());
    return new ObjectMapper().valueToTree(t.variable("cluster"));
  }

  @Test
  void aPersonalAccessTokenUploadsTheJarAndTheConfigurationAndSubmitsTheBundlesTask() throws IOException {
    workspace.script(List.of(new State("PENDING", "", "Waiting for cluster"), new State("RUNNING", "", ""),
        new State("TERMINATED", "SUCCESS", "")), null);
    int code = submit(pat(), "--wait");
    assertThat(output, code, equalTo(0));

    // Every request to the API carries the token; the token is never printed.
    List<Recorded> api = workspace.requests().stream().filter(r -> r.path().startsWith("/api/")).toList();
    assertThat(api.stream().map(Recorded::authorization).toList(), everyItem(equalTo("Bearer "
        + RecordingWorkspace.PAT)));
    assertThat(output, not(containsString(RecordingWorkspace.PAT)));

    // The jar: looked for by its content's hash, not there, uploaded whole.
    String jarHash = RecordingWorkspace.sha256(Files.readAllBytes(jar));
    String remoteJar = VOLUME + "/jars/fhirbeam-cluster-" + jarHash.substring(0, 16) + ".jar";
    assertThat(workspace.requests("HEAD", "/api/2.0/fs/files").stream().map(Recorded::path).toList(),
        equalTo(List.of("/api/2.0/fs/files" + remoteJar)));
    List<Recorded> puts = workspace.requests("PUT", "/api/2.0/fs/files");
    assertThat(puts.get(0).path(), equalTo("/api/2.0/fs/files" + remoteJar));
    assertThat(puts.get(0).query(), equalTo("overwrite=true"));
    assertThat(puts.get(0).sha256(), equalTo(jarHash));

    // Then each synced file, under a folder of this submission (named by its idempotency token), byte for byte.
    JsonNode body = workspace.requests("POST", "/api/2.2/jobs/runs/submit").get(0).json();
    String token = body.path("idempotency_token").asText();
    assertThat(token, matchesPattern("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"));
    String remoteHome = VOLUME + "/submit/dev/" + token;
    List<String> synced = synced();
    assertThat(puts.subList(1, puts.size()).stream().map(Recorded::path).toList(), equalTo(synced.stream()
        .map(f -> "/api/2.0/fs/files" + remoteHome + "/" + f).toList()));
    for (int i = 0; i < synced.size(); i++) {
      assertThat(synced.get(i), puts.get(i + 1).sha256(), equalTo(RecordingWorkspace.sha256(
          Files.readAllBytes(HOME.resolve(synced.get(i))))));
    }

    // What arrived on the Volume is a home the job can run from: with FHIRBEAM_HOME there (as the cluster's
    // environment sets it), the uploaded configuration finds its mapping and the uploaded sample files.
    Path arrived = tmp.resolve("workspace").resolve(remoteHome.substring(1));
    PipelineConfig config = new ConfigLoader(Map.of("FHIRBEAM_HOME", arrived.toString()))
        .load(arrived.resolve("config/pipelines/default.yaml"), Map.of());
    assertThat(config.mappings().get(0).file(), equalTo(arrived.resolve("config/mappings/patient.yaml").toString()));
    assertThat(config.sources().get("patients").path(), equalTo(arrived + "/testdata/patients/patients.{csv,parquet,"
        + "json}"));
    for (String f : List.of("csv", "parquet", "json")) {
      assertThat(Files.mismatch(arrived.resolve("testdata/patients/patients." + f),
          HOME.resolve("testdata/patients/patients." + f)), equalTo(-1L));
    }

    // The run: the bundle's batch task for dev, on the bundle's dev cluster, with the uploaded jar and configuration.
    assertThat(workspace.requests("POST", "/api/2.2/jobs/runs/submit"), hasSize(1));
    assertThat(body.path("run_name").asText(), equalTo("fhirbeam batch (dev)"));
    assertThat(body.path("timeout_seconds").asLong(), equalTo(7200L));
    assertThat(body.path("run_as").path("service_principal_name").asText(), equalTo(PRINCIPAL));
    assertThat(body.path("tasks").size(), equalTo(1));
    JsonNode task = body.path("tasks").get(0);
    assertThat(task.path("task_key").asText(), equalTo("map_to_fhir"));
    assertThat(task.path("new_cluster"), equalTo(cluster("dev", remoteHome)));
    assertThat(task.path("new_cluster").path("spark_version").asText(), equalTo("16.4.x-scala2.12"));
    assertThat(task.path("new_cluster").path("data_security_mode").asText(), equalTo("SINGLE_USER"));
    assertThat(task.path("new_cluster").path("spark_env_vars").path("FHIRBEAM_HOME").asText(), equalTo(remoteHome));
    assertThat(task.path("spark_jar_task").path("main_class_name").asText(),
        equalTo("org.fhirbeam.pipeline.DatabricksJob"));
    assertThat(new ObjectMapper().convertValue(task.path("spark_jar_task").path("parameters"), List.class),
        equalTo(List.of("run", "--config", remoteHome + "/config/pipelines/default.yaml", "--output",
            VOLUME + "/output/dev", "--set", "sinks.delta.catalog=fhir_catalog", "--set",
            "sinks.delta.schema=fhir_resources", "--set", "sinks.delta.raw_schema=raw_data", "--set",
            "sinks.delta.transformed_schema=transformed_data")));
    assertThat(task.path("libraries").toString(), equalTo("[{\"jar\":\"" + remoteJar + "\"}]"));

    // The run followed to its end, each state once.
    assertThat(output, containsString("submitted run 1001 (idempotency token " + token + "): " + workspace.host()
        + "/?o=1234567890#job/0/run/1001\n"));
    assertThat(output, matchesPattern("(?s).*  run 1001: PENDING \\(Waiting for cluster\\)\n"
        + "\\d\\d:\\d\\d:\\d\\d  run 1001: RUNNING\n"
        + "\\d\\d:\\d\\d:\\d\\d  run 1001: TERMINATED SUCCESS\n"
        + "run 1001 succeeded: .*"));
    assertThat(workspace.requests("GET", "/api/2.2/jobs/runs/get"), hasSize(3));
  }

  @Test
  void aServicePrincipalSignsInWithOAuthAndTheProdTargetRunsOnTheProdCluster() {
    int code = submit(oauth(), "--target", "prod");
    assertThat(output, code, equalTo(0));
    List<Recorded> tokens = workspace.requests("POST", "/oidc/v1/token");
    assertThat(tokens, hasSize(1));
    Map<String, String> form = RecordingWorkspace.query(new String(tokens.get(0).body(), StandardCharsets.UTF_8));
    assertThat(form.get("grant_type"), equalTo("client_credentials"));
    assertThat(form.get("scope"), equalTo("all-apis"));
    List<Recorded> api = workspace.requests().stream().filter(r -> r.path().startsWith("/api/")).toList();
    assertThat(api.stream().map(Recorded::authorization).toList(), everyItem(equalTo("Bearer "
        + RecordingWorkspace.OAUTH_TOKEN)));
    assertThat(output, not(containsString(RecordingWorkspace.CLIENT_SECRET)));
    assertThat(output, containsString("(OAuth machine-to-machine as service principal "
        + RecordingWorkspace.CLIENT_ID + ")"));

    JsonNode body = workspace.requests("POST", "/api/2.2/jobs/runs/submit").get(0).json();
    String remoteHome = VOLUME + "/submit/prod/" + body.path("idempotency_token").asText();
    JsonNode cluster = body.path("tasks").get(0).path("new_cluster");
    assertThat(cluster, equalTo(cluster("prod", remoteHome)));
    assertThat(cluster.path("node_type_id").asText(), equalTo("i3.2xlarge"));
    assertThat(cluster.path("autoscale").toString(), equalTo("{\"max_workers\":20,\"min_workers\":2}"));
    assertThat(cluster.path("aws_attributes").path("availability").asText(), equalTo("SPOT_WITH_FALLBACK"));
    assertThat(cluster.path("spark_conf").path("spark.sql.adaptive.enabled").asText(), equalTo("true"));
    assertThat(body.has("timeout_seconds"), equalTo(false));
    // Without --wait, the run's page is printed and nothing more is asked.
    assertThat(workspace.requests("GET", "/api/2.2/jobs/runs/get"), hasSize(1));
    assertThat(output, containsString("submitted run 1001 "));
  }

  @Test
  void theJarAlreadyOnTheVolumeIsNotUploadedAgain() {
    assertThat(submit(pat()), equalTo(0));
    int before = workspace.requests("PUT", "/api/2.0/fs/files/Volumes/fhir_catalog/raw_data/fhirbeam/jars/").size();
    assertThat(submit(pat()), equalTo(0));
    assertThat(workspace.requests("PUT", "/api/2.0/fs/files/Volumes/fhir_catalog/raw_data/fhirbeam/jars/"),
        hasSize(before));
    assertThat(output, containsString("application jar already on the Volume: " + VOLUME + "/jars/"));
    // Two submits, two tokens, two runs.
    assertThat(workspace.runsStarted(), equalTo(2));
  }

  /**
   * A 503 on the jar's upload and a 429 on the submit are retried after the Retry-After the workspace asked for; the
   * retried upload sends the whole jar again, and the retried submit carries the same idempotency token, so the
   * workspace starts one run.
   */
  @Test
  void busyAnswersAreRetriedAfterTheirRetryAfterWithoutASecondRun() throws IOException {
    workspace.failNext("PUT", "/api/2.0/fs/files/Volumes/fhir_catalog/raw_data/fhirbeam/jars/", 503, "1",
        "{\"error_code\":\"TEMPORARILY_UNAVAILABLE\",\"message\":\"try again\"}");
    workspace.failNext("POST", "/api/2.2/jobs/runs/submit", 429, "1",
        "{\"error_code\":\"REQUEST_LIMIT_EXCEEDED\",\"message\":\"slow down\"}");
    int code = submit(pat(), "--idempotency-token", "ci-build-4711");
    assertThat(output, code, equalTo(0));

    List<Recorded> jarPuts = workspace.requests("PUT", "/api/2.0/fs/files/Volumes/fhir_catalog/raw_data/fhirbeam/jars/");
    assertThat(jarPuts, hasSize(2));
    String hash = RecordingWorkspace.sha256(Files.readAllBytes(jar));
    assertThat(jarPuts.get(0).sha256(), equalTo(hash));
    assertThat(jarPuts.get(1).sha256(), equalTo(hash));
    assertThat((jarPuts.get(1).nanos() - jarPuts.get(0).nanos()) / 1_000_000, greaterThanOrEqualTo(1000L));

    List<Recorded> submits = workspace.requests("POST", "/api/2.2/jobs/runs/submit");
    assertThat(submits, hasSize(2));
    assertThat(submits.get(0).json().path("idempotency_token").asText(), equalTo("ci-build-4711"));
    assertThat(submits.get(1).json(), equalTo(submits.get(0).json()));
    assertThat((submits.get(1).nanos() - submits.get(0).nanos()) / 1_000_000, greaterThanOrEqualTo(1000L));
    assertThat(workspace.runsStarted(), equalTo(1));

    // The same submit once more (a CI job retried with its token): the workspace answers with the same run.
    assertThat(submit(pat(), "--idempotency-token", "ci-build-4711"), equalTo(0));
    assertThat(workspace.runsStarted(), equalTo(1));
    assertThat(output, containsString("submitted run 1001 (idempotency token ci-build-4711)"));
  }

  @Test
  void aRefusedTokenIsExitCode2AndNothingIsSubmitted() {
    Map<String, String> env = new HashMap<>(pat());
    env.put("DATABRICKS_TOKEN", "dapi-revoked");
    int code = submit(env, "--wait");
    assertThat(output, code, equalTo(2));
    assertThat(output, containsString("error: authentication refused by the workspace (personal access token):"
        + " HTTP 401\n"));
    assertThat(output, not(containsString("dapi-revoked")));
    assertThat(workspace.requests("PUT", "/api/"), hasSize(0));
    assertThat(workspace.requests("POST", "/api/"), hasSize(0));
  }

  @Test
  void aRefusedClientSecretIsExitCode2() {
    Map<String, String> env = new HashMap<>(oauth());
    env.put("DATABRICKS_CLIENT_SECRET", "wrong-secret");
    int code = submit(env);
    assertThat(output, code, equalTo(2));
    assertThat(output, startsWith("fhirbeam submit: target dev"));
    assertThat(output, containsString("error: authentication failed for " + workspace.host()
        + " (OAuth machine-to-machine as service principal " + RecordingWorkspace.CLIENT_ID + "): "));
    assertThat(output, not(containsString("wrong-secret")));
    assertThat(workspace.requests().stream().filter(r -> r.path().startsWith("/api/")).toList(), hasSize(0));
  }

  @Test
  void aFailedRunIsExitCode1WithItsErrorMessage() {
    workspace.script(List.of(new State("RUNNING", "", ""), new State("TERMINATED", "FAILED",
        "Task map_to_fhir failed with message: Workload failed.")), "InputException: the configuration has 1 problem");
    int code = submit(pat(), "--wait");
    assertThat(output, code, equalTo(1));
    assertThat(output, containsString("run 1001 FAILED: Task map_to_fhir failed with message: Workload failed.\n"
        + "  task map_to_fhir: InputException: the configuration has 1 problem\n"));
    assertThat(workspace.requests("GET", "/api/2.2/jobs/runs/get-output").get(0).query(), equalTo("run_id=51001"));

    // A task's output that cannot be read does not change what the run's end says.
    workspace.failNext("GET", "/api/2.2/jobs/runs/get-output", 404, null, "{\"error_code\":"
        + "\"RESOURCE_DOES_NOT_EXIST\",\"message\":\"Run output not found\"}");
    assertThat(submit(pat(), "--wait"), equalTo(1));
    assertThat(output, containsString("  task map_to_fhir: (its output could not be read: Run output not found)\n"));
  }

  @Test
  void aRunStillPendingAtTheTimeoutIsExitCode3AndGoesOn() {
    workspace.script(List.of(new State("PENDING", "", "Waiting for cluster")), null);
    int code = submit(pat(), "--wait", "--timeout", "300ms");
    assertThat(output, code, equalTo(3));
    assertThat(output, containsString("run 1001 is still PENDING after 300ms (--timeout); it goes on: "
        + workspace.host() + "/?o=1234567890#job/0/run/1001\n"));
    assertThat(workspace.requests("POST", "/api/2.2/jobs/runs/cancel"), hasSize(0));
  }

  @Test
  void aDryRunPrintsTheRequestsAndSendsNone() throws IOException {
    int code = submit(pat(), "--dry-run", "--idempotency-token", "t-1");
    assertThat(output, code, equalTo(0));
    assertThat(workspace.requests(), hasSize(0));
    // The body it prints is the body a submit with the same token sends.
    String printed = output.substring(output.indexOf("/api/2.2/jobs/runs/submit\n") + 26);
    assertThat(submit(pat(), "--idempotency-token", "t-1"), equalTo(0));
    assertThat(new ObjectMapper().readTree(printed), equalTo(workspace.requests("POST", "/api/2.2/jobs/runs/submit")
        .get(0).json()));
    assertThat(submit(pat(), "--dry-run", "--idempotency-token", "t-1"), equalTo(0));
    assertThat(output, containsString("dry run: these requests would be sent (Authorization: Bearer"
        + " <DATABRICKS_TOKEN, not shown>)\n"));
    assertThat(output, containsString("PUT " + workspace.host() + "/api/2.0/fs/files" + VOLUME
        + "/submit/dev/t-1/config/pipelines/default.yaml?overwrite=true  ("));
    assertThat(output, containsString("POST " + workspace.host() + "/api/2.2/jobs/runs/submit\n{\n"
        + "  \"idempotency_token\" : \"t-1\",\n"));
    assertThat(output, not(containsString(RecordingWorkspace.PAT)));
  }

  @Test
  void badInputIsExitCode2WithOneClearLine() throws IOException {
    Map<String, String> noPrincipal = new HashMap<>(pat());
    noPrincipal.remove("BUNDLE_VAR_service_principal");
    assertThat(submit(noPrincipal), equalTo(2));
    assertThat(output, containsString("error: " + BUNDLE + ": variable 'service_principal' has no value for target"
        + " dev: give --var service_principal=VALUE or set BUNDLE_VAR_service_principal\n"));

    assertThat(submit(pat(), "--target", "staging"), equalTo(2));
    assertThat(output, containsString("error: " + BUNDLE + ": no target 'staging' (targets: dev, prod)\n"));

    Path elsewhere = tmp.resolve("job.yaml");
    Files.copy(HOME.resolve("config/pipelines/default.yaml"), elsewhere);
    Files.writeString(elsewhere, Files.readString(elsewhere).replace("../mappings/patient.yaml",
        HOME.resolve("config/mappings/patient.yaml").toString()));
    assertThat(submit(pat(), "--config", elsewhere.toString()), equalTo(2));
    assertThat(output, containsString("error: " + elsewhere + " is not among the files the bundle syncs and `submit`"
        + " uploads (config/pipelines, config/mappings, config/packages, testdata/patients): put it there, or add its"
        + " folder to sync.paths in " + BUNDLE + "\n"));

    Map<String, String> both = new HashMap<>(pat());
    both.put("DATABRICKS_CLIENT_ID", RecordingWorkspace.CLIENT_ID);
    both.put("DATABRICKS_CLIENT_SECRET", RecordingWorkspace.CLIENT_SECRET);
    assertThat(submit(both), equalTo(2));
    assertThat(output, containsString("error: both DATABRICKS_TOKEN and DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET"
        + " are set"));

    Map<String, String> noHost = new HashMap<>(pat());
    noHost.remove("DATABRICKS_HOST");
    assertThat(submit(noHost), equalTo(2));
    assertThat(output, containsString("error: DATABRICKS_HOST is not set"));

    assertThat(submit(pat(), "--wait", "--timeout", "soon"), equalTo(2));
    assertThat(output, containsString("error: --timeout soon: a duration is a number with ms, s, m or h"));

    assertThat(submit(pat(), "--idempotency-token", "../../other"), equalTo(2));
    assertThat(output, containsString("error: --idempotency-token ../../other: 1 to 64 letters, digits, '.', '_' and"
        + " '-'\n"));

    Path config = tmp.resolve("bad.yaml");
    Files.writeString(config, "name: x\nsources: {}\n");
    assertThat(submit(pat(), "--config", config.toString()), equalTo(2));
    assertThat(output, containsString("error: " + config + ":2:"));
    assertThat(output, not(containsString("\tat ")));
    assertThat(workspace.requests(), hasSize(0));
  }
}
