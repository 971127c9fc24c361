package org.fhirbeam.transforms;

import ca.uhn.fhir.context.FhirContext;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * Checks the data-quality rules of mappings before any data is read, with the engines that will run them: a SQL
 * predicate is bound by DuckDB against the source's columns (all text) and must be a condition; a FHIRPath
 * expression is parsed by HAPI's FHIRPath engine for R4. One in-memory DuckDB, opened on first use, for the JVM.
 */
final class QualityRules {
  private static Connection db;

  private QualityRules() {}

  /**
   * Null when DuckDB accepts {@code predicate} as a condition over a row of {@code columns} (text); else why not.
   * Without columns (the data files are not opened), only the syntax is checked.
   */
  static synchronized String checkSql(String predicate, Collection<String> columns) {
    try {
      if (db == null) {
        db = DriverManager.getConnection("jdbc:duckdb:");
      }
      if (columns == null) {
        // DuckDB's parser alone (json_serialize_sql takes a constant, not a parameter).
        String parsed = "json_serialize_sql(" + SqlMapping.lit("SELECT (" + predicate + ")") + ")::JSON";
        try (PreparedStatement ps = db.prepareStatement("SELECT " + parsed + " ->> 'error', " + parsed
            + " ->> 'error_message'")) {
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return "true".equals(rs.getString(1)) ? firstLine(rs.getString(2)) : null;
          }
        }
      }
      List<String> cols = new ArrayList<>();
      for (String c : columns) {
        cols.add("NULL::VARCHAR AS " + SqlMapping.q(c));
      }
      String from = cols.isEmpty() ? "" : " FROM (SELECT " + String.join(", ", cols) + ")";
      // One expression only: the parentheses keep a predicate from ending the SELECT and adding clauses.
      try (PreparedStatement ps = db.prepareStatement("SELECT (" + predicate + ") AS ok" + from + " LIMIT 0")) {
        int type = ps.getMetaData().getColumnType(1);
        if (type != Types.BOOLEAN) {
          return "is not a condition: it gives " + ps.getMetaData().getColumnTypeName(1).toLowerCase(Locale.ROOT)
              + ", not true or false";
        }
      }
      return null;
    } catch (SQLException e) {
      String m = firstLine(String.valueOf(e.getMessage()).replaceFirst("^[A-Za-z ]+ Error: ", ""));
      if (columns != null && m.startsWith("Referenced column")) {
        m += " (the source's columns: " + String.join(", ", columns) + ")";
      }
      return m;
    }
  }

  private static String firstLine(String m) {
    if (m == null) {
      return "is not a SQL expression";
    }
    int nl = m.indexOf('\n');
    return nl < 0 ? m : m.substring(0, nl);
  }

  /** The columns a predicate may read: each that appears in it as a word (more than needed does no harm). */
  static List<String> columnsNamed(String predicate, Collection<String> columns) {
    List<String> out = new ArrayList<>();
    for (String c : columns) {
      if (Pattern.compile("(?<![A-Za-z0-9_])" + Pattern.quote(c) + "(?![A-Za-z0-9_])", Pattern.CASE_INSENSITIVE)
          .matcher(predicate).find()) {
        out.add(c);
      }
    }
    return out;
  }

  /** Null when HAPI's FHIRPath engine (R4) parses the expression; else its reason. */
  static String checkFhirPath(String expression) {
    try {
      FhirContext.forR4Cached().newFhirPath().parse(expression);
      return null;
    } catch (Exception e) {
      return "is not a FHIRPath expression: " + firstLine(String.valueOf(e.getMessage()));
    }
  }
}
