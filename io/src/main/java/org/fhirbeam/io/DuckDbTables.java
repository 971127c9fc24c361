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
 * Loads a run's results into the DuckDB database file in one {@link Transaction}, through DuckDB's bulk readers (no
 * row-by-row inserts): resource tables from the NDJSON files the pipeline wrote, copies of the source rows, views
 * and the statements of the quality figures. The driver does this, whatever the runner, since a DuckDB file has one
 * writer. A failure rolls everything back, so the database never holds half a run.
 */
public final class DuckDbTables {

  /** A column computed from each resource: a JSON path ({@code $} for the whole resource) cast to a type. */
  public record Column(String name, String jsonPath, String sqlType) implements java.io.Serializable {}

  /**
   * How a resource type's Parquet files are laid out: its columns ({@code id}, {@code last_updated}, the source key
   * when there is one, the typed columns, {@code resource}), and the source column the key was taken from, which the
   * files name in their metadata.
   */
  public record ParquetLayout(List<Column> columns, String sourceKeyColumn) implements java.io.Serializable {
    public ParquetLayout {
      columns = List.copyOf(columns);
    }

    /**
     * The statement that writes the resources of {@code relation} (a query with a {@code json} column) to a file,
     * its rows in the order of {@code orderBy} (an {@code ORDER BY} clause over the file's columns, or empty).
     */
    public String copy(String relation, String orderBy, String target) {
      return "COPY (" + select(columns, relation) + orderBy + ") TO " + DuckDb.literal(target) + " (FORMAT parquet"
          + (sourceKeyColumn == null ? "" : ", KV_METADATA {source_key_column: " + DuckDb.literal(sourceKeyColumn)
              + "}") + ")";
    }

    /**
     * Writes the resources of NDJSON part {@code ndjson} (one per line) to Parquet file {@code target} through
     * {@code db}, and fails unless the file holds the part's {@code lines} rows.
     */
    public void writePart(java.sql.Connection db, String ndjson, String target, long lines)
        throws java.sql.SQLException {
      try (java.sql.Statement st = db.createStatement()) {
        long rows = st.executeLargeUpdate(copy("SELECT json FROM " + ndjsonObjects(List.of(ndjson)), "", target));
        if (rows != lines) {
          throw new IllegalStateException("the Parquet file " + target + " holds " + rows + " resources, and its part "
              + lines);
        }
      }
    }
  }

  /**
   * A table filled from NDJSON files, one row per line, with a {@code resource} column (path {@code $}) among its
   * columns when {@code mode} is not {@link WriteMode#OVERWRITE}. {@code mode} says what happens to the rows it
   * already holds.
   */
  public record JsonTable(String schema, String table, List<Column> columns, List<String> files, WriteMode mode) {
    public JsonTable {
      columns = List.copyOf(columns);
      files = List.copyOf(files);
    }

    public JsonTable(String schema, String table, List<Column> columns, List<String> files) {
      this(schema, table, columns, files, WriteMode.OVERWRITE);
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
   * Starts the transaction that replaces a run's tables, creating {@code schemas} in it. Nothing it does is visible
   * until {@link Transaction#commit}; closing it uncommitted (or a failure, or a killed process) rolls it all back.
   */
  public static Transaction begin(Connection db, List<String> schemas) {
    Transaction tx = new Transaction(db);
    tx.step("starting the transaction", null, st -> {
      st.execute("BEGIN TRANSACTION");
      tx.open = true;
      for (String schema : schemas) {
        st.execute("CREATE SCHEMA IF NOT EXISTS " + DuckDb.identifier(schema));
      }
    });
    return tx;
  }

  /**
   * One loading transaction on one connection. Its steps may run on different threads, one at a time: a step waits
   * for the one running (the raw copy can run beside the pipeline while the driver waits for it). Each table's rows
   * and each step's seconds are kept, by name.
   */
  public static final class Transaction implements AutoCloseable {
    private final Connection db;
    private final Map<String, Long> counts = new LinkedHashMap<>();
    private final Map<String, Double> seconds = new LinkedHashMap<>();
    private boolean open;
    private boolean committed;
    private volatile boolean cancelled;
    private volatile Statement running;

    private Transaction(Connection db) {
      this.db = db;
    }

    /** What a step runs on the transaction's connection. */
    private interface Work {
      void run(Statement st) throws SQLException;
    }

    /** Runs one step, timed under {@code name} (not timed when null); {@code what} names it in errors. */
    private synchronized void step(String what, String name, Work work) {
      if (committed) {
        throw new IllegalStateException("the transaction has committed");
      }
      if (cancelled) {
        throw new IllegalStateException("loading results into DuckDB was cancelled before " + what);
      }
      long start = System.nanoTime();
      try (Statement st = db.createStatement()) {
        running = st;
        if (cancelled) {
          // cancel() may have found no statement running just before this one began
          throw new IllegalStateException("loading results into DuckDB was cancelled before " + what);
        }
        work.run(st);
      } catch (SQLException e) {
        throw DuckDb.failure("loading results into DuckDB failed at " + what, e);
      } finally {
        running = null;
      }
      if (name != null) {
        seconds.merge(name, (System.nanoTime() - start) / 1e9, Double::sum);
      }
    }

    /** Drops tables ({@code schema.table}) that this run no longer writes. */
    public void drop(List<String> tables) {
      for (String t : tables) {
        int dot = t.indexOf('.');
        step("dropping " + t, null, st -> st.execute("DROP TABLE IF EXISTS " + name(t.substring(0, dot),
            t.substring(dot + 1))));
      }
    }

    /** Replaces a table by the union of its queries. */
    public void create(QueryTable t) {
      String table = t.schema() + "." + t.table();
      step("table " + table, table, st -> {
        List<String> parts = new ArrayList<>();
        for (String q : t.queries()) {
          parts.add("(" + q + ")");
        }
        st.execute("CREATE OR REPLACE TABLE " + name(t.schema(), t.table()) + " AS "
            + String.join(" UNION ALL BY NAME ", parts));
        counts.put(table, count(st, t.schema(), t.table()));
      });
    }

    /** Fills a table from its NDJSON files, as its mode says. */
    public void load(JsonTable t) {
      String table = t.schema() + "." + t.table();
      step("table " + table, table, st -> {
        if (t.mode() == WriteMode.APPEND && DuckDb.tableExists(db, t.schema(), t.table())) {
          // A table an earlier run created gains the columns mappings have added since, filled from its resources
          // (an upsert rebuilds the table from them anyway).
          for (String statement : addedColumns(t, DuckDb.columns(db, t.schema(), t.table()))) {
            st.execute(statement);
          }
        }
        for (String statement : jsonTableStatements(t)) {
          st.execute(statement);
        }
        counts.put(table, count(st, t.schema(), t.table()));
      });
    }

    /**
     * Replaces {@code schema.name} by a view of the run's own making; a table of that name (written by an earlier
     * version) goes first.
     */
    public void view(String schema, String name, String sql) {
      String view = schema + "." + name;
      step("view " + view, null, st -> {
        if (DuckDb.tableExists(db, schema, name)) {
          st.execute("DROP TABLE " + name(schema, name));
        }
        st.execute("CREATE OR REPLACE VIEW " + name(schema, name) + " AS " + sql);
        counts.put(view, count(st, schema, name));
      });
    }

    /** The views of {@code schema}, as the transaction sees them: names and statements, no locations. */
    public List<View> views(String schema) {
      List<View> out = new ArrayList<>();
      step("reading the views of " + schema, null, st -> {
        try (java.sql.PreparedStatement q = db.prepareStatement(
            "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = ? AND NOT internal ORDER BY view_name")) {
          q.setString(1, schema);
          try (ResultSet rs = q.executeQuery()) {
            while (rs.next()) {
              out.add(new View(rs.getString(1), rs.getString(2), null));
            }
          }
        }
      });
      return out;
    }

    /** Drops a view. */
    public void dropView(String schema, String name) {
      step("dropping view " + schema + "." + name, null, st -> st.execute("DROP VIEW IF EXISTS " + name(schema, name)));
    }

    /** Replaces a view the configuration declares; an error names where it was declared. */
    public void userView(View v) {
      step("view " + v.name(), null, st -> {
        try {
          st.execute("CREATE OR REPLACE VIEW " + DuckDb.identifier(v.name()) + " AS " + v.sql());
          st.executeQuery("SELECT * FROM " + DuckDb.identifier(v.name()) + " LIMIT 0").close();
        } catch (SQLException e) {
          throw new InputException(v.location() + ": view " + v.name() + ": " + DuckDb.firstLine(e.getMessage()), e);
        }
      });
    }

    /** Runs one statement, timed under {@code name} (steps of one name add up). */
    public void run(String name, String sql) {
      // The statement's start names it in errors (no record values are in it).
      step("the statement " + (sql.length() > 120 ? sql.substring(0, 120) + "..." : sql), name, st -> st.execute(sql));
    }

    /** The rows of each table filled so far, {@code schema.table} to rows. */
    public synchronized Map<String, Long> counts() {
      return Map.copyOf(counts);
    }

    /** The seconds each timed step took, by name, in the order they first ran. */
    public synchronized Map<String, Double> seconds() {
      return new LinkedHashMap<>(seconds);
    }

    /**
     * Records the run and commits. {@code beforeCommit} sees the table counts just before the commit; if it throws,
     * nothing commits.
     */
    public void commit(String runId, java.util.function.Consumer<Map<String, Long>> beforeCommit) {
      step("the commit", "commit", st -> {
        // The run is recorded in the same transaction, so after a crash the next run can tell whether it committed.
        st.execute("CREATE TABLE IF NOT EXISTS " + RUNS + " (run_id VARCHAR PRIMARY KEY, committed_at TIMESTAMPTZ)");
        st.execute("INSERT INTO " + RUNS + " VALUES (" + DuckDb.literal(runId) + ", now())");
        beforeCommit.accept(Map.copyOf(counts));
        st.execute("COMMIT");
        committed = true;
      });
    }

    /** Stops a step running on another thread, if any; that step, and every later one, then fails. */
    public void cancel() {
      cancelled = true;
      Statement st = running;
      if (st != null) {
        try {
          st.cancel();
        } catch (SQLException e) {
          // it ended meanwhile
        }
      }
    }

    /** Rolls back unless committed. */
    @Override
    public synchronized void close() {
      if (!open || committed) {
        return;
      }
      open = false;
      // DuckDB closes a statement that failed: roll back through a fresh one.
      try (Statement rollback = db.createStatement()) {
        rollback.execute("ROLLBACK");
      } catch (SQLException e) {
        throw DuckDb.failure("rolling back the DuckDB load failed", e);
      }
    }
  }

  /**
   * For a table that exists: the statement that adds the columns of {@code t} it lacks, filled from the JSON of the
   * resources it holds ({@code existing}: its column names), or none. The table is rebuilt in one statement: DuckDB
   * (1.5) cannot commit a transaction that added two columns and updated them.
   */
  static List<String> addedColumns(JsonTable t, List<String> existing) {
    List<ElementPath> paths = new ArrayList<>();
    List<String> added = new ArrayList<>();
    for (Column c : t.columns()) {
      if (!existing.contains(c.name()) && !c.jsonPath().equals("$")) {
        ElementPath path = ElementPath.ofJsonPath(c.jsonPath());
        paths.add(path);
        added.add(value(c, path) + " AS " + DuckDb.identifier(c.name()));
      }
    }
    if (added.isEmpty()) {
      return List.of();
    }
    String target = name(t.schema(), t.table());
    return List.of("CREATE OR REPLACE TABLE " + target + " AS SELECT * EXCLUDE (\"#v\"), " + String.join(", ", added)
        + " FROM (SELECT *, json_transform(" + DuckDb.identifier("resource") + ", " + ElementPath.structType(paths)
        + ") AS \"#v\" FROM " + target + ")");
  }

  /** A column's value in the struct {@code "#v"} of the values wanted, cast to its type. */
  private static String value(Column c, ElementPath path) {
    String expr = path.sql("\"#v\"");
    return c.sqlType().equals("VARCHAR") ? expr : "TRY_CAST(" + expr + " AS " + c.sqlType() + ")";
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
      case UPSERT -> List.of("CREATE TABLE IF NOT EXISTS" + createEmpty, "CREATE OR REPLACE TABLE " + target + " AS "
              + select(columns, upsertQuery("SELECT resource AS json FROM " + target,
                  incoming == null ? NO_RESOURCES : incoming)) + " ORDER BY 1");
    };
  }

  /** A query with a {@code json} column and no rows. */
  public static final String NO_RESOURCES = "SELECT CAST(NULL AS JSON) AS json WHERE false";

  /** The rows of Parquet {@code files} (paths), their columns matched by name: {@code read_parquet([...])}. */
  public static String parquetFiles(List<String> files) {
    List<String> quoted = new ArrayList<>();
    for (String f : files) {
      quoted.add(DuckDb.literal(f));
    }
    return "read_parquet([" + String.join(", ", quoted) + "], union_by_name = true)";
  }

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
   * Each resource is parsed once, into a DuckDB struct of just the values wanted ({@link ElementPath#structType}):
   * one {@code json_extract_string} call per column parsed it once per column, took twice as long, and ran out of a
   * 1 GB memory limit on the 49 columns of 40,000 Synthea Patients; one call with a list of paths took half as long
   * again as the struct (docs/BENCHMARKS.md).
   */
  public static String select(List<Column> columns, String relation) {
    List<ElementPath> paths = new ArrayList<>();
    List<String> select = new ArrayList<>();
    for (Column c : columns) {
      String expr;
      if (c.jsonPath().equals("$")) {
        expr = c.sqlType().equals("VARCHAR") ? "json" : "CAST(json AS " + c.sqlType() + ")";
      } else {
        ElementPath path = ElementPath.ofJsonPath(c.jsonPath());
        paths.add(path);
        expr = value(c, path);
      }
      select.add(expr + " AS " + DuckDb.identifier(c.name()));
    }
    String values = paths.isEmpty() ? "" : ", json_transform(json, " + ElementPath.structType(paths) + ") AS \"#v\"";
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
