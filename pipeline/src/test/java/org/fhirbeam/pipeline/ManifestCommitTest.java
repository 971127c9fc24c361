package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A local output committed by a manifest (--commit manifest, the default for a Databricks Volume, where renames are
 * not atomic): the tasks copy their files under runs/RUN/ and the manifest written last lists them; a failed run
 * leaves the committed output as it was; the next run leaves no file or folder of another run behind.
 */
class ManifestCommitTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  @AfterEach
  void clearProperties() {
    System.clearProperty("spark.master");
    System.clearProperty("fhirbeam.fail_once");
  }

  @Test
  void aLocalOutputCommittedByAManifestHoldsExactlyWhatItLists() throws IOException {
    Cli renamed = Cli.run("run", "--output", tmp.resolve("renamed").toString(), "--set", "sinks.duckdb.enabled=false");
    assertThat(renamed.err(), renamed.code(), equalTo(0));
    Path volume = tmp.resolve("volume");
    Cli first = Cli.run("run", "--commit", "manifest", "--output", volume.toString(), "--set",
        "sinks.duckdb.enabled=false");
    assertThat(first.err(), first.code(), equalTo(0));
    JsonNode manifest = JSON.readTree(volume.resolve("_manifest.json").toFile());
    String runId = manifest.get("run_id").asText();
    assertThat(first.out(), containsString("output: " + volume + "/runs/" + runId + "/ (run-summary.json, report/ and"
        + " the files the manifest lists), committed by " + volume + "/_manifest.json"));
    assertThat(listedResources(volume, manifest), equalTo(RetriedTaskTest.lines(tmp.resolve("renamed/fhir"))));
    assertThat(files(volume), equalTo(listedFiles(volume, manifest)));

    // A run that fails (a task fails once, with one attempt per task) commits nothing: same manifest, same files.
    System.setProperty("fhirbeam.fail_once", "patient/1");
    System.setProperty("spark.master", "local[2]");
    Cli failed = Cli.run("run", "--runner", "spark", "--commit", "manifest", "--output", volume.toString(), "--set",
        "sinks.duckdb.enabled=false");
    assertThat(failed.code(), equalTo(1));
    System.clearProperty("fhirbeam.fail_once");
    System.clearProperty("spark.master");
    assertThat(JSON.readTree(volume.resolve("_manifest.json").toFile()), equalTo(manifest));
    assertThat(listedResources(volume, manifest), equalTo(RetriedTaskTest.lines(tmp.resolve("renamed/fhir"))));

    // The next run replaces it: no file or folder of another run is left.
    Cli next = Cli.run("run", "--commit", "manifest", "--output", volume.toString(), "--set",
        "sinks.duckdb.enabled=false");
    assertThat(next.err(), next.code(), equalTo(0));
    JsonNode replaced = JSON.readTree(volume.resolve("_manifest.json").toFile());
    assertThat(files(volume), equalTo(listedFiles(volume, replaced)));
    try (Stream<Path> runs = Files.list(volume.resolve("runs"))) {
      assertThat(runs.map(r -> r.getFileName().toString()).toList(),
          equalTo(List.of(replaced.get("run_id").asText())));
    }
  }

  @Test
  void aVolumeIsCommittedByAManifestAndObjectStorageCannotBeRenamed() {
    Map<String, String> databricks = Map.of("DATABRICKS_RUNTIME_VERSION", "16.4");
    assertThat(JobRunner.Commit.AUTO.byManifest("/Volumes/main/fhir/landing/out", databricks), equalTo(true));
    assertThat(JobRunner.Commit.AUTO.byManifest("/Volumes/main/fhir/landing/out", Map.of()), equalTo(false));
    assertThat(JobRunner.Commit.AUTO.byManifest("/Volumes/Backup", databricks), equalTo(false));
    assertThat(JobRunner.Commit.AUTO.byManifest("s3://bucket/out", Map.of()), equalTo(true));
    assertThat(JobRunner.Commit.AUTO.byManifest(tmp.resolve("out").toString(), databricks), equalTo(false));
    assertThat(JobRunner.Commit.RENAME.byManifest("/Volumes/main/fhir/landing/out", databricks), equalTo(false));
    assertThat(JobRunner.Commit.MANIFEST.byManifest(tmp.resolve("out").toString(), Map.of()), equalTo(true));
    Cli r = Cli.run("run", "--commit", "rename", "--output", "s3://bucket/out");
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), equalTo("error: --commit rename: the output s3://bucket/out is on object storage, which has no"
        + " rename; use --commit manifest (or auto)\n"));
  }

  /** Every resource line in the files the manifest lists, sorted; each file's lines and CRC32C checked. */
  private static List<String> listedResources(Path root, JsonNode manifest) throws IOException {
    List<String> out = new ArrayList<>();
    for (JsonNode f : manifest.get("files")) {
      byte[] bytes = Files.readAllBytes(root.resolve(f.get("path").asText()));
      CRC32C crc = new CRC32C();
      crc.update(bytes);
      assertThat(f.toString(), String.format("%08x", crc.getValue()), equalTo(f.get("crc32c").asText()));
      List<String> lines = new String(bytes, StandardCharsets.UTF_8).lines().toList();
      assertThat(f.toString(), (long) lines.size(), equalTo(f.get("lines").asLong()));
      if (f.get("path").asText().contains("/fhir/")) {
        out.addAll(lines);
      }
    }
    out.sort(null);
    return out;
  }

  /** The files the manifest lists, with the committing run's summary and figures beside them. */
  private static TreeSet<String> listedFiles(Path root, JsonNode manifest) {
    TreeSet<String> out = new TreeSet<>();
    manifest.get("files").forEach(f -> out.add(f.get("path").asText()));
    String run = "runs/" + manifest.get("run_id").asText() + "/";
    out.add(run + "run-summary.json");
    out.add(run + ".tally.json");
    return out;
  }

  /** Every file under the output's runs/ folder, relative to the output. */
  private static TreeSet<String> files(Path root) throws IOException {
    try (Stream<Path> s = Files.walk(root.resolve("runs"))) {
      return new TreeSet<>(s.filter(Files::isRegularFile).map(p -> root.relativize(p).toString()).toList());
    }
  }
}
