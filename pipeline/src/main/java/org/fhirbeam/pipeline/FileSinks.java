package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * Builds the staged {@code fhir/} and {@code parquet/} outputs of a run from the NDJSON files the pipeline
 * committed, as the sinks' compression and write modes say. Everything is written into the staging directory
 * (previous files the result keeps are hard links, so nothing of the current output is changed), so the swap
 * at the end of the run is still the only step that changes the output.
 */
final class FileSinks {
  /** The Parquet column holding the source value the id was taken from. */
  static final String SOURCE_KEY = "source_key";

  private final Connection db;
  private final SinkSettings sinks;
  private final String runId;
  private final Path output;
  private final Path staging;

  FileSinks(Connection db, SinkSettings sinks, String runId, Path output, Path staging) {
    this.db = db;
    this.sinks = sinks;
    this.runId = runId;
    this.output = output;
    this.staging = staging;
  }

  /**
   * Compresses this run's numbered files in {@code staging/fhir} if asked, then lays out {@code staging/fhir} as
   * the mode says, and returns this run's files per resource type (all types of {@code types}, in order).
   */
  Map<String, List<String>> ndjson(List<String> types) throws IOException, SQLException {
    Path fhir = staging.resolve("fhir");
    String ext = sinks.ndjsonCompression().extension();
    if (sinks.ndjsonCompression() == SinkSettings.Compression.GZIP) {
      for (String type : types) {
        for (Path f : files(fhir, type, List.of(".ndjson"))) {
          gzip(f, f.resolveSibling(f.getFileName() + ".gz"));
          Files.delete(f);
        }
      }
    }
    Path runDir = fhir;
    if (sinks.ndjsonMode() != WriteMode.OVERWRITE) {
      // This run's files are read again by the later sinks; the layout of fhir/ is built beside them.
      runDir = staging.resolve(".run-fhir");
      Files.move(fhir, runDir, StandardCopyOption.ATOMIC_MOVE);
      Files.createDirectories(fhir);
    }
    Map<String, List<String>> runFiles = new LinkedHashMap<>();
    for (String type : types) {
      List<String> paths = new ArrayList<>();
      for (Path f : files(runDir, type, List.of(ext))) {
        paths.add(f.toString());
      }
      runFiles.put(type, paths);
    }
    Path previous = output.resolve("fhir");
    switch (sinks.ndjsonMode()) {
      case OVERWRITE -> { }
      case APPEND -> {
        // The run id in the names keeps this run's files apart from every earlier run's.
        for (List<String> paths : runFiles.values()) {
          for (String p : paths) {
            String name = Path.of(p).getFileName().toString();
            int dash = name.indexOf('-');
            link(Path.of(p), fhir.resolve(name.substring(0, dash) + "-" + runId + name.substring(dash)));
          }
        }
        for (Path f : files(previous, null, List.of(".ndjson", ".ndjson.gz"))) {
          link(f, fhir.resolve(f.getFileName().toString()));
        }
      }
      case UPSERT -> {
        for (Map.Entry<String, List<String>> e : runFiles.entrySet()) {
          List<String> old = new ArrayList<>();
          for (Path f : files(previous, e.getKey(), List.of(".ndjson", ".ndjson.gz"))) {
            old.add(f.toString());
          }
          String merged = DuckDbTables.upsertQuery(
              old.isEmpty() ? DuckDbTables.NO_RESOURCES : "SELECT json FROM " + DuckDbTables.ndjsonObjects(old),
              e.getValue().isEmpty() ? DuckDbTables.NO_RESOURCES
                  : "SELECT json FROM " + DuckDbTables.ndjsonObjects(e.getValue()));
          Path target = fhir.resolve(e.getKey() + "-00000-of-00001" + ext);
          // The same raw-lines CSV options the mapping writes NDJSON with: each JSON text exactly as it is.
          long written = execute("COPY (SELECT CAST(json AS VARCHAR) FROM (" + merged + ") ORDER BY"
              + " json_extract_string(json, '$.id')) TO " + DuckDb.literal(target.toString())
              + " (FORMAT csv, HEADER false, DELIMITER '\u0001', QUOTE '', ESCAPE '', COMPRESSION "
              + (sinks.ndjsonCompression() == SinkSettings.Compression.GZIP ? "gzip" : "none") + ")");
          if (written == 0) {
            Files.delete(target);
          }
        }
        linkOtherTypes(previous, fhir, runFiles.keySet());
      }
    }
    return runFiles;
  }

  /**
   * Writes {@code staging/parquet/<Type>/} for every type of {@code runFiles}: this run's resources as the part
   * file {@code part-<run id>.parquet}, plus, as the mode says, the previous parts (append) or a merge with them
   * (upsert), each type's files laid out as {@code layouts} say ({@link #parquetLayouts}).
   */
  void parquet(Map<String, List<String>> runFiles, Map<String, DuckDbTables.ParquetLayout> layouts)
      throws IOException, SQLException {
    Path root = staging.resolve("parquet");
    Files.createDirectories(root);
    Path previous = output.resolve("parquet");
    for (Map.Entry<String, List<String>> e : runFiles.entrySet()) {
      String type = e.getKey();
      Path dir = Files.createDirectories(root.resolve(type));
      String incoming = e.getValue().isEmpty() ? DuckDbTables.NO_RESOURCES
          : "SELECT json FROM " + DuckDbTables.ndjsonObjects(e.getValue());
      List<Path> old = files(previous.resolve(type), null, List.of(".parquet"));
      String source = incoming;
      String order = "";
      if (sinks.parquetMode() == WriteMode.UPSERT) {
        // By name: parts of earlier runs may have other typed columns, only their resource is read.
        source = DuckDbTables.upsertQuery(old.isEmpty() ? DuckDbTables.NO_RESOURCES
            : "SELECT resource AS json FROM " + DuckDbTables.parquetFiles(old.stream().map(Path::toString).toList()),
            incoming);
        order = " ORDER BY 1";
      } else if (sinks.parquetMode() == WriteMode.APPEND) {
        for (Path f : old) {
          link(f, dir.resolve(f.getFileName().toString()));
        }
      }
      execute(layouts.get(type).copy(source, order, dir.resolve("part-" + runId + ".parquet").toString()));
    }
    if (sinks.parquetMode() != WriteMode.OVERWRITE && Files.isDirectory(previous)) {
      try (DirectoryStream<Path> s = Files.newDirectoryStream(previous)) {
        for (Path typeDir : s) {
          if (Files.isDirectory(typeDir) && !runFiles.containsKey(typeDir.getFileName().toString())) {
            Path copy = Files.createDirectories(root.resolve(typeDir.getFileName().toString()));
            for (Path f : files(typeDir, null, List.of(".parquet"))) {
              link(f, copy.resolve(f.getFileName().toString()));
            }
          }
        }
      }
    }
  }

  /**
   * The layout of each resource type's Parquet files: the columns of the type's DuckDB table (id first), with the
   * update time and the source key after the id. The source key is the column the ids are taken from unchanged,
   * when every mapping of the type takes them from one (the same) column; it is equal to the id, and the column's
   * name is in the files' metadata.
   */
  static Map<String, DuckDbTables.ParquetLayout> parquetLayouts(JobPlan plan) {
    Map<String, java.util.Set<String>> idColumns = new LinkedHashMap<>();
    for (CompiledMapping m : plan.mappings()) {
      // null (an id built by an expression) is kept as a member: it makes the type's key unusable
      idColumns.computeIfAbsent(m.resourceType(), t -> new java.util.HashSet<>()).add(m.idColumn());
    }
    Map<String, DuckDbTables.ParquetLayout> layouts = new LinkedHashMap<>();
    idColumns.forEach((type, ids) -> {
      String sourceKey = ids.size() == 1 && !ids.contains(null) ? ids.iterator().next() : null;
      List<DuckDbTables.Column> all = new ArrayList<>(DuckDbLoad.tableColumns(plan, type, false));
      List<DuckDbTables.Column> afterId = new ArrayList<>();
      afterId.add(new DuckDbTables.Column("last_updated", "$.meta.lastUpdated", "TIMESTAMPTZ"));
      if (sourceKey != null) {
        afterId.add(new DuckDbTables.Column(SOURCE_KEY, "$.id", "VARCHAR"));
      }
      all.addAll(1, afterId);
      layouts.put(type, new DuckDbTables.ParquetLayout(all, sourceKey));
    });
    return layouts;
  }

  /** The files of a previous fhir/ whose type this run did not write, kept as they are. */
  private static void linkOtherTypes(Path previous, Path fhir, java.util.Set<String> types) throws IOException {
    for (Path f : files(previous, null, List.of(".ndjson", ".ndjson.gz"))) {
      String name = f.getFileName().toString();
      if (!types.contains(name.substring(0, Math.max(0, name.indexOf('-'))))) {
        link(f, fhir.resolve(name));
      }
    }
  }

  private long execute(String sql) throws SQLException {
    try (Statement st = db.createStatement()) {
      return st.executeLargeUpdate(sql);
    }
  }

  /**
   * The regular files in {@code dir} (none if it does not exist) named {@code <type>-...} (any name for a null
   * type) and ending with one of {@code extensions}, sorted by name.
   */
  static List<Path> files(Path dir, String type, List<String> extensions) throws IOException {
    TreeSet<Path> out = new TreeSet<>();
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path f : s) {
        String name = f.getFileName().toString();
        if (Files.isRegularFile(f) && (type == null || name.startsWith(type + "-"))
            && extensions.stream().anyMatch(name::endsWith)) {
          out.add(f);
        }
      }
    }
    return List.copyOf(out);
  }

  /** A second name for a file (a copy where the file system has no hard links): the original stays untouched. */
  private static void link(Path existing, Path link) throws IOException {
    try {
      Files.createLink(link, existing);
    } catch (UnsupportedOperationException | IOException e) {
      if (Files.exists(link)) {
        throw new IOException("two runs' files are both named " + link.getFileName(), e);
      }
      Files.copy(existing, link, StandardCopyOption.COPY_ATTRIBUTES);
    }
  }

  /** Writes {@code from} compressed with gzip to {@code to}. */
  static void gzip(Path from, Path to) throws IOException {
    try (InputStream in = Files.newInputStream(from); OutputStream out = FileTrees.gzip(Files.newOutputStream(to))) {
      in.transferTo(out);
    }
  }
}
