package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.pipeline.FhirBeam;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * What {@code bench}'s spark-cluster case runs on: the S3 test server holding the Patient CSV, and a standalone Spark
 * cluster of {@value #WORKERS} one-core workers, to which each run submits the application jar.
 */
final class ClusterCase implements AutoCloseable {
  static final String BUCKET = "bench";
  static final int WORKERS = 2;

  private final Path dir;
  private final S3TestServer s3;
  private final StandaloneCluster cluster;
  private final Path jar;

  private ClusterCase(Path dir, S3TestServer s3, StandaloneCluster cluster, Path jar) {
    this.dir = dir;
    this.s3 = s3;
    this.cluster = cluster;
    this.jar = jar;
  }

  /**
   * Starts the store and the cluster, and uploads {@code csv}; the cluster's parts are those `mvn package` builds
   * in deploy/.
   */
  static ClusterCase start(Path csv, List<String> opens) throws IOException, InterruptedException {
    Path home = FhirBeam.home();
    Path sparkHome = home.resolve("deploy/spark/target/spark-home");
    Path jar = home.resolve("deploy/cluster/target/fhirbeam-cluster.jar");
    Path s3Jar = home.resolve("pipeline/target/s3mock/s3mock-exec.jar");
    for (Path needed : List.of(sparkHome.resolve("jars"), jar, s3Jar)) {
      if (!Files.exists(needed)) {
        throw new IllegalStateException("the spark-cluster case needs " + needed + ": build it with"
            + " `mvn -DskipTests package` in " + home);
      }
    }
    Path dir = Files.createTempDirectory("fhirbeam-bench-cluster");
    S3TestServer s3 = S3TestServer.start(s3Jar);
    StandaloneCluster cluster = null;
    try (S3Client client = s3.client()) {
      client.createBucket(b -> b.bucket(BUCKET));
      client.putObject(b -> b.bucket(BUCKET).key("in/" + csv.getFileName()), RequestBody.fromFile(csv));
      cluster = StandaloneCluster.start(sparkHome, dir, String.join(" ", opens), WORKERS, "1g");
      return new ClusterCase(dir, s3, cluster, jar);
    } catch (IOException | InterruptedException | RuntimeException e) {
      if (cluster != null) {
        cluster.close();
      }
      s3.close();
      throw e;
    }
  }

  /** The driver of one run of the Patient job, its input and output on the store. */
  ProcessBuilder submission(String name, String output) throws IOException {
    Map<String, String> conf = new HashMap<>(S3TestServer.executorSettings());
    conf.put("spark.executor.memory", "768m");
    Map<String, String> env = new HashMap<>(s3.environment());
    // The run's parts wait here between its steps: the workers are on this machine, so any folder they all see.
    env.put("FHIRBEAM_WORK_DIR", dir.resolve("work").toString());
    return cluster.submission(name, jar, env, conf,
        "run", "--runner", "spark", "--profile", "--output", output,
        "--set", "sources.patients.path=s3://" + BUCKET + "/in/*.csv",
        "--set", "sources.patients.s3.endpoint=" + s3.endpoint(), "--set", "sources.patients.s3.region=us-east-1",
        "--set", "sinks.duckdb.enabled=false");
  }

  @Override
  public void close() throws InterruptedException {
    cluster.close();
    s3.close();
    FileTrees.deleteTree(dir);
  }
}
