package org.fhirbeam.pipeline;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Renders a {@link QualityReport} as one self-contained HTML page: inline CSS and SVG charts drawn here, no
 * scripts and nothing fetched, so the file can be mailed or opened from a share offline.
 */
final class QualityHtml {
  private static final int LABEL = 260;
  private static final int BAR = 360;
  private static final int ROW = 20;

  private QualityHtml() {}

  static String render(QualityReport r) {
    StringBuilder h = new StringBuilder(32_768);
    QualityReport.RunRow run = r.run();
    h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .append("<title>Data quality: ").append(esc(run.job())).append(' ').append(esc(run.runId())).append("</title>")
        .append("<style>")
        .append("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;")
        .append("color:#1f2933;padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;")
        .append("border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}h3{font-size:1rem}")
        .append("table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;text-align:right;")
        .append("border-bottom:1px solid #e4e7eb}th:first-child,td:first-child{text-align:left}")
        .append("th{background:#f0f4f8}.ok{color:#1b7a3a}.fail{color:#b42318;font-weight:600}")
        .append(".cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #d9e2ec;border-radius:6px;")
        .append("padding:.6rem 1rem;min-width:8rem}.card b{display:block;font-size:1.4rem}")
        .append(".muted{color:#627d98}svg text{font-size:12px;fill:#1f2933}")
        .append("</style></head><body>\n");
    h.append("<h1>Data quality report: ").append(esc(run.job())).append("</h1>\n");
    h.append("<p class=\"muted\">Run <code>").append(esc(run.runId())).append("</code> at ").append(esc(run.time()))
        .append(". Counts only: this page holds no record values.</p>\n");
    h.append("<div class=\"cards\">");
    card(h, "rows in", run.rowsIn(), r.previous() == null ? null : r.previous().rowsIn());
    card(h, "resources", run.resources(), r.previous() == null ? null : r.previous().resources());
    card(h, "rejected", run.rejected(), r.previous() == null ? null : r.previous().rejected());
    if (run.validated() != null) {
      card(h, "validated", run.validated(), r.previous() == null ? null : r.previous().validated());
    }
    h.append("</div>\n");

    h.append("<h2 id=\"mappings\">Mappings</h2>\n<table><tr><th>mapping</th><th>resource type</th><th>rows in</th>")
        .append("<th>resources</th><th>rejected</th><th>reject rate</th><th>completeness</th><th>failed checks</th>");
    if (r.previous() != null) {
      h.append("<th>completeness, previous run</th><th>reject rate, previous run</th>");
    }
    h.append("</tr>\n");
    for (QualityReport.MappingRow m : r.mappings()) {
      h.append("<tr><td>").append(esc(m.mapping())).append("</td><td>").append(esc(m.resourceType()))
          .append("</td><td>").append(n(m.rowsIn())).append("</td><td>").append(n(m.resources())).append("</td><td>")
          .append(n(m.rejected())).append("</td><td>").append(QualityReport.percent(m.rejectRate()))
          .append("</td><td>").append(QualityReport.percent(m.completeness())).append("</td><td class=\"")
          .append(m.failedChecks() == 0 ? "ok" : "fail").append("\">").append(n(m.failedChecks())).append("</td>");
      if (r.previous() != null) {
        QualityReport.MappingRow p = r.previousMappings().get(m.mapping());
        h.append("<td>").append(p == null ? "-" : QualityReport.percent(p.completeness())).append("</td><td>")
            .append(p == null ? "-" : QualityReport.percent(p.rejectRate())).append("</td>");
      }
      h.append("</tr>\n");
    }
    h.append("</table>\n");

    h.append("<h2 id=\"completeness\">Completeness by element</h2>\n")
        .append("<p class=\"muted\">Share of each mapping's resources in which the declared element has a value.</p>\n");
    Map<String, List<QualityReport.CompletenessRow>> byMapping = new LinkedHashMap<>();
    for (QualityReport.CompletenessRow c : r.completeness()) {
      byMapping.computeIfAbsent(c.mapping(), k -> new ArrayList<>()).add(c);
    }
    for (Map.Entry<String, List<QualityReport.CompletenessRow>> e : byMapping.entrySet()) {
      h.append("<h3>").append(esc(e.getKey())).append("</h3>\n");
      List<String[]> bars = new ArrayList<>();
      for (QualityReport.CompletenessRow c : e.getValue()) {
        bars.add(new String[] {c.element(), String.valueOf(c.share() == null ? 0 : c.share()),
            QualityReport.percent(c.share()) + " (" + n(c.populated()) + " of " + n(c.total()) + ")"});
      }
      bars(h, "completeness of " + e.getKey(), bars, "#2f80ed");
    }

    if (!r.sourceColumns().isEmpty()) {
      h.append("<h2 id=\"source-columns\">Completeness by source column</h2>\n")
          .append("<p class=\"muted\">Share of each source's rows in which the column has a value (neither empty")
          .append(" nor missing), whether a mapping reads it or not.</p>\n");
      Map<String, List<String[]>> bySource = new LinkedHashMap<>();
      for (QualityReport.SourceColumnRow c : r.sourceColumns()) {
        bySource.computeIfAbsent(c.source(), k -> new ArrayList<>()).add(new String[] {c.column(),
            String.valueOf(c.share() == null ? 0 : c.share()),
            QualityReport.percent(c.share()) + " (" + n(c.populated()) + " of " + n(c.total()) + ")"});
      }
      for (Map.Entry<String, List<String[]>> e : bySource.entrySet()) {
        h.append("<h3>source ").append(esc(e.getKey())).append("</h3>\n");
        bars(h, "completeness of source " + e.getKey(), e.getValue(), "#27ae60");
      }
    }

    h.append("<h2 id=\"rejects\">Rejects by reason</h2>\n");
    if (r.rejects().isEmpty()) {
      h.append("<p class=\"ok\">No rows were rejected.</p>\n");
    } else {
      long max = r.rejects().stream().mapToLong(QualityReport.RejectRow::count).max().orElse(1);
      List<String[]> bars = new ArrayList<>();
      for (QualityReport.RejectRow x : r.rejects()) {
        bars.add(new String[] {x.mapping() + " · " + x.stage() + " · " + x.rule(),
            String.valueOf((double) x.count() / max), n(x.count())});
      }
      bars(h, "rejects by reason", bars, "#d64545");
      h.append("<p class=\"muted\">The rejected rows themselves are in <code>rejects/</code> and the DuckDB table")
          .append(" <code>quality.rejects</code>, which hold PHI.</p>\n");
    }

    h.append("<h2 id=\"checks\">Checks</h2>\n<table><tr><th>mapping</th><th>check</th><th>element</th>")
        .append("<th>failed</th><th>checked</th><th>result</th></tr>\n");
    for (QualityReport.CheckRow c : r.checks()) {
      h.append("<tr><td>").append(esc(c.mapping())).append("</td><td>").append(esc(c.check())).append("</td><td>")
          .append(c.element() == null ? "" : esc(c.element())).append("</td><td>").append(n(c.failed()))
          .append("</td><td>").append(n(c.total())).append("</td><td class=\"").append(c.failed() == 0 ? "ok" : "fail")
          .append("\">").append(c.failed() == 0 ? "passed" : "failed").append("</td></tr>\n");
    }
    h.append("</table>\n");

    if (run.validated() != null) {
      h.append("<h2 id=\"validation\">Validation issues</h2>\n<p>").append(n(run.validated()))
          .append(" resources validated.</p>\n");
      if (r.issues().isEmpty()) {
        h.append("<p class=\"ok\">No issues.</p>\n");
      } else {
        h.append("<table><tr><th>mapping</th><th>severity</th><th>category</th><th>message id</th><th>count</th></tr>\n");
        for (QualityReport.IssueRow i : r.issues()) {
          h.append("<tr><td>").append(esc(i.mapping())).append("</td><td>").append(esc(i.severity()))
              .append("</td><td>").append(esc(i.category())).append("</td><td>").append(esc(i.messageId()))
              .append("</td><td>").append(n(i.count())).append("</td></tr>\n");
        }
        h.append("</table>\n");
      }
    }

    h.append("<h2 id=\"trend\">Trend</h2>\n");
    if (r.previous() == null) {
      h.append("<p class=\"muted\">This is the first run in this database: no trend yet.</p>\n");
    } else {
      QualityReport.RunRow p = r.previous();
      h.append("<p>Against the previous run <code>").append(esc(p.runId())).append("</code> (")
          .append(esc(p.time())).append("): rows in ").append(QualityReport.signed(run.rowsIn() - p.rowsIn()))
          .append(", resources ").append(QualityReport.signed(run.resources() - p.resources()))
          .append(", rejected ").append(QualityReport.signed(run.rejected() - p.rejected())).append(".</p>\n");
      trend(h, r.history());
    }
    h.append("</body></html>\n");
    return h.toString();
  }

  private static void card(StringBuilder h, String label, long value, Long previous) {
    h.append("<div class=\"card\"><b>").append(n(value)).append("</b>").append(esc(label));
    if (previous != null) {
      h.append(" <span class=\"muted\">(").append(QualityReport.signed(value - previous)).append(")</span>");
    }
    h.append("</div>");
  }

  /** A horizontal bar chart: each bar is a label, a length from 0 to 1, and the text written after it. */
  private static void bars(StringBuilder h, String title, List<String[]> bars, String color) {
    int height = bars.size() * ROW + 4;
    int width = LABEL + BAR + 170;
    h.append("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"").append(width).append("\" height=\"")
        .append(height).append("\" viewBox=\"0 0 ").append(width).append(' ').append(height).append("\"><title>")
        .append(esc(title)).append("</title>");
    for (int i = 0; i < bars.size(); i++) {
      String[] b = bars.get(i);
      int y = i * ROW + 2;
      double len = Math.max(0, Math.min(1, Double.parseDouble(b[1])));
      h.append("<text x=\"").append(LABEL - 6).append("\" y=\"").append(y + 14).append("\" text-anchor=\"end\">")
          .append(esc(b[0])).append("</text>");
      h.append("<rect x=\"").append(LABEL).append("\" y=\"").append(y + 2).append("\" width=\"").append(BAR)
          .append("\" height=\"").append(ROW - 6).append("\" fill=\"#eef2f7\"/>");
      h.append("<rect class=\"bar\" x=\"").append(LABEL).append("\" y=\"").append(y + 2).append("\" width=\"")
          .append(String.format(Locale.ROOT, "%.1f", len * BAR)).append("\" height=\"").append(ROW - 6)
          .append("\" fill=\"").append(color).append("\"/>");
      h.append("<text x=\"").append(LABEL + BAR + 6).append("\" y=\"").append(y + 14).append("\">").append(esc(b[2]))
          .append("</text>");
    }
    h.append("</svg>\n");
  }

  /** Resources and rejects of the last runs, oldest first, as grouped columns. */
  private static void trend(StringBuilder h, List<QualityReport.RunRow> runs) {
    long max = Math.max(1, runs.stream().mapToLong(x -> Math.max(x.resources(), x.rejected())).max().orElse(1));
    int col = 70;
    int chart = 140;
    int width = runs.size() * col + 40;
    int height = chart + 50;
    h.append("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"").append(width).append("\" height=\"")
        .append(height).append("\"><title>resources and rejects of the last runs</title>");
    for (int i = 0; i < runs.size(); i++) {
      QualityReport.RunRow x = runs.get(i);
      int left = 20 + i * col;
      double res = (double) x.resources() / max * chart;
      double rej = (double) x.rejected() / max * chart;
      h.append(String.format(Locale.ROOT, "<rect class=\"bar\" x=\"%d\" y=\"%.1f\" width=\"24\" height=\"%.1f\""
          + " fill=\"#2f80ed\"><title>%s resources</title></rect>", left, 10 + chart - res, res, n(x.resources())));
      h.append(String.format(Locale.ROOT, "<rect class=\"bar\" x=\"%d\" y=\"%.1f\" width=\"24\" height=\"%.1f\""
          + " fill=\"#d64545\"><title>%s rejected</title></rect>", left + 26, 10 + chart - rej, rej, n(x.rejected())));
      h.append("<text x=\"").append(left).append("\" y=\"").append(chart + 26).append("\">")
          .append(esc(x.time().length() >= 10 ? x.time().substring(5, 10) : x.time())).append("</text>");
      h.append("<text x=\"").append(left).append("\" y=\"").append(chart + 42).append("\" class=\"muted\">")
          .append(n(x.resources())).append('/').append(n(x.rejected())).append("</text>");
    }
    h.append("</svg>\n<p class=\"muted\">Blue: resources; red: rejected rows; one pair per run, oldest first.</p>\n");
  }

  private static String n(long v) {
    return String.format(Locale.ROOT, "%,d", v);
  }

  static String esc(String s) {
    if (s == null) {
      return "";
    }
    StringBuilder b = new StringBuilder(s.length());
    for (char c : s.toCharArray()) {
      switch (c) {
        case '<' -> b.append("&lt;");
        case '>' -> b.append("&gt;");
        case '&' -> b.append("&amp;");
        case '"' -> b.append("&quot;");
        case '\'' -> b.append("&#39;");
        default -> b.append(c);
      }
    }
    return b.toString();
  }
}
