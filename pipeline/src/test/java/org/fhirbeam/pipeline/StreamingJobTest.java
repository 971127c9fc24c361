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
    List<Map.Entry<String, String>> records = new ArrayList<>();
    List<String> rows = samplePatients();
    for (int i = 0; i < rows.size(); i++) {
      records.add(Map.entry("k" + i, rows.get(i)));
    }
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

  private static long single(Statement st, String sql) throws Exception {
    try (ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }
}
