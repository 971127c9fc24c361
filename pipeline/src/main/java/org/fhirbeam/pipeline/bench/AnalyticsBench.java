package org.fhirbeam.pipeline.bench;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.io.DuckDb;

/**
 * The {@code analytics} case of the benchmark, run as its own process on the DuckDB database a Patient run wrote:
 * typical analytical queries, each warmed up and then timed over JDBC as a client would send them. Prints one
 * line per query: {@code query NAME MEDIAN_MS P90_MS ROWS}.
 */
public final class AnalyticsBench {
  static final int WARM_UP = 5;
  static final int TIMED = 50;

  /** The queries, by name, in the order printed. */
  static final Map<String, String> QUERIES = new LinkedHashMap<>();

  static {
    QUERIES.put("count_by_gender",
        "SELECT gender, count(*) AS patients FROM fhir_resources.patient GROUP BY gender ORDER BY gender");
    // Ages from the distinct birth dates (tens of thousands) rather than from every row: the same counts, exact
    // ages (age() counts whole years as people do), for a fraction of the date arithmetic.
    QUERIES.put("count_by_age_band", "SELECT CASE WHEN birth_date IS NULL THEN 'unknown'"
        + " WHEN age < 18 THEN '0-17' WHEN age < 45 THEN '18-44' WHEN age < 65 THEN '45-64' ELSE '65+' END AS band,"
        + " sum(patients) AS patients FROM (SELECT birth_date, date_part('year', age(current_date, birth_date)) AS age,"
        + " patients FROM (SELECT birth_date, count(*) AS patients FROM fhir_resources.patient GROUP BY birth_date))"
        + " GROUP BY band ORDER BY band");
    QUERIES.put("data_quality_report", "SELECT * FROM main.data_quality_report");
    QUERIES.put("lookup_by_id", "SELECT resource FROM fhir_resources.patient WHERE id = ?");
  }

  private AnalyticsBench() {}

  public static void main(String[] args) throws SQLException {
    String path = args[0];
    try (Connection db = DuckDb.openFile(path, new DuckDbSettings(path, true, null, 0, List.of()), true)) {
      List<String> ids = sampleIds(db);
      for (Map.Entry<String, String> q : QUERIES.entrySet()) {
        double[] ms = new double[TIMED];
        long rows = 0;
        try (PreparedStatement ps = db.prepareStatement(q.getValue())) {
          boolean byId = ps.getParameterMetaData().getParameterCount() == 1;
          for (int i = 0; i < WARM_UP + TIMED; i++) {
            if (byId) {
              ps.setString(1, ids.get(i % ids.size()));
            }
            long start = System.nanoTime();
            rows = 0;
            try (ResultSet rs = ps.executeQuery()) {
              int columns = rs.getMetaData().getColumnCount();
              while (rs.next()) {
                for (int c = 1; c <= columns; c++) {
                  rs.getObject(c);
                }
                rows++;
              }
            }
            if (i >= WARM_UP) {
              ms[i - WARM_UP] = (System.nanoTime() - start) / 1e6;
            }
          }
        }
        double[] sorted = ms.clone();
        java.util.Arrays.sort(sorted);
        System.out.printf(Locale.ROOT, "query %s %.3f %.3f %d%n", q.getKey(), Bench.median(ms),
            sorted[(int) Math.ceil(0.9 * sorted.length) - 1], rows);
      }
    }
  }

  /** Ids spread over the table, so that lookups do not repeat one row. */
  private static List<String> sampleIds(Connection db) throws SQLException {
    List<String> ids = new ArrayList<>();
    try (Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT id FROM fhir_resources.patient USING SAMPLE reservoir(" + TIMED
            + " ROWS) REPEATABLE (7) ORDER BY id")) {
      while (rs.next()) {
        ids.add(rs.getString(1));
      }
    }
    if (ids.isEmpty()) {
      throw new IllegalStateException("fhir_resources.patient is empty");
    }
    return ids;
  }
}
