package org.fhirbeam.io;

import java.io.Serializable;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Properties;
import org.duckdb.DuckDBAppender;
import org.duckdb.DuckDBConnection;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.JdbcSource;

/**
 * One partition of a JDBC source, read where the task runs: the rows are streamed from the database (a cursor,
 * {@link #FETCH} rows at a time) into a table of text columns in the task's DuckDB through DuckDB's appender,
 * the bulk path, and the mapping then reads that table like a file.
 *
 * @param source the source's settings (URL, user, where the password is)
 * @param select this partition's SELECT
 * @param columns the columns, as planned
 */
public record JdbcRead(JdbcSource source, String select, List<String> columns) implements Serializable {
  static final int FETCH = 10_000;

  public JdbcRead {
    columns = List.copyOf(columns);
  }

  /** A connection to the source's database, the password read from its environment variable or file. */
  static Connection connect(JdbcSource source, String sourceName) {
    Properties props = new Properties();
    if (source.user() != null) {
      props.setProperty("user", source.user());
    }
    if (source.url().startsWith("jdbc:duckdb:")) {
      // A DuckDB file that is only a source is opened read-only: several tasks read it at once, nothing writes.
      props.setProperty("duckdb.read_only", "true");
    }
    String password = source.password(System.getenv());
    if (password != null) {
      props.setProperty("password", password);
    }
    try {
      return DriverManager.getConnection(source.url(), props);
    } catch (SQLException e) {
      // Drivers' connection errors name the host, the user or the database, never row values.
      throw new InputException("source " + sourceName + ": cannot connect to " + source.describe() + ": "
          + DuckDb.firstLine(e.getMessage()), e);
    }
  }

  /** Copies this partition's rows into table {@code table} of {@code db} and returns how many there were. */
  long copyInto(Connection db, String sourceName, String table) throws SQLException {
    List<String> defs = columns.stream().map(c -> DuckDb.identifier(c) + " VARCHAR").toList();
    try (Statement st = db.createStatement()) {
      st.execute("CREATE OR REPLACE TABLE " + DuckDb.identifier(table) + " (" + String.join(", ", defs) + ")");
    }
    long rows = 0;
    try (Connection c = connect(source, sourceName)) {
      c.setAutoCommit(false); // PostgreSQL streams with a cursor only inside a transaction
      try (PreparedStatement ps = c.prepareStatement(select, ResultSet.TYPE_FORWARD_ONLY, ResultSet.CONCUR_READ_ONLY)) {
        ps.setFetchSize(FETCH);
        try (ResultSet rs = ps.executeQuery();
            DuckDBAppender app = db.unwrap(DuckDBConnection.class).createAppender(DuckDBConnection.DEFAULT_SCHEMA,
                table)) {
          int n = columns.size();
          while (rs.next()) {
            app.beginRow();
            for (int i = 1; i <= n; i++) {
              String v = rs.getString(i);
              if (v == null) {
                app.appendNull();
              } else {
                app.append(v);
              }
            }
            app.endRow();
            rows++;
          }
        }
      } finally {
        c.rollback();
      }
    } catch (SQLException e) {
      // The database's message can quote row values: only its SQL state is kept, and the cause is not chained.
      throw new IllegalStateException("source " + sourceName + ": reading " + source.describe() + " failed (SQL state "
          + e.getSQLState() + ")");
    }
    return rows;
  }
}
