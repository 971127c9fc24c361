package org.fhirbeam.pipeline.bench;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;

/**
 * Case (d) of the benchmark, run as its own process: DuckDB alone reshapes the patient rows into the same FHIR
 * Patient JSON in one hand-written SQL statement (the seed's {@code to_fhir_patient} pattern: a struct written
 * by DuckDB's JSON writer) and writes NDJSON. No validation of ids or codes, no rejects: the speed limit of
 * the reshaping itself.
 */
public final class DuckDbBaseline {
  private DuckDbBaseline() {}

  public static void main(String[] args) throws Exception {
    String input = args[0].replace("'", "''");
    String output = args[1].replace("'", "''");
    String clean = "nullif(trim(%s), '')";
    String sql = "COPY (SELECT 'Patient' AS resourceType, " + String.format(clean, "patient_id") + " AS id,"
        + " CASE WHEN " + String.format(clean, "first_name") + " IS NOT NULL OR " + String.format(clean, "last_name")
        + " IS NOT NULL THEN [{'use': 'official', 'family': " + String.format(clean, "last_name") + ", 'given': ["
        + String.format(clean, "first_name") + "]}] END AS name,"
        + " CASE lower(trim(gender)) WHEN 'm' THEN 'male' WHEN 'male' THEN 'male' WHEN 'f' THEN 'female'"
        + " WHEN 'female' THEN 'female' WHEN 'o' THEN 'other' WHEN 'other' THEN 'other' ELSE 'unknown' END AS gender,"
        + " CAST(TRY_CAST(birth_date AS DATE) AS VARCHAR) AS birthDate"
        + " FROM read_csv('" + input + "', header = true, all_varchar = true)) TO '" + output + "' (FORMAT json)";
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      long rows = st.executeLargeUpdate(sql);
      System.out.println(rows);
    }
  }
}
