package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Spark's standalone master and workers, each a JVM of its own on loopback with only Spark's jars on its class path
 * (the SPARK_HOME the build makes in deploy/spark), each worker with its own work and temporary directories. Stopped
 * by process id, with the executors the workers started. The cluster tests and {@code bench}'s spark-cluster case
 * run on it.
 */
public final class StandaloneCluster implements AutoCloseable {
  private static final Pattern ALIVE_WORKERS = Pattern.compile("\"aliveworkers\"\\s*:\\s*(\\d+)");

  private final Path sparkHome;
  private final Path dir;
  private final String opens;
  /** The cluster's processes and a submitted driver while it runs: {@link CloseAtExit}'s hook reads it too. */
  private final List<Process> processes = new java.util.concurrent.CopyOnWriteArrayList<>();
  private final int port;
  private final int webPort;
  private final CloseAtExit atExit;

  private StandaloneCluster(Path sparkHome, Path dir, String opens) throws IOException {
    this.sparkHome = sparkHome;
    this.dir = dir;
    this.opens = opens;
    this.port = freePort();
    this.webPort = freePort();
    this.atExit = new CloseAtExit("standalone Spark cluster", this);
  }

  /** Starts a master and {@code workers} workers of one core and {@code workerMemory} each, and waits for them. */
  public static StandaloneCluster start(Path sparkHome, Path dir, String opens, int workers, String workerMemory)
      throws IOException, InterruptedException {
    StandaloneCluster c = new StandaloneCluster(sparkHome, dir, opens);
    try {
      c.spark("master", Map.of(), "-Xmx256m", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
          "--port", String.valueOf(c.port), "--webui-port", String.valueOf(c.webPort));
      for (int i = 1; i <= workers; i++) {
        Path work = Files.createDirectories(dir.resolve("worker-" + i + "/work"));
        Path local = Files.createDirectories(dir.resolve("worker-" + i + "/local"));
        c.spark("worker-" + i, Map.of("SPARK_LOCAL_DIRS", local.toString()), "-Xmx256m",
            "org.apache.spark.deploy.worker.Worker", c.masterUrl(), "--host", "127.0.0.1", "--cores", "1",
            "--memory", workerMemory, "--work-dir", work.toString(), "--webui-port", "0");
      }
      c.awaitWorkers(workers);
      return c;
    } catch (IOException | InterruptedException | RuntimeException e) {
      c.close();
      throw e;
    }
  }

  public String masterUrl() {
    return "spark://127.0.0.1:" + port;
  }

  /**
   * Submits the application jar as spark-submit does (Spark's SparkSubmit, client mode: the driver in a JVM of its
   * own here), with {@code conf} as Spark settings, and waits for it. Returns the exit code; the driver's output is in
   * {@code log(name)}.
   */
  public int submit(String name, Path jar, Map<String, String> env, Map<String, String> conf, String... args)
      throws IOException, InterruptedException {
    return submit(name, FHIRBEAM, jar, env, conf, args);
  }

  /** As {@link #submit(String, Path, Map, Map, String...)}, running {@code mainClass} of the jar. */
  public int submit(String name, String mainClass, Path jar, Map<String, String> env, Map<String, String> conf,
      String... args) throws IOException, InterruptedException {
    Process driver = submission(name, mainClass, jar, env, conf, args).start();
    processes.add(driver);
    if (!driver.waitFor(10, TimeUnit.MINUTES)) {
      driver.descendants().forEach(ProcessHandle::destroyForcibly);
      driver.destroyForcibly();
      throw new IllegalStateException(name + " did not finish in 10 minutes; see " + log(name));
    }
    processes.remove(driver);
    return driver.exitValue();
  }

  /** The driver process {@link #submit} starts, to start and wait for elsewhere (the bench measures it). */
  public ProcessBuilder submission(String name, Path jar, Map<String, String> env, Map<String, String> conf,
      String... args) throws IOException {
    return submission(name, FHIRBEAM, jar, env, conf, args);
  }

  /** The command line's main class, which the jar's manifest names too. */
  private static final String FHIRBEAM = "org.fhirbeam.pipeline.FhirBeam";

  private ProcessBuilder submission(String name, String mainClass, Path jar, Map<String, String> env,
      Map<String, String> conf, String... args) throws IOException {
    List<String> command = new ArrayList<>(List.of("org.apache.spark.deploy.SparkSubmit", "--master", masterUrl(),
        "--deploy-mode", "client", "--class", mainClass,
        "--conf", "spark.executor.extraJavaOptions=" + opens));
    conf.forEach((k, v) -> command.addAll(List.of("--conf", k + "=" + v)));
    command.add(jar.toString());
    command.addAll(List.of(args));
    return builder(name, env, "-Xmx1g", command.toArray(String[]::new));
  }

  public Path log(String name) {
    return dir.resolve(name + ".out");
  }

  private Process spark(String name, Map<String, String> env, String heap, String... mainAndArgs)
      throws IOException {
    Process p = builder(name, env, heap, mainAndArgs).start();
    processes.add(p);
    return p;
  }

  private ProcessBuilder builder(String name, Map<String, String> env, String heap, String... mainAndArgs)
      throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add(heap);
    command.addAll(List.of(opens.split(" ")));
    command.add("-Djava.io.tmpdir=" + Files.createDirectories(dir.resolve(name + "-tmp")));
    command.add("-cp");
    command.add(sparkHome.resolve("jars") + "/*");
    command.addAll(List.of(mainAndArgs));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(log(name).toFile());
    // A worker builds its executors' command from SPARK_HOME's jars.
    pb.environment().put("SPARK_HOME", sparkHome.toString());
    pb.environment().put("SPARK_SCALA_VERSION", "2.12");
    pb.environment().putAll(env);
    return pb;
  }

  private void awaitWorkers(int workers) throws IOException, InterruptedException {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
    while (System.nanoTime() < deadline) {
      for (Process p : processes) {
        if (!p.isAlive()) {
          throw new IllegalStateException("a cluster process ended at start (exit " + p.exitValue() + "); see "
              + dir);
        }
      }
      try {
        String json = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + webPort + "/json/"))
            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = ALIVE_WORKERS.matcher(json);
        if (m.find() && Integer.parseInt(m.group(1)) == workers) {
          return;
        }
      } catch (IOException e) {
        // the master's web UI is not up yet
      }
      Thread.sleep(250);
    }
    throw new IllegalStateException("the standalone cluster did not have " + workers + " workers within 90 s; see "
        + dir);
  }

  @Override
  public void close() {
    atExit.cancel();
    for (Process p : processes) {
      p.descendants().forEach(ProcessHandle::destroy);
      p.destroy();
    }
    for (Process p : processes) {
      try {
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
          p.descendants().forEach(ProcessHandle::destroyForcibly);
          p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
