package org.fhirbeam.transforms;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

/**
 * Checks regular expressions of mappings with the engine that will run them: DuckDB's RE2, which differs from
 * Java's (no possessive quantifiers, look-around, back-references or {@code \p{Alpha}} classes). One in-memory
 * DuckDB, opened on first use, for the JVM.
 */
final class Re2 {
  private static Connection db;

  private Re2() {}

  /** Null when DuckDB accepts the pattern, else DuckDB's reason. */
  static synchronized String check(String pattern) {
    try {
      if (db == null) {
        db = DriverManager.getConnection("jdbc:duckdb:");
      }
      try (PreparedStatement ps = db.prepareStatement("SELECT regexp_matches('', ?)")) {
        ps.setString(1, pattern);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
        }
      }
      return null;
    } catch (SQLException e) {
      String m = String.valueOf(e.getMessage());
      m = m.replaceFirst("^Invalid Input Error: ", "");
      int nl = m.indexOf('\n');
      return nl < 0 ? m : m.substring(0, nl);
    }
  }
}
