package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.startsWith;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every bad input ends the run before anything is written, with exit code 2 and one line that names the
 * problem and the path; previous results stay as they were.
 */
class BadInputTest {
  static final Path HOME = Path.of("..").toAbsolutePath().normalize();

  @TempDir
  Path tmp;

  /** Runs with the given arguments into an output folder holding a previous result, and checks it is kept. */
  String failsWithOneLine(String... args) throws IOException {
    Path out = tmp.resolve("out");
    Files.createDirectories(out.resolve("fhir"));
    Path previous = Files.writeString(out.resolve("fhir/Patient-previous.ndjson"), "{\"id\":\"kept\"}\n");
    String[] all = new String[args.length + 2];
    all[0] = "run";
    System.arraycopy(args, 0, all, 1, args.length);
    all[args.length + 1] = "--output=" + out;
    Cli r = Cli.run(all);
    assertThat(r.err(), r.code(), equalTo(2));
    assertThat(r.out(), equalTo(""));
    List<String> lines = r.err().lines().toList();
    assertThat(r.err(), lines.size(), equalTo(1));
    assertThat(Files.readString(previous), equalTo("{\"id\":\"kept\"}\n"));
    try (var files = Files.list(out)) {
      assertThat(files.map(p -> p.getFileName().toString()).filter(n -> !n.equals(".fhirbeam.lock")).toList(),
          equalTo(List.of("fhir")));
    }
    return lines.get(0);
  }

  Path db() {
    return tmp.resolve("fhir.db");
  }

  @Test
  void catalogTablesWithoutASparkSessionAreRefused() throws IOException {
    // No Spark session in this JVM now (the Delta tests stop theirs), and no Databricks.
    assertThat(failsWithOneLine("--set", "sinks.duckdb.enabled=false", "--set",
        "sinks.delta={enabled: true, catalog: fhir_catalog}"), equalTo("error: sinks.delta.catalog names tables of a"
        + " catalog of the job's Spark session (Unity Catalog on Databricks), and this job has none: run it on"
        + " Databricks, or use sinks.delta.location for path-based tables"));
  }

  @Test
  void missingConfigFile() throws IOException {
    Path missing = tmp.resolve("missing.yaml");
    assertThat(failsWithOneLine("--config", missing.toString()), equalTo("error: " + missing + ": file not found"));
  }

  @Test
  void malformedYamlNamesFileAndLine() throws IOException {
    Path bad = Files.writeString(tmp.resolve("bad.yaml"), "name: x\nsources:\n  patients: {path: [a\nmappings: []\n");
    assertThat(failsWithOneLine("--config", bad.toString()), startsWith("error: " + bad + ":4: malformed YAML: "));
  }

  @Test
  void unknownKeyNamesFileLineAndKey() throws IOException {
    Path config = Files.writeString(tmp.resolve("p.yaml"), Files.readString(
        HOME.resolve("config/pipelines/default.yaml")).replace("name: default", "nmae: default")
        .replace("../mappings/patient.yaml", HOME.resolve("config/mappings/patient.yaml").toString()));
    int line = Files.readAllLines(config).indexOf("nmae: default") + 1;
    assertThat(failsWithOneLine("--config", config.toString()), equalTo("error: " + config + ":" + line + ": nmae:"
        + " unknown key (expected one of: duckdb, external_references, input_dir, mappings, name, quality, sinks,"
        + " sources, streaming, validation)"));
  }

  @Test
  void anExtensionThatCannotBeLoadedStopsTheRunBeforeItReadsAnything() throws IOException {
    String error = failsWithOneLine("--set", "duckdb.extensions=[json, spatial]", "--set",
        "duckdb.extension_directory=" + tmp.resolve("ext"), "--set", "duckdb.database=" + db());
    assertThat(error, startsWith("error: DuckDB extension 'spatial' (duckdb.extensions) is not built into DuckDB"
        + " v1.5.6 and is not installed in " + tmp.resolve("ext") + "; runs never download extensions."));
  }

  @Test
  void inputPatternMatchingNoFile() throws IOException {
    assertThat(failsWithOneLine("--set", "sources.patients.path=" + tmp + "/nothing/*.csv",
        "--set", "duckdb.database=" + db()),
        equalTo("error: --set sources.patients.path=" + tmp + "/nothing/*.csv: sources.patients.path: " + tmp
            + "/nothing/*.csv matches no file"));
  }

  @Test
  void mappingWithATypoInAnElementPath() throws IOException {
    Path mapping = Files.writeString(tmp.resolve("patient.yaml"), Files.readString(
        HOME.resolve("config/mappings/patient.yaml")).replace("name[0].given[0]:", "name[0].givn[0]:"));
    Path config = Files.writeString(tmp.resolve("p.yaml"), Files.readString(
        HOME.resolve("config/pipelines/default.yaml")).replace("../mappings/patient.yaml", mapping.toString()));
    int line = Files.readAllLines(mapping).indexOf("  name[0].givn[0]:") + 2; // the rule's body
    assertThat(failsWithOneLine("--config", config.toString(), "--set", "duckdb.database=" + db()),
        equalTo("error: " + mapping + ":" + line + ": name[0].givn[0]: 'givn' is not an element of HumanName (elements: id,"
            + " extension, use, text, family, given, prefix, suffix, period)"));
  }

  @Test
  void databaseFileThatIsNotADuckDbDatabase() throws IOException {
    Path garbage = Files.writeString(tmp.resolve("garbage.db"), "this is not a database");
    assertThat(failsWithOneLine("--set", "duckdb.database=" + garbage),
        equalTo("error: DuckDB database " + garbage + " is not a readable DuckDB database file"));
  }

  @Test
  void databaseFileLockedByAnotherProcess() throws Exception {
    Path locked = tmp.resolve("locked.db");
    Process holder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
        System.getProperty("java.class.path"), LockHolder.class.getName(), locked.toString())
        .redirectError(ProcessBuilder.Redirect.DISCARD).start();
    try {
      BufferedReader ready = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
      assertThat(ready.readLine(), equalTo("locked"));
      assertThat(failsWithOneLine("--set", "duckdb.database=" + locked), equalTo("error: DuckDB database " + locked
          + " is locked by another process; close it there or use another file"));
    } finally {
      holder.getOutputStream().close();
      holder.waitFor(30, TimeUnit.SECONDS);
      holder.destroyForcibly();
    }
  }

  @Test
  void outputDirectoryInUseByAnotherRun() throws IOException {
    Path out = tmp.resolve("out");
    Files.createDirectories(out);
    try (var channel = java.nio.channels.FileChannel.open(out.resolve(".fhirbeam.lock"),
        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE);
        var held = channel.lock()) {
      Cli r = Cli.run("run", "--output", out.toString(), "--set", "duckdb.database=" + db());
      assertThat(r.code(), equalTo(2));
      assertThat(r.err(), equalTo("error: output directory " + out + " is in use by another run\n"));
    }
  }

  @Test
  void verbosePrintsTheStackTrace() {
    Cli r = Cli.run("run", "--verbose", "--config", tmp.resolve("missing.yaml").toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err().lines().count(), greaterThan(3L));
  }

  @Test
  void checkConfigAcceptsTheDefaultJobAndRejectsABrokenOne() throws IOException {
    Path config = HOME.resolve("config/pipelines/default.yaml");
    Cli ok = Cli.run("check-config", config.toString());
    assertThat(ok.err(), ok.code(), equalTo(0));
    assertThat(ok.out(), equalTo("OK: " + config + " (1 source(s), 1 mapping(s))\n"));
    Cli bad = Cli.run("check-config", config.toString(), "--set", "duckdb.mode=readonly");
    assertThat(bad.code(), equalTo(2));
    assertThat(bad.err(), equalTo("error: --set duckdb.mode=readonly: duckdb.mode: 'readonly' is not one of"
        + " read_write, read_only\n"));
  }

  @Test
  void unknownRunnerIsAUsageError() {
    Cli r = Cli.run("run", "--runner", "flink");
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), startsWith("Invalid value for option '--runner'"));
  }
}
