package org.fhirbeam.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
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
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.quality.MeasureResources;
import org.fhirbeam.transforms.CompiledMapping;

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

  /**
   * The report of a run that has no DuckDB load (one committed by a manifest), from the figures its tasks counted
   * ({@link org.fhirbeam.quality.MeasureResources}, {@link org.fhirbeam.quality.ResolveReferences}) and the
   * {@code previous} committed run's report (null for none): the same figures, by the same definitions, as
   * {@link #load} reads from the quality tables, over the resources each mapping commits in this run (the tables
   * count a type's whole table: every mapping of the type, and earlier runs' rows in {@code append} mode).
   */
  static QualityReport of(JobPlan plan, RunSummary counted, PipelineCounts tasks, Instant time,
      QualityReport previous) {
    Tally figures = tasks.committed();
    RunRow run = new RunRow(counted.runId(), TIME.format(time), plan.config().name(), counted.rowsIn(),
        counted.resourcesOut().values().stream().mapToLong(Long::longValue).sum(), counted.rejected(),
        counted.validation() == null ? null : counted.validation().validated());
    List<CompletenessRow> completeness = new ArrayList<>();
    for (CompiledMapping m : plan.mappings()) {
      long total = figures.get(Counters.measured(m.name()));
      for (int i = 0; i < m.valueElements().size(); i++) {
        long populated = figures.get(Counters.populated(m.name(), i));
        completeness.add(new CompletenessRow(m.name(), m.valueElements().get(i).path(), populated, total,
            total == 0 ? null : (double) populated / total));
      }
    }
    List<CheckRow> checks = new ArrayList<>();
    java.util.Set<List<String>> checked = new java.util.HashSet<>();
    for (QualityTables.Check c : tasks.checks()) {
      checks.add(new CheckRow(c.mapping(), c.check(), c.element(), c.failed(), c.total()));
      checked.add(java.util.Arrays.asList(c.mapping(), c.check(), c.element()));
    }
    List<String> order = plan.mappings().stream().map(CompiledMapping::name).toList();
    for (CompiledMapping m : plan.mappings()) {
      // Every check has its row, as in the quality tables, though no part of the mapping had anything to check (a
      // source without files, every row rejected).
      for (MeasureResources.Check k : MeasureResources.checks(m, !plan.config().externalPrefixes().isEmpty())) {
        if (!checked.contains(java.util.Arrays.asList(m.name(), k.check(), k.element()))) {
          checks.add(new CheckRow(m.name(), k.check(), k.element(), 0, 0));
        }
      }
      checks.add(new CheckRow(m.name(), "duplicate_id", null, figures.get(Counters.repeatedIds(m.resourceType())),
          counted.resourcesOut().getOrDefault(m.resourceType(), 0L)));
    }
    checks.sort(Comparator.comparing((CheckRow c) -> order.indexOf(c.mapping())).thenComparing(CheckRow::check)
        .thenComparing(CheckRow::element, Comparator.nullsLast(Comparator.naturalOrder())));
    List<MappingRow> mappings = new ArrayList<>();
    List<RejectRow> rejects = new ArrayList<>();
    for (RunSummary.MappingCount c : counted.mappings()) {
      Double share = completeness.stream().filter(r -> r.mapping().equals(c.mapping()) && r.share() != null)
          .mapToDouble(CompletenessRow::share).average().stream().boxed().findFirst().orElse(null);
      long failed = checks.stream().filter(k -> k.mapping().equals(c.mapping())).mapToLong(CheckRow::failed).sum();
      mappings.add(new MappingRow(c.mapping(), c.resourceType(), c.rowsIn(), c.mapped(), c.rejected(),
          c.rowsIn() == 0 ? null : (double) c.rejected() / c.rowsIn(), share, failed));
      // stage/rule: a stage holds no '/'
      c.rejectedBy().forEach((reason, n) -> rejects.add(new RejectRow(c.mapping(), reason.substring(0,
          reason.indexOf('/')), reason.substring(reason.indexOf('/') + 1), n)));
    }
    rejects.sort(Comparator.comparingLong(RejectRow::count).reversed().thenComparing(RejectRow::mapping)
        .thenComparing(RejectRow::stage).thenComparing(RejectRow::rule));
    List<IssueRow> issues = new ArrayList<>();
    if (counted.validation() != null) {
      counted.validation().issues().forEach(i -> issues.add(new IssueRow(i.mapping(), i.severity(), i.category(),
          i.messageId(), i.count())));
      issues.sort(Comparator.comparingLong(IssueRow::count).reversed().thenComparing(IssueRow::mapping)
          .thenComparing(IssueRow::severity).thenComparing(IssueRow::messageId));
    }
    List<SourceColumnRow> sourceColumns = new ArrayList<>();
    List<QualityTables.SourceColumn> measured = new ArrayList<>(tasks.sourceColumns());
    measured.sort(Comparator.comparing(QualityTables.SourceColumn::source)
        .thenComparingInt(QualityTables.SourceColumn::position));
    for (QualityTables.SourceColumn c : measured) {
      sourceColumns.add(new SourceColumnRow(c.source(), c.column(), c.populated(), c.total(),
          c.total() == 0 ? null : (double) c.populated() / c.total()));
    }
    List<RunRow> history = new ArrayList<>();
    Map<String, MappingRow> previousMappings = new LinkedHashMap<>();
    if (previous != null) {
      List<RunRow> earlier = previous.history();
      history.addAll(earlier.subList(Math.max(0, earlier.size() - (HISTORY - 1)), earlier.size()));
      previous.mappings().forEach(m -> previousMappings.put(m.mapping(), m));
    }
    history.add(run);
    return new QualityReport(run, previous == null ? null : previous.run(), mappings, previousMappings, completeness,
        rejects, checks, issues, history, sourceColumns);
  }

  /** The runs a report shows in its trend: this one and those before it. */
  private static final int HISTORY = 12;
  private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss'Z'")
      .withZone(ZoneOffset.UTC);

  /** A report as {@link #toJson} wrote it ({@code quality.json}). */
  static QualityReport fromJson(JsonNode json) {
    RunRow run = runRow(json.get("run"));
    JsonNode p = json.get("previous_run");
    RunRow previous = p == null || p.isNull() ? null : runRow(p);
    List<MappingRow> mappings = new ArrayList<>();
    for (JsonNode m : json.path("mappings")) {
      mappings.add(new MappingRow(m.get("mapping").asText(), m.get("resource_type").asText(),
          m.get("rows_in").asLong(), m.get("resources").asLong(), m.get("rejected").asLong(),
          number(m.get("reject_rate")), number(m.get("completeness")), m.get("failed_checks").asLong()));
    }
    List<CompletenessRow> completeness = new ArrayList<>();
    for (JsonNode c : json.path("completeness")) {
      completeness.add(new CompletenessRow(c.get("mapping").asText(), c.get("element").asText(),
          c.get("populated").asLong(), c.get("total").asLong(), number(c.get("share"))));
    }
    List<SourceColumnRow> sourceColumns = new ArrayList<>();
    for (JsonNode c : json.path("source_columns")) {
      sourceColumns.add(new SourceColumnRow(c.get("source").asText(), c.get("column").asText(),
          c.get("populated").asLong(), c.get("total").asLong(), number(c.get("share"))));
    }
    List<RejectRow> rejects = new ArrayList<>();
    for (JsonNode r : json.path("rejects_by_reason")) {
      rejects.add(new RejectRow(r.get("mapping").asText(), r.get("stage").asText(), r.get("rule").asText(),
          r.get("count").asLong()));
    }
    List<CheckRow> checks = new ArrayList<>();
    for (JsonNode k : json.path("checks")) {
      checks.add(new CheckRow(k.get("mapping").asText(), k.get("check").asText(),
          k.get("element").isNull() ? null : k.get("element").asText(), k.get("failed").asLong(),
          k.get("total").asLong()));
    }
    List<IssueRow> issues = new ArrayList<>();
    for (JsonNode i : json.path("validation_issues")) {
      issues.add(new IssueRow(i.get("mapping").asText(), i.get("severity").asText(), i.get("category").asText(),
          i.get("message_id").asText(), i.get("count").asLong()));
    }
    List<RunRow> history = new ArrayList<>();
    for (JsonNode h : json.path("history")) {
      history.add(runRow(h));
    }
    if (history.isEmpty()) {
      history.add(run);
    }
    // The previous run's mappings are not in the file: a report read back shows no trend per mapping.
    return new QualityReport(run, previous, mappings, Map.of(), completeness, rejects, checks, issues, history,
        sourceColumns);
  }

  private static RunRow runRow(JsonNode r) {
    JsonNode validated = r.get("validated");
    return new RunRow(r.get("run_id").asText(), r.get("time").asText(), r.get("job").asText(),
        r.get("rows_in").asLong(), r.get("resources").asLong(), r.get("rejected").asLong(),
        validated == null || validated.isNull() ? null : validated.asLong());
  }

  private static Double number(JsonNode n) {
    return n == null || n.isNull() ? null : n.asDouble();
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
    List<Map<String, Object>> runs = new ArrayList<>();
    history.forEach(h -> runs.add(runJson(h)));
    m.put("history", runs);
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
    Files.write(dir.resolve("quality.json"), json());
    Files.writeString(dir.resolve("quality.html"), QualityHtml.render(this), StandardCharsets.UTF_8);
  }

  /** The text of quality.json. */
  byte[] json() throws IOException {
    return new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(toJson());
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
