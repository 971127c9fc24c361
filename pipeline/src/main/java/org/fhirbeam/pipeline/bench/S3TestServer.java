package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.fhirbeam.io.FileTrees;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * A real S3-compatible store on loopback for tests and {@code bench}: Adobe S3Mock's runnable jar (the build copies
 * it to pipeline/target/s3mock) in its own JVM.
 */
public final class S3TestServer implements AutoCloseable {
  public static final String ACCESS_KEY = "test";
  public static final String SECRET_KEY = "test-secret";

  private final Process process;
  private final int port;
  private final Path store;

  private final CloseAtExit atExit;

  private S3TestServer(Process process, int port, Path store) {
    this.process = process;
    this.port = port;
    this.store = store;
    this.atExit = new CloseAtExit("S3Mock", this);
  }

  /** Starts the store from {@code jar} and waits until it answers. */
  public static S3TestServer start(Path jar) throws IOException, InterruptedException {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Path store = Files.createTempDirectory("fhirbeam-s3mock");
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
        "-jar", jar.toAbsolutePath().toString(), "--server.ssl.enabled=false", "--server.address=127.0.0.1",
        "--server.port=" + port, "--http.port=0", "--com.adobe.testing.s3mock.store.root=" + store)
        .redirectErrorStream(true).redirectOutput(store.resolveSibling(store.getFileName() + ".log").toFile()).start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try {
        HttpURLConnection c = (HttpURLConnection) URI.create("http://127.0.0.1:" + port + "/").toURL().openConnection();
        c.setConnectTimeout(500);
        if (c.getResponseCode() > 0) {
          return new S3TestServer(p, port, store);
        }
      } catch (IOException notYet) {
        if (System.nanoTime() > deadline || !p.isAlive()) {
          p.destroyForcibly();
          throw new IllegalStateException("S3Mock did not start", notYet);
        }
        Thread.sleep(250);
      }
    }
  }

  public String endpoint() {
    return "http://127.0.0.1:" + port;
  }

  /**
   * The AWS SDK's Java system properties (its default chain reads them) that point a JVM at this store: credentials,
   * region, endpoint.
   */
  public Map<String, String> systemProperties() {
    return Map.of("aws.accessKeyId", ACCESS_KEY, "aws.secretAccessKey", SECRET_KEY, "aws.region", "us-east-1",
        "aws.endpointUrl", endpoint());
  }

  /** The same as environment variables, for a process of its own (a Spark driver). */
  public Map<String, String> environment() {
    return Map.of("AWS_ACCESS_KEY_ID", ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", SECRET_KEY, "AWS_REGION", "us-east-1",
        "AWS_ENDPOINT_URL", endpoint());
  }

  /**
   * The Spark settings that give a cluster's executors the credentials (the endpoint and region reach them in the
   * pipeline's options).
   */
  public static Map<String, String> executorSettings() {
    return Map.of("spark.executorEnv.AWS_ACCESS_KEY_ID", ACCESS_KEY,
        "spark.executorEnv.AWS_SECRET_ACCESS_KEY", SECRET_KEY);
  }

  /**
   * Uploads the files of {@code folder} whose names end with {@code suffix} ("" for all) to {@code bucket}, each
   * under {@code prefix} and its file name.
   */
  public void upload(Path folder, String suffix, String bucket, String prefix) throws IOException {
    try (S3Client client = client(); Stream<Path> files = Files.list(folder)) {
      for (Path f : files.filter(f -> f.getFileName().toString().endsWith(suffix)).sorted().toList()) {
        client.putObject(b -> b.bucket(bucket).key(prefix + f.getFileName()),
            RequestBody.fromFile(f));
      }
    }
  }

  /** A client of the store with the test credentials. */
  public S3Client client() {
    return S3Client.builder().httpClient(UrlConnectionHttpClient.create()).region(Region.US_EAST_1)
        .endpointOverride(URI.create(endpoint())).forcePathStyle(true)
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(ACCESS_KEY, SECRET_KEY)))
        .build();
  }

  @Override
  public void close() throws InterruptedException {
    atExit.cancel();
    process.destroy();
    process.waitFor(20, TimeUnit.SECONDS);
    FileTrees.deleteTree(store);
  }
}
