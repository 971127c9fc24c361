package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.is;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.fhirbeam.pipeline.bench.KafkaBroker;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Streaming jobs against a real Kafka broker (KRaft, its own JVM on loopback): the sample patients as JSON records on
 * a topic of three partitions give the batch job's resources and rejects, window by window, across runs that resume
 * where the last one committed.
 */
class StreamingJobTest {
  private static final Path HOME = DefaultJobTest.HOME;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static KafkaBroker broker;

  @TempDir
  Path dir;

  @BeforeAll
  static void startBroker() throws Exception {
    broker = KafkaBroker.start(KafkaBroker.classpathFile(HOME));
  }

  @AfterAll
  static void stopBroker() {
    if (broker != null) {
      broker.close();
    }
  }

  /** The sample patients (CSV, Parquet and JSON files) as JSON objects of text values, one per row, in file order. */
  static List<String> samplePatients() throws Exception {
    List<String> out = new ArrayList<>();
    Path p = HOME.resolve("testdata/patients");
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT to_json(t)::VARCHAR FROM (SELECT * FROM read_csv('" + p
            + "/patients.csv', all_varchar = true) UNION ALL BY NAME SELECT * FROM read_parquet('" + p
            + "/patients.parquet') UNION ALL BY NAME SELECT * FROM read_json('" + p + "/patients.json')) AS t")) {
      while (rs.next()) {
        // Every value as the text a file task reads it as.
        JsonNode row = JSON.readTree(rs.getString(1));
        Map<String, Object> text = new TreeMap<>();
        row.fields().forEachRemaining(e -> text.put(e.getKey(), e.getValue().isNull() ? null
            : e.getValue().isTextual() ? e.getValue().textValue() : e.getValue().toString()));
        out.add(JSON.writeValueAsString(text));
      }
    }
    return out;
  }

  /** The sample patients as records keyed k0, k1, ..., to which a test may add its own. */
  static List<Map.Entry<String, String>> sampleRecords() throws Exception {
    List<Map.Entry<String, String>> records = new ArrayList<>();
    for (String row : samplePatients()) {
      records.add(Map.entry("k" + records.size(), row));
    }
    return records;
  }

  private Path config(String topic) throws IOException {
    return Files.writeString(dir.resolve("stream.yaml"), """
        name: stream
        duckdb:
          database: %s
          memory_limit: 256MB
        sources:
          patients:
            kafka:
              bootstrap_servers: %s
              topics: [%s]
              columns: [patient_id, first_name, last_name, birth_date, gender, phone]
        mappings:
          - %s
        streaming:
          window: 1s
        """.formatted(dir.resolve("stream.db"), broker.bootstrapServers(), topic,
        HOME.resolve("config/mappings/patient.yaml")));
  }

  private static List<String> lines(Path output, String folder) throws IOException {
    List<String> out = new ArrayList<>();
    Path d = output.resolve(folder);
    if (!Files.isDirectory(d)) {
      return out;
    }
    try (Stream<Path> files = Files.list(d)) {
      for (Path f : files.sorted().toList()) {
        out.addAll(Files.readAllLines(f));
      }
    }
    return out;
  }

  @Test
  void samplePatientsOnThreePartitionsGiveTheBatchJobsResourcesAcrossResumedRuns() throws Exception {
    broker.createTopic("patients", 3);
    List<Map.Entry<String, String>> records = sampleRecords();
    // Two records that are not rows: malformed JSON, and a JSON value that is not an object.
    records.add(Map.entry("bad-1", "{\"patient_id\": \"p900\", "));
    records.add(Map.entry("bad-2", "[1, 2]"));
    broker.produce("patients", records);
    Path cfg = config("patients");
    Path out = dir.resolve("out");

    // A first run stops after 25 records, a second reads the rest, a third finds nothing new.
    Cli first = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--max-records", "25");
    assertThat(first.err(), first.code(), is(0));
    Cli second = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--drain");
    assertThat(second.err(), second.code(), is(0));
    assertThat(second.out(), containsString("balance: rows in 17 = resources"));
    Cli third = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--drain");
    assertThat(third.err(), third.code(), is(0));
    assertThat(third.err(), containsString(": 0 windows committed"));

    // The batch job's 34 Patients, byte for byte.
    List<String> resources = lines(out, "fhir");
    List<String> expected = Files.readAllLines(DefaultJobTest.EXPECTED.resolve("Patient.ndjson"));
    assertThat(resources.stream().sorted().toList(), equalTo(expected.stream().sorted().toList()));
    // Its 6 rejects, by rule and reason, now naming topic, partition and offset; and the two bad records.
    List<JsonNode> rejects = new ArrayList<>();
    for (String l : lines(out, "rejects")) {
      rejects.add(JSON.readTree(l));
    }
    List<String> reasons = new ArrayList<>();
    for (JsonNode r : rejects) {
      assertThat(r.toString(), r.get("topic").asText(), equalTo("patients"));
      assertThat(r.toString(), r.has("partition") && r.has("offset") && !r.has("file"), is(true));
      reasons.add(r.get("stage").asText() + " " + r.get("rule").asText() + " " + r.get("reason").asText());
    }
    List<String> batchReasons = new ArrayList<>();
    for (String l : Files.readAllLines(DefaultJobTest.EXPECTED.resolve("rejects.ndjson"))) {
      JsonNode r = JSON.readTree(l);
      batchReasons.add(r.get("stage").asText() + " " + r.get("rule").asText() + " " + r.get("reason").asText());
    }
    batchReasons.add("ingest json-object the record's value is not a JSON object");
    batchReasons.add("ingest json-object the record's value is not a JSON object");
    assertThat(reasons.stream().sorted().toList(), equalTo(batchReasons.stream().sorted().toList()));
    // Each reject's offset holds the record it names.
    List<String> raw = new ArrayList<>();
    for (JsonNode r : rejects) {
      if (r.get("stage").asText().equals("ingest")) {
        raw.add(r.get("raw").asText());
      }
    }
    assertThat(raw.stream().sorted().toList(), equalTo(List.of("[1, 2]", "{\"patient_id\": \"p900\", ")));

    // The database holds the same, every window balanced, and the positions cover each partition once.
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("stream.db"));
        Statement st = db.createStatement()) {
      assertThat(single(st, "SELECT count(*) FROM fhir_resources.patient"), is(34L));
      assertThat(single(st, "SELECT count(*) FROM quality.rejects"), is(8L));
      assertThat(single(st, "SELECT count(*) FROM quality.stream_windows WHERE records <> resources + rejects"),
          is(0L));
      assertThat(single(st, "SELECT sum(records) FROM quality.stream_windows"), is(42L));
      assertThat(single(st, "SELECT count(DISTINCT run_id) FROM quality.stream_windows"), is(2L));
      // Every record waited less than the test's run, and at least as long as it took to be read.
      assertThat(single(st, "SELECT count(*) FROM quality.stream_windows WHERE latency_ms < lag_ms OR latency_ms"
          + " > 600000 OR committed_at < max_record_time"), is(0L));
      // Ranges of a partition follow each other: each starts where the one before it ended.
      assertThat(single(st, "SELECT count(*) FROM (SELECT from_offset, lag(next_offset) OVER (PARTITION BY"
          + " \"partition\" ORDER BY from_offset) AS before FROM quality.stream_positions) WHERE before IS NOT NULL"
          + " AND before <> from_offset"), is(0L));
      assertThat(single(st, "SELECT sum(next_offset - from_offset) FROM quality.stream_positions"), is(42L));
      assertThat(single(st, "SELECT count(*) FROM transformed_data.patient"), is(34L));
    }
    JsonNode summary = JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.get("balanced").asBoolean(), is(true));
  }

  @Test
  void onSparkTheSameRecordsGiveTheSameResourcesAndRejects() throws Exception {
    broker.createTopic("spark-patients", 3);
    List<Map.Entry<String, String>> records = sampleRecords();
    records.add(Map.entry("bad-1", "[1, 2]"));
    broker.produce("spark-patients", records);
    // Into Delta tables too.
    Path cfg = withDelta(config("spark-patients"), dir.resolve("spark-delta"));
    Path out = dir.resolve("spark-out");
    Cli run = Cli.run("run", "--runner", "spark", "--config", cfg.toString(), "--output", out.toString(), "--drain");
    assertThat(run.err(), run.code(), is(0));
    assertThat(run.out(), containsString("balance: rows in 41 = resources 34 + rejected 7: OK"));
    assertThat(lines(out, "fhir").stream().sorted().toList(), equalTo(Files.readAllLines(
        DefaultJobTest.EXPECTED.resolve("Patient.ndjson")).stream().sorted().toList()));
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("stream.db"));
        Statement st = db.createStatement()) {
      assertThat(single(st, "SELECT count(*) FROM fhir_resources.patient"), is(34L));
      assertThat(single(st, "SELECT count(*) FROM quality.rejects"), is(7L));
      assertThat(single(st, "SELECT sum(next_offset - from_offset) FROM quality.stream_positions"), is(41L));
    }
    // A second run finds nothing new, and ends by itself too.
    Cli again = Cli.run("run", "--runner", "spark", "--config", cfg.toString(), "--output", out.toString(),
        "--drain");
    assertThat(again.err(), again.code(), is(0));
    assertThat(again.err(), containsString(": 0 windows committed"));
    // The Delta tables, as delta-spark reads them, hold the same: the resources byte for byte.
    try (DeltaTables delta = new DeltaTables(dir.resolve("spark-delta"))) {
      assertThat(delta.strings("SELECT resource FROM {fhir_resources/patient} ORDER BY 1"), equalTo(Files
          .readAllLines(DefaultJobTest.EXPECTED.resolve("Patient.ndjson")).stream().sorted().toList()));
      assertThat(delta.number("SELECT count(*) FROM {quality/rejects}"), is(7L));
      assertThat(delta.number("SELECT count(DISTINCT partition, offset) FROM {quality/rejects}"), is(7L));
      assertThat(delta.number("SELECT sum(records) FROM {quality/stream_positions}"), is(41L));
      assertThat(delta.number("SELECT sum(records) - sum(resources) - sum(rejects) FROM {quality/stream_windows}"),
          is(0L));
      assertThat(delta.number("SELECT count(*) FROM {transformed_data/patient}"), is(34L));
      // One version per window that had resources.
      assertThat((long) delta.rows("DESCRIBE HISTORY {fhir_resources/patient}").size(),
          is(delta.number("SELECT count(*) FROM {quality/stream_windows} WHERE resources > 0")));
    }
  }

  /** {@code cfg} with the Delta sink writing path-based tables under {@code location}. */
  private static Path withDelta(Path cfg, Path location) throws IOException {
    return Files.writeString(cfg, Files.readString(cfg) + """
        sinks:
          delta: {enabled: true, location: %s}
        """.formatted(location));
  }

  /**
   * The Delta tables under a folder as an independent reader reads them: delta-spark in a local Spark session of
   * this JVM, stopped on close (the Spark runner needs this JVM's only context). A query names a table as
   * {@code {<schema>/<name>}}.
   */
  private static final class DeltaTables implements AutoCloseable {
    private final Path root;
    private final org.apache.spark.sql.SparkSession spark;

    DeltaTables(Path root) {
      this.root = root;
      this.spark = DeltaReader.start("stream-delta-reader", root.resolveSibling(root.getFileName() + "-reader"));
    }

    List<org.apache.spark.sql.Row> rows(String sql) {
      return spark.sql(sql.replaceAll("\\{([a-z_]+/[a-z_]+)}", "delta.`" + root + "/$1`")).collectAsList();
    }

    List<String> strings(String sql) {
      return rows(sql).stream().map(r -> r.getString(0)).toList();
    }

    long number(String sql) {
      return rows(sql).get(0).getLong(0);
    }

    @Override
    public void close() {
      spark.stop();
    }
  }

  /**
   * A window handed over by another run (a task of a killed run, still running on a worker after the next run has
   * settled the output) is never committed by this run's driver: it is deleted, and this run reads those records again.
   */
  @Test
  void aWindowHandedOverByAnotherRunIsNotCommitted() throws Exception {
    JobPlan plan = JobPlan.create(config("fenced"), Map.of("sinks.duckdb.enabled", "false"), Map.of());
    Path out = dir.resolve("fenced-out");
    String runId = "20261206T120000Z-0000mine";
    try (StreamOutput output = StreamOutput.open(new StreamOutput.Job(plan.config(), plan.mappings(), out.toString(),
        runId, "direct"))) {
      Path part = Files.createDirectories(out.resolve(StreamOutput.PARTS)).resolve("p.ndjson");
      Files.writeString(part, "{}\n");
      StreamOutput.handOver(out.toString(), "20261206T115900Z-0000dead", 0, List.of(new org.fhirbeam.io.PartFile(
          "fhir/Patient-p.ndjson", part.toString(), 1)), Map.of(), List.of(new org.fhirbeam.io.StreamRange(
          "patients", "fenced", 0, 0, 1, 1, 0, 0, 0, "p")));
      assertThat(output.waiting(), is(false));
      assertThat(output.commitReady(), is(0));
      assertThat(output.windows(), is(0));
      try (Stream<Path> ready = Files.list(out.resolve(StreamOutput.READY))) {
        assertThat(ready.toList(), equalTo(List.of()));
      }
    }
  }

  /**
   * Records a runner read again (Beam's Spark runner computing a micro-batch's read once more, from an older
   * checkpoint) reach a later window beside new records, or one window twice: the window commits the new records and
   * drops the repeated ones with the parts mapped from them; a window of repeated records only commits nothing; records
   * that overlap the committed ones in part stop the run, and a window after a gap waits: also after a gap between
   * where the run began to read a partition with nothing committed and its first window.
   */
  @Test
  void recordsReadAgainByTheRunnerAreDroppedFromTheWindowsThatHoldThem() throws Exception {
    JobPlan plan = JobPlan.create(config("replayed"), Map.of("sinks.duckdb.enabled", "false"), Map.of());
    Path out = dir.resolve("replayed-out");
    String mapping = plan.mappings().get(0).name();
    try (StreamOutput output = StreamOutput.open(new StreamOutput.Job(plan.config(), plan.mappings(), out.toString(),
        "20261206T120000Z-0000mine", "spark"))) {
      output.readFrom(Map.of("patients/replayed/0", 0L, "patients/replayed/1", 0L, "patients/replayed/2", 0L));
      org.fhirbeam.io.PartFile t1 = resourcePart(out, mapping, "t1", 2);
      org.fhirbeam.io.PartFile t2 = resourcePart(out, mapping, "t2", 1);
      assertThat(output.commit(java.time.Instant.ofEpochSecond(0), List.of(t1, t2), Map.of(), List.of(
          range(0, 0, 2, "t1"), range(1, 0, 1, "t2"))), is(StreamOutput.Outcome.COMMITTED));

      // Partition 0's records again, and partition 1's next record mapped twice.
      org.fhirbeam.io.PartFile t3 = resourcePart(out, mapping, "t3", 2);
      org.fhirbeam.io.PartFile t4 = resourcePart(out, mapping, "t4", 1);
      org.fhirbeam.io.PartFile t5 = resourcePart(out, mapping, "t5", 1);
      assertThat(output.commit(java.time.Instant.ofEpochSecond(1), List.of(t3, t4, t5), Map.of(), List.of(
          range(0, 0, 2, "t3"), range(1, 1, 2, "t4"), range(1, 1, 2, "t5"))), is(StreamOutput.Outcome.COMMITTED));
      assertThat(output.positions(), equalTo(Map.of("patients/replayed/0", 2L, "patients/replayed/1", 2L)));
      assertThat(output.windows(), is(2));
      assertThat(output.recordsCommitted(), is(4L));
      assertThat(output.recordsReplayed(), is(3L));
      assertThat(Files.exists(Path.of(t3.path())) || Files.exists(Path.of(t5.path())), is(false));
      assertThat(lines(out, "fhir"), equalTo(List.of("{\"t\":\"t1\"}", "{\"t\":\"t1\"}", "{\"t\":\"t2\"}",
          "{\"t\":\"t4\"}")));
      assertThat(output.runSummary().balanced(), is(true));

      org.fhirbeam.io.PartFile t6 = resourcePart(out, mapping, "t6", 2);
      assertThat(output.commit(java.time.Instant.ofEpochSecond(2), List.of(t6), Map.of(), List.of(
          range(0, 0, 2, "t6"))), is(StreamOutput.Outcome.COMMITTED_BEFORE));
      assertThat(Files.exists(Path.of(t6.path())), is(false));
      assertThat(output.windows(), is(2));

      assertThat(output.commit(java.time.Instant.ofEpochSecond(3), List.of(resourcePart(out, mapping, "t7", 1)),
          Map.of(), List.of(range(0, 5, 6, "t7"))), is(StreamOutput.Outcome.WAITS));
      IllegalStateException overlap = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
          () -> output.commit(java.time.Instant.ofEpochSecond(3), List.of(resourcePart(out, mapping, "t8", 2)),
              Map.of(), List.of(range(0, 1, 3, "t8"))));
      assertThat(overlap.getMessage(), containsString("the records of patients/replayed/0 in one window do not"
          + " follow the records committed or mapped before them: records 1 to 3 after position 2"));
      assertThat(output.positions(), equalTo(Map.of("patients/replayed/0", 2L, "patients/replayed/1", 2L)));

      // Partition 2 has nothing committed: a later window of it handed over before the earlier one (as Spark's
      // GroupByKey may) waits for the records from where the run began to read it, and is then committed after them.
      org.fhirbeam.io.PartFile t9 = resourcePart(out, mapping, "t9", 1);
      assertThat(output.commit(java.time.Instant.ofEpochSecond(5), List.of(t9), Map.of(), List.of(
          range(2, 1, 2, "t9"))), is(StreamOutput.Outcome.WAITS));
      assertThat(output.commit(java.time.Instant.ofEpochSecond(4), List.of(resourcePart(out, mapping, "t10", 1)),
          Map.of(), List.of(range(2, 0, 1, "t10"))), is(StreamOutput.Outcome.COMMITTED));
      assertThat(output.commit(java.time.Instant.ofEpochSecond(5), List.of(t9), Map.of(), List.of(
          range(2, 1, 2, "t9"))), is(StreamOutput.Outcome.COMMITTED));
      assertThat(output.positions(), equalTo(Map.of("patients/replayed/0", 2L, "patients/replayed/1", 2L,
          "patients/replayed/2", 2L)));
      assertThat(output.recordsCommitted(), is(6L));
      IllegalStateException unknown = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
          () -> output.commit(java.time.Instant.ofEpochSecond(6), List.of(resourcePart(out, mapping, "t11", 1)),
              Map.of(), List.of(range(3, 0, 1, "t11"))));
      assertThat(unknown.getMessage(), equalTo("a window holds records of patients/replayed/3, which this run does"
          + " not read"));
    }
  }

  /** A part of {@code lines} Patient resources that task {@code task} mapped from as many records. */
  private static org.fhirbeam.io.PartFile resourcePart(Path out, String mapping, String task, long lines)
      throws IOException {
    Path file = Files.createDirectories(out.resolve(StreamOutput.PARTS)).resolve(task + ".ndjson");
    Files.writeString(file, ("{\"t\":\"" + task + "\"}\n").repeat((int) lines));
    return new org.fhirbeam.io.PartFile("fhir/Patient-" + task + "-0.ndjson", file.toString(), lines,
        org.fhirbeam.data.Tally.builder().count(org.fhirbeam.data.Counters.rowsIn(mapping), lines)
            .count(org.fhirbeam.data.Counters.mapped(mapping), lines).build());
  }

  /** Records {@code from} to {@code next} of partition {@code partition} of topic {@code replayed}. */
  private static org.fhirbeam.io.StreamRange range(int partition, long from, long next, String task) {
    return new org.fhirbeam.io.StreamRange("patients", "replayed", partition, from, next, next - from, 0, 0, 0, task);
  }

  @Test
  void withoutTheDuckDbSinkTheWindowRecordsHoldThePosition() throws Exception {
    broker.createTopic("no-db", 2);
    List<Map.Entry<String, String>> records = sampleRecords();
    broker.produce("no-db", records);
    Path cfg = config("no-db");
    Path out = dir.resolve("no-db-out");
    Cli first = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--max-records", "15",
        "--set", "sinks.duckdb.enabled=false");
    assertThat(first.err(), first.code(), is(0));
    Cli second = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--drain", "--set",
        "sinks.duckdb.enabled=false");
    assertThat(second.err(), second.code(), is(0));
    assertThat(second.out(), containsString("balance: rows in 25 = resources"));
    assertThat(lines(out, "fhir").stream().sorted().toList(), equalTo(Files.readAllLines(
        DefaultJobTest.EXPECTED.resolve("Patient.ndjson")).stream().sorted().toList()));
    assertThat(lines(out, "rejects").size(), is(6));
    assertThat(Files.exists(dir.resolve("stream.db")), is(false));
    // One record per committed window, the last positions the end of each partition.
    Map<String, Long> positions = new TreeMap<>();
    try (Stream<Path> windows = Files.list(out.resolve("_stream/windows"))) {
      for (Path w : windows.toList()) {
        JSON.readTree(w.toFile()).get("positions").fields()
            .forEachRemaining(e -> positions.merge(e.getKey(), e.getValue().asLong(), Math::max));
      }
    }
    assertThat(positions.values().stream().mapToLong(Long::longValue).sum(), is(40L));
  }

  @Test
  void gzippedNdjsonParquetFilesAndDeltaTablesGetEachWindow() throws Exception {
    broker.createTopic("files", 2);
    broker.produce("files", sampleRecords());
    Path out = dir.resolve("files-out");
    Cli run = Cli.run("run", "--config", config("files").toString(), "--output", out.toString(), "--drain",
        "--set", "sinks.ndjson.compression=gzip", "--set", "sinks.parquet.enabled=true", "--set",
        "sinks.delta.enabled=true", "--set", "sinks.delta.location=" + dir.resolve("files-delta"));
    assertThat(run.err(), run.code(), is(0));
    List<String> expected = Files.readAllLines(DefaultJobTest.EXPECTED.resolve("Patient.ndjson")).stream().sorted()
        .toList();
    List<String> gzipped = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.sorted().toList()) {
        assertThat(f.toString(), f.getFileName().toString().endsWith(".ndjson.gz"), is(true));
        try (var in = new java.util.zip.GZIPInputStream(Files.newInputStream(f))) {
          gzipped.addAll(List.of(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)
              .split("\n")));
        }
      }
    }
    assertThat(gzipped.stream().sorted().toList(), equalTo(expected));
    // Parquet files of each window, laid out as a batch run's; the resources as they are.
    List<String> fromParquet = new ArrayList<>();
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT resource FROM read_parquet('" + out.resolve("parquet/Patient")
            + "/part-w*.parquet') ORDER BY 1")) {
      while (rs.next()) {
        fromParquet.add(rs.getString(1));
      }
    }
    assertThat(fromParquet, equalTo(expected));
    // The Delta table got the same files' resources (a copy of each: the tasks write one file for both sinks).
    try (DeltaTables delta = new DeltaTables(dir.resolve("files-delta"))) {
      assertThat(delta.strings("SELECT resource FROM {fhir_resources/patient} ORDER BY 1"), equalTo(expected));
    }
    // The database got them from the gzipped files.
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("stream.db"));
        Statement st = db.createStatement()) {
      assertThat(single(st, "SELECT count(*) FROM fhir_resources.patient"), is(34L));
    }
  }

  @Test
  void csvRecordsOfDeclaredColumnsGiveTheSameResources() throws Exception {
    broker.createTopic("csv-patients", 2);
    List<String> columns = List.of("patient_id", "first_name", "last_name", "birth_date", "gender", "phone");
    List<Map.Entry<String, String>> records = new ArrayList<>();
    for (String row : samplePatients()) {
      JsonNode json = JSON.readTree(row);
      List<String> fields = new ArrayList<>();
      for (String c : columns) {
        String v = json.hasNonNull(c) ? json.get(c).asText() : "";
        fields.add(v.matches(".*[\",\n].*") ? "\"" + v.replace("\"", "\"\"") + "\"" : v);
      }
      records.add(Map.entry("k" + records.size(), String.join(",", fields)));
    }
    records.add(Map.entry("bad-1", "p950,Too,Many,1990-01-01,F,555-0100,extra"));
    records.add(Map.entry("bad-2", "p951,Few"));
    records.add(Map.entry("bad-3", "p952,\"unclosed,Quote,1990-01-01,F,"));
    records.add(Map.entry("bad-4", "p953,Two,Lines,1990-01-01,F,\np954,Two,Lines,1990-01-01,F,"));
    broker.produce("csv-patients", records);
    Path cfg = Files.writeString(dir.resolve("csv.yaml"), Files.readString(config("csv-patients"))
        .replace("      columns:", "      format: csv\n      columns:"));
    Path out = dir.resolve("csv-out");
    Cli run = Cli.run("run", "--config", cfg.toString(), "--output", out.toString(), "--drain");
    assertThat(run.err(), run.code(), is(0));
    assertThat(lines(out, "fhir").stream().sorted().toList(), equalTo(Files.readAllLines(
        DefaultJobTest.EXPECTED.resolve("Patient.ndjson")).stream().sorted().toList()));
    List<String> reasons = new ArrayList<>();
    for (String l : lines(out, "rejects")) {
      JsonNode r = JSON.readTree(l);
      reasons.add(r.get("stage").asText() + " " + r.get("rule").asText());
    }
    assertThat(reasons.stream().sorted().toList(), equalTo(List.of("ingest csv-missing-columns",
        "ingest csv-several-lines", "ingest csv-too-many-columns", "ingest csv-unreadable", "mapping date",
        "mapping date", "mapping date", "mapping date", "mapping id", "mapping required")));
  }

  @Test
  void sigtermCommitsWhatWasReadAndEndsTheRunNormally() throws Exception {
    broker.createTopic("stopped", 3);
    List<Map.Entry<String, String>> records = sampleRecords();
    broker.produce("stopped", records);
    Path cfg = config("stopped");
    Path out = dir.resolve("stopped-out");
    Path log = dir.resolve("stopped.log");
    Process p = start(cfg, out, log, false);
    // Unbounded: it runs until the 40 records are committed, and on; then SIGTERM.
    Path summary = out.resolve("run-summary.json");
    long deadline = System.currentTimeMillis() + 120_000;
    while (p.isAlive() && System.currentTimeMillis() < deadline && !(Files.exists(summary)
        && JSON.readTree(summary.toFile()).path("rows_in").asLong() == 40)) {
      Thread.sleep(50);
    }
    assertThat(Files.readString(log), p.isAlive(), is(true));
    p.destroy();
    assertThat(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), is(true));
    assertThat(Files.readString(log), p.exitValue(), is(0));
    assertThat(Files.readString(log), containsString("(stopped by SIGTERM)"));
    assertThat(Files.readString(log), containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    assertThat(lines(out, "fhir").size(), is(34));
  }

  /**
   * Starts {@code run --drain} on the stream in its own JVM, with {@code properties}; its output goes to {@code log}.
   */
  private Process start(Path cfg, Path out, Path log, String... properties) throws IOException {
    return start(cfg, out, log, true, properties);
  }

  private Process start(Path cfg, Path out, Path log, boolean drain, String... properties) throws IOException {
    return start("direct", cfg, out, log, drain, properties);
  }

  private Process start(String runner, Path cfg, Path out, Path log, boolean drain, String... properties)
      throws IOException {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx768m", "-cp", System.getProperty("java.class.path")));
    // Spark needs the module openings this JVM was given.
    java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
        .filter(a -> a.startsWith("--add-opens")).forEach(cmd::add);
    // Temporary files in the test's folder: a killed run leaves Spark's (its block manager's folders) behind.
    cmd.add("-Djava.io.tmpdir=" + Files.createDirectories(dir.resolve("tmp")));
    cmd.addAll(List.of(properties));
    cmd.addAll(List.of(FhirBeam.class.getName(), "run", "--runner", runner, "--config", cfg.toString(), "--output",
        out.toString()));
    if (drain) {
      cmd.add("--drain");
    }
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("FHIRBEAM_HOME", HOME.toString());
    return pb.start();
  }

  @Test
  void killedAtAnyPointTheJobResumesAndEveryRecordIsInTheOutputsOnce() throws Exception {
    killedAndResumed("direct");
  }

  @Test
  void onSparkTooKilledAtAnyPointTheJobResumesAndEveryRecordIsInTheOutputsOnce() throws Exception {
    killedAndResumed("spark");
  }

  private void killedAndResumed(String runner) throws Exception {
    int total = 100_000;
    broker.createTopic("killed-" + runner, 3);
    // Unique ids, some rows bad (BenchData: empty and malformed ids, impossible dates), and a few non-JSON records.
    Path csv = org.fhirbeam.pipeline.bench.BenchData.csv(dir.resolve("input"), total - 100);
    List<Map.Entry<String, String>> records = new ArrayList<>();
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT to_json(t)::VARCHAR FROM read_csv('" + csv + "', all_varchar = true)"
            + " AS t")) {
      while (rs.next()) {
        records.add(Map.entry(String.valueOf(records.size()), rs.getString(1)));
      }
    }
    for (int i = 0; i < 100; i++) {
      records.add(Map.entry("bad" + i, "not json " + i));
    }
    broker.produce("killed-" + runner, records);
    // Small polls and windows: many windows, so that kills land between and inside commits. On Spark, into Delta
    // tables too, which then hold the position.
    boolean delta = runner.equals("spark");
    Path cfg = Files.writeString(dir.resolve("killed.yaml"), Files.readString(config("killed-" + runner))
        .replace("window: 1s", "window: 300ms")
        .replace("      columns:", "      consumer: {max.poll.records: '500'}\n      columns:")
        .replace(dir.resolve("stream.db").toString(), dir.resolve("killed.db").toString()));
    if (delta) {
      withDelta(cfg, dir.resolve("killed-delta"));
    }
    Path out = dir.resolve("killed-out");

    // At each named point of a window's commit, then at random moments.
    int killed = 0;
    List<String> points = new ArrayList<>(List.of("after-files@1", "in-commit@1", "after-commit@1"));
    if (delta) {
      points.add(1, "in-delta@1"); // after the window's first table took it
    }
    for (String point : points) {
      Path log = dir.resolve("run-" + killed + ".log");
      Process p = start(runner, cfg, out, log, true, "-D" + StreamOutput.FAULT + "=" + point);
      assertThat(p.waitFor(180, java.util.concurrent.TimeUnit.SECONDS), is(true));
      assertThat(point + ": " + Files.readString(log), p.exitValue(), is(137));
      killed++;
    }
    // Killed at random moments while it reads, maps and commits: once its pipeline runs (its progress line, printed
    // within a second of that), within 1.2 s more. (Not after its first commit: Spark may read all that is left in
    // its first micro-batch, and then its first commit is its last.)
    java.util.Random random = new java.util.Random(21);
    int midway = 0;
    for (int i = 0; i < 3; i++) {
      Path log = dir.resolve("run-" + killed + ".log");
      long before = windows(dir.resolve("killed.db"));
      Process p = start(runner, cfg, out, log, true);
      while (p.isAlive() && !(Files.exists(log) && Files.readString(log).contains("streaming:"))) {
        Thread.sleep(20);
      }
      Thread.sleep(random.nextInt(1200));
      if (p.isAlive()) {
        midway++;
      }
      p.destroyForcibly();
      assertThat(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS), is(true));
      System.out.printf(runner + ": random kill %d: exit %d, %d windows committed before, %d after%n", i,
          p.exitValue(), before, windows(dir.resolve("killed.db")));
      killed++;
    }
    // Spark may read what is left in one micro-batch and end before a later kill: at least one must hit a run.
    assertThat("runs killed while they were running", midway >= 1, is(true));
    Path log = dir.resolve("run-last.log");
    Process last = start(runner, cfg, out, log, true);
    boolean ended = last.waitFor(300, java.util.concurrent.TimeUnit.SECONDS);
    last.destroyForcibly();
    assertThat(Files.readString(log), ended, is(true));
    assertThat(Files.readString(log), last.exitValue(), is(0));

    List<String> resources = lines(out, "fhir");
    List<String> rejects = lines(out, "rejects");
    assertThat(resources.size() + rejects.size(), is(total));
    java.util.Set<String> ids = new java.util.HashSet<>();
    for (String r : resources) {
      assertThat("a repeated resource", ids.add(JSON.readTree(r).get("id").asText()), is(true));
    }
    java.util.Set<String> places = new java.util.HashSet<>();
    for (String r : rejects) {
      JsonNode n = JSON.readTree(r);
      assertThat("a repeated reject", places.add(n.get("partition").asText() + "/" + n.get("offset").asText()),
          is(true));
    }
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("killed.db"));
        Statement st = db.createStatement()) {
      assertThat(single(st, "SELECT count(DISTINCT id) FROM fhir_resources.patient"), is((long) resources.size()));
      assertThat(single(st, "SELECT count(*) FROM fhir_resources.patient"), is((long) resources.size()));
      assertThat(single(st, "SELECT count(DISTINCT (\"partition\", \"offset\")) FROM quality.rejects"),
          is((long) rejects.size()));
      assertThat(single(st, "SELECT count(*) FROM quality.rejects"), is((long) rejects.size()));
      assertThat(single(st, "SELECT sum(records) FROM quality.stream_positions"), is((long) total));
      assertThat(single(st, "SELECT count(*) FROM (SELECT from_offset, lag(next_offset) OVER (PARTITION BY"
          + " \"partition\" ORDER BY from_offset) AS before FROM quality.stream_positions) WHERE before IS NOT NULL"
          + " AND before <> from_offset"), is(0L));
    }
    assertThat(Files.exists(out.resolve("_stream/pending")) && Files.list(out.resolve("_stream/pending")).findAny()
        .isPresent(), is(false));
    if (delta) {
      try (DeltaTables tables = new DeltaTables(dir.resolve("killed-delta"))) {
        assertThat(tables.number("SELECT count(*) FROM {fhir_resources/patient}"), is((long) resources.size()));
        assertThat(tables.number("SELECT count(DISTINCT id) FROM {fhir_resources/patient}"),
            is((long) resources.size()));
        assertThat(tables.number("SELECT count(*) FROM {quality/rejects}"), is((long) rejects.size()));
        assertThat(tables.number("SELECT count(DISTINCT partition, offset) FROM {quality/rejects}"),
            is((long) rejects.size()));
        assertThat(tables.number("SELECT sum(records) FROM {quality/stream_positions}"), is((long) total));
      }
      // No window's Delta commit is left half done.
      try (Stream<Path> ledgers = Files.list(dir.resolve("killed-delta/_fhirbeam/commits"))) {
        assertThat(ledgers.toList(), equalTo(List.of()));
      }
    }
  }

  /** The windows committed to a database so far (0 before the first). */
  private static long windows(Path database) throws Exception {
    if (!Files.exists(database)) {
      return 0;
    }
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + database, readOnly());
        Statement st = db.createStatement()) {
      return single(st, "SELECT count(*) FROM quality.stream_windows");
    } catch (java.sql.SQLException e) {
      return -1; // locked by the run, or no windows table yet
    }
  }

  private static java.util.Properties readOnly() {
    java.util.Properties p = new java.util.Properties();
    p.setProperty("duckdb.read_only", "true");
    return p;
  }

  private static long single(Statement st, String sql) throws Exception {
    try (ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }
}
