package org.fhirbeam.io;

import java.io.Serializable;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.fhirbeam.data.Tally;

/**
 * Where a run's tasks write the data files of its Delta tables, and how they report them: each resource part
 * becomes one Parquet file, laid out as its type's Parquet sink files are, written straight into the type's table
 * folder under a name of the run's own ({@link #fileName}); each part of rejects one file of {@link #REJECTS}, with
 * the columns of DuckDB's {@code quality.rejects}. A file is not part of its table until the run's commit
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
  /** The schema of the mappings' tables, as in the DuckDB database. */
  public static final String TRANSFORMED_SCHEMA = "transformed_data";
  /** The schema of the copies of the source rows, as in the DuckDB database. */
  public static final String RAW_SCHEMA = "raw_data";
  /** The schema of the quality figures and rejects, as in the DuckDB database. */
  public static final String QUALITY_SCHEMA = "quality";
  /** The table of the run's rejects, as in the DuckDB database: they hold PHI, the original rows. */
  public static final String REJECTS = QUALITY_SCHEMA + "/rejects";
  /** The columns of {@link #REJECTS} (name, DuckDB type), as {@link QualityTables#rejectsQuery} selects them. */
  public static final java.util.List<String[]> REJECT_COLUMNS = java.util.List.of(new String[] {"run_id", "VARCHAR"},
      new String[] {"source", "VARCHAR"}, new String[] {"file", "VARCHAR"}, new String[] {"line", "BIGINT"},
      new String[] {"row_number", "BIGINT"}, new String[] {"key", "JSON"}, new String[] {"stage", "VARCHAR"},
      new String[] {"mapping", "VARCHAR"}, new String[] {"element", "VARCHAR"}, new String[] {"rule", "VARCHAR"},
      new String[] {"reason", "VARCHAR"}, new String[] {"row_json", "JSON"});
  private static final String ROWS = "delta_rows/";
  private static final String BYTES = "delta_bytes/";

  public DeltaFiles {
    layouts = Map.copyOf(layouts);
  }

  /** The table of resource type {@code type}: {@code fhir_resources/<type in lower case>}. */
  public static String resourceTable(String type) {
    return RESOURCE_SCHEMA + "/" + type.toLowerCase(Locale.ROOT);
  }

  /** The table of the rows of source {@code source}: {@code raw_data/<source>}. */
  public static String rawTable(String source) {
    return RAW_SCHEMA + "/" + source;
  }

  /** The folder of {@code table} ({@code <schema>/<name>}) under {@code root}. */
  public static String folder(String root, String table) {
    return root + "/" + table;
  }

  /** A table's name as readers write it: {@code fhir_resources.patient}. */
  public static String name(String table) {
    return table.replace('/', '.');
  }

  /** The name of the data file a part ({@code partName}: its target without folder and extension) becomes. */
  public String fileName(String partName) {
    return "part-" + runId + "-" + partName + ".parquet";
  }

  /** The figures of a data file written into {@code table}. */
  static Tally written(String table, String fileName, long rows, long bytes) {
    return Tally.builder().add(ROWS + table + "/" + fileName, rows).add(BYTES + table + "/" + fileName, bytes)
        .build();
  }

  /** A data file a run's tasks wrote into a table: its name in the table's folder, its rows and bytes. */
  public record DataFile(String name, long rows, long bytes) {}

  /** By table, the data files a run's tasks wrote, from the run's figures; sorted by name. */
  public static Map<String, java.util.List<DataFile>> written(Tally tally) {
    Map<String, Long> bytes = tally.withPrefix(BYTES);
    Map<String, java.util.List<DataFile>> out = new TreeMap<>();
    new TreeMap<>(tally.withPrefix(ROWS)).forEach((key, rows) -> {
      int slash = key.lastIndexOf('/');
      out.computeIfAbsent(key.substring(0, slash), t -> new java.util.ArrayList<>())
          .add(new DataFile(key.substring(slash + 1), rows, bytes.get(key)));
    });
    return out;
  }
}
