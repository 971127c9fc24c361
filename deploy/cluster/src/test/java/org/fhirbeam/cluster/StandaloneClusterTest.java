package org.fhirbeam.cluster;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.fhirbeam.pipeline.FhirBeam;
import org.fhirbeam.pipeline.bench.KafkaBroker;
import org.fhirbeam.pipeline.bench.S3TestServer;
import org.fhirbeam.pipeline.bench.StandaloneCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.services.s3.S3Client;

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
  static S3TestServer s3;
  static Path direct;

  @BeforeAll
  static void startCluster() throws Exception {
    cluster = StandaloneCluster.start(Path.of(System.getProperty("fhirbeam.spark.home")), tmp.resolve("cluster"),
        System.getProperty("fhirbeam.jvm.opens"), 2, "1g");
    s3 = S3TestServer.start(Path.of("target/s3mock/s3mock-exec.jar"));
    try (S3Client client = s3.client()) {
      client.createBucket(b -> b.bucket("lake"));
    }
    // The default job's files (CSV, Parquet, JSON), for a run that reads them from object storage.
    s3.upload(HOME.resolve("testdata/patients"), "", "lake", "in/");
    // What the DirectRunner writes in this JVM; a run that does not balance throws.
    direct = tmp.resolve("direct");
    FhirBeam.run(Map.of("FHIRBEAM_HOME", HOME.toString()), "--output", direct.toString(),
        "--set", "sinks.duckdb.enabled=false");
  }

  @AfterAll
  static void stopCluster() throws InterruptedException {
    if (cluster != null) {
      cluster.close();
    }
    if (s3 != null) {
      s3.close();
    }
  }

  @Test
  void theDefaultJobOnTheClusterWritesWhatTheDirectRunnerWritesThoughATaskFailsOnce() throws Exception {

    // The second of the default job's three files fails once after writing its parts; two attempts per task.
    Path onCluster = tmp.resolve("cluster-run");
    Path delta = tmp.resolve("cluster-delta");
    int code = cluster.submit("default-job", JAR, Map.of("FHIRBEAM_HOME", HOME.toString()),
        Map.of("spark.executor.memory", "768m", "spark.task.maxFailures", "2",
            "spark.executorEnv.FHIRBEAM_FAIL_ONCE", "patient/1"),
        "run", "--runner", "spark", "--output", onCluster.toString(), "--set", "sinks.duckdb.enabled=false",
        "--set", "sinks.delta.enabled=true", "--set", "sinks.delta.location=" + delta);
    String driver = Files.readString(cluster.log("default-job"));
    assertThat(driver, code, equalTo(0));
    assertThat(driver, containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    // Each of the three files was mapped, the failed one twice: once in the fault's marker, once in the output.
    assertThat(driver, containsString("task 1 of mapping patient failed once after writing its output"));
    assertThat(lines(onCluster.resolve("fhir")), equalTo(lines(direct.resolve("fhir"))));
    assertThat(rejectsWithoutRunId(onCluster), equalTo(rejectsWithoutRunId(direct)));
    // The Delta table's first version: the executors' data files, which its log lists, hold each resource once.
    // And the mapping's transformed_data table, of the same files (no quality figures: no DuckDB load, no manifest).
    assertThat(driver, containsString("  delta: " + delta + " (fhir_resources.patient v0, quality.rejects v0; 1 more"
        + " table in run-summary.json)"));
    List<String> resources = new ArrayList<>();
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
        java.sql.ResultSet rs = db.createStatement().executeQuery("SELECT CAST(resource AS VARCHAR) FROM"
            + " read_parquet([" + added(delta.resolve("fhir_resources/patient")) + "])")) {
      while (rs.next()) {
        resources.add(rs.getString(1));
      }
    }
    resources.sort(null);
    assertThat(resources, equalTo(lines(direct.resolve("fhir"))));
  }

  /**
   * A streaming job submitted to the cluster: its readers and mapping tasks run in the workers' JVMs and hand each
   * window over in the output folder (which the workers share with the driver here, as they would a mounted volume),
   * and the driver commits the windows. The sample patients as JSON records on a topic of three partitions give the
   * DirectRunner's resources and rejects, into NDJSON and Delta tables; the drained run ends by itself, and a second
   * finds nothing new.
   */
  @Test
  void aStreamingJobOnTheClusterCommitsWhatItsWorkersMap() throws Exception {
    try (KafkaBroker broker = KafkaBroker.start(KafkaBroker.classpathFile(HOME))) {
      broker.createTopic("patients", 3);
      List<Map.Entry<String, String>> records = new ArrayList<>();
      Path in = HOME.resolve("testdata/patients");
      // Every value as the text a file task reads it as.
      try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
          java.sql.ResultSet rs = db.createStatement().executeQuery("SELECT json_object('patient_id',"
              + " patient_id::VARCHAR, 'first_name', first_name::VARCHAR, 'last_name', last_name::VARCHAR,"
              + " 'birth_date', birth_date::VARCHAR, 'gender', gender::VARCHAR, 'phone', phone::VARCHAR)::VARCHAR"
              + " FROM (SELECT * FROM read_csv('" + in.resolve("patients.csv") + "', all_varchar = true) UNION ALL"
              + " BY NAME SELECT * FROM read_parquet('" + in.resolve("patients.parquet") + "') UNION ALL BY NAME"
              + " SELECT * FROM read_json('" + in.resolve("patients.json") + "'))")) {
        while (rs.next()) {
          records.add(Map.entry("k" + records.size(), rs.getString(1)));
        }
      }
      broker.produce("patients", records);
      Path config = Files.writeString(tmp.resolve("stream.yaml"), """
          name: stream
          sources:
            patients:
              kafka:
                bootstrap_servers: %s
                topics: [patients]
                columns: [patient_id, first_name, last_name, birth_date, gender, phone]
          mappings:
            - %s
          sinks:
            duckdb: {enabled: false}
            delta: {enabled: true, location: %s}
          streaming:
            window: 1s
          """.formatted(broker.bootstrapServers(), HOME.resolve("config/mappings/patient.yaml"),
          tmp.resolve("stream-delta")));
      Path out = tmp.resolve("stream-run");
      for (String run : List.of("stream-job", "stream-again")) {
        int code = cluster.submit(run, JAR, Map.of("FHIRBEAM_HOME", HOME.toString()),
            Map.of("spark.executor.memory", "768m"), "run", "--runner", "spark", "--config", config.toString(),
            "--output", out.toString(), "--drain");
        String driver = Files.readString(cluster.log(run));
        assertThat(driver, code, equalTo(0));
        assertThat(driver, containsString(run.equals("stream-job")
            ? "balance: rows in 40 = resources 34 + rejected 6: OK" : ": 0 windows committed"));
      }
      assertThat(lines(out.resolve("fhir")), equalTo(lines(direct.resolve("fhir"))));
      List<String> rules = new ArrayList<>();
      for (String l : lines(out.resolve("rejects"))) {
        JsonNode r = JSON.readTree(l);
        assertThat(r.get("topic").asText(), equalTo("patients"));
        rules.add(r.get("rule").asText() + " " + r.get("reason").asText());
      }
      List<String> directRules = new ArrayList<>();
      for (String l : lines(direct.resolve("rejects"))) {
        JsonNode r = JSON.readTree(l);
        directRules.add(r.get("rule").asText() + " " + r.get("reason").asText());
      }
      rules.sort(null);
      directRules.sort(null);
      assertThat(rules, equalTo(directRules));
    }
  }

  /**
   * A streaming job's driver killed on the cluster at each named point of a window's commit (its files staged; after
   * the first of its Delta tables took it; committed, its files not yet in place), each time submitted again, then
   * once more to drain the topic: every record is a resource or a reject once, in the NDJSON files and in the Delta
   * tables, and no window's Delta commit is left half done.
   */
  @Test
  void aStreamingJobKilledOnTheClusterResumesWithEveryRecordOnce() throws Exception {
    int total = 20_000;
    try (KafkaBroker broker = KafkaBroker.start(KafkaBroker.classpathFile(HOME))) {
      broker.createTopic("killed", 3);
      // Unique ids, some rows bad (empty and malformed ids, impossible dates), and a few records that are not JSON.
      Path csv = org.fhirbeam.pipeline.bench.BenchData.csv(tmp.resolve("killed-input"), total - 50);
      List<Map.Entry<String, String>> records = new ArrayList<>();
      try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
          java.sql.ResultSet rs = db.createStatement().executeQuery("SELECT to_json(t)::VARCHAR FROM read_csv('"
              + csv + "', all_varchar = true) AS t")) {
        while (rs.next()) {
          records.add(Map.entry(String.valueOf(records.size()), rs.getString(1)));
        }
      }
      for (int i = 0; i < 50; i++) {
        records.add(Map.entry("bad" + i, "not json " + i));
      }
      broker.produce("killed", records);
      Path delta = tmp.resolve("killed-delta");
      // Small polls and windows: several windows, so that the kills land in the first one's commit.
      Path config = Files.writeString(tmp.resolve("killed.yaml"), """
          name: killed
          sources:
            patients:
              kafka:
                bootstrap_servers: %s
                topics: [killed]
                consumer: {max.poll.records: '500'}
                columns: [patient_id, first_name, last_name, birth_date, gender]
          mappings:
            - %s
          sinks:
            duckdb: {enabled: false}
            delta: {enabled: true, location: %s}
          streaming:
            window: 300ms
          """.formatted(broker.bootstrapServers(), HOME.resolve("config/mappings/patient.yaml"), delta));
      Path out = tmp.resolve("killed-run");
      List<String> points = List.of("after-files@1", "in-delta@1", "after-commit@1");
      for (int i = 0; i <= points.size(); i++) {
        Map<String, String> env = new HashMap<>(Map.of("FHIRBEAM_HOME", HOME.toString()));
        if (i < points.size()) {
          env.put("FHIRBEAM_STREAM_FAULT", points.get(i)); // the driver halts there, as a SIGKILL would
        }
        int code = cluster.submit("killed-" + i, JAR, env, Map.of("spark.executor.memory", "768m"), "run",
            "--runner", "spark", "--config", config.toString(), "--output", out.toString(), "--drain");
        assertThat(Files.readString(cluster.log("killed-" + i)), code, equalTo(i < points.size() ? 137 : 0));
      }
      List<String> resources = lines(out.resolve("fhir"));
      List<String> rejects = lines(out.resolve("rejects"));
      assertThat(resources.size() + rejects.size(), equalTo(total));
      java.util.Set<String> ids = new java.util.HashSet<>();
      for (String r : resources) {
        assertThat("a repeated resource", ids.add(JSON.readTree(r).get("id").asText()), equalTo(true));
      }
      java.util.Set<String> places = new java.util.HashSet<>();
      for (String r : rejects) {
        JsonNode n = JSON.readTree(r);
        assertThat("a repeated reject", places.add(n.get("partition").asText() + "/" + n.get("offset").asText()),
            equalTo(true));
      }
      // The Delta tables: what their logs add (appends only), read back.
      try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
          java.sql.Statement st = db.createStatement()) {
        assertThat(single(st, "SELECT count(*) || ' ' || count(DISTINCT id) FROM read_parquet(["
            + added(delta.resolve("fhir_resources/patient")) + "])"), equalTo(resources.size() + " "
            + resources.size()));
        assertThat(single(st, "SELECT count(*) || ' ' || count(DISTINCT (\"partition\", \"offset\")) FROM"
            + " read_parquet([" + added(delta.resolve("quality/rejects")) + "])"), equalTo(rejects.size() + " "
            + rejects.size()));
        assertThat(single(st, "SELECT sum(records) FROM read_parquet([" + added(delta.resolve(
            "quality/stream_positions")) + "])"), equalTo(String.valueOf(total)));
      }
      try (Stream<Path> ledgers = Files.list(delta.resolve("_fhirbeam/commits"))) {
        assertThat(ledgers.toList(), equalTo(List.of()));
      }
    }
  }

  /** The data files the versions of Delta table {@code table} add, as a DuckDB list of paths (appends only). */
  private static String added(Path table) throws IOException {
    List<String> files = new ArrayList<>();
    try (Stream<Path> log = Files.list(table.resolve("_delta_log"))) {
      for (Path version : log.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
        for (String action : Files.readAllLines(version)) {
          JsonNode add = JSON.readTree(action).get("add");
          if (add != null) {
            files.add("'" + table.resolve(java.net.URLDecoder.decode(add.get("path").asText(),
                StandardCharsets.UTF_8)).normalize() + "'");
          }
        }
      }
    }
    return String.join(", ", files);
  }

  private static String single(java.sql.Statement st, String query) throws java.sql.SQLException {
    try (java.sql.ResultSet rs = st.executeQuery(query)) {
      rs.next();
      return rs.getString(1);
    }
  }

  /**
   * A Databricks JAR task as the cluster would run it: {@code DatabricksJob} with {@code DATABRICKS_RUNTIME_VERSION}
   * set and no {@code --runner}. The detection picks the Spark runner on the context the driver has (here the one
   * Spark's submission gives it), which the job leaves running (Spark's shutdown hook stops it), and Delta tables
   * instead of the DuckDB file; the resources are the DirectRunner's.
   */
  @Test
  void aDatabricksJarTaskDetectsItsClusterAndWritesDeltaTables() throws Exception {
    Path out = tmp.resolve("databricks-run");
    Path delta = tmp.resolve("databricks-delta");
    int code = cluster.submit("databricks-job", "org.fhirbeam.pipeline.DatabricksJob", JAR,
        Map.of("FHIRBEAM_HOME", HOME.toString(), "DATABRICKS_RUNTIME_VERSION", "16.4"),
        Map.of("spark.executor.memory", "768m"), "--output", out.toString(), "--set",
        "sinks.delta.location=" + delta);
    String driver = Files.readString(cluster.log("databricks-job"));
    assertThat(driver, code, equalTo(0));
    assertThat(driver, containsString(" on spark: 40 rows in "));
    assertThat(driver, containsString("  environment: databricks (DATABRICKS_RUNTIME_VERSION=16.4)"));
    assertThat(driver, containsString("  delta: " + delta + " (fhir_resources.patient v0, quality.rejects v0; 1 more"
        + " table in run-summary.json)"));
    assertThat(driver.contains("  duckdb: "), equalTo(false));
    assertThat(driver, containsString("Invoking stop() from shutdown hook"));
    assertThat(lines(out.resolve("fhir")), equalTo(lines(direct.resolve("fhir"))));
  }

  /**
   * With the input and the output on the S3 test server, the executors fetch the objects they map (the driver plans
   * from samples it deletes before the run), upload what they commit, and the driver's manifest lists it: the
   * resources and rejects (at the same lines and rows) are the DirectRunner's from the local files, once each, though
   * a task failed once after writing its parts.
   */
  @Test
  void theDefaultJobOnTheClusterCommitsItsOutputOnObjectStorage() throws Exception {
    Map<String, String> env = new HashMap<>(s3.environment());
    env.put("FHIRBEAM_HOME", HOME.toString());
    // The workers are other JVMs: with the output on object storage the run needs a work folder they all see.
    env.put("FHIRBEAM_WORK_DIR", tmp.resolve("work").toString());
    Map<String, String> conf = new HashMap<>(S3TestServer.executorSettings());
    conf.putAll(Map.of("spark.executor.memory", "768m", "spark.task.maxFailures", "2",
        "spark.executorEnv.FHIRBEAM_FAIL_ONCE", "patient/2"));
    // Without a work folder every worker sees, the run stops before it starts: its parts would be on other machines.
    Map<String, String> noWorkDir = new HashMap<>(env);
    noWorkDir.remove("FHIRBEAM_WORK_DIR");
    int refused = cluster.submit("default-job-s3-no-work-dir", JAR, noWorkDir, conf,
        "run", "--runner", "spark", "--output", "s3://lake/cluster/default", "--set", "sinks.duckdb.enabled=false",
        "--set", "sources.patients.path=s3://lake/in/*");
    assertThat(refused, equalTo(2));
    assertThat(Files.readString(cluster.log("default-job-s3-no-work-dir")), containsString("error: the output"
        + " s3://lake/cluster/default is on object storage and the run's workers are on other machines: set"
        + " FHIRBEAM_WORK_DIR to a folder every worker and the driver see"));
    int code = cluster.submit("default-job-s3", JAR, env, conf,
        "run", "--runner", "spark", "--output", "s3://lake/cluster/default", "--set", "sinks.duckdb.enabled=false",
        "--set", "sources.patients.path=s3://lake/in/*");
    String driver = Files.readString(cluster.log("default-job-s3"));
    assertThat(driver, code, equalTo(0));
    assertThat(driver, containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    assertThat(driver, containsString("task 2 of mapping patient failed once after writing its output"));
    Committed committed = committed("cluster/default");
    assertThat(committed.resources(), equalTo(lines(direct.resolve("fhir"))));
    // Rejects name the object each row came from, where the local run names the file.
    String local = HOME.resolve("testdata/patients") + "/";
    assertThat(withoutRunId(committed.rejects().stream().map(r -> r.replace("s3://lake/in/", local)).toList()),
        equalTo(rejectsWithoutRunId(direct)));
  }

  /**
   * The resources (sorted), rejects and quality report of the run committed under {@code prefix} of the bucket, by
   * its manifest.
   */
  private static Committed committed(String prefix) throws IOException {
    List<String> resources = new ArrayList<>();
    List<String> rejects = new ArrayList<>();
    try (S3Client client = s3.client()) {
      JsonNode manifest = JSON.readTree(object(client, prefix + "/_manifest.json"));
      for (JsonNode f : manifest.get("files")) {
        String path = f.get("path").asText();
        List<String> lines = object(client, prefix + "/" + path).lines().toList();
        assertThat(f.toString(), (long) lines.size(), equalTo(f.get("lines").asLong()));
        if (path.contains("/fhir/")) {
          resources.addAll(lines);
        } else if (path.contains("/rejects/")) {
          rejects.addAll(lines);
        }
      }
      resources.sort(null);
      return new Committed(resources, rejects, JSON.readTree(object(client, prefix + "/"
          + manifest.get("report").asText())));
    }
  }

  private record Committed(List<String> resources, List<String> rejects, JsonNode report) {}

  /**
   * The Synthea set (ten US Core mappings, a query source joining two files, FHIRPath rules; validation against US
   * Core compiled into the mappings, and HAPI's validator checking every resource in the executors (sample mode at
   * rate 1), whose HAPI FHIR needs newer libraries than Spark's jars hold) with its input and output
   * on the S3 test server gives the DirectRunner's resources and rejects from the local files; its executors
   * measure the quality figures the DirectRunner's DuckDB load computes (references resolved across the workers).
   */
  @Test
  void theSyntheaSetValidatedOnTheClusterWritesWhatTheDirectRunnerWrites() throws Exception {
    String config = HOME.resolve("config/pipelines/synthea.yaml").toString();
    Path local = tmp.resolve("synthea-direct");
    FhirBeam.run(Map.of("FHIRBEAM_HOME", HOME.toString()), "--config", config, "--output", local.toString(),
        "--set", "duckdb.database=" + tmp.resolve("synthea.db"), "--set", "validation.mode=sample", "--set",
        "validation.sample_rate=1");
    s3.upload(HOME.resolve("testdata/synthea"), ".csv", "lake", "synthea-in/");
    Map<String, String> env = new HashMap<>(s3.environment());
    env.put("FHIRBEAM_HOME", HOME.toString());
    // The workers are other JVMs: with the output on object storage the run needs a work folder they all see.
    env.put("FHIRBEAM_WORK_DIR", tmp.resolve("work").toString());
    Map<String, String> conf = new HashMap<>(S3TestServer.executorSettings());
    conf.put("spark.executor.memory", "768m");
    int code = cluster.submit("synthea", JAR, env, conf, "run", "--runner", "spark", "--config", config, "--output",
        "s3://lake/cluster/synthea", "--set", "input_dir=s3://lake/synthea-in", "--set", "sinks.duckdb.enabled=false",
        "--set", "validation.mode=sample", "--set", "validation.sample_rate=1");
    String driver = Files.readString(cluster.log("synthea"));
    assertThat(driver, code, equalTo(0));
    assertThat(driver, containsString("balance: rows in 117 = resources 115 + rejected 2: OK"));
    assertThat(driver, containsString("validation (sample 1.0): 115 resources checked, 0 rejected"));
    Committed committed = committed("cluster/synthea");
    assertThat(committed.resources(), equalTo(lines(local.resolve("fhir"))));
    String files = HOME.resolve("testdata/synthea") + "/";
    assertThat(withoutRunId(committed.rejects().stream().map(r -> r.replace("s3://lake/synthea-in/", files))
        .toList()), equalTo(rejectsWithoutRunId(local)));
    JsonNode report = JSON.readTree(local.resolve("report/quality.json").toFile());
    for (String part : List.of("completeness", "checks", "rejects_by_reason", "source_columns")) {
      assertThat(part, committed.report().get(part), equalTo(report.get(part)));
    }
  }

  private static String object(S3Client client, String key) {
    return client.getObjectAsBytes(b -> b.bucket("lake").key(key)).asString(StandardCharsets.UTF_8);
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
    return withoutRunId(lines(out.resolve("rejects")));
  }

  static List<String> withoutRunId(List<String> lines) throws IOException {
    List<String> rejects = new ArrayList<>();
    for (String line : lines) {
      ObjectNode reject = (ObjectNode) JSON.readTree(line);
      reject.remove("run_id");
      rejects.add(reject.toString());
    }
    rejects.sort(null);
    return rejects;
  }
}
