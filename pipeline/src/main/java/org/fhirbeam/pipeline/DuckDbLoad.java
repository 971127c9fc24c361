package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.function.Consumer;
import org.duckdb.DuckDBConnection;
import org.fhirbeam.config.QualitySettings.DuplicateIds;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * Loads one run into the DuckDB database, in one transaction that starts with the pipeline: the copies of the
 * source rows ({@code raw_data}) depend on the sources alone, so they are written while the pipeline maps; the
 * resource tables ({@code fhir_resources}, one parse of the committed NDJSON, every flat column of the type's
 * mappings typed beside the JSON), the {@code transformed_data} views of them, the configured views and the quality
 * figures follow when the run's files are counted. Nothing is visible before the commit; a failure, or a killed
 * process, leaves the database as it was.
 */
final class DuckDbLoad implements AutoCloseable {
  static final List<String> SCHEMAS = List.of("raw_data", "transformed_data", "fhir_resources", "quality");

  private final JobPlan plan;
  private final Connection db;
  private final String runId;
  private final DuckDbTables.Transaction tx;
  private final FutureTask<Void> rawCopy;

  private DuckDbLoad(JobPlan plan, Connection db, String runId) {
    this.plan = plan;
    this.db = db;
    this.runId = runId;
    this.tx = DuckDbTables.begin(db, SCHEMAS);
    this.rawCopy = new FutureTask<>(this::copyRawRows, null);
  }

  /** Begins the run's transaction and starts copying the source rows beside the pipeline. */
  static DuckDbLoad start(JobPlan plan, Connection db, String runId) {
    DuckDbLoad load = new DuckDbLoad(plan, db, runId);
    Thread t = new Thread(load.rawCopy, "fhirbeam-raw-copy");
    t.setDaemon(true);
    t.start();
    return load;
  }

  /**
   * {@code raw_data.<source>}: each file source's rows as text, or its table dropped when none is kept. The database
   * file is on this machine, so objects on object storage are fetched here for it, as a task fetches them.
   */
  private void copyRawRows() {
    List<String> dropped = new ArrayList<>();
    try (Connection planning = db.unwrap(DuckDBConnection.class).duplicate();
        RawRows rows = plan.config().sinks().rawCopy() ? RawRows.of(plan, planning) : null) {
      for (PlannedSource s : plan.sources().values()) {
        // Without a copy this run, an earlier one would be stale.
        if (rows == null || !rows.queries().containsKey(s.config().name())) {
          dropped.add("raw_data." + s.config().name());
        }
      }
      tx.drop(dropped);
      if (rows != null) {
        rows.queries().forEach((source, queries) -> tx.create(new DuckDbTables.QueryTable("raw_data", source,
            queries)));
      }
    } catch (SQLException e) {
      throw DuckDb.failure("copying the source rows into DuckDB failed", e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Loads the run's resources and figures and commits, once the pipeline's files are counted and balance.
   * {@code runFiles} are the run's NDJSON files per resource type; {@code beforeCommit} sees the tables' row counts
   * just before the commit (it writes the report and swaps the files in); if it throws, nothing commits.
   */
  Map<String, Long> finish(Map<String, List<String>> runFiles, Path rejectsDir, Map<String, Long> resourcesOut,
      RunSummary counted, List<QualityTables.Check> checks, List<QualityTables.SourceColumn> sourceColumns,
      Path output, Consumer<Map<String, Long>> beforeCommit) throws IOException {
    awaitRawCopy();
    WriteMode mode = plan.config().sinks().duckdbMode();
    Map<String, Long> before = new LinkedHashMap<>();
    for (String type : resourcesOut.keySet()) {
      String table = type.toLowerCase(Locale.ROOT);
      if (mode == WriteMode.APPEND) {
        before.put(type, rows("fhir_resources", table));
      }
      tx.load(new DuckDbTables.JsonTable("fhir_resources", table, tableColumns(plan, type, true), runFiles.get(type),
          mode));
    }
    dropStaleViews(mode, resourcesOut.keySet());
    for (CompiledMapping m : plan.mappings()) {
      tx.view("transformed_data", m.name(), transformedView(m));
    }
    plan.config().sinks().views().forEach((name, sql) -> tx.userView(
        new DuckDbTables.View(name, sql, plan.config().sinks().viewLocations().get(name))));
    for (QualityTables.Step s : qualityStatements(rejectsDir, resourcesOut, counted, checks, sourceColumns, output)) {
      tx.run(s.name(), s.sql());
    }
    tx.commit(runId, counts -> {
      for (String type : resourcesOut.keySet()) {
        String table = type.toLowerCase(Locale.ROOT);
        long loaded = counts.get("fhir_resources." + table);
        long expected = switch (mode) {
          case OVERWRITE -> resourcesOut.get(type);
          case APPEND -> before.get(type) + resourcesOut.get(type);
          // One row per id, whatever the previous table held.
          case UPSERT -> single("SELECT count(DISTINCT id) FROM " + DuckDb.identifier("fhir_resources") + "."
              + DuckDb.identifier(table));
        };
        if (loaded != expected) {
          throw new JobRunner.UnbalancedRunException("DuckDB table fhir_resources." + table + " holds " + loaded
              + " rows but should hold " + expected + " (" + mode.name().toLowerCase(Locale.ROOT) + " of the "
              + resourcesOut.get(type) + " resources the pipeline wrote)");
        }
      }
      beforeCommit.accept(counts);
    });
    return tx.counts();
  }

  /**
   * Drops the {@code transformed_data} views of mappings this run does not have over the resource tables it rebuilt
   * with its own columns (overwrite and upsert): columns that went with a mapping would leave them unreadable. An
   * append keeps every column, and so those views.
   */
  private void dropStaleViews(WriteMode mode, java.util.Set<String> types) {
    if (mode == WriteMode.APPEND) {
      return;
    }
    java.util.Set<String> current = new java.util.HashSet<>();
    plan.mappings().forEach(m -> current.add(m.name()));
    List<DuckDbTables.View> views = tx.views("transformed_data");
    for (String type : types) {
      // DuckDB keeps a view's statement as it prints it back: identifiers quoted only where they need it.
      java.util.regex.Pattern from = java.util.regex.Pattern.compile(" FROM \"?fhir_resources\"?\\.\"?"
          + java.util.regex.Pattern.quote(type.toLowerCase(Locale.ROOT)) + "\"?(;|\\s|$)");
      for (DuckDbTables.View view : views) {
        if (!current.contains(view.name()) && from.matcher(view.sql()).find()) {
          tx.dropView("transformed_data", view.name());
        }
      }
    }
  }

  /** How long each table and statement of the load took, in seconds, by name (the quality figures by table). */
  Map<String, Double> seconds() {
    return tx.seconds();
  }

  /**
   * Waits for the raw copy, rethrowing its failure: before anything else uses the database's connection (the file
   * sinks' SQL runs on it too, in the same transaction, which a failed step has aborted).
   */
  void awaitRawCopy() {
    try {
      rawCopy.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while copying the source rows into DuckDB", e);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    }
  }

  /** Stops the raw copy if it still runs and rolls back unless committed. */
  @Override
  public void close() {
    if (!rawCopy.isDone()) {
      tx.cancel();
    }
    try {
      rawCopy.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException e) {
      // the run has already failed for its own reason, or this failure was reported by finish
    }
    tx.close();
  }

  /**
   * The columns of a resource type's table: {@code id}, the flat columns of the type's mappings (with {@code nested}
   * all of them, else only the top-level ones), and the resource as JSON.
   */
  /**
   * The {@code transformed_data} view of a mapping: the flat columns of its type's resource table. The same rows as
   * the table, whatever the write mode: a view of its columns costs nothing to write.
   */
  static String transformedView(CompiledMapping m) {
    List<String> columns = new ArrayList<>();
    columns.add(DuckDb.identifier("id"));
    for (CompiledMapping.FlatColumn c : m.flatColumns()) {
      columns.add(DuckDb.identifier(c.name()));
    }
    return "SELECT " + String.join(", ", columns) + " FROM " + DuckDb.identifier("fhir_resources") + "."
        + DuckDb.identifier(m.resourceType().toLowerCase(Locale.ROOT));
  }

  static List<DuckDbTables.Column> tableColumns(JobPlan plan, String type, boolean nested) {
    Map<String, DuckDbTables.Column> columns = new LinkedHashMap<>();
    columns.put("id", new DuckDbTables.Column("id", "$.id", "VARCHAR"));
    for (CompiledMapping m : plan.mappings()) {
      if (m.resourceType().equals(type)) {
        for (CompiledMapping.FlatColumn c : m.flatColumns()) {
          if (nested || c.topLevel()) {
            // Names come from paths: two mappings of a type name one element alike, but may read it differently (a
            // date with a day is a DATE, a year alone text): then the column keeps the text of both.
            columns.merge(c.name(), new DuckDbTables.Column(c.name(), c.jsonPath(), c.sqlType()),
                (a, b) -> a.sqlType().equals(b.sqlType()) ? a : new DuckDbTables.Column(a.name(), a.jsonPath(),
                    "VARCHAR"));
          }
        }
      }
    }
    columns.put("resource", new DuckDbTables.Column("resource", "$", "JSON"));
    return List.copyOf(columns.values());
  }

  /** Rows of a table, 0 when it does not exist yet. */
  private long rows(String schema, String table) {
    return DuckDb.rows(db, schema, table);
  }

  private long single(String sql) {
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    } catch (SQLException e) {
      throw DuckDb.failure("counting rows failed", e);
    }
  }

  /** The quality figures of the run, computed by DuckDB over the tables loaded in the same transaction. */
  private List<QualityTables.Step> qualityStatements(Path rejectsDir, Map<String, Long> resourcesOut,
      RunSummary counted, List<QualityTables.Check> checks, List<QualityTables.SourceColumn> sourceColumns,
      Path output) throws IOException {
    List<QualityTables.Mapping> mappings = new ArrayList<>();
    for (RunSummary.MappingCount c : counted.mappings()) {
      CompiledMapping m = plan.mappings().stream().filter(x -> x.name().equals(c.mapping())).findFirst().orElseThrow();
      // The column's type in the table, which another mapping of the type may have turned into text.
      Map<String, String> tableTypes = new LinkedHashMap<>();
      tableColumns(plan, m.resourceType(), true).forEach(t -> tableTypes.put(t.name(), t.sqlType()));
      List<QualityTables.Element> elements = new ArrayList<>();
      for (CompiledMapping.ValueElement v : m.valueElements()) {
        CompiledMapping.FlatColumn flat = m.flatColumns().stream().filter(f -> f.name().equals(v.column()))
            .findFirst().orElse(null);
        elements.add(new QualityTables.Element(v.path(), v.column(), flat != null && flat.temporal(),
            flat != null && "DATE".equals(tableTypes.get(flat.name())), v.location(), v.reference()));
      }
      mappings.add(new QualityTables.Mapping(c.mapping(), c.source(), c.resourceType(), c.rowsIn(), c.mapped(),
          c.rejected(), elements));
    }
    List<QualityTables.Issue> issues = new ArrayList<>();
    Long validated = null;
    if (counted.validation() != null) {
      validated = counted.validation().validated();
      for (RunSummary.IssueCount i : counted.validation().issues()) {
        issues.add(new QualityTables.Issue(i.mapping(), i.severity(), i.category(), i.messageId(), i.count()));
      }
    }
    WriteMode mode = plan.config().sinks().duckdbMode();
    List<String> rejectFiles = FileSinks.files(rejectsDir, "rejects", List.of(".ndjson")).stream()
        .map(Path::toString).toList();
    return QualityTables.statements(runId, plan.config().name(), output.toString(), counted.rowsIn(), validated,
        mappings, List.copyOf(resourcesOut.keySet()), rejectFiles, issues, checks, plan.config().externalPrefixes(),
        sourceColumns, new QualityTables.Resources(mode == WriteMode.OVERWRITE, mode == WriteMode.UPSERT
            || mode == WriteMode.OVERWRITE && plan.config().quality().duplicateIds() != DuplicateIds.KEEP));
  }
}
