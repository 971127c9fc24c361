package org.fhirbeam.io;

import java.io.Serializable;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.fhirbeam.data.Tally;

/**
 * Where a run's tasks write the data files of its Delta tables, and how they report them: each resource part
 * becomes one Parquet file, laid out as its type's Parquet sink files are, written straight into the type's table
 * folder under a name of the run's own ({@link #fileName}). A file is not part of its table until the run's commit
 * adds it to the table's log, so the files of a failed or killed run are never read. The figures name each file with
 * its rows and bytes ({@link #written}), for that commit.
 *
 * @param root the folder the tables are in: a path, which every worker sees
 * @param runId the run writing the files
 * @param layouts by resource type, the columns of its table's files
 */
public record DeltaFiles(String root, String runId, Map<String, DuckDbTables.ParquetLayout> layouts)
    implements Serializable {
  /** The schema the resource tables are in, as in the DuckDB database. */
  public static final String RESOURCE_SCHEMA = "fhir_resources";
  private static final String ROWS = "delta_rows/";
  private static final String BYTES = "delta_bytes/";

  public DeltaFiles {
    layouts = Map.copyOf(layouts);
  }

  /** The folder of the table of resource type {@code type}: {@code <root>/fhir_resources/<type in lower case>}. */
  public static String table(String root, String type) {
    return root + "/" + RESOURCE_SCHEMA + "/" + type.toLowerCase(Locale.ROOT);
  }

  /** The name of the data file a resource part ({@link PartFile#resourcePartName}) becomes in its table. */
  public String fileName(String resourcePartName) {
    return "part-" + runId + "-" + resourcePartName + ".parquet";
  }

  /** The figures of a data file written into {@code type}'s table. */
  static Tally written(String type, String fileName, long rows, long bytes) {
    return Tally.builder().add(ROWS + type + "/" + fileName, rows).add(BYTES + type + "/" + fileName, bytes).build();
  }

  /** A data file a run's tasks wrote into a table: its name in the table's folder, its rows and bytes. */
  public record DataFile(String name, long rows, long bytes) {}

  /** By resource type, the data files a run's tasks wrote, from the run's figures; sorted by name. */
  public static Map<String, java.util.List<DataFile>> written(Tally tally) {
    Map<String, Long> bytes = tally.withPrefix(BYTES);
    Map<String, java.util.List<DataFile>> out = new TreeMap<>();
    new TreeMap<>(tally.withPrefix(ROWS)).forEach((key, rows) -> {
      int slash = key.indexOf('/');
      out.computeIfAbsent(key.substring(0, slash), t -> new java.util.ArrayList<>())
          .add(new DataFile(key.substring(slash + 1), rows, bytes.get(key)));
    });
    return out;
  }
}
