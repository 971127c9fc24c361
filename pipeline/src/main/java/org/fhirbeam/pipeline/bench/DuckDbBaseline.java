package org.fhirbeam.pipeline.bench;

import static org.fhirbeam.transforms.SqlMapping.clean;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import org.fhirbeam.io.DuckDb;

/**
 * Case (d) of the benchmark, run as its own process: DuckDB alone reshapes the patient rows into the same FHIR
 * Patient JSON as the default job's mapping, in one hand-written SQL statement, and writes NDJSON. It keeps the
 * mapping's rules (values trimmed, the id checked, birth dates read as yyyy-MM-dd, genders mapped with unknown as
 * the default), skips the rows the pipeline rejects and leaves out empty elements, so it writes the same
 * resources, line for line; but no reject records, no counters, no runner: the speed limit of the reshaping
 * itself.
 */
public final class DuckDbBaseline {
  private DuckDbBaseline() {}

  public static void main(String[] args) throws Exception {
    System.out.println(write(args[0], args[1]));
  }

  /** Writes the Patients of the CSV file {@code input} to the NDJSON file {@code output}; returns how many. */
  static long write(String input, String output) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      return st.executeLargeUpdate(sql(input, output));
    }
  }

  static String sql(String input, String output) {
    String cleaned = "SELECT " + clean("patient_id") + " AS id, " + clean("last_name") + " AS family, "
        + clean("first_name") + " AS given, " + clean("birth_date") + " AS birth, "
        + "coalesce(CASE lower(" + clean("gender") + ") WHEN 'm' THEN 'male' WHEN 'male' THEN 'male'"
        + " WHEN 'f' THEN 'female' WHEN 'female' THEN 'female' WHEN 'o' THEN 'other' WHEN 'other' THEN 'other' END,"
        + " 'unknown') AS gender FROM read_csv(" + DuckDb.literal(input) + ", header = true, all_varchar = true)";
    String typed = "SELECT *, CASE WHEN regexp_full_match(birth, '\\d{4}-\\d{2}-\\d{2}')"
        + " THEN strftime(try_strptime(birth, '%Y-%m-%d'), '%Y-%m-%d') END AS birthDate FROM (" + cleaned + ")";
    // JSON text assembled by hand: an absent value leaves its element out (DuckDB's JSON writer would write null).
    String json = "'{\"resourceType\":\"Patient\",\"id\":' || to_json(id)"
        + " || CASE WHEN family IS NOT NULL OR given IS NOT NULL THEN ',\"name\":[{\"use\":\"official\"'"
        + " || coalesce(',\"family\":' || to_json(family), '') || coalesce(',\"given\":[' || to_json(given) || ']', '')"
        + " || '}]' ELSE '' END"
        + " || ',\"gender\":' || to_json(gender) || coalesce(',\"birthDate\":' || to_json(birthDate), '') || '}'";
    // The rows the pipeline rejects: no id, an id FHIR does not allow, a birth date that is not a real date.
    String kept = "regexp_full_match(id, '[A-Za-z0-9\\-.]{1,64}') AND (birth IS NULL OR birthDate IS NOT NULL)";
    return "COPY (SELECT " + json + " FROM (" + typed + ") WHERE " + kept + ") TO " + DuckDb.literal(output)
        // One text column as raw lines: no quoting, a delimiter that never occurs.
        + " (FORMAT csv, HEADER false, DELIMITER '\u0001', QUOTE '', ESCAPE '')";
  }
}
