package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.fhirbeam.pipeline.bench.BenchData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run killed with SIGKILL (a separate JVM, {@code Process.destroyForcibly()}) while its pipeline writes parts,
 * or while it builds the file sinks and loads DuckDB, leaves the previous run's output and tables exactly as they
 * were; the next runs clean up after it, and two runs over the same input write byte-identical NDJSON and equal
 * tables without duplicate ids.
 */
class KilledRunTest {
  static final long ROWS = 150_000;

  @TempDir
  Path tmp;

  Path job;
  Path out;
  Path db;

  void prepare() throws Exception {
    Path csv = BenchData.csv(tmp.resolve("input"), ROWS);
    out = tmp.resolve("out");
    db = tmp.resolve("fhir.db");
    job = Files.writeString(tmp.resolve("job.yaml"), String.join("\n", "name: killed",
        "duckdb: {database: " + db + "}", "sources:", "  patients: {path: " + csv + "}",
        "mappings: [" + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]",
        "sinks:", "  parquet: {enabled: true}", ""));
  }

  Cli runInProcess() {
    Cli r = Cli.run("run", "--config", job.toString(), "--output", out.toString());
    assertThat(r.err(), r.code(), equalTo(0));
    return r;
  }

  /** The output's files (without the lock and whatever a killed run left in its staging directory). */
  Map<String, byte[]> outputFiles() throws IOException {
    Map<String, byte[]> files = new TreeMap<>();
    for (Map.Entry<String, byte[]> e : DefaultJobTest.snapshot(out).entrySet()) {
      if (!e.getKey().startsWith(".staging-")) {
        files.put(e.getKey(), e.getValue());
      }
    }
    return files;
  }

  /** Every table of the database: row count and a digest of its sorted rows. */
  Map<String, List<String>> tables() throws SQLException {
    Map<String, List<String>> tables = new TreeMap<>();
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      List<String> names = new ArrayList<>();
      try (ResultSet rs = st.executeQuery("SELECT schema_name, table_name FROM duckdb_tables()")) {
        while (rs.next()) {
          names.add("\"" + rs.getString(1) + "\".\"" + rs.getString(2) + "\"");
        }
      }
      for (String name : names) {
        try (ResultSet rs = st.executeQuery("SELECT count(*), md5(coalesce(string_agg(CAST(t AS VARCHAR), chr(10)"
            + " ORDER BY CAST(t AS VARCHAR)), '')) FROM " + name + " t")) {
          rs.next();
          tables.put(name, List.of(rs.getString(1), rs.getString(2)));
        }
      }
    }
    return tables;
  }

  /** Starts the job in its own JVM, waits until {@code midway} holds for its staging directory, and kills it. */
  void killWhen(Predicate<Path> midway) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
        System.getProperty("java.class.path"), FhirBeam.class.getName(), "run", "--config", job.toString(),
        "--output", out.toString())
        .redirectOutput(tmp.resolve("killed.out").toFile()).redirectError(tmp.resolve("killed.err").toFile());
    pb.environment().put("FHIRBEAM_HOME", DefaultJobTest.HOME.toString());
    Process p = pb.start();
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      boolean reached = false;
      while (!reached && p.isAlive() && System.nanoTime() < deadline) {
        try (Stream<Path> staged = Files.list(out)) {
          reached = staged.filter(d -> d.getFileName().toString().startsWith(".staging-")).anyMatch(midway);
        }
        if (!reached) {
          Thread.sleep(5); // a poll, not a wait for time to pass: a busy loop would take a core from the run
        }
      }
      assertThat("the run reached the point to kill it at while running (exit "
          + (p.isAlive() ? "none" : p.exitValue()) + ")", reached && p.isAlive(), equalTo(true));
      p.destroyForcibly();
      assertThat(p.waitFor(30, TimeUnit.SECONDS), equalTo(true));
      assertThat("killed by SIGKILL", p.exitValue(), equalTo(137));
    } finally {
      p.destroyForcibly();
    }
  }

  static boolean hasFiles(Path dir) {
    if (!Files.isDirectory(dir)) {
      return false;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      return s.anyMatch(Files::isRegularFile);
    } catch (IOException | java.io.UncheckedIOException e) {
      return false; // the run moved or deleted something while it was listed
    }
  }

  @Test
  void aKilledRunLeavesThePreviousOutputAndTablesAndTheNextRunsWriteTheSameBytes() throws Exception {
    prepare();
    runInProcess();
    Map<String, byte[]> files = outputFiles();
    Map<String, List<String>> tables = tables();

    // Killed while its pipeline writes parts, then while it builds the file sinks and loads DuckDB.
    List<Predicate<Path>> points = List.of(staging -> hasFiles(staging.resolve(".parts")),
        staging -> hasFiles(staging.resolve("parquet")));
    for (Predicate<Path> midway : points) {
      killWhen(midway);
      Map<String, byte[]> afterKill = outputFiles();
      assertThat(afterKill.keySet(), equalTo(files.keySet()));
      for (String name : files.keySet()) {
        assertThat(name, Arrays.equals(afterKill.get(name), files.get(name)), equalTo(true));
      }
      assertThat(tables(), equalTo(tables));
    }

    runInProcess();
    try (Stream<Path> left = Files.list(out)) {
      assertThat(left.map(f -> f.getFileName().toString()).sorted().toList(),
          equalTo(List.of(".fhirbeam.lock", "fhir", "parquet", "rejects", "report", "run-summary.json")));
    }
    Map<String, byte[]> first = DefaultJobTest.snapshot(out.resolve("fhir"));
    Map<String, List<String>> firstTables = tables();
    runInProcess();
    Map<String, byte[]> second = DefaultJobTest.snapshot(out.resolve("fhir"));
    assertThat(second.keySet(), equalTo(first.keySet()));
    assertThat(first.keySet(), equalTo(files.keySet().stream().filter(n -> n.startsWith("fhir/"))
        .map(n -> n.substring("fhir/".length())).collect(java.util.stream.Collectors.toCollection(
            java.util.TreeSet::new))));
    for (String name : first.keySet()) {
      assertThat(name, Arrays.equals(second.get(name), first.get(name)), equalTo(true));
      assertThat(name, Arrays.equals(second.get(name), files.get("fhir/" + name)), equalTo(true));
    }
    Map<String, List<String>> secondTables = tables();
    for (String table : List.of("\"fhir_resources\".\"patient\"", "\"transformed_data\".\"patient\"",
        "\"raw_data\".\"patients\"")) {
      assertThat(table, secondTables.get(table), equalTo(firstTables.get(table)));
      assertThat(table, secondTables.get(table), equalTo(tables.get(table)));
    }
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT count(*), count(DISTINCT id) FROM fhir_resources.patient")) {
      rs.next();
      assertThat(rs.getLong(1), equalTo(rs.getLong(2)));
      assertThat(rs.getLong(1), equalTo(148_993L));
    }
  }
}
