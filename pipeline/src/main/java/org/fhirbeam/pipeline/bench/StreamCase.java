package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The topic the {@code stream-*} cases drain: a real broker on loopback ({@link KafkaBroker}) whose topic of
 * {@link #PARTITIONS} partitions holds the bench CSV's rows as JSON records, produced once before the runs; and the
 * job configuration of a Kafka source that reads it with the default Patient mapping. Every run starts from an empty
 * output, so it reads the whole topic ({@code --drain}: to where the partitions ended when it began).
 */
final class StreamCase implements AutoCloseable {
  static final int PARTITIONS = 2;
  static final String TOPIC = "bench-patients";

  private final KafkaBroker broker;
  final Path config;

  private StreamCase(KafkaBroker broker, Path config) {
    this.broker = broker;
    this.config = config;
  }

  /** Starts the broker, produces {@code csv}'s rows to the topic, and writes the job's configuration. */
  static StreamCase start(Path csv, Path work) throws IOException, InterruptedException, ExecutionException,
      SQLException {
    KafkaBroker broker = KafkaBroker.start(KafkaBroker.classpathFile(org.fhirbeam.pipeline.FhirBeam.home()));
    try {
      broker.createTopic(TOPIC, PARTITIONS);
      long n = 0;
      try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
          Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT to_json(t)::VARCHAR FROM read_csv("
              + org.fhirbeam.io.DuckDb.literal(csv.toString()) + ", all_varchar = true) AS t");
          KafkaProducer<String, String> producer = broker.producer()) {
        while (rs.next()) {
          producer.send(new ProducerRecord<>(TOPIC, null, rs.getString(1)));
          n++;
        }
        producer.flush();
      }
      Path config = Files.writeString(work.resolve("stream-source.yaml"), "name: bench_stream\nduckdb:\n"
          + "  memory_limit: 384MB\nsources:\n  patients:\n    kafka:\n      bootstrap_servers: "
          + broker.bootstrapServers() + "\n      topics: ["
          + TOPIC + "]\n      columns: [patient_id, first_name, last_name, birth_date, gender]\nmappings: ["
          + org.fhirbeam.pipeline.FhirBeam.home().resolve("config/mappings/patient.yaml") + "]\n");
      System.out.printf("produced %,d records to %s (%d partitions)%n", n, TOPIC, PARTITIONS);
      return new StreamCase(broker, config);
    } catch (IOException | SQLException | RuntimeException | ExecutionException e) {
      broker.close();
      throw e;
    }
  }

  /**
   * What a timed run measured: the records produced and committed, the time from each record's production (its Kafka
   * timestamp) to the commit of its window (p50, p95, max, in seconds), and the job's lag behind the topic (records
   * produced but not yet in a committed window), sampled every 5 s: the largest in the first and in the last minute.
   */
  record Timed(long produced, long committed, double p50, double p95, double max, long lagFirstMinute,
      long lagLastMinute, ProcessMeter.Measurement measurement) {}

  private int timedRuns;

  /**
   * Runs the job on a fresh topic while this process produces {@code rate} records a second for {@code seconds}
   * (from when the job's pipeline is running); once the job has committed every record, or 60 s after the last was
   * produced, SIGTERM ends it. {@code jvm} starts the measured process, which runs the job on {@code runner}
   * ({@code direct} or {@code spark}).
   */
  Timed timed(List<String> jvm, String runner, Path outDir, Path log, int rate, int seconds) throws Exception {
    String topic = TOPIC + "-timed-" + (++timedRuns);
    broker.createTopic(topic, PARTITIONS);
    Files.createDirectories(outDir);
    Path cfg = Files.writeString(outDir.resolveSibling(outDir.getFileName() + ".yaml"), Files.readString(config)
        .replace("topics: [" + TOPIC + "]", "topics: [" + topic + "]"));
    List<long[]> sent = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
    List<long[]> lag = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
    List<String> cmd = new java.util.ArrayList<>(jvm);
    cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run", "--runner", runner, "--config",
        cfg.toString(), "--output", outDir.toString(), "--set", "duckdb.database=" + outDir.resolve("fhir.db")));
    Throwable[] failed = new Throwable[1];
    ProcessMeter.Measurement m = ProcessMeter.run(new ProcessBuilder(cmd), log, p -> {
      try {
        drive(p, log, topic, rate, seconds, outDir.resolve("run-summary.json"), sent, lag);
      } catch (Throwable e) {
        failed[0] = e;
        p.destroy();
      }
    });
    if (failed[0] != null) {
      throw new IllegalStateException("driving the timed stream failed", failed[0]);
    }
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:");
        Statement st = db.createStatement()) {
      st.execute("ATTACH " + org.fhirbeam.io.DuckDb.literal(outDir.resolve("fhir.db").toString())
          + " AS job (READ_ONLY)");
      st.execute("CREATE TABLE sent (\"partition\" INTEGER, \"offset\" BIGINT, ts BIGINT)");
      try (org.duckdb.DuckDBAppender a = db.unwrap(org.duckdb.DuckDBConnection.class).createAppender("main",
          "sent")) {
        synchronized (sent) {
          for (long[] r : sent) {
            a.beginRow().append((int) r[0]).append(r[1]).append(r[2]).endRow();
          }
        }
      }
      try (ResultSet rs = st.executeQuery("SELECT count(*), quantile_cont(lat, 0.5), quantile_cont(lat, 0.95),"
          + " max(lat) FROM (SELECT (epoch_ms(w.committed_at) - s.ts) / 1000.0 AS lat FROM sent s JOIN"
          + " job.quality.stream_positions p ON p.\"partition\" = s.\"partition\" AND s.\"offset\" >= p.from_offset"
          + " AND s.\"offset\" < p.next_offset JOIN job.quality.stream_windows w USING (window_id))")) {
        rs.next();
        long lagFirst = 0;
        long lagLast = 0;
        synchronized (lag) {
          for (long[] l : lag) {
            if (l[0] < 60_000) {
              lagFirst = Math.max(lagFirst, l[1]);
            }
            if (l[0] >= (seconds - 60) * 1000L) {
              lagLast = Math.max(lagLast, l[1]);
            }
          }
        }
        return new Timed(sent.size(), rs.getLong(1), rs.getDouble(2), rs.getDouble(3), rs.getDouble(4), lagFirst,
            lagLast, m);
      }
    }
  }

  /** Produces while the job runs, samples its lag, and stops it once it has committed everything. */
  private void drive(Process p, Path log, String topic, int rate, int seconds, Path summary, List<long[]> sent,
      List<long[]> lag) throws Exception {
    while (p.isAlive() && !(Files.exists(log) && Files.readString(log).contains("streaming:"))) {
      Thread.sleep(50);
    }
    long start = System.currentTimeMillis();
    long nextSample = start;
    long seq = 0;
    try (KafkaProducer<String, String> producer = broker.producer()) {
      for (long tick = 0; p.isAlive() && tick < seconds * 100L; tick++) {
        long due = start + tick * 10;
        long wait = due - System.currentTimeMillis();
        if (wait > 0) {
          Thread.sleep(wait);
        }
        long target = (tick + 1) * rate / 100;
        for (; seq < target; seq++) {
          String value = "{\"patient_id\":\"t" + seq + "\",\"first_name\":\"Ada\",\"last_name\":\"Lovelace\","
              + "\"birth_date\":\"1915-12-10\",\"gender\":\"f\"}";
          producer.send(new ProducerRecord<>(topic, null, value), (meta, e) -> {
            if (e == null) {
              sent.add(new long[] {meta.partition(), meta.offset(), meta.timestamp()});
            }
          });
        }
        if (System.currentTimeMillis() >= nextSample) {
          lag.add(new long[] {System.currentTimeMillis() - start, sent.size() - committed(summary)});
          nextSample += 5000;
        }
      }
      producer.flush();
    }
    long deadline = System.currentTimeMillis() + 60_000;
    while (p.isAlive() && committed(summary) < sent.size() && System.currentTimeMillis() < deadline) {
      Thread.sleep(200);
    }
    p.destroy();
  }

  /** How many records the job's committed windows hold so far, from its run summary. */
  private static long committed(Path summary) {
    try {
      return new com.fasterxml.jackson.databind.ObjectMapper().readTree(summary.toFile()).path("rows_in").asLong();
    } catch (IOException e) {
      return 0; // not written yet, or being replaced
    }
  }

  @Override
  public void close() {
    broker.close();
  }
}
