package org.fhirbeam.pipeline.bench;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.JdbcSourcePlanner;
import org.fhirbeam.io.ReadTask;

/**
 * The {@code source}, {@code source-parquet} and {@code source-jdbc} cases of the benchmark, run as their own
 * process: plans a source as a run does and reads every row of every task as the mapping stage reads it (a database
 * range copied into DuckDB first, all columns as text, every value touched), without mapping or writing. The
 * argument is a file, or a job configuration ({@code .yaml}) whose source {@code patients} is read. Prints the rows,
 * then the seconds spent reading (planning and JVM start excluded).
 */
public final class SourceBench {
  private SourceBench() {}

  public static void main(String[] args) throws Exception {
    DuckDbSettings settings = new DuckDbSettings("unused.db", false, null, 0, List.of());
    FileSourcePlanner.PlannedSource source;
    if (args[0].endsWith(".yaml")) {
      SourceConfig config = new ConfigLoader(System.getenv()).load(Path.of(args[0]), Map.of()).sources()
          .get("patients");
      source = config.jdbc() != null ? JdbcSourcePlanner.plan(config) : plan(settings, config);
    } else {
      source = plan(settings, new SourceConfig("patients", args[0], null, SourceConfig.Format.AUTO, false, "bench"));
    }
    long start = System.nanoTime();
    long rows = 0;
    try (Connection db = DuckDb.openInMemory(settings); Statement st = db.createStatement()) {
      for (ReadTask t : source.tasks()) {
        List<String> columns = new ArrayList<>();
        for (String c : t.columns()) {
          columns.add(DuckDb.identifier(c));
        }
        t.prepare(db);
        try (ResultSet rs = st.executeQuery("SELECT count(h) FROM (SELECT hash(" + String.join(", ", columns)
            + ") AS h FROM (" + t.textRows(source.columns(), "bench_bad_lines") + "))")) {
          rs.next();
          rows += rs.getLong(1);
        }
        t.release(db);
      }
    }
    System.out.println(rows);
    System.out.println((System.nanoTime() - start) / 1e9);
  }

  private static FileSourcePlanner.PlannedSource plan(DuckDbSettings settings, SourceConfig config) {
    try (FileSourcePlanner planner = new FileSourcePlanner(settings)) {
      return planner.plan(config);
    }
  }
}
