package org.fhirbeam.pipeline;

import io.delta.kernel.Snapshot;
import io.delta.kernel.Table;
import io.delta.kernel.data.FilteredColumnarBatch;
import io.delta.kernel.data.Row;
import io.delta.kernel.defaults.engine.DefaultEngine;
import io.delta.kernel.engine.Engine;
import io.delta.kernel.exceptions.KernelException;
import io.delta.kernel.exceptions.TableNotFoundException;
import io.delta.kernel.internal.InternalScanFileUtils;
import io.delta.kernel.internal.SnapshotImpl;
import io.delta.kernel.utils.CloseableIterator;
import java.io.IOException;
import java.nio.file.Path;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;

/**
 * The data files of a Delta table source ({@code sources.NAME.delta}), read with the Delta kernel's Java API: those
 * of a snapshot (the latest, or as of a version or a time), or of it only those added after a version. The files are
 * then planned and read as the Parquet files of any source, one task per file (or piece of a large one), so a
 * table's rows are read in tasks by splits of its files, typed as the files hold them. Tables whose files alone do
 * not hold their rows are refused: partitioned tables (the partition values are in the log), deleted rows
 * (deletion vectors) and renamed columns (column mapping).
 */
final class DeltaSource {
  private DeltaSource() {}

  /** The data files of the table snapshot {@code source} reads, in the snapshot's order; paths. */
  static List<String> files(SourceConfig source) {
    SourceConfig.DeltaRead read = source.delta();
    Path folder = Path.of(source.path()).toAbsolutePath().normalize();
    Engine engine = DefaultEngine.create(new LocalFileIO());
    Table table = Table.forPath(engine, LocalFileIO.name(folder));
    try {
      Snapshot snapshot = read.version() != null ? table.getSnapshotAsOfVersion(engine, read.version())
          : read.timestamp() != null ? table.getSnapshotAsOfTimestamp(engine,
              OffsetDateTime.parse(read.timestamp()).toInstant().toEpochMilli())
          : table.getLatestSnapshot(engine);
      List<String> files = files(engine, source, snapshot);
      if (read.sinceVersion() == null) {
        return files;
      }
      if (read.sinceVersion() > snapshot.getVersion()) {
        throw new InputException(source.at("delta.since_version") + ": the table " + folder + " is at version "
            + snapshot.getVersion() + ", before version " + read.sinceVersion());
      }
      // The rows added since: the files of the snapshot that the snapshot of that version did not have. A file that
      // version had and this one lacks was removed: rows were deleted or rewritten, which no append-only read shows.
      List<String> earlier = files(engine, source, table.getSnapshotAsOfVersion(engine, read.sinceVersion()));
      Set<String> removed = new LinkedHashSet<>(earlier);
      removed.removeAll(new java.util.HashSet<>(files));
      if (!removed.isEmpty()) {
        throw new InputException(source.at("delta.since_version") + ": since version " + read.sinceVersion()
            + " the table " + folder + " has had files removed (an overwrite, a delete, an update or a compaction),"
            + " so its new rows are not only appended ones: read the whole table instead");
      }
      List<String> added = new ArrayList<>(files);
      added.removeAll(new java.util.HashSet<>(earlier));
      return added;
    } catch (TableNotFoundException e) {
      throw new InputException(source.at("delta.table") + ": no Delta table at " + folder + " (no _delta_log)", e);
    } catch (KernelException e) {
      // Such as a version or a time the table does not have.
      throw new InputException(source.at("delta") + ": the Delta table " + folder + " cannot be read as asked: "
          + e.getMessage(), e);
    }
  }

  private static List<String> files(Engine engine, SourceConfig source, Snapshot snapshot) {
    return dataFiles(engine, snapshot, source.at("delta.table") + ": the Delta table " + source.path());
  }

  /**
   * The data files of {@code snapshot}, as paths; refuses a table whose files alone do not hold its rows, naming it
   * as {@code table} does.
   */
  static List<String> dataFiles(Engine engine, Snapshot snapshot, String table) {
    if (!snapshot.getPartitionColumnNames().isEmpty()) {
      throw refused(table, "is partitioned (by " + String.join(", ", snapshot.getPartitionColumnNames()) + ")");
    }
    String mapping = ((SnapshotImpl) snapshot).getMetadata().getConfiguration()
        .getOrDefault("delta.columnMapping.mode", "none");
    if (!mapping.equals("none")) {
      throw refused(table, "maps its column names (delta.columnMapping.mode " + mapping + ")");
    }
    List<String> out = new ArrayList<>();
    try (CloseableIterator<FilteredColumnarBatch> batches = snapshot.getScanBuilder().build().getScanFiles(engine)) {
      while (batches.hasNext()) {
        try (CloseableIterator<Row> rows = batches.next().getRows()) {
          while (rows.hasNext()) {
            Row row = rows.next();
            if (InternalScanFileUtils.getDeletionVectorDescriptorFromRow(row) != null) {
              throw refused(table, "has deleted rows its files still hold (deletion vectors)");
            }
            // A Hadoop path's text, not an encoded URI: a folder with a space in its name stays readable.
            out.add(Path.of(new org.apache.hadoop.fs.Path(InternalScanFileUtils.getAddFileStatus(row).getPath())
                .toUri()).toString());
          }
        }
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return out;
  }

  private static InputException refused(String table, String why) {
    return new InputException(table + " " + why + ", which this reader does not support yet");
  }
}
