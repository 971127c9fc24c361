package org.fhirbeam.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.expressions.Window;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.config.WriteMode;
import org.fhirbeam.io.DeltaFiles;

/**
 * Commits a run's Delta tables named by catalog ({@code <catalog>.<schema>.<type>}, {@code <catalog>.quality.rejects})
 * through the job's own Spark session and its Delta: on Databricks, Unity Catalog tables, which it governs
 * (permissions, lineage), created if missing with a comment naming the job and its mappings. The run's tasks stage
 * the data files as for path-based tables; the session reads them and writes each table once, with Delta's
 * idempotent-write options ({@code txnAppId} {@code fhirbeam}, {@code txnVersion} the run's start in ms), so a write
 * repeated for the same run adds nothing. Overwrite replaces the table's rows and columns, append adds rows, upsert
 * is a MERGE on {@code id} (newer {@code last_updated} wins, else the run's).
 */
final class CatalogTables {
  private CatalogTables() {}

  /**
   * The job's Spark session: the active or default one of this JVM (on Databricks, the cluster's; in tests, the
   * test's), else on Databricks the cluster's own. Elsewhere there is no catalog to write to: refused.
   */
  static SparkSession session(Map<String, String> env) {
    SparkSession session = SparkSession.getActiveSession().isDefined() ? SparkSession.getActiveSession().get()
        : SparkSession.getDefaultSession().isDefined() ? SparkSession.getDefaultSession().get() : null;
    if (session != null && !session.sparkContext().isStopped()) {
      return session;
    }
    if (Deployment.detect(env).databricks()) {
      return SparkSession.builder().getOrCreate();
    }
    throw new InputException("sinks.delta.catalog names tables of a catalog of the job's Spark session (Unity"
        + " Catalog on Databricks), and this job has none: run it on Databricks, or use sinks.delta.location for"
        + " path-based tables");
  }

  /**
   * Writes every table of {@code tables} ({@code <schema>/<name>} of {@link DeltaFiles}, to how it takes the run) from
   * the data files the run staged under {@code staging} ({@code files}, by table); a table of another's files (a
   * mapping's {@code transformed_data}) is a view of that table. Returns each table's version that holds the run.
   */
  static RunSummary.Delta commit(Object session, SinkSettings.Delta settings, String job,
      Map<String, DeltaCommit.TableSpec> tables, Map<String, String> comments, String staging,
      Map<String, List<DeltaFiles.DataFile>> files, long txnVersion) {
    SparkSession spark = (SparkSession) session;
    Map<String, Long> versions = new TreeMap<>();
    Map<String, String> shown = new TreeMap<>(); // by table of DeltaFiles: the resource tables, then the rejects
    for (Map.Entry<String, DeltaCommit.TableSpec> t : tables.entrySet()) {
      DeltaCommit.TableSpec spec = t.getValue();
      String table = t.getKey().substring(t.getKey().indexOf('/') + 1);
      String schema = schema(settings, t.getKey());
      String name = qualified(settings, t.getKey());
      spark.sql("CREATE SCHEMA IF NOT EXISTS " + quoted(settings.catalog()) + "." + quoted(schema));
      String comment = (comments.get(t.getKey()) + " (fhirbeam job " + job + ")").replace("'", "");
      if (spec.filesOf() != null) {
        List<String> columns = new ArrayList<>();
        spec.columns().forEach(c -> columns.add(quoted(c[0])));
        spark.sql("CREATE OR REPLACE VIEW " + name + " COMMENT '" + comment + "' AS SELECT " + String.join(", ",
            columns) + " FROM " + qualified(settings, spec.filesOf()));
        continue; // a view has no versions
      }
      List<String> paths = new ArrayList<>();
      files.getOrDefault(t.getKey(), List.of()).forEach(f -> paths.add(DeltaFiles.folder(staging, t.getKey())
          + "/" + f.name()));
      Dataset<Row> rows = paths.isEmpty() ? spark.createDataFrame(List.<Row>of(), schema(spec.columns()))
          : spark.read().schema(schema(spec.columns())).parquet(paths.toArray(String[]::new));
      boolean exists = spark.catalog().tableExists(name);
      if (spec.mode() == WriteMode.APPEND && exists) {
        rows.write().format("delta").mode(SaveMode.Append).option("txnAppId", DeltaCommit.APP_ID)
            .option("txnVersion", String.valueOf(txnVersion)).saveAsTable(name);
      } else {
        // A new table, or one replaced: created with its comment in the same version.
        withTransaction(spark, txnVersion, rows, spec.mode() == WriteMode.UPSERT && exists
            ? "MERGE INTO " + name + " t USING " + INCOMING + " s ON t.id = s.id"
                + " WHEN MATCHED AND NOT coalesce(t.last_updated > s.last_updated, false) THEN UPDATE SET *"
                + " WHEN NOT MATCHED THEN INSERT *"
            : "CREATE OR REPLACE TABLE " + name + " USING delta COMMENT '" + comment + "' TBLPROPERTIES ("
                + TUNING + ", 'delta.dataSkippingNumIndexedCols' = '" + spec.indexed() + "') AS SELECT * FROM "
                + INCOMING);
      }
      String shownName = settings.catalog() + "." + schema + "." + table;
      versions.put(shownName, spark.sql("DESCRIBE HISTORY " + name + " LIMIT 1").first().getLong(0));
      if (RunSummary.Delta.shown(t.getKey())) {
        shown.put(t.getKey(), shownName);
      }
    }
    return new RunSummary.Delta(settings.catalog(), versions, new ArrayList<>(shown.values()));
  }

  /** The quoted three-part name of {@code table} ({@code <schema>/<name>}) in the catalog. */
  private static String qualified(SinkSettings.Delta settings, String table) {
    return quoted(settings.catalog()) + "." + quoted(schema(settings, table)) + "."
        + quoted(table.substring(table.indexOf('/') + 1));
  }

  /** The catalog's schema of {@code table} ({@code <schema>/<name>}, the schema as in DuckDB), as configured. */
  private static String schema(SinkSettings.Delta settings, String table) {
    return settings.schema(table.substring(0, table.indexOf('/')));
  }

  private static final String INCOMING = "fhirbeam_incoming";
  /**
   * The seed's Databricks tuning, for every table this creates: writes shuffled into files of a sensible size, and
   * small files compacted after a write (Delta 3.1 and Databricks take both).
   */
  static final String TUNING = "'delta.autoOptimize.optimizeWrite' = 'true',"
      + " 'delta.autoOptimize.autoCompact' = 'true'";

  /**
   * Runs {@code sql} (a MERGE or a CREATE OR REPLACE ... AS SELECT) over {@code rows}, as view {@link #INCOMING},
   * with Delta's idempotent-write settings. For a MERGE (an upsert), of several rows of the run with one id the one
   * with the newest {@code last_updated} (then the smallest resource text) is kept; it replaces the table's row of
   * that id unless that one is newer, as the other sinks' upsert.
   */
  private static void withTransaction(SparkSession spark, long txnVersion, Dataset<Row> rows, String sql) {
    Dataset<Row> incoming = !sql.startsWith("MERGE") ? rows : rows.withColumn("fhirbeam_rank",
            functions.row_number().over(Window.partitionBy("id").orderBy(functions.col("last_updated")
                .desc_nulls_last(), functions.col("resource"))))
        .filter("fhirbeam_rank = 1").drop("fhirbeam_rank");
    incoming.createOrReplaceTempView(INCOMING);
    spark.conf().set("spark.databricks.delta.write.txnAppId", DeltaCommit.APP_ID);
    spark.conf().set("spark.databricks.delta.write.txnVersion", String.valueOf(txnVersion));
    try {
      spark.sql(sql);
    } finally {
      spark.conf().unset("spark.databricks.delta.write.txnAppId");
      spark.conf().unset("spark.databricks.delta.write.txnVersion");
      spark.catalog().dropTempView(INCOMING);
    }
  }

  /** The Spark schema of a table's columns: the Delta schema's JSON, which is Spark's ({@link DeltaCommit#schema}). */
  private static StructType schema(List<String[]> columns) {
    return (StructType) DataType.fromJson(DeltaCommit.schema(columns).toJson());
  }

  private static String quoted(String identifier) {
    return "`" + identifier + "`";
  }
}
