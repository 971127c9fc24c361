package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.fhirbeam.io.DuckDb;

/**
 * One run's data-quality figures as the {@code quality} schema holds them, read back (inside the loading
 * transaction, or later by the report command) and written as {@code report/quality.json} and a self-contained
 * {@code report/quality.html}. Only counts, element paths, rule names and validation message ids: no record
 * values, so the report may be shared where the rejects may not.
 */
record QualityReport(RunRow run, RunRow previous, List<MappingRow> mappings, Map<String, MappingRow> previousMappings,
    List<CompletenessRow> completeness, List<RejectRow> rejects, List<CheckRow> checks, List<IssueRow> issues,
    List<RunRow> history, List<SourceColumnRow> sourceColumns) {

  record RunRow(String runId, String time, String job, long rowsIn, long resources, long rejected, Long validated) {}

  record MappingRow(String mapping, String resourceType, long rowsIn, long resources, long rejected,
      Double rejectRate, Double completeness, long failedChecks) {}

  record CompletenessRow(String mapping, String element, long populated, long total, Double share) {}

  record RejectRow(String mapping, String stage, String rule, long count) {}

  record SourceColumnRow(String source, String column, long populated, long total, Double share) {}

  record CheckRow(String mapping, String check, String element, long failed, long total) {}

  record IssueRow(String mapping, String severity, String category, String messageId, long count) {}

  /** The newest run in the database, or null when no run has written quality figures. */
  static String latestRun(Connection db) {
    try (Statement st = db.createStatement()) {
      if (!DuckDb.tableExists(db, "quality", "runs")) {
        return null;
      }
      try (ResultSet rs = st.executeQuery("SELECT run_id FROM quality.runs ORDER BY time DESC, run_id DESC LIMIT 1")) {
        return rs.next() ? rs.getString(1) : null;
      }
    } catch (SQLException e) {
      throw DuckDb.failure("reading the quality figures failed", e);
    }
  }

  /** The output directory a run wrote, or {@code output} when the database does not record it. */
  static String outputOf(Connection db, String runId) {
    try (Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT output FROM quality.runs WHERE run_id = " + DuckDb.literal(runId))) {
      String output = rs.next() ? rs.getString(1) : null;
      return output == null ? "output" : output;
    } catch (SQLException e) {
      // A database written before runs recorded their output directory.
      return "output";
    }
  }

  /** Reads one run's figures, with the run before it for the trend. */
  static QualityReport load(Connection db, String runId) {
    String run = DuckDb.literal(runId);
    try (Statement st = db.createStatement()) {
      String runColumns = "SELECT run_id, strftime(time, '%Y-%m-%dT%H:%M:%SZ'), job, rows_in, resources, rejected,"
          + " validated FROM quality.runs";
      List<RunRow> history = new ArrayList<>();
      try (ResultSet rs = st.executeQuery(runColumns + " WHERE time <= (SELECT time FROM quality.runs WHERE run_id = "
          + run + ") ORDER BY time DESC, run_id DESC LIMIT 12")) {
        while (rs.next()) {
          history.add(new RunRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4), rs.getLong(5),
              rs.getLong(6), (Long) rs.getObject(7) == null ? null : rs.getLong(7)));
        }
      }
      if (history.isEmpty() || !history.get(0).runId().equals(runId)) {
        throw new InputException("run " + runId + " has no quality figures in the database");
      }
      java.util.Collections.reverse(history);
      RunRow current = history.get(history.size() - 1);
      RunRow previous = history.size() > 1 ? history.get(history.size() - 2) : null;
      List<MappingRow> mappings = mappings(st, runId);
      Map<String, MappingRow> previousMappings = new LinkedHashMap<>();
      if (previous != null) {
        for (MappingRow m : mappings(st, previous.runId())) {
          previousMappings.put(m.mapping(), m);
        }
      }
      List<CompletenessRow> completeness = new ArrayList<>();
      try (ResultSet rs = st.executeQuery("SELECT c.mapping, c.element, c.populated, c.total, c.share"
          + " FROM quality.completeness AS c JOIN quality.mappings AS m USING (run_id, mapping)"
          + " WHERE run_id = " + run + " ORDER BY m.position, c.position")) {
        while (rs.next()) {
          completeness.add(new CompletenessRow(rs.getString(1), rs.getString(2), rs.getLong(3), rs.getLong(4),
              (Double) rs.getObject(5)));
        }
      }
      List<RejectRow> rejects = new ArrayList<>();
      try (ResultSet rs = st.executeQuery("SELECT mapping, stage, rule, count FROM quality.rejects_by_reason"
          + " WHERE run_id = " + run + " ORDER BY count DESC, mapping, stage, rule")) {
        while (rs.next()) {
          rejects.add(new RejectRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4)));
        }
      }
      List<CheckRow> checks = new ArrayList<>();
      try (ResultSet rs = st.executeQuery("SELECT k.mapping, k.\"check\", k.element, k.failed, k.total"
          + " FROM quality.checks AS k JOIN quality.mappings AS m USING (run_id, mapping) WHERE run_id = " + run
          + " ORDER BY m.position, k.\"check\", k.element")) {
        while (rs.next()) {
          checks.add(new CheckRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4), rs.getLong(5)));
        }
      }
      List<IssueRow> issues = new ArrayList<>();
      try (ResultSet rs = st.executeQuery("SELECT mapping, severity, category, message_id, count"
          + " FROM quality.validation_issues WHERE run_id = " + run
          + " ORDER BY count DESC, mapping, severity, message_id")) {
        while (rs.next()) {
          issues.add(new IssueRow(rs.getString(1), rs.getString(2), rs.getString(3), rs.getString(4), rs.getLong(5)));
        }
      }
      List<SourceColumnRow> sourceColumns = new ArrayList<>();
      // A database written before runs measured their source columns has none.
      if (DuckDb.tableExists(db, "quality", "source_columns")) {
        try (ResultSet c = st.executeQuery("SELECT source, column_name, populated, total, share"
            + " FROM quality.source_columns WHERE run_id = " + run + " ORDER BY source, position")) {
          while (c.next()) {
            sourceColumns.add(new SourceColumnRow(c.getString(1), c.getString(2), c.getLong(3), c.getLong(4),
                (Double) c.getObject(5)));
          }
        }
      }
      return new QualityReport(current, previous, mappings, previousMappings, completeness, rejects, checks, issues,
          history, sourceColumns);
    } catch (SQLException e) {
      throw DuckDb.failure("reading the quality figures failed", e);
    }
  }

  private static List<MappingRow> mappings(Statement st, String runId) throws SQLException {
    List<MappingRow> out = new ArrayList<>();
    // The same figures as main.data_quality_report, for any run (the view shows the latest).
    try (ResultSet rs = st.executeQuery("SELECT m.mapping, m.resource_type, m.rows_in, m.resources, m.rejected,"
        + " CASE WHEN m.rows_in = 0 THEN NULL ELSE m.rejected / m.rows_in END,"
        + " (SELECT avg(share) FROM quality.completeness AS c WHERE c.run_id = m.run_id AND c.mapping = m.mapping),"
        + " (SELECT coalesce(sum(failed), 0) FROM quality.checks AS k WHERE k.run_id = m.run_id"
        + " AND k.mapping = m.mapping)"
        + " FROM quality.mappings AS m WHERE m.run_id = " + DuckDb.literal(runId) + " ORDER BY m.position")) {
      while (rs.next()) {
        out.add(new MappingRow(rs.getString(1), rs.getString(2), rs.getLong(3), rs.getLong(4), rs.getLong(5),
            (Double) rs.getObject(6), (Double) rs.getObject(7), rs.getLong(8)));
      }
    }
    return out;
  }

  Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("run", runJson(run));
    m.put("previous_run", previous == null ? null : runJson(previous));
    List<Map<String, Object>> list = new ArrayList<>();
    for (MappingRow r : mappings) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mapping", r.mapping());
      e.put("resource_type", r.resourceType());
      e.put("rows_in", r.rowsIn());
      e.put("resources", r.resources());
      e.put("rejected", r.rejected());
      e.put("reject_rate", r.rejectRate());
      e.put("completeness", r.completeness());
      e.put("failed_checks", r.failedChecks());
      list.add(e);
    }
    m.put("mappings", list);
    list = new ArrayList<>();
    for (CompletenessRow r : completeness) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mapping", r.mapping());
      e.put("element", r.element());
      e.put("populated", r.populated());
      e.put("total", r.total());
      e.put("share", r.share());
      list.add(e);
    }
    m.put("completeness", list);
    list = new ArrayList<>();
    for (SourceColumnRow r : sourceColumns) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("source", r.source());
      e.put("column", r.column());
      e.put("populated", r.populated());
      e.put("total", r.total());
      e.put("share", r.share());
      list.add(e);
    }
    m.put("source_columns", list);
    list = new ArrayList<>();
    for (RejectRow r : rejects) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mapping", r.mapping());
      e.put("stage", r.stage());
      e.put("rule", r.rule());
      e.put("count", r.count());
      list.add(e);
    }
    m.put("rejects_by_reason", list);
    list = new ArrayList<>();
    for (CheckRow r : checks) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("mapping", r.mapping());
      e.put("check", r.check());
      e.put("element", r.element());
      e.put("failed", r.failed());
      e.put("total", r.total());
      list.add(e);
    }
    m.put("checks", list);
    if (run.validated() != null) {
      list = new ArrayList<>();
      for (IssueRow r : issues) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("mapping", r.mapping());
        e.put("severity", r.severity());
        e.put("category", r.category());
        e.put("message_id", r.messageId());
        e.put("count", r.count());
        list.add(e);
      }
      m.put("validation_issues", list);
    }
    return m;
  }

  private static Map<String, Object> runJson(RunRow r) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("run_id", r.runId());
    m.put("time", r.time());
    m.put("job", r.job());
    m.put("rows_in", r.rowsIn());
    m.put("resources", r.resources());
    m.put("rejected", r.rejected());
    m.put("validated", r.validated());
    return m;
  }

  /** Writes quality.json and quality.html into {@code dir}. */
  void write(Path dir) throws IOException {
    Files.createDirectories(dir);
    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(dir.resolve("quality.json").toFile(),
        toJson());
    Files.writeString(dir.resolve("quality.html"), QualityHtml.render(this), StandardCharsets.UTF_8);
  }

  /** The compact terminal table of the report command. */
  /** How many checks ran, and each that failed as {@code mapping check(element) failed of total}. */
  RunSummary.Checks checkSummary() {
    List<String> failed = new ArrayList<>();
    for (CheckRow c : checks) {
      if (c.failed() > 0) {
        failed.add(String.format(Locale.ROOT, "%s %s%s %,d of %,d", c.mapping(), c.check(),
            c.element() == null ? "" : "(" + c.element() + ")", c.failed(), c.total()));
      }
    }
    return new RunSummary.Checks(checks.size(), failed);
  }

  void print(PrintStream out) {
    out.printf(Locale.ROOT, "Data quality of run %s (%s, %s): %,d rows in, %,d resources, %,d rejected%n",
        run.runId(), run.job(), run.time(), run.rowsIn(), run.resources(), run.rejected());
    out.printf(Locale.ROOT, "  %-30s %9s %9s %8s %8s %10s %7s%n", "mapping", "rows in", "resources", "rejected",
        "reject%", "complete%", "failed");
    for (MappingRow m : mappings) {
      out.printf(Locale.ROOT, "  %-30s %,9d %,9d %,8d %8s %10s %,7d%n", m.mapping(), m.rowsIn(), m.resources(),
          m.rejected(), percent(m.rejectRate()), percent(m.completeness()), m.failedChecks());
    }
    if (!rejects.isEmpty()) {
      out.println("  rejects by reason:");
      for (RejectRow r : rejects) {
        out.printf(Locale.ROOT, "    %,6d  %s %s %s%n", r.count(), r.mapping(), r.stage(), r.rule());
      }
    }
    out.println("  checks: " + checkSummary().line());
    if (run.validated() != null) {
      long errors = issues.stream().filter(i -> i.severity().equals("error") || i.severity().equals("fatal"))
          .mapToLong(IssueRow::count).sum();
      long warnings = issues.stream().filter(i -> i.severity().equals("warning")).mapToLong(IssueRow::count).sum();
      out.printf(Locale.ROOT, "  validation: %,d resources checked, %,d errors, %,d warnings%n", run.validated(),
          errors, warnings);
    }
    if (previous != null) {
      out.printf(Locale.ROOT, "  trend against %s: rows in %s, resources %s, rejected %s%n", previous.runId(),
          signed(run.rowsIn() - previous.rowsIn()), signed(run.resources() - previous.resources()),
          signed(run.rejected() - previous.rejected()));
    }
  }

  static String percent(Double share) {
    return share == null ? "-" : String.format(Locale.ROOT, "%.1f%%", share * 100);
  }

  static String signed(long n) {
    return String.format(Locale.ROOT, "%+,d", n);
  }
}
