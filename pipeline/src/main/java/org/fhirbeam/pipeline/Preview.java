package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.ReadTask;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.SqlMapping;

/**
 * Runs compiled mappings on the first rows of their sources, with no pipeline and no output, and prints per row
 * the resource built (pretty JSON) and the rule behind every element, or the reason the row is rejected. The
 * fast loop for writing a mapping. It prints row contents to the terminal (its purpose), never to a log.
 */
final class Preview {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Preview() {}

  /** Plans only the mappings asked for ({@code mappingName} null for all) and previews {@code rows} rows of each. */
  static void run(PipelineConfig config, String mappingName, int rows, PrintStream out) {
    List<MappingConfig> chosen = new ArrayList<>();
    for (MappingConfig m : config.mappings()) {
      if (mappingName == null || m.name().equals(mappingName)) {
        chosen.add(m);
      }
    }
    if (chosen.isEmpty()) {
      List<String> names = config.mappings().stream().map(MappingConfig::name).toList();
      throw new InputException("no mapping is named '" + mappingName + "' in " + config.file() + " (mappings: "
          + String.join(", ", names) + ")");
    }
    JobPlan plan = JobPlan.fromConfig(new PipelineConfig(config.file(), config.name(), config.duckdb(),
        config.sources(), chosen, config.sinks(), ValidationSettings.OFF));
    try (Connection db = DuckDb.openInMemory(config.duckdb())) {
      for (CompiledMapping m : plan.mappings()) {
        preview(db, m, plan.sources().get(m.source()), rows, "preview_bad_lines_" + m.name(), out);
      }
    } catch (SQLException e) {
      throw DuckDb.failure("preview failed", e);
    }
  }

  private static void preview(Connection db, CompiledMapping m, PlannedSource source, int rows, String badLines,
      PrintStream out) throws SQLException {
    SqlMapping sql = new SqlMapping(m);
    out.printf("== mapping %s: source %s -> %s%n", m.name(), m.source(), m.resourceType());
    if (source.config().streams()) {
      out.println("   (a streaming source: preview reads files only; run the job with --max-records N to map the"
          + " first records)");
      return;
    }
    if (source.tasks().isEmpty()) {
      out.println("   (the source has no files)");
      return;
    }
    ReadTask first = source.tasks().get(0);
    out.printf("   the first %d row(s) of %s%n", rows, first.file());
    // An object on object storage is fetched here, as the task that maps it fetches it.
    try (FileSourcePlanner.Fetched fetched = FileSourcePlanner.fetch(db, first)) {
      previewRows(db, sql, fetched.task(), rows, badLines, out);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException("cannot fetch " + first.file(), e);
    }
  }

  private static void previewRows(Connection db, SqlMapping sql, ReadTask task, int rows, String badLines,
      PrintStream out) throws SQLException {
    CompiledMapping m = sql.mapping();
    List<SqlMapping.ElementRule> rules = sql.elementRules();
    task.prepare(db);
    String input = "SELECT * FROM (" + task.textRows(sql.columns(), badLines) + ") LIMIT " + rows;
    int shown = 0;
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery(sql.detailQuery(input))) {
      while (rs.next()) {
        shown++;
        int fail = rs.getInt("#fail");
        if (!rs.wasNull()) {
          SqlMapping.Failure f = sql.failure(fail);
          out.printf("%n-- row %d: REJECTED%s%n   %s  rule %s: %s%n", shown,
              switch (sql.stage(fail)) {
                case "quality" -> " by a quality rule";
                case "validation" -> " by validation";
                default -> "";
              }, f.element(), f.rule(), f.reason());
          continue;
        }
        String json = rs.getString("#json");
        out.printf("%n-- row %d: %s/%s%n", shown, m.resourceType(), JSON.readTree(json).get("id").asText());
        out.println(indent(pretty(json)));
        out.println("   set by:");
        int width = rules.stream().mapToInt(r -> r.path().length()).max().orElse(10);
        for (SqlMapping.ElementRule r : rules) {
          if (rs.getBoolean(r.column())) {
            out.printf("     %-" + width + "s  <- %s%n", r.path(), r.rule());
          }
        }
      }
    } catch (java.io.IOException e) {
      throw new IllegalStateException("a previewed resource is not JSON", e);
    }
    if (task.skipsBadLines()) {
      try (Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT count(*) FROM " + DuckDb.identifier(badLines))) {
        if (rs.next() && rs.getLong(1) > 0) {
          out.printf("%n   %d malformed line(s) among them were set aside (a run reports them as rejects)%n",
              rs.getLong(1));
        }
      }
    }
    out.printf("%n   %d row(s) previewed%n%n", shown);
  }

  /** The JSON indented, every token as written (numbers keep their digits: 2.50 stays 2.50). */
  static String pretty(String json) throws java.io.IOException {
    java.io.StringWriter w = new java.io.StringWriter();
    try (com.fasterxml.jackson.core.JsonParser p = JSON.getFactory().createParser(json);
        com.fasterxml.jackson.core.JsonGenerator g = JSON.getFactory().createGenerator(w).useDefaultPrettyPrinter()) {
      while (p.nextToken() != null) {
        g.copyCurrentEventExact(p);
      }
    }
    return w.toString();
  }

  private static String indent(String text) {
    return "   " + text.replace("\n", "\n   ");
  }
}
