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
 * An s3:// source against a real S3-compatible store on loopback (Adobe S3Mock in its own JVM): objects matching
 * the key pattern are planned from samples, fetched by the tasks that map them, and give the same resources and
 * rejects as the same rows in local files; a missing bucket or no matching object stops the run with exit code 2.
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

  /**
   * An object larger than the sample planning reads (its first 4 MB) is fetched whole by its task, which plans it as
   * a local file: every row is mapped, and a bad row on the object's last line is rejected at that line.
   */
  @Test
  void anObjectLargerThanThePlanningSampleIsReadWholeByItsTask() throws IOException {
    int rows = 120_000;
    StringBuilder csv = new StringBuilder("patient_id,first_name,last_name,birth_date,gender\n");
    for (int i = 1; i < rows; i++) {
      csv.append("p").append(i).append(",Given").append(i).append(",Family").append(i).append(",1980-01-01,F\n");
    }
    csv.append("p").append(rows).append(",Last,Row,not-a-date,M\n");
    assertThat(csv.length() > 4 << 20, equalTo(true));
    try (S3Client s3 = s3mock.client()) {
      s3.putObject(b -> b.bucket("clinic").key("big/patients.csv"), RequestBody.fromString(csv.toString()));
    }
    Cli r = run("s3://clinic/big/patients.csv", "big");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 120,000 = resources 119,999 + rejected 1: OK"));
    List<String> rejects;
    try (var files = Files.list(tmp.resolve("out-big/rejects"))) {
      rejects = Files.readAllLines(files.findFirst().orElseThrow());
    }
    assertThat(rejects.size(), equalTo(1));
    assertThat(rejects.get(0), containsString("\"file\":\"s3://clinic/big/patients.csv\",\"line\":120001,"));
  }

  /**
   * An NDJSON object read with {@code fields}, whose columns are the keys of all its records, where records past the
   * 4 MB planning sample carry a key the first ones lack: its task reads it with the columns it was planned with.
   */
  @Test
  void anObjectIsReadWithTheColumnsItWasPlannedWith() throws Exception {
    StringBuilder ndjson = new StringBuilder();
    int rows = 50_000;
    for (int i = 1; i <= rows; i++) {
      ndjson.append("{\"patient_id\":\"n").append(i).append("\",\"first_name\":\"Given").append(i)
          .append("\",\"last_name\":\"Family\",\"birth_date\":\"1980-01-01\",\"gender\":\"F\",")
          .append(i > rows - 10 ? "\"note\":\"late\"," : "").append("\"name\":{\"family\":\"Family\"}}\n");
    }
    assertThat(ndjson.indexOf("note") > 4 << 20, equalTo(true));
    try (S3Client s3 = s3mock.client()) {
      s3.putObject(b -> b.bucket("clinic").key("late/p.ndjson"), RequestBody.fromString(ndjson.toString()));
    }
    Path config = Files.writeString(tmp.resolve("late.yaml"), "sources:\n  patients:\n    path:"
        + " s3://clinic/late/p.ndjson\n    fields: {family: name.family}\n    s3: {endpoint: \"http://127.0.0.1:"
        + port + "\", region: us-east-1}\nmappings: [" + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml")
        + "]\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out-late").toString(), "--set",
        "duckdb.database=" + tmp.resolve("late.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 50,000 = resources 50,000 + rejected 0: OK"));
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("late.db"));
        java.sql.Statement st = db.createStatement()) {
      // The planned columns (their order is the planner's), without the late key.
      assertThat(DefaultJobTest.row(st, "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM"
          + " information_schema.columns WHERE table_schema = 'raw_data' AND table_name = 'patients'"),
          equalTo(List.of("_source_file,birth_date,family,first_name,gender,last_name,name,patient_id")));
    }
  }

  /** Two objects of one name in two "folders" are both read, by the mapping and by the DuckDB file's raw copy. */
  @Test
  void objectsOfOneNameInTwoFoldersAreBothRead() throws Exception {
    String header = "patient_id,first_name,last_name,birth_date,gender\n";
    try (S3Client s3 = s3mock.client()) {
      s3.putObject(b -> b.bucket("clinic").key("names/2023/p.csv"), RequestBody.fromString(header
          + "c1,Ann,Lee,1990-01-01,F\n"));
      s3.putObject(b -> b.bucket("clinic").key("names/2024/p.csv"), RequestBody.fromString(header
          + "c2,Bo,Kim,1991-02-02,M\nc3,Cy,Ng,1992-03-03,M\n"));
    }
    Cli r = run("s3://clinic/names/*/p.csv", "names");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 3 + rejected 0: OK"));
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("names.db"));
        java.sql.Statement st = db.createStatement()) {
      assertThat(DefaultJobTest.row(st, "SELECT string_agg(f || ' ' || n, ', ' ORDER BY f) FROM (SELECT"
          + " _source_file AS f, count(*) AS n FROM raw_data.patients GROUP BY ALL)"),
          equalTo(List.of("s3://clinic/names/2023/p.csv 1, s3://clinic/names/2024/p.csv 2")));
    }
  }

  /**
   * The default job's CSV, Parquet and JSON files as objects (Parquet and JSON are planned from the whole object, CSV
   * from its start): the same resources and rejects, at the same lines and rows, as from the local files.
   */
  @Test
  void objectsOfEveryFormatGiveWhatTheLocalFilesGive() throws Exception {
    Path patients = DefaultJobTest.HOME.resolve("testdata/patients");
    s3mock.upload(patients, "", "clinic", "mixed/");
    Cli remote = run("s3://clinic/mixed/*", "mixed");
    assertThat(remote.err(), remote.code(), equalTo(0));
    Cli local = Cli.run("run", "--output", tmp.resolve("out-mixed-local").toString(), "--set",
        "duckdb.database=" + tmp.resolve("mixed-local.db"));
    assertThat(local.err(), local.code(), equalTo(0));
    assertThat(MixedFormatsTest.resources(tmp.resolve("out-mixed")),
        equalTo(MixedFormatsTest.resources(tmp.resolve("out-mixed-local"))));
    List<String> remoteRejects = new java.util.ArrayList<>();
    for (var reject : DefaultJobTest.rejects(tmp.resolve("out-mixed"))) {
      reject.remove("run_id");
      remoteRejects.add(reject.toString().replace("s3://clinic/mixed/", patients + "/"));
    }
    List<String> localRejects = new java.util.ArrayList<>();
    for (var reject : DefaultJobTest.rejects(tmp.resolve("out-mixed-local"))) {
      reject.remove("run_id");
      localRejects.add(reject.toString());
    }
    remoteRejects.sort(null);
    localRejects.sort(null);
    assertThat(remoteRejects, equalTo(localRejects));
    assertThat(remote.out(), containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    // The DuckDB file's raw copy holds every row of the objects, each named by its URI.
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("mixed.db"));
        java.sql.Statement st = db.createStatement()) {
      assertThat(DefaultJobTest.row(st, "SELECT string_agg(f || ' ' || n, ', ' ORDER BY f) FROM (SELECT"
          + " _source_file AS f, count(*) AS n FROM raw_data.patients GROUP BY ALL)"),
          equalTo(List.of("s3://clinic/mixed/patients.csv 20, s3://clinic/mixed/patients.json 10,"
              + " s3://clinic/mixed/patients.parquet 10")));
    }
  }

  @Test
  void previewReadsTheFirstObject() throws IOException {
    Path config = Files.writeString(tmp.resolve("preview.yaml"), "sources:\n  patients:\n    path:"
        + " s3://clinic/exports/2024/*.csv\n    s3: {endpoint: \"http://127.0.0.1:" + port + "\", region: us-east-1}\n"
        + "mappings: [" + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
    Cli r = Cli.run("preview", "--config", config.toString(), "--rows", "1");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("the first 1 row(s) of s3://clinic/exports/2024/a.csv"));
    assertThat(r.out(), containsString("-- row 1: Patient/p1"));
  }

  /**
   * The Synthea set from objects, its sources named by {@code input_dir}: a query source joins two of them (fetched
   * by the query's task), and the DuckDB file's raw copy is made from copies fetched for it. Resources, rejects and
   * the raw tables equal those of the local files.
   */
  @Test
  void theSyntheaSetFromObjectsGivesWhatItsLocalFilesGive() throws Exception {
    s3mock.upload(DefaultJobTest.HOME.resolve("testdata/synthea"), ".csv", "clinic", "synthea/");
    String config = DefaultJobTest.HOME.resolve("config/pipelines/synthea.yaml").toString();
    System.setProperty("aws.endpointUrl", s3mock.endpoint());
    Cli remote;
    try {
      remote = Cli.run("run", "--config", config, "--output", tmp.resolve("out-synthea-s3").toString(), "--set",
          "input_dir=s3://clinic/synthea", "--set", "validation.mode=off", "--set",
          "duckdb.database=" + tmp.resolve("synthea-s3.db"));
    } finally {
      System.clearProperty("aws.endpointUrl");
    }
    assertThat(remote.err(), remote.code(), equalTo(0));
    Cli local = Cli.run("run", "--config", config, "--output", tmp.resolve("out-synthea").toString(), "--set",
        "validation.mode=off", "--set", "duckdb.database=" + tmp.resolve("synthea.db"));
    assertThat(local.err(), local.code(), equalTo(0));
    assertThat(MixedFormatsTest.resources(tmp.resolve("out-synthea-s3")),
        equalTo(MixedFormatsTest.resources(tmp.resolve("out-synthea"))));
    assertThat(DefaultJobTest.rejectsWithoutRunAndFile(tmp.resolve("out-synthea-s3")),
        equalTo(DefaultJobTest.rejectsWithoutRunAndFile(tmp.resolve("out-synthea"))));
    // Every raw table holds the same rows; only the file names differ (object URIs against local paths).
    List<String> tables = List.of("allergies", "conditions", "encounters", "immunizations", "medication_orders",
        "medications", "observations", "organizations", "patients", "procedures", "providers");
    try (java.sql.Connection s3db = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("synthea-s3.db"));
        java.sql.Connection localdb = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("synthea.db"));
        java.sql.Statement s3st = s3db.createStatement(); java.sql.Statement localst = localdb.createStatement()) {
      assertThat(DefaultJobTest.row(s3st, "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM"
          + " duckdb_tables() WHERE schema_name = 'raw_data'"), equalTo(List.of(String.join(",", tables))));
      for (String table : tables) {
        String figures = "SELECT count(*), sum(hash(t)) FROM (SELECT * EXCLUDE (_source_file) FROM raw_data."
            + table + ") AS t";
        assertThat(table, DefaultJobTest.row(s3st, figures), equalTo(DefaultJobTest.row(localst, figures)));
      }
      assertThat(DefaultJobTest.row(s3st, "SELECT min(_source_file) FROM raw_data.patients"),
          equalTo(List.of("s3://clinic/synthea/patients.csv")));
    }
  }

  @Test
  void sourcesOnTwoStoresAreRefused() throws IOException {
    String s3 = "    s3: {endpoint: \"http://127.0.0.1:" + port + "\", region: us-east-1}\n";
    Path two = Files.writeString(tmp.resolve("two.yaml"), "sources:\n  patients:\n    path:"
        + " s3://clinic/exports/2024/a.csv\n" + s3 + "  others:\n    path: s3://clinic/exports/2024/b.csv\n"
        + s3.replace("us-east-1", "eu-west-1") + "mappings: [" + DefaultJobTest.HOME.resolve(
            "config/mappings/patient.yaml") + "]\n");
    Cli t = Cli.run("run", "--config", two.toString(), "--output", tmp.resolve("out-two").toString());
    assertThat(t.code(), equalTo(2));
    assertThat(t.err(), equalTo("error: " + two + ":6: sources.others.s3: differs from sources.patients.s3; the"
        + " s3:// sources and output of a run are read and written through one S3 store\n"));
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
