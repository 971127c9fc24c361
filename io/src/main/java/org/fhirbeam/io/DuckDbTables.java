package org.fhirbeam.io;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.WriteMode;

/**
 * Loads a run's results into the DuckDB database file in one transaction, through DuckDB's bulk readers (no
 * row-by-row inserts): resource tables from the NDJSON files the pipeline wrote, copies of the source rows,
 * and user views. The driver does this after the pipeline, whatever the runner, since a DuckDB file has one
 * writer. A failure rolls everything back, so the database never holds half a run.
 */
public final class DuckDbTables {

  /** A column computed from each resource: a JSON path ({@code $} for the whole resource) cast to a type. */
  public record Column(String name, String jsonPath, String sqlType) {}

  /**
   * A table filled from NDJSON files, one row per line. {@code mode} says what happens to the rows it already
   * holds; in {@link WriteMode#UPSERT} a table with a {@code resourcesTable} (a table already upserted in the same
   * transaction, with a {@code resource} column) is rebuilt from that table's resources instead of the files.
   */
  public record JsonTable(String schema, String table, List<Column> columns, List<String> files, WriteMode mode,
      String resourcesTable) {
    public JsonTable {
      columns = List.copyOf(columns);
      files = List.copyOf(files);
    }

    public JsonTable(String schema, String table, List<Column> columns, List<String> files) {
      this(schema, table, columns, files, WriteMode.OVERWRITE, null);
    }
  }

  /** A table filled by the union (aligned by column name) of SELECT queries. */
  public record QueryTable(String schema, String table, List<String> queries) {
    public QueryTable {
      queries = List.copyOf(queries);
    }
  }

  /** A view, with where it was declared for error messages. */
  public record View(String name, String sql, String location) {}

  /** The table of committed runs. */
  static final String RUNS = "main.fhirbeam_runs";

  private DuckDbTables() {}

  /** Whether a run committed its tables to this database. */
  public static boolean committed(Connection db, String runId) {
    try {
      if (!DuckDb.tableExists(db, "main", "fhirbeam_runs")) {
        return false;
      }
    } catch (SQLException e) {
      throw DuckDb.failure("reading the run history failed", e);
    }
    try (Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT count(*) FROM " + RUNS + " WHERE run_id = " + DuckDb.literal(runId))) {
      rs.next();
      return rs.getLong(1) > 0;
    } catch (SQLException e) {
      throw DuckDb.failure("reading the run history failed", e);
    }
  }

  /**
   * Replaces the given tables and views in one transaction and returns the row count of each table
   * ({@code schema.table} to rows). {@code afterLoad} statements (the quality figures) run after the tables and
   * views exist, in the same transaction. {@code beforeCommit} sees the counts just before the commit; if it
   * throws, the transaction rolls back.
   */
  public static Map<String, Long> replace(Connection db, String runId, List<String> schemas,
      List<JsonTable> jsonTables, List<QueryTable> queryTables, List<View> views, List<String> dropTables,
      List<String> afterLoad, java.util.function.Consumer<Map<String, Long>> beforeCommit) {
    Map<String, Long> counts = new LinkedHashMap<>();
    String step = "starting the transaction";
    try (Statement st = db.createStatement()) {
      st.execute("BEGIN TRANSACTION");
      try {
        for (String schema : schemas) {
          st.execute("CREATE SCHEMA IF NOT EXISTS " + DuckDb.identifier(schema));
        }
        for (String t : dropTables) {
          int dot = t.indexOf('.');
          st.execute("DROP TABLE IF EXISTS " + name(t.substring(0, dot), t.substring(dot + 1)));
        }
        for (QueryTable t : queryTables) {
          step = "table " + t.schema() + "." + t.table();
          List<String> parts = new ArrayList<>();
          for (String q : t.queries()) {
            parts.add("(" + q + ")");
          }
          st.execute("CREATE OR REPLACE TABLE " + name(t.schema(), t.table()) + " AS "
              + String.join(" UNION ALL BY NAME ", parts));
          counts.put(t.schema() + "." + t.table(), count(st, t.schema(), t.table()));
        }
        for (JsonTable t : jsonTables) {
          step = "table " + t.schema() + "." + t.table();
          for (String statement : jsonTableStatements(t)) {
            st.execute(statement);
          }
          counts.put(t.schema() + "." + t.table(), count(st, t.schema(), t.table()));
        }
        for (View v : views) {
          try {
            st.execute("CREATE OR REPLACE VIEW " + DuckDb.identifier(v.name()) + " AS " + v.sql());
            st.executeQuery("SELECT * FROM " + DuckDb.identifier(v.name()) + " LIMIT 0").close();
          } catch (SQLException e) {
            throw new InputException(v.location() + ": view " + v.name() + ": " + DuckDb.firstLine(e.getMessage()), e);
          }
        }
        for (String statement : afterLoad) {
          // The statement's start names the figure (no record values are in it).
          step = "the statement " + (statement.length() > 120 ? statement.substring(0, 120) + "..." : statement);
          st.execute(statement);
        }
        step = "the commit";
        // The run is recorded in the same transaction, so after a crash the next run can tell whether it committed.
        st.execute("CREATE TABLE IF NOT EXISTS " + RUNS + " (run_id VARCHAR PRIMARY KEY, committed_at TIMESTAMPTZ)");
        st.execute("INSERT INTO " + RUNS + " VALUES (" + DuckDb.literal(runId) + ", now())");
        beforeCommit.accept(counts);
        st.execute("COMMIT");
      } catch (SQLException | RuntimeException e) {
        // DuckDB closes a statement that failed: roll back through a fresh one so the first error is reported.
        try (Statement rollback = db.createStatement()) {
          rollback.execute("ROLLBACK");
        } catch (SQLException rollbackFailure) {
          e.addSuppressed(rollbackFailure);
        }
        throw e;
      }
    } catch (SQLException e) {
      throw DuckDb.failure("loading results into DuckDB failed at " + step, e);
    }
    return counts;
  }

  /** The statements that fill a table from its files, as its mode says. */
  static List<String> jsonTableStatements(JsonTable t) {
    String target = name(t.schema(), t.table());
    List<String> empty = new ArrayList<>();
    for (Column c : t.columns()) {
      empty.add(DuckDb.identifier(c.name()) + " " + c.sqlType());
    }
    String createEmpty = " " + target + " (" + String.join(", ", empty) + ")";
    String incoming = t.files().isEmpty() ? null : "SELECT json FROM " + ndjsonObjects(t.files());
    List<Column> columns = t.columns();
    return switch (t.mode()) {
      case OVERWRITE -> List.of(incoming == null ? "CREATE OR REPLACE TABLE" + createEmpty
          : "CREATE OR REPLACE TABLE " + target + " AS " + select(columns, incoming));
      case APPEND -> incoming == null ? List.of("CREATE TABLE IF NOT EXISTS" + createEmpty)
          : List.of("CREATE TABLE IF NOT EXISTS" + createEmpty,
              "INSERT INTO " + target + " BY NAME " + select(columns, incoming));
      case UPSERT -> t.resourcesTable() != null
          ? List.of("CREATE OR REPLACE TABLE " + target + " AS " + select(columns, "SELECT resource AS json FROM "
              + t.resourcesTable()))
          : List.of("CREATE TABLE IF NOT EXISTS" + createEmpty, "CREATE OR REPLACE TABLE " + target + " AS "
              + select(columns, upsertQuery("SELECT resource AS json FROM " + target,
                  incoming == null ? NO_RESOURCES : incoming)) + " ORDER BY 1");
    };
  }

  /** A query with a {@code json} column and no rows. */
  public static final String NO_RESOURCES = "SELECT CAST(NULL AS JSON) AS json WHERE false";

  /** DuckDB's reader of NDJSON files (plain or {@code .gz}), one {@code json} value per line. */
  public static String ndjsonObjects(List<String> files) {
    List<String> quoted = new ArrayList<>();
    for (String f : files) {
      quoted.add(DuckDb.literal(f));
    }
    return "read_ndjson_objects([" + String.join(", ", quoted) + "])";
  }

  /**
   * A SELECT of the columns computed from the {@code json} column (one resource per row) of {@code relation}.
   * All paths are extracted in one call, which parses each resource once: one call per column parsed it once per
   * column, took twice as long, and ran out of a 1 GB memory limit on the 49 columns of 40,000 Synthea Patients.
   */
  public static String select(List<Column> columns, String relation) {
    List<String> paths = new ArrayList<>();
    List<String> select = new ArrayList<>();
    for (Column c : columns) {
      String expr;
      if (c.jsonPath().equals("$")) {
        expr = c.sqlType().equals("VARCHAR") ? "json" : "CAST(json AS " + c.sqlType() + ")";
      } else {
        paths.add(DuckDb.literal(c.jsonPath()));
        expr = "\"#v\"[" + paths.size() + "]";
        if (!c.sqlType().equals("VARCHAR")) {
          expr = "TRY_CAST(" + expr + " AS " + c.sqlType() + ")";
        }
      }
      select.add(expr + " AS " + DuckDb.identifier(c.name()));
    }
    String values = paths.isEmpty() ? "" : ", json_extract_string(json, [" + String.join(", ", paths) + "]) AS \"#v\"";
    return "SELECT " + String.join(", ", select) + " FROM (SELECT json" + values + " FROM (" + relation + "))";
  }

  /**
   * Merges two queries of resources of one type (each with a {@code json} column) into one resource per id: of
   * the previous and the incoming one, the one with the newer {@code meta.lastUpdated} wins; when they are equal
   * or either has none, the incoming one. Several resources with one id on the same side are first reduced to
   * the one with the newest {@code meta.lastUpdated} (then the smallest text, so the result does not depend on
   * the order of the files).
   */
  public static String upsertQuery(String previous, String incoming) {
    return "SELECT CASE WHEN n.id IS NULL THEN o.json WHEN o.id IS NULL THEN n.json WHEN o.last_updated >"
        + " n.last_updated THEN o.json ELSE n.json END AS json FROM (" + newestPerId(previous) + ") o FULL OUTER JOIN ("
        + newestPerId(incoming) + ") n ON o.id = n.id";
  }

  private static String newestPerId(String query) {
    return "SELECT json, id, last_updated FROM (SELECT json, json_extract_string(json, '$.id') AS id,"
        + " TRY_CAST(json_extract_string(json, '$.meta.lastUpdated') AS TIMESTAMPTZ) AS last_updated FROM (" + query
        + ")) QUALIFY row_number() OVER (PARTITION BY id ORDER BY last_updated DESC NULLS LAST,"
        + " CAST(json AS VARCHAR)) = 1";
  }

  private static long count(Statement st, String schema, String table) throws SQLException {
    try (ResultSet rs = st.executeQuery("SELECT count(*) FROM " + name(schema, table))) {
      rs.next();
      return rs.getLong(1);
    }
  }

  private static String name(String schema, String table) {
    return DuckDb.identifier(schema) + "." + DuckDb.identifier(table);
  }
}
