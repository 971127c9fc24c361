package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.fhirbeam.pipeline.bench.S3TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * An s3:// source against a real S3-compatible store on loopback (Adobe S3TestServer in its own JVM): objects matching
 * the key pattern are fetched and give the same resources as the same rows in local files; a missing bucket or no
 * matching object stops the run with exit code 2.
 */
@Tag("servers")
class S3SourceTest {
  static S3TestServer s3mock;
  static int port;

  @TempDir
  Path tmp;

  @BeforeAll
  static void startS3() throws Exception {
    s3mock = S3TestServer.start(Path.of("target/s3mock/s3mock-exec.jar"));
    port = Integer.parseInt(s3mock.endpoint().substring(s3mock.endpoint().lastIndexOf(':') + 1));
    // The source finds credentials through the AWS default chain; Java system properties are part of it.
    System.setProperty("aws.accessKeyId", S3TestServer.ACCESS_KEY);
    System.setProperty("aws.secretAccessKey", S3TestServer.SECRET_KEY);
    try (S3Client s3 = s3mock.client()) {
      s3.createBucket(b -> b.bucket("clinic"));
      s3.putObject(b -> b.bucket("clinic").key("exports/2024/a.csv"), RequestBody.fromString(
          "patient_id,first_name,last_name,birth_date,gender\np1,Maria,Garcia,1984-03-12,F\np2,John,Smith,bad,M\n"));
      s3.putObject(b -> b.bucket("clinic").key("exports/2024/b.csv"), RequestBody.fromString(
          "patient_id,first_name,last_name,birth_date,gender\np3,Cy,Begay,2001-07-30,other\n"));
      s3.putObject(b -> b.bucket("clinic").key("exports/2024/notes.txt"), RequestBody.fromString("not data"));
    }
  }

  @AfterAll
  static void stopS3() throws Exception {
    if (s3mock != null) {
      s3mock.close();
    }
  }

  Cli run(String path, String name, String... more) throws IOException {
    Path config = Files.writeString(tmp.resolve(name + ".yaml"), "sources:\n  patients:\n    path: " + path
        + "\n    s3: {endpoint: \"http://127.0.0.1:" + port + "\", region: us-east-1}\nmappings: ["
        + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
    List<String> args = new java.util.ArrayList<>(List.of("run", "--config", config.toString(), "--output",
        tmp.resolve("out-" + name).toString(), "--set", "duckdb.database=" + tmp.resolve(name + ".db")));
    args.addAll(List.of(more));
    return Cli.run(args.toArray(String[]::new));
  }

  @Test
  void objectsMatchingTheKeyPatternAreReadLikeLocalFiles() throws IOException {
    Cli r = run("s3://clinic/exports/*/*.csv", "s3");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 2 + rejected 1: OK"));
    Path local = Files.createDirectories(tmp.resolve("local"));
    Files.writeString(local.resolve("a.csv"),
        "patient_id,first_name,last_name,birth_date,gender\np1,Maria,Garcia,1984-03-12,F\np2,John,Smith,bad,M\n");
    Files.writeString(local.resolve("b.csv"),
        "patient_id,first_name,last_name,birth_date,gender\np3,Cy,Begay,2001-07-30,other\n");
    Cli l = Cli.run("run", "--output", tmp.resolve("out-local").toString(), "--set", "sources.patients.path=" + local,
        "--set", "duckdb.database=" + tmp.resolve("l.db"));
    assertThat(l.err(), l.code(), equalTo(0));
    assertThat(MixedFormatsTest.resources(tmp.resolve("out-s3")), equalTo(MixedFormatsTest.resources(
        tmp.resolve("out-local"))));
    // The Spark runner reads the same objects.
    Cli spark = run("s3://clinic/exports/*/*.csv", "s3-spark", "--runner", "spark");
    assertThat(spark.err(), spark.code(), equalTo(0));
    assertThat(MixedFormatsTest.resources(tmp.resolve("out-s3-spark")), equalTo(MixedFormatsTest.resources(
        tmp.resolve("out-local"))));
    List<String> rejects;
    try (var files = Files.list(tmp.resolve("out-s3/rejects"))) {
      rejects = Files.readAllLines(files.findFirst().orElseThrow());
    }
    assertThat(rejects.get(0), containsString("\"file\":\"s3://clinic/exports/2024/a.csv\",\"line\":3,"));
  }

  @Test
  void aMissingBucketOrNoMatchingObjectStopsTheRun() throws IOException {
    Cli none = run("s3://clinic/exports/*/*.parquet", "none");
    assertThat(none.code(), equalTo(2));
    assertThat(none.err(), equalTo("error: " + tmp.resolve("none.yaml") + ":3: sources.patients.path: no object"
        + " matches s3://clinic/exports/*/*.parquet\n"));
    Cli bucket = run("s3://no-such-bucket/x/*.csv", "bucket");
    assertThat(bucket.code(), equalTo(2));
    assertThat(bucket.err(), containsString("error: source patients: s3://no-such-bucket/x/*.csv: "));
  }
}
