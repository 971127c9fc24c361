package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.startsWith;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.zip.CRC32C;
import org.fhirbeam.pipeline.bench.BenchData;
import org.fhirbeam.pipeline.bench.S3TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * An output on a real S3-compatible store (S3TestServer on loopback), through Beam's S3 file system: the tasks upload the
 * parts, the manifest written last commits the run and lists every file with its lines and CRC32C; the next run
 * replaces it and deletes the previous run's objects; a run that fails leaves the manifest and its files as they
 * were; sinks that need a local disk are refused before anything runs.
 */
@Tag("servers")
class S3OutputTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  static S3TestServer s3mock;

  @TempDir
  Path tmp;

  @BeforeAll
  static void startS3() throws Exception {
    s3mock = S3TestServer.start(Path.of("target/s3mock/s3mock-exec.jar"));
    s3mock.systemProperties().forEach(System::setProperty);
    try (S3Client s3 = s3mock.client()) {
      s3.createBucket(b -> b.bucket("lake"));
    }
  }

  @AfterAll
  static void stopS3() throws Exception {
    if (s3mock != null) {
      s3mock.systemProperties().keySet().forEach(System::clearProperty);
      s3mock.close();
    }
  }

  @AfterEach
  void clearFault() {
    System.clearProperty("fhirbeam.fail_once");
    System.clearProperty("spark.master");
  }

  @Test
  void theManifestWrittenLastCommitsEachRunAndTheNextRunReplacesIt() throws IOException {
    Cli local = Cli.run("run", "--output", tmp.resolve("local").toString(), "--set", "sinks.duckdb.enabled=false");
    assertThat(local.err(), local.code(), equalTo(0));
    List<String> expected = RetriedTaskTest.lines(tmp.resolve("local/fhir"));

    Cli first = Cli.run("run", "--output", "s3://lake/fhir/default", "--set", "sinks.duckdb.enabled=false");
    assertThat(first.err(), first.code(), equalTo(0));
    assertThat(first.out(), containsString("balance: rows in 40 = resources 34 + rejected 6: OK"));
    JsonNode manifest;
    try (S3Client s3 = s3mock.client()) {
      manifest = manifest(s3);
      String runId = manifest.get("run_id").asText();
      assertThat(first.out(), containsString("output: s3://lake/fhir/default/runs/" + runId
          + "/ (run-summary.json, report/ and the files the manifest lists), committed by"
          + " s3://lake/fhir/default/_manifest.json"));
      // Every listed file is there with its lines and checksum; the resources are the local run's.
      List<String> resources = new ArrayList<>();
      List<String> reports = new ArrayList<>();
      long rejects = 0;
      for (JsonNode f : manifest.get("files")) {
        String text = object(s3, "fhir/default/" + f.get("path").asText());
        long lines = text.lines().count();
        assertThat(f.toString(), lines, equalTo(f.get("lines").asLong()));
        CRC32C crc = new CRC32C();
        crc.update(text.getBytes(StandardCharsets.UTF_8));
        assertThat(f.toString(), String.format("%08x", crc.getValue()), equalTo(f.get("crc32c").asText()));
        if (f.get("path").asText().startsWith("runs/" + runId + "/fhir/Patient-")) {
          resources.addAll(text.lines().toList());
        } else if (f.get("path").asText().startsWith("runs/" + runId + "/report/")) {
          reports.add(f.get("path").asText());
        } else {
          assertThat(f.get("path").asText(), startsWith("runs/" + runId + "/rejects/"));
          rejects += lines;
        }
      }
      resources.sort(null);
      assertThat(resources, equalTo(expected));
      assertThat(rejects, equalTo(6L));
      JsonNode summary = JSON.readTree(object(s3, "fhir/default/" + manifest.get("run_summary").asText()));
      assertThat(summary.get("run_id").asText(), equalTo(runId));
      // The quality report is there too, measured by the tasks (no DuckDB load ran), and the report command reads it.
      assertThat(reports, equalTo(List.of("runs/" + runId + "/report/quality.html",
          "runs/" + runId + "/report/quality.json")));
      JsonNode report = JSON.readTree(object(s3, "fhir/default/" + manifest.get("report").asText()));
      assertThat(List.of(report.at("/run/run_id").asText(), report.at("/run/rows_in").asLong(),
          report.at("/run/resources").asLong(), report.at("/run/rejected").asLong()),
          equalTo(List.of(runId, 40L, 34L, 6L)));
      String checks = summary.at("/quality/checks_run").asInt() + " run, ";
      assertThat(first.out(), containsString("  quality checks: " + checks));
      Cli printed = Cli.run("report", "--output", "s3://lake/fhir/default");
      assertThat(printed.err(), printed.code(), equalTo(0));
      assertThat(printed.out(), containsString("Data quality of run " + runId + " (default, "));
      assertThat(printed.out(), containsString("40 rows in, 34 resources, 6 rejected\n"));
      assertThat(printed.out(), containsString("  checks: " + checks));
      assertThat(printed.out(), containsString("  HTML report: s3://lake/fhir/default/runs/" + runId
          + "/report/quality.html\n"));

      // A run that fails (a task fails once, with one attempt per task) commits nothing: same manifest, same files.
      System.setProperty("fhirbeam.fail_once", "patient/1");
      System.setProperty("spark.master", "local[2]");
      Cli failed = Cli.run("run", "--runner", "spark", "--output", "s3://lake/fhir/default", "--set",
          "sinks.duckdb.enabled=false");
      assertThat(failed.code(), equalTo(1));
      assertThat(manifest(s3), equalTo(manifest));
      for (JsonNode f : manifest.get("files")) {
        assertThat(object(s3, "fhir/default/" + f.get("path").asText()).lines().count(),
            equalTo(f.get("lines").asLong()));
      }
      System.clearProperty("fhirbeam.fail_once");
      System.clearProperty("spark.master");

      // The next run (on Spark) commits its own files, and the objects of every other run are gone.
      Cli second = Cli.run("run", "--runner", "spark", "--output", "s3://lake/fhir/default", "--set",
          "sinks.duckdb.enabled=false");
      assertThat(second.err(), second.code(), equalTo(0));
      JsonNode next = manifest(s3);
      String nextRun = next.get("run_id").asText();
      TreeSet<String> listed = new TreeSet<>();
      next.get("files").forEach(f -> listed.add("fhir/default/" + f.get("path").asText()));
      TreeSet<String> stored = new TreeSet<>();
      for (S3Object o : s3.listObjectsV2Paginator(b -> b.bucket("lake").prefix("fhir/default/runs/")).contents()) {
        stored.add(o.key());
      }
      stored.remove("fhir/default/runs/" + nextRun + "/run-summary.json");
      stored.remove("fhir/default/runs/" + nextRun + "/.tally.json");
      assertThat(stored, equalTo(listed));
      List<String> again = new ArrayList<>();
      for (String key : listed) {
        if (key.contains("/fhir/Patient-")) {
          again.addAll(object(s3, key).lines().toList());
        }
      }
      again.sort(null);
      assertThat(again, equalTo(expected));
    }
  }

  /**
   * A run killed with SIGKILL while its tasks map, then again once its tasks have uploaded parts, leaves the manifest
   * and the files it lists as they were; the next run that commits deletes what the killed runs uploaded.
   */
  @Test
  void aRunKilledBeforeItsManifestLeavesThePreviousRun() throws Exception {
    Path csv = BenchData.csv(tmp.resolve("input"), 400_000);
    String output = "s3://lake/fhir/killed";
    String[] run = {"run", "--output", output, "--set", "sources.patients.path=" + csv, "--set",
        "sinks.duckdb.enabled=false"};
    Cli first = Cli.run(run);
    assertThat(first.err(), first.code(), equalTo(0));
    try (S3Client s3 = s3mock.client()) {
      String manifest = object(s3, "fhir/killed/_manifest.json");
      String committed = JSON.readTree(manifest).get("run_id").asText();
      Map<String, String> files = objects(s3, "fhir/killed/runs/");

      Path work = Files.createDirectories(tmp.resolve("work"));
      List<BooleanSupplier> points = List.of(() -> KilledRunTest.hasFiles(work),
          () -> objects(s3, "fhir/killed/runs/").keySet().stream().anyMatch(k -> !k.contains("/" + committed + "/")));
      for (BooleanSupplier midway : points) {
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString())
            .redirectOutput(tmp.resolve("killed.out").toFile()).redirectError(tmp.resolve("killed.err").toFile());
        s3mock.systemProperties().forEach((k, v) -> pb.command().add("-D" + k + "=" + v));
        pb.command().addAll(List.of("-cp", System.getProperty("java.class.path"), FhirBeam.class.getName()));
        pb.command().addAll(List.of(run));
        pb.environment().put("FHIRBEAM_HOME", DefaultJobTest.HOME.toString());
        pb.environment().put("FHIRBEAM_WORK_DIR", work.toString());
        Process p = pb.start();
        try {
          long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
          boolean reached = false;
          while (!reached && p.isAlive() && System.nanoTime() < deadline) {
            reached = midway.getAsBoolean();
            if (!reached) {
              Thread.sleep(5); // a poll, not a wait for time to pass
            }
          }
          assertThat("the run reached the point to kill it at while running", reached && p.isAlive(), equalTo(true));
        } finally {
          p.destroyForcibly();
          p.waitFor(30, TimeUnit.SECONDS);
        }
        assertThat(object(s3, "fhir/killed/_manifest.json"), equalTo(manifest));
        Map<String, String> now = objects(s3, "fhir/killed/runs/");
        files.forEach((key, etag) -> assertThat(key, now.get(key), equalTo(etag)));
      }
      // The killed runs uploaded parts of their own; the next commit leaves only its own run's objects.
      assertThat(objects(s3, "fhir/killed/runs/").size() > files.size(), equalTo(true));
      Cli next = Cli.run(run);
      assertThat(next.err(), next.code(), equalTo(0));
      String nextRun = JSON.readTree(object(s3, "fhir/killed/_manifest.json")).get("run_id").asText();
      assertThat(objects(s3, "fhir/killed/runs/").keySet().stream().filter(k -> !k.contains("/" + nextRun + "/"))
          .toList(), empty());
    }
  }

  /** The objects under {@code prefix}, with their ETags. */
  private static Map<String, String> objects(S3Client s3, String prefix) {
    Map<String, String> out = new TreeMap<>();
    for (S3Object o : s3.listObjectsV2Paginator(b -> b.bucket("lake").prefix(prefix)).contents()) {
      out.put(o.key(), o.eTag());
    }
    return out;
  }

  /**
   * With gzip compression and Parquet the tasks upload each resource part compressed ({@code .ndjson.gz}) and as a
   * Parquet file; the manifest gives each stored object's bytes and CRC32C with the lines (rows) it holds. The
   * resources and the Parquet rows are a local run's; rejects stay plain, as in a local output.
   */
  @Test
  void gzippedAndParquetFilesAreListedWithTheirStoredBytes() throws Exception {
    Cli local = Cli.run("run", "--output", tmp.resolve("local-files").toString(), "--set",
        "sinks.duckdb.enabled=false", "--set", "sinks.parquet.enabled=true");
    assertThat(local.err(), local.code(), equalTo(0));
    Cli r = Cli.run("run", "--output", "s3://lake/fhir/files", "--set", "sinks.duckdb.enabled=false", "--set",
        "sinks.ndjson.compression=gzip", "--set", "sinks.parquet.enabled=true");
    assertThat(r.err(), r.code(), equalTo(0));
    List<String> resources = new ArrayList<>();
    List<String> kinds = new ArrayList<>();
    List<String> parquet = new ArrayList<>();
    Path downloads = Files.createDirectories(tmp.resolve("downloads"));
    try (S3Client s3 = s3mock.client()) {
      JsonNode manifest = JSON.readTree(object(s3, "fhir/files/_manifest.json"));
      for (JsonNode f : manifest.get("files")) {
        String path = f.get("path").asText();
        // The kind of file: its folder and type, without the part's own name.
        kinds.add(path.replaceAll("^runs/[^/]+/", "").replaceAll("-[^/]*$", "-*") + path.replaceAll("^[^.]*", ""));
        byte[] stored = s3.getObjectAsBytes(b -> b.bucket("lake").key("fhir/files/" + path)).asByteArray();
        assertThat(path, (long) stored.length, equalTo(f.get("bytes").asLong()));
        CRC32C crc = new CRC32C();
        crc.update(stored);
        assertThat(path, String.format("%08x", crc.getValue()), equalTo(f.get("crc32c").asText()));
        if (path.endsWith(".parquet")) {
          Path file = Files.write(downloads.resolve(path.replace('/', '_')), stored);
          parquet.add(file.toString());
          assertThat(path, parquetRows(List.of(file.toString())).size(), equalTo((int) f.get("lines").asLong()));
          continue;
        }
        String text = path.endsWith(".gz")
            ? new String(new java.util.zip.GZIPInputStream(new java.io.ByteArrayInputStream(stored)).readAllBytes(),
                StandardCharsets.UTF_8)
            : new String(stored, StandardCharsets.UTF_8);
        assertThat(path, text.lines().count(), equalTo(f.get("lines").asLong()));
        if (path.endsWith(".gz")) {
          resources.addAll(text.lines().toList());
        }
      }
    }
    resources.sort(null);
    assertThat(resources, equalTo(RetriedTaskTest.lines(tmp.resolve("local-files/fhir"))));
    assertThat(new TreeSet<>(kinds), equalTo(new TreeSet<>(List.of("fhir/Patient-*.ndjson.gz",
        "parquet/Patient/part-*.parquet", "rejects/rejects-*.ndjson", "report/quality.html.html",
        "report/quality.json.json"))));
    List<String> localParquet;
    try (var files = Files.list(tmp.resolve("local-files/parquet/Patient"))) {
      localParquet = files.map(Path::toString).toList();
    }
    assertThat(parquetRows(parquet), equalTo(parquetRows(localParquet)));
  }

  /** Every row of the Parquet files, as text, sorted; with the files' source key column from their metadata. */
  private static List<String> parquetRows(List<String> files) throws java.sql.SQLException {
    String list = String.join(", ", files.stream().map(f -> "'" + f + "'").toList());
    List<String> rows = new ArrayList<>();
    try (java.sql.Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:");
        java.sql.Statement st = db.createStatement();
        java.sql.ResultSet rs = st.executeQuery("SELECT (SELECT string_agg(DISTINCT decode(value), ',') FROM"
            + " parquet_kv_metadata([" + list + "]) WHERE decode(key) = 'source_key_column') AS source_key_column, t.*"
            + " FROM read_parquet([" + list + "]) AS t ORDER BY id")) {
      int n = rs.getMetaData().getColumnCount();
      while (rs.next()) {
        StringBuilder row = new StringBuilder();
        for (int i = 1; i <= n; i++) {
          row.append(rs.getMetaData().getColumnName(i)).append('=').append(rs.getString(i)).append(';');
        }
        rows.add(row.toString());
      }
    }
    return rows;
  }

  /**
   * A run in append mode lists the resource and Parquet files of the committed output beside its own, and its own
   * rejects only; the objects it keeps stay, every other run's go. The next overwriting run keeps none.
   */
  @Test
  void anAppendingRunListsTheFilesOfTheRunsBeforeIt() throws IOException {
    Cli local = Cli.run("run", "--output", tmp.resolve("local-append").toString(), "--set",
        "sinks.duckdb.enabled=false");
    assertThat(local.err(), local.code(), equalTo(0));
    List<String> once = RetriedTaskTest.lines(tmp.resolve("local-append/fhir"));
    List<String> twice = new ArrayList<>(once);
    twice.addAll(once);
    twice.sort(null);
    String[] sinks = {"--set", "sinks.duckdb.enabled=false", "--set", "sinks.parquet.enabled=true"};
    Cli first = Cli.run(concat(new String[] {"run", "--output", "s3://lake/fhir/append"}, sinks));
    assertThat(first.err(), first.code(), equalTo(0));
    Cli second = Cli.run(concat(new String[] {"run", "--output", "s3://lake/fhir/append", "--set",
        "sinks.ndjson.mode=append", "--set", "sinks.parquet.mode=append"}, sinks));
    assertThat(second.err(), second.code(), equalTo(0));
    try (S3Client s3 = s3mock.client()) {
      Listed appended = listed(s3, "fhir/append");
      assertThat(appended.resources(), equalTo(twice));
      assertThat(appended.parquetRows(), equalTo(2L * once.size()));
      assertThat(appended.rejects(), equalTo(6L));
      assertThat(appended.runs(), equalTo(2L));
      assertThat(appended.stored(), equalTo(appended.keys()));

      Cli third = Cli.run(concat(new String[] {"run", "--output", "s3://lake/fhir/append"}, sinks));
      assertThat(third.err(), third.code(), equalTo(0));
      Listed replaced = listed(s3, "fhir/append");
      assertThat(replaced.resources(), equalTo(once));
      assertThat(replaced.parquetRows(), equalTo((long) once.size()));
      assertThat(replaced.runs(), equalTo(1L));
      assertThat(replaced.stored(), equalTo(replaced.keys()));
    }
  }

  private static String[] concat(String[] a, String[] b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  /**
   * What the manifest under {@code prefix} lists: the resource lines (sorted), the Parquet rows, the reject lines,
   * how many runs' files, the keys listed with the committing run's summary and figures, and the keys stored under
   * {@code runs/}.
   */
  private record Listed(List<String> resources, long parquetRows, long rejects, long runs, TreeSet<String> keys,
      TreeSet<String> stored) {}

  private static Listed listed(S3Client s3, String prefix) throws IOException {
    JsonNode manifest = JSON.readTree(object(s3, prefix + "/_manifest.json"));
    List<String> resources = new ArrayList<>();
    long parquetRows = 0;
    long rejects = 0;
    TreeSet<String> runs = new TreeSet<>();
    TreeSet<String> keys = new TreeSet<>();
    for (JsonNode f : manifest.get("files")) {
      String path = f.get("path").asText();
      keys.add(prefix + "/" + path);
      runs.add(path.split("/")[1]);
      if (path.contains("/fhir/")) {
        resources.addAll(object(s3, prefix + "/" + path).lines().toList());
      } else if (path.contains("/report/")) {
        assertThat(path, startsWith("runs/" + manifest.get("run_id").asText() + "/report/quality."));
      } else if (path.contains("/parquet/")) {
        parquetRows += f.get("lines").asLong();
      } else {
        assertThat(path, startsWith("runs/" + manifest.get("run_id").asText() + "/rejects/"));
        rejects += f.get("lines").asLong();
      }
    }
    resources.sort(null);
    String run = prefix + "/runs/" + manifest.get("run_id").asText() + "/";
    keys.add(run + "run-summary.json");
    keys.add(run + ".tally.json");
    TreeSet<String> stored = new TreeSet<>();
    for (S3Object o : s3.listObjectsV2Paginator(b -> b.bucket("lake").prefix(prefix + "/runs/")).contents()) {
      stored.add(o.key());
    }
    return new Listed(resources, parquetRows, rejects, runs.size(), keys, stored);
  }

  @Test
  void anOutputThatCannotBeReachedStopsTheRunBeforeItStarts() {
    Cli r = Cli.run("run", "--output", "s3://no-such-bucket/out", "--set", "sinks.duckdb.enabled=false");
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), startsWith("error: the output s3://no-such-bucket/out cannot be reached: "));
    assertThat(r.err(), containsString("The specified bucket does not exist."));
    assertThat(r.out(), equalTo(""));
  }

  @Test
  void sinksThatNeedALocalDiskAreRefusedBeforeAnythingRuns() {
    Cli r = Cli.run("run", "--output", "s3://lake/fhir/refused", "--set", "sinks.ndjson.mode=upsert");
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), equalTo("error: the output s3://lake/fhir/refused is committed by a manifest, which takes the"
        + " FHIR NDJSON and Parquet files (overwritten or appended to), the rejects, the quality report and the run"
        + " summary; these need a local --output committed by renames for now: sinks.duckdb.enabled (a DuckDB file"
        + " is on the driver's disk), sinks.ndjson.mode upsert (switch them off with --set, e.g. --set sinks.duckdb.enabled=false)\n"));
    try (S3Client s3 = s3mock.client()) {
      assertThat(s3.listObjectsV2(b -> b.bucket("lake").prefix("fhir/refused")).contents(), empty());
    }
  }

  private static JsonNode manifest(S3Client s3) throws IOException {
    return JSON.readTree(object(s3, "fhir/default/_manifest.json"));
  }

  private static String object(S3Client s3, String key) {
    return s3.getObjectAsBytes(b -> b.bucket("lake").key(key)).asString(StandardCharsets.UTF_8);
  }
}
