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
 * itself. Given a database file as well (case (db)), it also writes, in one transaction, what the default job's
 * database holds of the same rows: {@code raw_data.patients} (the CSV rows as text) and
 * {@code fhir_resources.patient} (the flat columns typed beside the resource JSON), built from the values the query
 * already has rather than from the written JSON: the speed limit of the default job as shipped.
 */
public final class DuckDbBaseline {
  private DuckDbBaseline() {}

  public static void main(String[] args) throws Exception {
    System.out.println(args.length > 2 ? writeWithDatabase(args[0], args[1], args[2]) : write(args[0], args[1]));
  }

  /** Writes the Patients of the CSV file {@code input} to the NDJSON file {@code output}; returns how many. */
  static long write(String input, String output) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      return st.executeLargeUpdate(sql(input, output));
    }
  }

  /**
   * {@link #write}, and the tables of the default job's database of the same rows in {@code database}, with its
   * memory limit; returns how many Patients.
   */
  static long writeWithDatabase(String input, String output, String database) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + database); Statement st = c.createStatement()) {
      st.execute("SET memory_limit = '1GB'");
      st.execute("BEGIN TRANSACTION");
      st.execute("CREATE SCHEMA raw_data");
      st.execute("CREATE SCHEMA fhir_resources");
      st.execute("CREATE TABLE raw_data.patients AS SELECT *, " + DuckDb.literal(input) + " AS _source_file FROM "
          + "read_csv(" + DuckDb.literal(input) + ", header = true, all_varchar = true)");
      long written = st.executeLargeUpdate(sql(input, output));
      st.execute("CREATE TABLE fhir_resources.patient AS SELECT id, CASE WHEN family IS NOT NULL OR given IS NOT NULL"
          + " THEN 'official' END AS name_0_use, family AS name_0_family, given AS name_0_given_0, gender,"
          + " CAST(birthDate AS DATE) AS birth_date, CAST(" + JSON + " AS JSON) AS resource FROM (" + typed(input)
          + ") WHERE " + KEPT);
      st.execute("COMMIT");
      return written;
    }
  }

  /** The Patient JSON as text (an absent value leaves its element out; DuckDB's JSON writer would write null). */
  private static final String JSON = "'{\"resourceType\":\"Patient\",\"id\":' || to_json(id)"
      + " || CASE WHEN family IS NOT NULL OR given IS NOT NULL THEN ',\"name\":[{\"use\":\"official\"'"
      + " || coalesce(',\"family\":' || to_json(family), '') || coalesce(',\"given\":[' || to_json(given) || ']', '')"
      + " || '}]' ELSE '' END"
      + " || ',\"gender\":' || to_json(gender) || coalesce(',\"birthDate\":' || to_json(birthDate), '') || '}'";

  /** The rows the pipeline keeps: an id FHIR allows, a birth date that is a real date when there is one. */
  private static final String KEPT = "regexp_full_match(id, '[A-Za-z0-9\\-.]{1,64}')"
      + " AND (birth IS NULL OR birthDate IS NOT NULL)";

  /** The cleaned and typed values of the CSV's rows. */
  private static String typed(String input) {
    String cleaned = "SELECT " + clean("patient_id") + " AS id, " + clean("last_name") + " AS family, "
        + clean("first_name") + " AS given, " + clean("birth_date") + " AS birth, "
        + "coalesce(CASE lower(" + clean("gender") + ") WHEN 'm' THEN 'male' WHEN 'male' THEN 'male'"
        + " WHEN 'f' THEN 'female' WHEN 'female' THEN 'female' WHEN 'o' THEN 'other' WHEN 'other' THEN 'other' END,"
        + " 'unknown') AS gender FROM read_csv(" + DuckDb.literal(input) + ", header = true, all_varchar = true)";
    return "SELECT *, CASE WHEN regexp_full_match(birth, '\\d{4}-\\d{2}-\\d{2}')"
        + " THEN strftime(try_strptime(birth, '%Y-%m-%d'), '%Y-%m-%d') END AS birthDate FROM (" + cleaned + ")";
  }

  static String sql(String input, String output) {
    return "COPY (SELECT " + JSON + " FROM (" + typed(input) + ") WHERE " + KEPT + ") TO " + DuckDb.literal(output)
        // One text column as raw lines: no quoting, a delimiter that never occurs.
        + " (FORMAT csv, HEADER false, DELIMITER '\u0001', QUOTE '', ESCAPE '')";
  }
}
