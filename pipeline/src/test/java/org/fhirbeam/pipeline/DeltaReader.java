package org.fhirbeam.pipeline;

import java.nio.file.Path;
import org.apache.spark.sql.SparkSession;

/** A Spark 3.5 session with delta-spark in local mode: an independent Delta implementation for the tests. */
final class DeltaReader {
  private DeltaReader() {}

  /** A local one-core session with Delta's SQL extension and catalog, its warehouse under {@code dir}. */
  static SparkSession start(String name, Path dir) {
    return SparkSession.builder().master("local[1]").appName(name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        // One partition per shuffle and snapshot: the tables are small, and each partition is a task.
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.databricks.delta.snapshotPartitions", "1")
        .config("spark.sql.warehouse.dir", dir.resolve("warehouse").toString())
        .getOrCreate();
  }
}
