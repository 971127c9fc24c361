package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
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
          ResultSet rs = st.executeQuery("SELECT to_json(t)::VARCHAR FROM read_csv(" + literal(csv.toString())
              + ", all_varchar = true) AS t");
          KafkaProducer<String, String> producer = broker.producer()) {
        while (rs.next()) {
          producer.send(new ProducerRecord<>(TOPIC, null, rs.getString(1)));
          n++;
        }
        producer.flush();
      }
      Path config = Files.writeString(work.resolve("stream-source.yaml"), "name: bench_stream\nduckdb:\n  memory_limit: 384MB\nsources:\n"
          + "  patients:\n    kafka:\n      bootstrap_servers: " + broker.bootstrapServers() + "\n      topics: ["
          + TOPIC + "]\n      columns: [patient_id, first_name, last_name, birth_date, gender]\nmappings: ["
          + org.fhirbeam.pipeline.FhirBeam.home().resolve("config/mappings/patient.yaml") + "]\n");
      System.out.printf("produced %,d records to %s (%d partitions)%n", n, TOPIC, PARTITIONS);
      return new StreamCase(broker, config);
    } catch (IOException | SQLException | RuntimeException | ExecutionException e) {
      broker.close();
      throw e;
    }
  }

  private static String literal(String s) {
    return "'" + s.replace("'", "''") + "'";
  }

  @Override
  public void close() {
    broker.close();
  }
}
