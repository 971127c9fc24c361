package org.fhirbeam.io;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The SQL that computes a run's data-quality figures in schema {@code quality}, run inside the transaction that
 * loads the run's tables, over the tables it just created: so the figures describe exactly what was committed and
 * are materialised once, not recomputed from JSON at query time. History tables ({@code runs}, {@code mappings},
 * {@code completeness}, {@code source_columns}, {@code rejects_by_reason}, {@code checks},
 * {@code validation_issues}) gain rows for each
 * run; {@code quality.rejects} holds only the latest run's rejects (they carry PHI, so they do not pile up).
 */
public final class QualityTables {
  /** The reserved name of the per-mapping summary view in schema {@code main}. */
  public static final String REPORT_VIEW = "data_quality_report";

  /**
   * A declared element of a mapping with one value per resource: its FHIR path, its column in transformed_data (null
   * for an element inside an extension, which is found in the resource JSON at {@code location}), whether it is a
   * date or point in time ({@code date}: its column is typed {@code DATE}), and whether it is the {@code reference}
   * of a Reference.
   */
  public record Element(String path, String column, boolean temporal, boolean date, ElementPath location,
      boolean reference) {}

  /** What one mapping counted, and its declared elements. */
  public record Mapping(String name, String source, String resourceType, long rowsIn, long mapped, long rejected,
      List<Element> elements) {
    public Mapping {
      elements = List.copyOf(elements);
    }

    String resourceTable() {
      return DuckDb.identifier("fhir_resources") + "." + DuckDb.identifier(resourceType.toLowerCase(Locale.ROOT));
    }
  }

  /** A check the pipeline counted while it ran: a warn rule, valid codes of an element, an element's range. */
  public record Check(String mapping, String check, String element, long failed, long total) {}

  /** How many rows of a source have a value in one of its columns (neither NULL nor empty), of how many read. */
  public record SourceColumn(String source, int position, String column, long populated, long total) {}

  /** How often validation found one kind of issue in one mapping's resources. */
  public record Issue(String mapping, String severity, String category, String messageId, long count) {}

  /**
   * What the resource tables are known to hold: {@code runOnly}, only this run's resources (an overwrite, so only
   * elements the mappings write); {@code uniqueIds}, one resource per id (the run rejected repeated ids, or an upsert
   * merged them).
   */
  public record Resources(boolean runOnly, boolean uniqueIds) {}

  /** One statement, and the name its time is reported under (steps of one name add up). */
  public record Step(String name, String sql) {}

  private QualityTables() {}

  /**
   * The history tables of schema {@code quality}, each with its columns ({@code [name, DuckDB type]}): every run adds
   * its rows, keyed by {@code run_id}. The Delta sink's {@code quality} tables have the same columns.
   */
  public static final Map<String, List<String[]>> HISTORY = history();

  private static Map<String, List<String[]>> history() {
    Map<String, List<String[]>> t = new java.util.LinkedHashMap<>();
    t.put("runs", columns("run_id VARCHAR", "time TIMESTAMPTZ", "job VARCHAR", "rows_in BIGINT", "resources BIGINT",
        "rejected BIGINT", "validated BIGINT", "output VARCHAR"));
    t.put("mappings", columns("run_id VARCHAR", "position INTEGER", "mapping VARCHAR", "source VARCHAR",
        "resource_type VARCHAR", "rows_in BIGINT", "resources BIGINT", "rejected BIGINT"));
    t.put("completeness", columns("run_id VARCHAR", "mapping VARCHAR", "position INTEGER", "element VARCHAR",
        "column_name VARCHAR", "populated BIGINT", "total BIGINT", "share DOUBLE"));
    t.put("rejects_by_reason", columns("run_id VARCHAR", "mapping VARCHAR", "stage VARCHAR", "rule VARCHAR",
        "count BIGINT"));
    t.put("checks", columns("run_id VARCHAR", "mapping VARCHAR", "check VARCHAR", "element VARCHAR",
        "failed BIGINT", "total BIGINT"));
    t.put("validation_issues", columns("run_id VARCHAR", "mapping VARCHAR", "severity VARCHAR", "category VARCHAR",
        "message_id VARCHAR", "count BIGINT"));
    t.put("source_columns", columns("run_id VARCHAR", "source VARCHAR", "position INTEGER", "column_name VARCHAR",
        "populated BIGINT", "total BIGINT", "share DOUBLE"));
    return java.util.Collections.unmodifiableMap(t);
  }

  private static List<String[]> columns(String... definitions) {
    List<String[]> out = new ArrayList<>();
    for (String d : definitions) {
      out.add(d.split(" "));
    }
    return List.copyOf(out);
  }

  /**
   * The statements for one run, in order. {@code types} are the resource types loaded into
   * {@code fhir_resources}; {@code rejectFiles} the run's reject NDJSON files;
   * {@code output} the run's output directory, where its HTML report is;
   * {@code validated} how many resources validation checked, null when the job does not validate;
   * {@code counted} the checks the pipeline counted; {@code externalPrefixes} the starts of references to targets
   * outside the run ({@code Practitioner/}, {@code https://...}); {@code sourceColumns} how often each source
   * column has a value; {@code resources} what the resource tables are known to hold.
   */
  public static List<Step> statements(String runId, String job, String output, long rowsIn, Long validated,
      List<Mapping> mappings, List<String> types, List<String> rejectFiles, List<Issue> issues,
      List<Check> counted, List<String> externalPrefixes, List<SourceColumn> sourceColumns, Resources resources) {
    String run = DuckDb.literal(runId);
    Steps sql = new Steps();
    sql.name = "quality (schema)";
    HISTORY.forEach((table, columns) -> {
      List<String> defs = new ArrayList<>();
      for (String[] c : columns) {
        // A run's row is its own: quality.runs keys the history.
        defs.add(DuckDb.identifier(c[0]) + " " + c[1] + (table.equals("runs") && c[0].equals("run_id")
            ? " PRIMARY KEY" : ""));
      }
      sql.add("CREATE TABLE IF NOT EXISTS quality." + table + " (" + String.join(", ", defs) + ")");
      if (table.equals("runs")) {
        // Databases written before runs recorded their output directory.
        sql.add("ALTER TABLE quality.runs ADD COLUMN IF NOT EXISTS output VARCHAR");
      }
    });
    // A run id is new each run, but a crash-free retry of the same id must not count twice.
    for (String t : HISTORY.keySet()) {
      sql.add("DELETE FROM quality." + t + " WHERE run_id = " + run);
    }

    sql.name = "quality.rejects";
    sql.add("CREATE OR REPLACE TABLE quality.rejects AS " + rejectsQuery(rejectFiles));

    sql.name = "quality.mappings";
    for (int i = 0; i < mappings.size(); i++) {
      Mapping m = mappings.get(i);
      sql.add("INSERT INTO quality.mappings VALUES (" + run + ", " + i + ", " + DuckDb.literal(m.name()) + ", "
          + DuckDb.literal(m.source()) + ", " + DuckDb.literal(m.resourceType()) + ", " + m.rowsIn() + ", "
          + m.mapped() + ", " + m.rejected() + ")");
    }

    List<String> completeness = new ArrayList<>();
    for (Mapping m : mappings) {
      String table = DuckDb.identifier("transformed_data") + "." + DuckDb.identifier(m.name());
      List<String> positions = new ArrayList<>();
      List<String> paths = new ArrayList<>();
      List<String> counts = new ArrayList<>();
      for (int i = 0; i < m.elements().size(); i++) {
        Element e = m.elements().get(i);
        if (e.column() == null) {
          positions.add(String.valueOf(i));
          paths.add(DuckDb.literal(e.path()));
          counts.add("count(" + e.location().sql("s") + ")");
          continue;
        }
        String col = DuckDb.identifier(e.column());
        completeness.add("SELECT " + run + ", " + DuckDb.literal(m.name()) + ", " + i + ", "
            + DuckDb.literal(e.path()) + ", " + DuckDb.literal(e.column()) + ", count(" + col + "), count(*),"
            + " CASE WHEN count(*) = 0 THEN NULL ELSE count(" + col + ") / count(*) END FROM " + table);
      }
      if (!counts.isEmpty()) {
        // Elements inside extensions have no column: counted in the resources of the type (the rows transformed_data
        // holds too), all in one pass over them.
        completeness.add("SELECT " + run + ", " + DuckDb.literal(m.name()) + ", position, element, NULL, populated,"
            + " total, CASE WHEN total = 0 THEN NULL ELSE populated / total END FROM (SELECT unnest(["
            + String.join(", ", positions) + "]) AS position, unnest([" + String.join(", ", paths) + "]) AS element,"
            + " unnest([" + String.join(", ", counts) + "]) AS populated, count(*) AS total FROM "
            + structs(m, m.elements().stream().filter(e -> e.column() == null).toList()) + ")");
      }
    }
    sql.name = "quality.completeness";
    if (!completeness.isEmpty()) {
      sql.add("INSERT INTO quality.completeness " + String.join(" UNION ALL ", completeness));
    }

    sql.name = "quality.rejects_by_reason";
    sql.add("INSERT INTO quality.rejects_by_reason SELECT " + run + ", mapping, stage, rule, count(*)"
        + " FROM quality.rejects GROUP BY mapping, stage, rule ORDER BY mapping, stage, rule");

    List<String> ids = new ArrayList<>();
    for (String type : types) {
      ids.add("SELECT " + DuckDb.literal(type + "/") + " || id AS ref FROM " + DuckDb.identifier("fhir_resources")
          + "." + DuckDb.identifier(type.toLowerCase(Locale.ROOT)));
    }
    String today = "strftime(current_date, '%Y-%m-%d')";
    for (Mapping m : mappings) {
      String name = DuckDb.literal(m.name());
      String prefix = "INSERT INTO quality.checks SELECT " + run + ", " + name + ", ";
      sql.name = "quality.checks duplicate_id";
      // Counting distinct ids took 3 s of 10M Patients; ids known to be unique need no count.
      sql.add(prefix + "'duplicate_id', NULL, " + (resources.uniqueIds() ? "0" : "count(*) - count(DISTINCT id)")
          + ", count(*) FROM " + m.resourceTable());
      // One row per reference element of the mapping, so a failure names the reference that does not resolve. The
      // values are read from the flat columns (from the resources for those inside extensions): no JSON to parse, so
      // no slower than finding every "reference" in the resource text was (docs/BENCHMARKS.md).
      List<String> names = new ArrayList<>();
      List<String> positions = new ArrayList<>();
      List<Element> references = m.elements().stream().filter(Element::reference).toList();
      for (Element e : references) {
        names.add(referenceName(m, e));
        positions.add(String.valueOf(names.size()));
      }
      sql.name = "quality.checks reference_resolves";
      if (!names.isEmpty()) {
        String refs = "(SELECT unnest([" + String.join(", ", names) + "]) AS element, unnest(["
            + String.join(", ", positions) + "]) AS position) AS e"
            + " LEFT JOIN (" + referenceValues(m, references) + ") AS refs"
            + " ON refs.element = e.element AND refs.ref IS NOT NULL"
            + " LEFT JOIN (SELECT DISTINCT ref FROM (" + String.join(" UNION ALL ", ids) + ")) AS ids"
            + " ON refs.ref = ids.ref";
        String group = " GROUP BY e.element, e.position ORDER BY e.position";
        if (externalPrefixes.isEmpty()) {
          sql.add(prefix + "'reference_resolves', e.element, count(refs.ref) FILTER (WHERE ids.ref IS NULL),"
              + " count(refs.ref) FROM " + refs + group);
        } else {
          // A reference to a declared external target that the run does not hold is no failure: counted apart.
          List<String> starts = new ArrayList<>();
          for (String p : externalPrefixes) {
            starts.add("starts_with(refs.ref, " + DuckDb.literal(p) + ")");
          }
          String external = "(" + String.join(" OR ", starts) + ")";
          sql.add(prefix + "'reference_resolves', e.element, count(refs.ref) FILTER (WHERE ids.ref IS NULL AND NOT "
              + external + "), count(refs.ref) FILTER (WHERE ids.ref IS NOT NULL OR NOT " + external + ") FROM "
              + refs + group);
          sql.add(prefix + "'reference_external', e.element, 0, count(refs.ref) FILTER (WHERE ids.ref IS NULL AND "
              + external + ") FROM " + refs + group);
        }
      }
      sql.name = "quality.checks not_in_future";
      for (Element e : m.elements()) {
        if (e.temporal() && e.column() != null) {
          String col = DuckDb.identifier(e.column());
          // ISO dates and date-times compare as text, at any precision (a year alone included); a DATE column as it is.
          String future = e.date() ? col + " > current_date"
              : "left(CAST(" + col + " AS VARCHAR), 10) > " + today;
          sql.add(prefix + "'not_in_future', " + DuckDb.literal(e.path()) + ", count(*) FILTER (WHERE " + future
              + "), count(" + col + ") FROM " + DuckDb.identifier("transformed_data") + "."
              + DuckDb.identifier(m.name()));
        }
      }
      if (m.resourceType().equals("Patient")) {
        sql.name = "quality.checks birth_before_death";
        sql.add(prefix + "'birth_before_death', 'deceasedDateTime', count(*) FILTER (WHERE left(d, 10) < b),"
            + " count(*) FROM (" + birthAndDeath(m, mappings, resources) + ") WHERE b IS NOT NULL AND d IS NOT NULL");
      }
    }

    sql.name = "quality.source_columns";
    for (SourceColumn c : sourceColumns) {
      sql.add("INSERT INTO quality.source_columns VALUES (" + run + ", " + DuckDb.literal(c.source()) + ", "
          + c.position() + ", " + DuckDb.literal(c.column()) + ", " + c.populated() + ", " + c.total() + ", "
          + (c.total() == 0 ? "NULL" : c.populated() + " / " + c.total()) + ")");
    }

    sql.name = "quality.checks counted";
    for (Check c : counted) {
      sql.add("INSERT INTO quality.checks VALUES (" + run + ", " + DuckDb.literal(c.mapping()) + ", "
          + DuckDb.literal(c.check()) + ", " + (c.element() == null ? "NULL" : DuckDb.literal(c.element())) + ", "
          + c.failed() + ", " + c.total() + ")");
    }

    sql.name = "quality.validation_issues";
    for (Issue i : issues) {
      sql.add("INSERT INTO quality.validation_issues VALUES (" + run + ", " + DuckDb.literal(i.mapping()) + ", "
          + DuckDb.literal(i.severity()) + ", " + DuckDb.literal(i.category()) + ", "
          + DuckDb.literal(i.messageId()) + ", " + i.count() + ")");
    }

    List<String> resourceCounts = new ArrayList<>();
    for (String type : types) {
      resourceCounts.add("(SELECT count(*) FROM " + DuckDb.identifier("fhir_resources") + "."
          + DuckDb.identifier(type.toLowerCase(Locale.ROOT)) + ")");
    }
    sql.name = "quality.runs";
    sql.add("INSERT INTO quality.runs SELECT " + run + ", now(), " + DuckDb.literal(job) + ", " + rowsIn + ", "
        + (resourceCounts.isEmpty() ? "0" : String.join(" + ", resourceCounts))
        + ", (SELECT count(*) FROM quality.rejects), " + (validated == null ? "NULL" : validated.toString()) + ", "
        + DuckDb.literal(output));

    sql.add("CREATE OR REPLACE VIEW main." + REPORT_VIEW + " AS"
        + " WITH latest AS (SELECT run_id FROM quality.runs ORDER BY time DESC, run_id DESC LIMIT 1)"
        + " SELECT m.run_id, m.mapping, m.resource_type, m.rows_in, m.resources, m.rejected,"
        + " CASE WHEN m.rows_in = 0 THEN NULL ELSE m.rejected / m.rows_in END AS reject_rate,"
        + " c.completeness, coalesce(k.failed_checks, 0) AS failed_checks"
        + " FROM quality.mappings AS m JOIN latest USING (run_id)"
        + " LEFT JOIN (SELECT run_id, mapping, avg(share) AS completeness FROM quality.completeness"
        + " GROUP BY run_id, mapping) AS c USING (run_id, mapping)"
        + " LEFT JOIN (SELECT run_id, mapping, sum(failed) AS failed_checks FROM quality.checks"
        + " GROUP BY run_id, mapping) AS k USING (run_id, mapping)"
        + " ORDER BY m.position");
    return List.copyOf(sql.steps);
  }

  /** Statements named by the figure they compute: the name set last. */
  private static final class Steps {
    final List<Step> steps = new ArrayList<>();
    String name;

    void add(String sql) {
      steps.add(new Step(name, sql));
    }
  }

  /**
   * The birth and death dates ({@code b}, {@code d}, as text) of the Patients of {@code m}'s table: from their flat
   * columns when the type's mappings write both; none when the table holds only this run's resources and no mapping
   * writes a death date; else from the resource JSON, parsing only resources whose text names the element (a text
   * search costs a fraction of a parse).
   */
  private static String birthAndDeath(Mapping m, List<Mapping> mappings, Resources resources) {
    String birth = null;
    String death = null;
    boolean deathMapped = false;
    for (Mapping other : mappings) {
      if (!other.resourceType().equals(m.resourceType())) {
        continue;
      }
      for (Element e : other.elements()) {
        deathMapped |= e.path().startsWith("deceased");
        if (e.column() != null && e.path().equals("birthDate")) {
          birth = e.column();
        } else if (e.column() != null && e.path().equals("deceasedDateTime")) {
          death = e.column();
        }
      }
    }
    if (birth != null && death != null) {
      return "SELECT CAST(" + DuckDb.identifier(birth) + " AS VARCHAR) AS b, CAST(" + DuckDb.identifier(death)
          + " AS VARCHAR) AS d FROM " + m.resourceTable();
    }
    if (resources.runOnly() && !deathMapped) {
      return "SELECT NULL AS b, NULL AS d WHERE false";
    }
    return "SELECT resource ->> 'birthDate' AS b, resource ->> 'deceasedDateTime' AS d FROM " + m.resourceTable()
        + " WHERE contains(CAST(resource AS VARCHAR), '\"deceasedDateTime\"')";
  }

  /** The name of a reference element's row of checks, e.g. {@code 'Condition.encounter.reference'}, as SQL. */
  private static String referenceName(Mapping m, Element e) {
    return DuckDb.literal(m.resourceType() + "." + e.path());
  }

  /** A query of the values of {@code references}, with their names: {@code element}, {@code ref}. */
  private static String referenceValues(Mapping m, List<Element> references) {
    List<String> queries = new ArrayList<>();
    for (boolean flat : new boolean[] {true, false}) {
      List<Element> some = references.stream().filter(e -> (e.column() != null) == flat).toList();
      if (some.isEmpty()) {
        continue;
      }
      List<String> names = new ArrayList<>();
      List<String> values = new ArrayList<>();
      for (Element e : some) {
        names.add(referenceName(m, e));
        values.add(flat ? DuckDb.identifier(e.column()) : e.location().sql("s"));
      }
      queries.add("SELECT unnest([" + String.join(", ", names) + "]) AS element, unnest([" + String.join(", ", values)
          + "]) AS ref FROM " + (flat ? DuckDb.identifier("transformed_data") + "." + DuckDb.identifier(m.name())
              : structs(m, some)));
    }
    return String.join(" UNION ALL ", queries);
  }

  /**
   * The resources of a mapping's type as DuckDB structs {@code s} that hold the values of {@code elements} (see
   * {@link ElementPath#structType}).
   */
  private static String structs(Mapping m, List<Element> elements) {
    return "(SELECT json_transform(resource, " + ElementPath.structType(elements.stream().map(Element::location)
        .toList()) + ") AS s FROM " + m.resourceTable() + ")";
  }

  /** The run's rejects as a table, the original row (or resource, or unreadable line) kept as JSON. */
  static String rejectsQuery(List<String> files) {
    if (files.isEmpty()) {
      return "SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS source, NULL::VARCHAR AS file, NULL::BIGINT AS line,"
          + " NULL::BIGINT AS row_number, NULL::JSON AS key, NULL::VARCHAR AS stage, NULL::VARCHAR AS mapping,"
          + " NULL::VARCHAR AS element,"
          + " NULL::VARCHAR AS rule, NULL::VARCHAR AS reason, NULL::JSON AS row_json LIMIT 0";
    }
    List<String> quoted = new ArrayList<>();
    for (String f : files) {
      quoted.add(DuckDb.literal(f));
    }
    return "SELECT json ->> 'run_id' AS run_id, json ->> 'source' AS source, json ->> 'file' AS file,"
        + " TRY_CAST(json ->> 'line' AS BIGINT) AS line, TRY_CAST(json ->> 'row_number' AS BIGINT) AS row_number,"
        + " json -> 'key' AS key,"
        + " json ->> 'stage' AS stage, json ->> 'mapping' AS mapping, json ->> 'element' AS element,"
        + " json ->> 'rule' AS rule, json ->> 'reason' AS reason,"
        + " coalesce(json -> 'row', json -> 'resource', json -> 'raw') AS row_json"
        + " FROM read_ndjson_objects([" + String.join(", ", quoted) + "])";
  }

  /**
   * The tables of schema {@code quality} of a streaming job, each with its columns ({@code [name, DuckDB type]}):
   * {@code rejects} (as {@link #streamRejectsQuery} fills it), {@code stream_windows} (one row per committed window)
   * and {@code stream_positions} (the records each window read of each partition). The Delta sink's tables have the
   * same columns.
   */
  public static final Map<String, List<String[]>> STREAM = stream();

  private static Map<String, List<String[]>> stream() {
    Map<String, List<String[]>> t = new java.util.LinkedHashMap<>();
    t.put("rejects", columns("run_id VARCHAR", "window_id VARCHAR", "source VARCHAR", "topic VARCHAR",
        "partition INTEGER", "offset BIGINT", "stage VARCHAR", "mapping VARCHAR", "element VARCHAR", "rule VARCHAR",
        "reason VARCHAR", "row_json JSON"));
    t.put("stream_windows", columns("window_id VARCHAR", "run_id VARCHAR", "window_start TIMESTAMPTZ",
        "committed_at TIMESTAMPTZ", "records BIGINT", "resources BIGINT", "rejects BIGINT",
        "min_record_time TIMESTAMPTZ", "max_record_time TIMESTAMPTZ", "lag_ms BIGINT", "latency_ms BIGINT"));
    t.put("stream_positions", columns("window_id VARCHAR", "source VARCHAR", "topic VARCHAR", "partition INTEGER",
        "from_offset BIGINT", "next_offset BIGINT", "records BIGINT"));
    return java.util.Collections.unmodifiableMap(t);
  }

  /**
   * {@code CREATE TABLE IF NOT EXISTS schema.table} of {@code columns} ({@code [name, DuckDB type]}), keyed by
   * column {@code primaryKey} (null for none).
   */
  public static String createTable(String schema, String table, List<String[]> columns, String primaryKey) {
    List<String> defs = new ArrayList<>();
    for (String[] c : columns) {
      defs.add(DuckDb.identifier(c[0]) + " " + c[1] + (c[0].equals(primaryKey) ? " PRIMARY KEY" : ""));
    }
    return "CREATE TABLE IF NOT EXISTS " + schema + "." + table + " (" + String.join(", ", defs) + ")";
  }

  /**
   * The rejects of a stream's window as rows of {@code quality.rejects} of a streaming job: where each record was
   * (topic, partition, offset), the window that committed it, and the record kept as JSON.
   */
  public static String streamRejectsQuery(List<String> files, String windowId) {
    List<String> quoted = new ArrayList<>();
    for (String f : files) {
      quoted.add(DuckDb.literal(f));
    }
    return "SELECT json ->> 'run_id' AS run_id, " + DuckDb.literal(windowId) + " AS window_id,"
        + " json ->> 'source' AS source, json ->> 'topic' AS topic,"
        + " TRY_CAST(json ->> 'partition' AS INTEGER) AS \"partition\", TRY_CAST(json ->> 'offset' AS BIGINT) AS"
        + " \"offset\", json ->> 'stage' AS stage, json ->> 'mapping' AS mapping, json ->> 'element' AS element,"
        + " json ->> 'rule' AS rule, json ->> 'reason' AS reason,"
        + " coalesce(json -> 'row', json -> 'resource', json -> 'raw') AS row_json"
        + " FROM read_ndjson_objects([" + String.join(", ", quoted) + "])";
  }
}
