package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.Serializable;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.io.Read;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.KafkaSource;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.KafkaBatchSource;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.RecordBatch;
import org.fhirbeam.io.StreamRange;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapRecords;
import org.fhirbeam.transforms.MapWithDuckDb;

/**
 * Builds a streaming job's Beam graph: each Kafka source is read in batches ({@link KafkaBatchSource}; a Delta
 * table's versions by {@link DeltaStream}), the batches fall into fixed windows of processing time, a bundle's records
 * of a window and partition are mapped by the same compiled DuckDB query as a file task ({@link MapRecords}), its
 * resources pass the same checking stages as a batch run's ({@link JobGraph#checked}) and are written as Parquet
 * when the sinks take it ({@link PartFn}), and then all the window's parts and record ranges are gathered (a
 * {@link GroupByKey} per window) and handed to the run's driver ({@link StreamOutput#handOver}), which commits them.
 * Only what both runners run in streaming mode: an unbounded read, ParDo, window assignment, GroupByKey and Flatten;
 * no timers, no splittable DoFn.
 */
final class StreamGraph {
  private StreamGraph() {}

  /**
   * One of a window's things to commit: a part file (with {@code parquet}, the Parquet file its resources were
   * written to beside it, when the job's sinks take one) or a range of records.
   */
  record Item(PartFile part, String parquet, StreamRange range) implements Serializable {}

  /**
   * @param output the job's output folder, which the workers see: the mapping tasks write their parts under it, and
   *     the windows are handed over there
   * @param positions where each partition of each source starts ({@link KafkaBatchSource#startPositions}), by source
   * @param settings each source's consumer settings, resolved
   */
  static void build(Pipeline p, JobPlan plan, String runId, String output,
      Map<String, Map<String, Long>> positions, Map<String, Map<String, String>> settings,
      Map<String, KafkaBatchSource.Bounds> bounds, Duration window) {
    List<PCollection<RecordBatch>> reads = new ArrayList<>();
    List<MapRecords.Source> sources = new ArrayList<>();
    for (SourceConfig s : plan.config().sources().values()) {
      List<CompiledMapping> mappings = plan.mappings().stream().filter(m -> m.source().equals(s.name())).toList();
      if (mappings.isEmpty()) {
        continue;
      }
      UnboundedSource<RecordBatch, ?> read;
      if (s.kafka() != null) {
        sources.add(new MapRecords.Source(s.name(), s.kafka().format(), s.kafka().columns(), mappings));
        read = new KafkaBatchSource(s.name(), s.kafka(), settings.get(s.name()), positions.get(s.name()),
            bounds.get(s.name()), runId);
      } else {
        // A Delta table's rows as JSON objects of its columns.
        sources.add(new MapRecords.Source(s.name(), KafkaSource.Format.JSON, plan.sources().get(s.name()).columns(),
            mappings));
        read = new DeltaStream(s, positions.get(s.name()).get(DeltaStream.key(s)), bounds.get(s.name()),
            plan.config().duckdb());
      }
      reads.add(p.apply("Read" + JobGraph.capitalize(s.name()), Read.from(read)));
    }
    PCollectionTuple mapped = PCollectionList.of(reads).apply("Sources", Flatten.pCollections())
        .setCoder(RecordBatch.CODER)
        .apply("Windows", Window.into(FixedWindows.of(org.joda.time.Duration.millis(window.toMillis()))))
        .apply("Map", MapRecords.of(sources, plan.config().duckdb(), java.nio.file.Path.of(output)
            .resolve(StreamOutput.PARTS).toString(), runId));
    List<PCollection<KV<String, Item>>> items = new ArrayList<>();
    TypeDescriptor<KV<String, Item>> kv = TypeDescriptors.kvs(TypeDescriptors.strings(),
        TypeDescriptor.of(Item.class));
    KvCoder<String, Item> coder = KvCoder.of(StringUtf8Coder.of(), SerializableCoder.of(Item.class));
    // The Parquet sink's files and the Delta tables' resource files are laid out alike: the task that checked a part
    // writes its one Parquet file, and the driver only moves it into place.
    boolean delta = plan.config().sinks().delta() != null;
    Map<String, DuckDbTables.ParquetLayout> layouts = delta || plan.config().sinks().parquet()
        ? FileSinks.parquetLayouts(plan) : Map.of();
    for (CompiledMapping m : plan.mappings()) {
      PCollection<PartFile> parts = JobGraph.checked(mapped.get(MapWithDuckDb.partsOf(m.name())), m, plan, runId);
      items.add(parts.apply("Parts" + JobGraph.capitalize(m.name()),
          ParDo.of(new PartFn(layouts, delta, plan.config().duckdb()))).setCoder(coder));
    }
    items.add(mapped.get(MapRecords.RANGES).apply("Ranges",
        MapElements.into(kv).via((StreamRange r) -> KV.of("window", new Item(null, null, r)))).setCoder(coder));
    PCollectionList.of(items).apply("Gather", Flatten.pCollections())
        .apply("GatherWindow", GroupByKey.create())
        .apply("HandOver", ParDo.of(new HandOverFn(output, runId)));
  }

  /**
   * Makes a window's item of each part, writing the resources of a part that has some as a Parquet file beside it
   * when the sinks take one ({@code layouts} by resource type; none: no file), its rows unordered for
   * {@code unordered} (a Delta table's rows have no order, and DuckDB writes such a file in half the time).
   */
  static final class PartFn extends DoFn<PartFile, KV<String, Item>> {
    private final Map<String, DuckDbTables.ParquetLayout> layouts;
    private final boolean unordered;
    private final DuckDbSettings settings;
    private transient Connection db;

    PartFn(Map<String, DuckDbTables.ParquetLayout> layouts, boolean unordered, DuckDbSettings settings) {
      this.layouts = Map.copyOf(layouts);
      this.unordered = unordered;
      this.settings = settings;
    }

    @Setup
    public void setup() throws SQLException {
      if (!layouts.isEmpty()) {
        // One thread: beside the mapping tasks, which keep every core busy.
        db = unordered ? DuckDb.openInMemory(settings, "SET threads = 1", "SET preserve_insertion_order = false")
            : DuckDb.openInMemory(settings, "SET threads = 1");
      }
    }

    @Teardown
    public void teardown() {
      if (db != null) {
        DuckDb.closeQuietly(db);
        db = null;
      }
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<KV<String, Item>> out) throws SQLException {
      String parquet = null;
      if (db != null && part.holdsResources() && part.lines() > 0) {
        String name = part.resourcePartName();
        // A name of this attempt's own: two attempts of a task may write at once.
        parquet = PartFile.beside(part.path(), "parquet").toString();
        layouts.get(name.substring(0, name.indexOf('-'))).writePart(db, part.path(), parquet, part.lines());
      }
      out.output(KV.of("window", new Item(part, parquet, null)));
    }
  }

  /**
   * Hands each window's parts and ranges to the run's driver, which commits them ({@link StreamOutput#commitReady}):
   * the task only writes a file into the output (a folder every worker and the driver see), so no task opens the
   * job's database or tables, on a cluster's workers or here.
   */
  static final class HandOverFn extends DoFn<KV<String, Iterable<Item>>, Void> {
    private final String output;
    private final String runId;

    HandOverFn(String output, String runId) {
      this.output = output;
      this.runId = runId;
    }

    @ProcessElement
    public void process(@Element KV<String, Iterable<Item>> element, BoundedWindow window) throws IOException {
      List<PartFile> parts = new ArrayList<>();
      Map<String, String> parquet = new java.util.HashMap<>();
      List<StreamRange> ranges = new ArrayList<>();
      for (Item i : element.getValue()) {
        if (i.part() != null) {
          parts.add(i.part());
          if (i.parquet() != null) {
            parquet.put(i.part().path(), i.parquet());
          }
        } else {
          ranges.add(i.range());
        }
      }
      StreamOutput.handOver(output, runId, ((IntervalWindow) window).start().getMillis(), parts, parquet, ranges);
    }
  }
}
