package org.fhirbeam.io;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.RowBatch;
import org.fhirbeam.data.RowBatchCoder;

/**
 * Reads planned files with DuckDB, one task per file in parallel, and emits their rows in batches. Each worker
 * opens one in-memory DuckDB per DoFn instance; rows read are counted in {@link Counters#rowsIn}.
 */
public final class ReadWithDuckDb extends PTransform<PBegin, PCollection<RowBatch>> {
  private final List<ReadTask> tasks;
  private final DuckDbSettings settings;
  private final int batchSize;

  private ReadWithDuckDb(List<ReadTask> tasks, DuckDbSettings settings, int batchSize) {
    this.tasks = tasks;
    this.settings = settings;
    this.batchSize = batchSize;
  }

  public static ReadWithDuckDb of(List<ReadTask> tasks) {
    if (tasks == null || tasks.isEmpty()) {
      throw new IllegalArgumentException("at least one read task is required");
    }
    return new ReadWithDuckDb(List.copyOf(tasks), null, 10_000);
  }

  public ReadWithDuckDb withSettings(DuckDbSettings settings) {
    return new ReadWithDuckDb(tasks, Objects.requireNonNull(settings, "settings"), batchSize);
  }

  public ReadWithDuckDb withBatchSize(int batchSize) {
    if (batchSize < 1) {
      throw new IllegalArgumentException("batchSize must be at least 1, was " + batchSize);
    }
    return new ReadWithDuckDb(tasks, settings, batchSize);
  }

  @Override
  public PCollection<RowBatch> expand(PBegin input) {
    if (settings == null) {
      throw new IllegalStateException("withSettings() is required");
    }
    return input
        .apply("ListFiles", Create.of(tasks).withCoder(SerializableCoder.of(ReadTask.class)))
        .apply("QueryFiles", ParDo.of(new ReadFn(settings, batchSize)))
        .setCoder(RowBatchCoder.of());
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("files", tasks.size())).add(DisplayData.item("batchSize", batchSize));
  }

  static final class ReadFn extends DoFn<ReadTask, RowBatch> {
    private final DuckDbSettings settings;
    private final int batchSize;
    private transient Connection db;

    ReadFn(DuckDbSettings settings, int batchSize) {
      this.settings = settings;
      this.batchSize = batchSize;
    }

    @Setup
    public void setup() throws SQLException {
      db = DuckDb.openInMemory(settings);
    }

    @ProcessElement
    public void process(@Element ReadTask task, OutputReceiver<RowBatch> out) throws SQLException {
      Counter rowsIn = Metrics.counter(Counters.NAMESPACE, Counters.rowsIn(task.source()));
      try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery(task.sql())) {
        int n = rs.getMetaData().getColumnCount();
        String[] columns = new String[n];
        for (int c = 0; c < n; c++) {
          columns[c] = rs.getMetaData().getColumnLabel(c + 1);
        }
        long position = task.firstLocation();
        List<String[]> rows = new ArrayList<>(batchSize);
        while (rs.next()) {
          String[] row = new String[n];
          for (int c = 0; c < n; c++) {
            row[c] = rs.getString(c + 1);
          }
          rows.add(row);
          if (rows.size() == batchSize) {
            out.output(batch(task, position, columns, rows));
            rowsIn.inc(rows.size());
            position += rows.size();
            rows = new ArrayList<>(batchSize);
          }
        }
        if (!rows.isEmpty()) {
          out.output(batch(task, position, columns, rows));
          rowsIn.inc(rows.size());
        }
      }
    }

    private static RowBatch batch(ReadTask task, long position, String[] columns, List<String[]> rows) {
      return new RowBatch(task.source(), task.file(), task.locationKind(), position, columns,
          rows.toArray(new String[0][]));
    }

    @Teardown
    public void teardown() throws SQLException {
      if (db != null) {
        db.close();
      }
    }
  }
}
