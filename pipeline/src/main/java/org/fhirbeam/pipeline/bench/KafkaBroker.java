package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A real, throwaway Kafka broker on loopback for the streaming tests and the bench: one node in KRaft mode (broker
 * and controller), in its own JVM with the classpath {@code deploy/kafka-broker} writes (the broker's kafka-clients
 * 4.x stays apart from the 3.9.x the pipeline reads with), its log folder in a temporary directory, stopped by
 * {@link #close}. Ready once an admin client gets the cluster's description, not when the port opens.
 */
public final class KafkaBroker implements AutoCloseable {
  private final Path dir;
  private final int port;
  private final Process process;
  private final CloseAtExit atExit;

  private KafkaBroker(Path dir, int port, Process process) {
    this.dir = dir;
    this.port = port;
    this.process = process;
    this.atExit = new CloseAtExit("Kafka broker", this);
  }

  /** The classpath file {@code deploy/kafka-broker} writes when it is built, under the installation {@code home}. */
  public static Path classpathFile(Path home) {
    return home.resolve("deploy/kafka-broker/target/broker.classpath");
  }

  /** Formats a log folder and starts a broker whose classpath is listed in {@code classpathFile}. */
  public static KafkaBroker start(Path classpathFile) throws IOException, InterruptedException {
    if (!Files.isRegularFile(classpathFile)) {
      throw new IllegalStateException("no Kafka broker classpath at " + classpathFile + ": build it with"
          + " mvn -pl deploy/kafka-broker package");
    }
    String classpath = Files.readString(classpathFile).strip();
    Path dir = Files.createTempDirectory("fhirbeam-kafka");
    int port = freePort();
    int controller = freePort();
    String props = String.join("\n",
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@127.0.0.1:" + controller,
        "listeners=PLAINTEXT://127.0.0.1:" + port + ",CONTROLLER://127.0.0.1:" + controller,
        "advertised.listeners=PLAINTEXT://127.0.0.1:" + port,
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        "log.dirs=" + dir.resolve("logs"),
        "num.partitions=1",
        // One node: every internal topic has one replica.
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=3",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false") + "\n";
    Path config = Files.writeString(dir.resolve("server.properties"), props);
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process format = new ProcessBuilder(java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
        Uuid.randomUuid().toString(), "-c", config.toString())
        .redirectErrorStream(true).redirectOutput(dir.resolve("format.log").toFile()).start();
    if (!format.waitFor(60, TimeUnit.SECONDS) || format.exitValue() != 0) {
      format.destroyForcibly();
      throw new IllegalStateException("formatting the Kafka log folder failed: " + Files.readString(
          dir.resolve("format.log")));
    }
    Process broker = new ProcessBuilder(java, "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-cp", classpath,
        "kafka.Kafka", config.toString())
        .redirectErrorStream(true).redirectOutput(dir.resolve("broker.log").toFile()).start();
    KafkaBroker b = new KafkaBroker(dir, port, broker);
    try {
      b.awaitReady(Duration.ofSeconds(60));
    } catch (RuntimeException | InterruptedException e) {
      b.close();
      throw e;
    }
    return b;
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private void awaitReady(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    RuntimeException last = null;
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("the Kafka broker exited with " + process.exitValue() + "; see " + log());
      }
      try (Admin admin = admin()) {
        admin.describeCluster().nodes().get(5, TimeUnit.SECONDS);
        return;
      } catch (ExecutionException | java.util.concurrent.TimeoutException | RuntimeException e) {
        last = new IllegalStateException(e.getMessage(), e);
        Thread.sleep(200);
      }
    }
    throw new IllegalStateException("the Kafka broker was not ready in " + timeout + "; see " + log(), last);
  }

  /** {@code host:port} of the broker's listener. */
  public String bootstrapServers() {
    return "127.0.0.1:" + port;
  }

  /** The broker's own log (for a failing test's message). */
  public Path log() {
    return dir.resolve("broker.log");
  }

  public Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10000);
    return Admin.create(p);
  }

  /** Creates a topic with {@code partitions} partitions. */
  public void createTopic(String topic, int partitions) throws InterruptedException, ExecutionException {
    try (Admin admin = admin()) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
    }
  }

  /** Writes {@code records} (key, value; a null key spreads them over the partitions) and waits for them all. */
  public void produce(String topic, List<Map.Entry<String, String>> records)
      throws InterruptedException, ExecutionException {
    try (KafkaProducer<String, String> producer = producer()) {
      List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
      for (Map.Entry<String, String> r : records) {
        sent.add(producer.send(new ProducerRecord<>(topic, r.getKey(), r.getValue())));
      }
      for (java.util.concurrent.Future<?> f : sent) {
        f.get();
      }
    }
  }

  /** A producer of text keys and values, acknowledged by the broker, batching as the bench needs. */
  public KafkaProducer<String, String> producer() {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.BATCH_SIZE_CONFIG, 256 * 1024);
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
    return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
  }

  @Override
  public void close() {
    atExit.cancel();
    process.destroy();
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try {
      org.fhirbeam.io.FileTrees.deleteTree(dir);
    } catch (java.io.UncheckedIOException e) {
      // a temporary folder: left for the system to clear
    }
  }
}
