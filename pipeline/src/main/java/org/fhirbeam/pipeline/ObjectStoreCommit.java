package org.fhirbeam.pipeline;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.function.DoubleSupplier;
import java.util.zip.CRC32C;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.CommitParts.CommittedFile;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.io.ObjectStorage;
import org.fhirbeam.io.PartFile;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Commits a run into object storage (or a mount of it, such as a Databricks Volume), which has no atomic rename:
 * the run's tasks copy its files under {@code runs/<run id>/}, and the run is committed by writing
 * {@code _manifest.json} last, replacing the previous manifest whole (one PUT; a rename into place on a mount). The
 * manifest names the run and lists its files with their lines, bytes and CRC32C; readers take the files it lists,
 * so a run killed before its manifest leaves the previous run's output as it was, and its own files are deleted by
 * the next run that commits. A run that appends lists the files of earlier runs it keeps beside its own. One writer
 * per output: object storage gives no lock here, so two runs into one output at once are the user's to avoid (the
 * last manifest wins).
 */
final class ObjectStoreCommit implements Committer {
  private static final Logger LOG = LoggerFactory.getLogger(ObjectStoreCommit.class);
  static final String MANIFEST = "_manifest.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final JobPlan plan;
  private final String output;
  private final String runId;
  /** The folder the tasks write their parts into; null until {@link #open} made it. */
  private Path work;

  private ObjectStoreCommit(JobPlan plan, String output, String runId) {
    this.plan = plan;
    this.output = output;
    this.runId = runId;
  }

  /**
   * Prepares run {@code runId} into {@code output} (a URI, or the path of a mount such as a Volume): refuses the
   * sinks that need a local output and an output that cannot be reached, before anything runs, and makes the work
   * folder of the run's parts.
   */
  static ObjectStoreCommit open(JobPlan plan, String output, String runId, BooleanSupplier workersShareDisk) {
    ObjectStoreCommit c = new ObjectStoreCommit(plan, output, runId);
    c.checkSinks(plan.config().sinks());
    if (ObjectStorage.isRemote(output)) {
      ObjectStorage.useBeforePipeline(ObjectStorage.settingsOf(plan.config().sources().values()));
    }
    c.checkReachable();
    c.work = c.workDirectory(System.getenv("FHIRBEAM_WORK_DIR"), workersShareDisk);
    return c;
  }

  /**
   * The folder the tasks write their parts into before they commit them: it must be one that every worker sees,
   * {@code dir} ({@code FHIRBEAM_WORK_DIR}: a Databricks Volume path, say); else, for a local output (a Volume), the
   * run's own folder in it, which the next commit removes if the run is killed; else, when the workers share this
   * machine's disk, the temporary folder. Workers elsewhere (a cluster) with an output on object storage need
   * {@code dir}: a step of the run reads the parts another wrote, maybe on another machine.
   */
  private Path workDirectory(String dir, BooleanSupplier workersShareDisk) {
    boolean given = dir != null && !dir.isBlank();
    // Asked last: on Spark, the answer waits for the context to start.
    if (!given && ObjectStorage.isRemote(output) && !workersShareDisk.getAsBoolean()) {
      throw new InputException("the output " + output + " is on object storage and the run's workers are on other"
          + " machines: set FHIRBEAM_WORK_DIR to a folder every worker and the driver see (a Databricks Volume, a"
          + " shared mount), where the run's parts wait between its steps");
    }
    Path root = given ? Path.of(dir)
        : !ObjectStorage.isRemote(output) ? Path.of(output, "runs", runId)
            : Path.of(System.getProperty("java.io.tmpdir"));
    try {
      return Files.createDirectories(root.resolve("fhirbeam-work-" + runId));
    } catch (IOException e) {
      throw new InputException("cannot create the run's work folder under " + root + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String partsDirectory() {
    return work.resolve(".parts").toString();
  }

  @Override
  public String stagingRoot() {
    return staging();
  }

  @Override
  public boolean copiesParts() {
    return true;
  }

  @Override
  public String database() {
    return null;
  }

  /**
   * Makes the run's quality report from the figures its tasks measured (no DuckDB load computes them here), then
   * writes the summary, the report and the manifest ({@link #writeManifest}).
   */
  @Override
  public RunSummary commit(RunSummary counted, PipelineCounts tasks, Progress progress, Map<String, Double> stages,
      DoubleSupplier elapsed, Beside beside) throws IOException {
    progress.phase("committing");
    long start = System.nanoTime();
    // Read once: the committed run's report gives the trend, its files those an appending run keeps.
    JsonNode current = committedManifest(output);
    QualityReport report = QualityReport.of(plan, counted, tasks, Instant.now(), previousReport(current));
    RunSummary done = Committer.commitBeside(beside, report, counted.withChecks(report.checkSummary()), progress,
        stages);
    progress.phase("committing");
    writeManifest(done.withElapsed(elapsed.getAsDouble()), report, CommitParts.committedFiles(tasks.committed()),
        kept(plan.config().sinks(), current));
    return done.withElapsed(elapsed.getAsDouble()).withStage("commit", (System.nanoTime() - start) / 1e9);
  }

  /** Deletes the work folder; what is left is logged, and the next run's commit clears it. */
  @Override
  public void close() {
    if (work != null) {
      FileTrees.deleteScratch(work);
    }
  }

  static String manifest(String output) {
    return output + "/" + MANIFEST;
  }

  /** Where a run's files are, ending with a slash. */
  static String runPrefix(String output, String runId) {
    return output + "/runs/" + runId + "/";
  }

  /** The root the run's tasks commit their parts under. */
  String staging() {
    return output + "/runs/" + runId;
  }

  /**
   * Stops the run before anything runs when the output cannot be listed: a bucket that does not exist, no access,
   * no connection. (Otherwise the tasks would find out when they upload.)
   */
  void checkReachable() {
    try {
      ObjectStorage.list(output + "/*");
    } catch (IOException | RuntimeException e) {
      throw new InputException("the output " + output + " cannot be reached: "
          + DuckDb.firstLine(String.valueOf(e.getMessage())), e);
    }
  }

  /** Refuses, before anything runs, the sinks that need a local output. */
  void checkSinks(SinkSettings sinks) {
    List<String> local = new ArrayList<>();
    if (sinks.duckdb()) {
      local.add("sinks.duckdb.enabled (a DuckDB file is on the driver's disk)");
    }
    if (sinks.parquet() && sinks.parquetMode() == WriteMode.UPSERT) {
      local.add("sinks.parquet.mode upsert");
    }
    if (sinks.ndjsonMode() == WriteMode.UPSERT) {
      local.add("sinks.ndjson.mode upsert");
    }
    if (!local.isEmpty()) {
      throw new InputException("the output " + output + " is committed by a manifest, which takes the FHIR NDJSON"
          + " and Parquet files (overwritten or appended to), the rejects, the quality report and the run summary;"
          + " these need a local --output committed by renames for now: " + String.join(", ", local)
          + " (switch them off with --set, e.g. --set sinks.duckdb.enabled=false)");
    }
  }

  /** The manifest of the run committed in {@code output}, or null when none is committed there. */
  static JsonNode committedManifest(String output) throws IOException {
    return ObjectStorage.exists(manifest(output)) ? JSON.readTree(ObjectStorage.read(manifest(output))) : null;
  }

  /** Where the quality report ({@code quality.json}) of the run {@code manifest} commits is, or null for none. */
  static String reportOf(String output, JsonNode manifest) {
    JsonNode report = manifest.get("report");
    return report == null ? null : output + "/" + report.asText();
  }

  /** The quality report at {@code location}, as {@link QualityReport#toJson} wrote it. */
  static QualityReport readReport(String location) throws IOException {
    return QualityReport.fromJson(JSON.readTree(ObjectStorage.read(location)));
  }

  /**
   * The quality report of the committed run ({@code current}, its manifest; null for none), for the trend of the
   * next; null when nothing is committed yet, or the committed run wrote none (an output written before runs
   * committed by a manifest had reports), or it cannot be read (then the next report starts its history anew, and
   * says nothing false).
   */
  private QualityReport previousReport(JsonNode current) {
    String location = current == null ? null : reportOf(output, current);
    if (location == null) {
      return null;
    }
    try {
      return readReport(location);
    } catch (IOException | RuntimeException e) {
      LOG.warn("the quality report of the run committed in {} cannot be read, so this run's report has no trend: {}",
          output, e.toString());
      return null;
    }
  }

  /**
   * The files of the committed output ({@code current}, its manifest; null for none) that this run keeps: those of a
   * kind the sinks append to (the resource files of {@code fhir/} with the NDJSON sink's {@code append} mode, those
   * of {@code parquet/} with the Parquet sink's), as the manifest lists them; none when nothing is committed yet.
   */
  private static List<Map<String, Object>> kept(SinkSettings sinks, JsonNode current) {
    if (current == null) {
      return List.of();
    }
    List<Map<String, Object>> kept = new ArrayList<>();
    for (JsonNode f : current.get("files")) {
      String path = f.get("path").asText();
      String kind = path.replaceFirst("^runs/[^/]+/", "");
      boolean append = kind.startsWith(PartFile.RESOURCES) && sinks.ndjsonMode() == WriteMode.APPEND
          || kind.startsWith("parquet/") && sinks.parquet() && sinks.parquetMode() == WriteMode.APPEND;
      if (append) {
        kept.add(JSON.convertValue(f, new TypeReference<Map<String, Object>>() {}));
      }
    }
    return kept;
  }

  /** Writes {@code bytes} to {@code target} under the run's folder, and returns its entry for the manifest. */
  private CommittedFile written(String target, byte[] bytes, String mimeType) throws IOException {
    ObjectStorage.write(runPrefix(output, runId) + target, bytes, mimeType);
    CRC32C crc = new CRC32C();
    crc.update(bytes);
    // Lines as a reader splits them: the last one need not end with a line feed.
    long lines = bytes.length > 0 && bytes[bytes.length - 1] != '\n' ? 1 : 0;
    for (byte b : bytes) {
      lines += b == '\n' ? 1 : 0;
    }
    return new CommittedFile(target, lines, bytes.length, crc.getValue());
  }

  /**
   * Writes the run summary and the quality report (quality.json and quality.html, under {@code report/}), then the
   * manifest, listing the run's files after the {@code kept} files of earlier runs
   * (see {@link #kept}): from that PUT on, the run is the output. Then every object under {@code runs/} that the
   * manifest does not list is deleted, but for this run's own (the objects of earlier runs it replaced, and of runs
   * killed before their manifest).
   */
  void writeManifest(RunSummary summary, QualityReport report, List<CommittedFile> files,
      List<Map<String, Object>> kept) throws IOException {
    String prefix = runPrefix(output, runId);
    ObjectStorage.write(prefix + "run-summary.json", summary.json(), "application/json");
    List<Map<String, Object>> listed = new ArrayList<>(kept);
    List<CommittedFile> all = new ArrayList<>(files);
    all.add(written("report/quality.json", report.json(), "application/json"));
    all.add(written("report/quality.html", QualityHtml.render(report).getBytes(StandardCharsets.UTF_8),
        "text/html"));
    all.stream().sorted(Comparator.comparing(CommittedFile::target)).forEach(f -> {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("path", "runs/" + runId + "/" + f.target());
      m.put("lines", f.lines());
      m.put("bytes", f.bytes());
      m.put("crc32c", String.format("%08x", f.crc32c()));
      listed.add(m);
    });
    Map<String, Object> manifest = new LinkedHashMap<>();
    manifest.put("run_id", runId);
    manifest.put("committed_at", Instant.now().toString());
    manifest.put("run_summary", "runs/" + runId + "/run-summary.json");
    manifest.put("report", "runs/" + runId + "/report/quality.json");
    manifest.put("files", listed);
    ObjectStorage.replace(manifest(output), new ByteArrayInputStream(JSON.copy()
        .enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(manifest)), "application/json");
    try {
      java.util.Set<String> keep = new java.util.HashSet<>();
      kept.forEach(f -> keep.add(output + "/" + f.get("path")));
      List<String> stale = new ArrayList<>();
      for (String object : ObjectStorage.list(output + "/runs/**")) {
        if (!object.startsWith(prefix) && !keep.contains(object)) {
          stale.add(object);
        }
      }
      ObjectStorage.delete(stale);
      if (!ObjectStorage.isRemote(output)) {
        // A local output (a mounted Volume) keeps the folders of the files deleted: those left empty go too.
        FileTrees.deleteEmptyFolders(java.nio.file.Path.of(output, "runs"));
      }
    } catch (IOException | RuntimeException e) {
      // The run is committed; what is left is unread, and the next run's commit deletes it.
      LOG.warn("run {} is committed, but the objects of earlier runs under {}runs/ could not all be deleted: {}",
          runId, output + "/", e.toString());
    }
  }
}
