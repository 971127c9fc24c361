package org.fhirbeam.io;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.InputException;

/** Opens DuckDB connections with the run's settings, and quotes SQL literals and identifiers. */
public final class DuckDb {
  private DuckDb() {}

  /**
   * A private in-memory database, as used by workers to read files, with the run's settings and then each of
   * {@code statements} (a {@code SET} of this use's own).
   */
  public static Connection openInMemory(DuckDbSettings settings, String... statements) throws SQLException {
    Connection c = DriverManager.getConnection("jdbc:duckdb:");
    try {
      configure(c, settings);
      try (Statement st = c.createStatement()) {
        for (String s : statements) {
          st.execute(s);
        }
      }
      return c;
    } catch (SQLException | RuntimeException e) {
      closeQuietly(c);
      throw e;
    }
  }

  /**
   * Opens the run's database file. A file that is locked by another process, or is not a DuckDB database,
   * is an {@link InputException} naming the path.
   */
  public static Connection openFile(String path, DuckDbSettings settings, boolean readOnly) {
    Properties props = new Properties();
    if (readOnly) {
      props.setProperty("duckdb.read_only", "true");
    }
    Connection c;
    try {
      c = DriverManager.getConnection("jdbc:duckdb:" + path, props);
    } catch (SQLException e) {
      throw new InputException(describeOpenFailure(path, e.getMessage()), e);
    }
    try {
      return configure(c, settings);
    } catch (SQLException e) {
      closeQuietly(c);
      throw new InputException("DuckDB database " + path + ": " + firstLine(e.getMessage()), e);
    } catch (RuntimeException e) {
      closeQuietly(c);
      throw e;
    }
  }

  static String describeOpenFailure(String path, String message) {
    String m = message == null ? "" : message;
    if (m.contains("Could not set lock") || m.contains("Conflicting lock")) {
      return "DuckDB database " + path + " is locked by another process; close it there or use another file";
    }
    if (m.contains("not a valid DuckDB database") || m.contains("Invalid Input Error") || m.contains("corrupt")) {
      return "DuckDB database " + path + " is not a readable DuckDB database file";
    }
    return "DuckDB database " + path + " cannot be opened: " + firstLine(m);
  }

  private static Connection configure(Connection c, DuckDbSettings settings) throws SQLException {
    try (Statement st = c.createStatement()) {
      if (settings.memoryLimit() != null) {
        st.execute("SET memory_limit = " + literal(settings.memoryLimit()));
      }
      if (settings.threads() > 0) {
        st.execute("SET threads = " + settings.threads());
      }
      st.execute("SET preserve_insertion_order = " + settings.preserveInsertionOrder());
      // Timestamps with time zone become text the same way on every machine.
      st.execute("SET TimeZone = 'UTC'");
      if (settings.tempDirectory() != null) {
        st.execute("SET temp_directory = " + literal(settings.tempDirectory()));
      }
      // Never download an extension: an air-gapped hospital cannot, and a run must not depend on the network.
      st.execute("SET autoinstall_known_extensions = false");
      st.execute("SET autoload_known_extensions = false");
      if (settings.extensionDirectory() != null) {
        st.execute("SET extension_directory = " + literal(settings.extensionDirectory()));
      }
      for (String ext : settings.extensions()) {
        try {
          st.execute("LOAD " + identifier(ext));
        } catch (SQLException e) {
          throw new InputException(missingExtension(c, ext, settings.extensionDirectory()), e);
        }
      }
    }
    return c;
  }

  /** What to do about an extension that is neither built in nor installed locally. */
  private static String missingExtension(Connection c, String ext, String configuredDirectory) {
    String version = "v?";
    String platform = "?";
    String directory = configuredDirectory;
    // DuckDB closes a statement whose query failed: ask through a new one.
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT version(), (SELECT platform FROM pragma_platform()),"
        + " current_setting('extension_directory')")) {
      if (rs.next()) {
        version = rs.getString(1);
        platform = rs.getString(2);
        if (directory == null || directory.isBlank()) {
          directory = rs.getString(3);
        }
      }
    } catch (SQLException ignored) {
      // the message below still names the extension and what to do
    }
    if (directory == null || directory.isBlank()) {
      directory = System.getProperty("user.home") + "/.duckdb/extensions";
    }
    return "DuckDB extension '" + ext + "' (duckdb.extensions) is not built into DuckDB " + version
        + " and is not installed in " + directory + "; runs never download extensions. On a machine with network"
        + " access run INSTALL " + ext + " in DuckDB " + version + " and copy " + ext + ".duckdb_extension into "
        + directory + "/" + version + "/" + platform + "/ here (or point duckdb.extension_directory at a folder"
        + " laid out that way), or remove it from duckdb.extensions (built in: "
        + String.join(", ", DuckDbSettings.BUILT_IN) + ")";
  }

  /** A SQL string literal. */
  public static String literal(String s) {
    return "'" + s.replace("'", "''") + "'";
  }

  /** A SQL identifier. */
  public static String identifier(String s) {
    return "\"" + s.replace("\"", "\"\"") + "\"";
  }

  /**
   * An error from a query over data, safe to log: DuckDB's messages can quote the values of the row they failed
   * on, so only the error's category (e.g. {@code Conversion Error}) and a line number, when DuckDB gives one,
   * are kept (binder, parser and catalog errors, which are about the query's text, keep their message); the
   * cause is not chained.
   */
  public static IllegalStateException failure(String what, SQLException e) {
    String m = firstLine(e.getMessage());
    int colon = m.indexOf(':');
    String category = colon > 0 && colon < 40 ? m.substring(0, colon) : "DuckDB error";
    java.util.regex.Matcher line = java.util.regex.Pattern.compile("(?i)\\bline:? (\\d+)").matcher(
        String.valueOf(e.getMessage()));
    if (category.equals("Binder Error") || category.equals("Parser Error") || category.equals("Catalog Error")) {
      // About the query's text, never a row's values: the whole line helps and is safe.
      return new IllegalStateException(what + ": " + m);
    }
    return new IllegalStateException(what + ": " + category + (line.find() ? " at line " + line.group(1) : ""));
  }

  /** Whether the database has the table {@code schema.table}. */
  public static boolean tableExists(Connection db, String schema, String table) throws SQLException {
    try (java.sql.PreparedStatement st = db.prepareStatement(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?")) {
      st.setString(1, schema);
      st.setString(2, table);
      try (ResultSet rs = st.executeQuery()) {
        rs.next();
        return rs.getLong(1) > 0;
      }
    }
  }

  /** The rows of table {@code schema.table}; 0 when it does not exist (yet). */
  public static long rows(Connection db, String schema, String table) {
    try {
      if (!tableExists(db, schema, table)) {
        return 0;
      }
      try (Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT count(*) FROM " + identifier(schema) + "."
              + identifier(table))) {
        rs.next();
        return rs.getLong(1);
      }
    } catch (SQLException e) {
      throw failure("counting the rows of " + schema + "." + table + " failed", e);
    }
  }

  /** The column names of a table, in order. */
  public static List<String> columns(Connection db, String schema, String table) throws SQLException {
    List<String> out = new ArrayList<>();
    try (java.sql.PreparedStatement st = db.prepareStatement("SELECT column_name FROM duckdb_columns()"
        + " WHERE schema_name = ? AND table_name = ? ORDER BY column_index")) {
      st.setString(1, schema);
      st.setString(2, table);
      try (ResultSet rs = st.executeQuery()) {
        while (rs.next()) {
          out.add(rs.getString(1));
        }
      }
    }
    return out;
  }

  /**
   * The line of a DuckDB error message that says what went wrong. DuckDB's JDBC driver sometimes puts a generic
   * "pending query result" line first and the real error on a later line starting with {@code Error: }.
   */
  public static String firstLine(String s) {
    if (s == null) {
      return "";
    }
    String[] lines = s.split("\n");
    if (lines[0].contains("unsuccessful or closed pending query result")) {
      for (String line : lines) {
        if (line.startsWith("Error: ")) {
          return line.substring("Error: ".length()).trim();
        }
      }
    }
    return lines[0].trim();
  }

  /** Closes {@code c} after a failure, ignoring what closing throws: the first failure is the one to report. */
  public static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception ignored) {
      // closing after a failure: the first failure is what the user needs to see
    }
  }
}
