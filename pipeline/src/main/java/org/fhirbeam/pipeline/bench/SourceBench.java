package org.fhirbeam.pipeline.bench;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.ReadTask;

/**
 * The {@code source} case of the benchmark, run as its own process: plans a file source as a run does and reads
 * every row of every task as the mapping stage reads it (all columns as text, every value touched), without
 * mapping or writing. Prints the rows, then the seconds spent reading (planning and JVM start excluded).
 */
public final class SourceBench {
  private SourceBench() {}

  public static void main(String[] args) throws Exception {
    DuckDbSettings settings = new DuckDbSettings("unused.db", false, null, 0, List.of());
    FileSourcePlanner.PlannedSource source;
    try (FileSourcePlanner planner = new FileSourcePlanner(settings)) {
      source = planner.plan(new SourceConfig("patients", args[0], null, SourceConfig.Format.AUTO, false, "bench"));
    }
    long start = System.nanoTime();
    long rows = 0;
    try (Connection db = DuckDb.openInMemory(settings); Statement st = db.createStatement()) {
      for (ReadTask t : source.tasks()) {
        List<String> columns = new ArrayList<>();
        for (String c : t.columns()) {
          columns.add(DuckDb.identifier(c));
        }
        try (ResultSet rs = st.executeQuery("SELECT count(h) FROM (SELECT hash(" + String.join(", ", columns)
            + ") AS h FROM (" + t.textRows(source.columns(), "bench_bad_lines") + "))")) {
          rs.next();
          rows += rs.getLong(1);
        }
      }
    }
    System.out.println(rows);
    System.out.println((System.nanoTime() - start) / 1e9);
  }
}
