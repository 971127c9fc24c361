package org.fhirbeam.pipeline.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Deterministic synthetic patient rows in the default job's columns, written once as CSV and Parquet and
 * cached: names, genders in every spelling the mapping accepts, birth dates spread over a century, and 0.67% bad
 * rows (1/1009 empty ids, 1/1013 malformed ids, 1/211 impossible dates) so the reject path is measured too.
 */
public final class BenchData {
  private BenchData() {}

  /** The CSV file of {@code rows} patients under {@code dir}, generated if missing. */
  public static Path csv(Path dir, long rows) throws SQLException, java.io.IOException {
    return generate(dir, rows, "csv", "(HEADER)");
  }

  /** The Parquet file of the same rows. */
  static Path parquet(Path dir, long rows) throws SQLException, java.io.IOException {
    return generate(dir, rows, "parquet", "(FORMAT parquet)");
  }

  private static Path generate(Path dir, long rows, String extension, String options)
      throws SQLException, java.io.IOException {
    Files.createDirectories(dir);
    Path file = dir.resolve("patients-" + rows + "." + extension);
    if (Files.isRegularFile(file)) {
      return file;
    }
    Path partial = dir.resolve("patients-" + rows + ".partial." + extension);
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      st.execute("COPY (" + rowsQuery(rows) + ") TO '" + partial.toString().replace("'", "''") + "' " + options);
    }
    Files.move(partial, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    return file;
  }

  /** The rows, computed from the row number alone so every run and machine gets the same data. */
  static String rowsQuery(long rows) {
    return "SELECT"
        + " CASE WHEN i % 1009 = 0 THEN NULL WHEN i % 1013 = 0 THEN 'p ' || i ELSE 'p' || i END AS patient_id,"
        + " CASE WHEN i % 53 = 0 THEN NULL ELSE (['Maria','John','Wei','Aiyana','Zoë','Fatima','Olga','Kwame',"
        + "'Priya','Lucas','Hana','Diego','Ingrid','Omar','Nia','Arjun'])[1 + (i * 7) % 16] END AS first_name,"
        + " CASE WHEN i % 61 = 0 THEN NULL ELSE (['Garcia','Smith','Chen','Müller','O''Brien','Begay','Haddad',"
        + "'Nakamura','Okafor','Rossi','Lopez','Kim','Petrov','Larsen','Diallo','Sharma'])[1 + (i * 11) % 16] END"
        + " AS last_name,"
        + " CASE WHEN i % 211 = 0 THEN '1990-02-30' WHEN i % 97 = 0 THEN NULL"
        + " ELSE strftime(DATE '1920-01-01' + CAST((i * 7919) % 36500 AS INTEGER), '%Y-%m-%d') END AS birth_date,"
        + " (['M','F','male','female','Female','o','other','x',''])[1 + (i * 13) % 9] AS gender"
        + " FROM range(" + rows + ") t(i)";
  }
}
