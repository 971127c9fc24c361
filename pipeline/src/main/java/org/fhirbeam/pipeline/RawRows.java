package org.fhirbeam.pipeline;

import java.io.IOException;
import java.sql.Connection;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.ReadTask;

/**
 * The rows of a job's file sources as text, as the {@code raw_data.<source>} tables hold them (DuckDB's, and the
 * Delta sink's): every column of each file as text, and {@code _source_file}. The sources are read once more for
 * them, on the machine that runs the command: objects on object storage are fetched here, as a task fetches them,
 * and deleted when this is closed.
 */
final class RawRows implements AutoCloseable {
  /** By source copied, the queries of its rows, one per task (files of a source align their columns by name). */
  private final Map<String, List<String>> queries = new LinkedHashMap<>();
  private final List<FileSourcePlanner.Fetched> fetched = new ArrayList<>();

  private RawRows() {}

  /**
   * The raw rows of {@code plan}'s sources that are copied: those with files. A database source's rows already live
   * in a database, so none are copied. {@code db} fetches objects.
   */
  static RawRows of(JobPlan plan, Connection db) throws IOException {
    RawRows raw = new RawRows();
    try {
      for (PlannedSource s : plan.sources().values()) {
        if (s.tasks().isEmpty() || s.config().jdbc() != null) {
          continue;
        }
        List<String> queries = new ArrayList<>();
        for (ReadTask t : s.tasks()) {
          FileSourcePlanner.Fetched f = FileSourcePlanner.fetch(db, t);
          raw.fetched.add(f);
          queries.add("SELECT *, " + DuckDb.literal(t.file()) + " AS _source_file FROM ("
              + f.task().textRows(List.of(), "raw_bad_lines") + ")");
        }
        raw.queries.put(s.config().name(), queries);
      }
      return raw;
    } catch (IOException | RuntimeException e) {
      raw.close();
      throw e;
    }
  }

  /** By source copied, the queries of its rows, one per task. */
  Map<String, List<String>> queries() {
    return queries;
  }

  /** One query of all of {@code source}'s rows. */
  String query(String source) {
    List<String> parts = new ArrayList<>();
    queries.get(source).forEach(q -> parts.add("(" + q + ")"));
    return String.join(" UNION ALL BY NAME ", parts);
  }

  /** Deletes the objects fetched for the copy. */
  @Override
  public void close() {
    fetched.forEach(FileSourcePlanner.Fetched::close);
  }
}
