package org.fhirbeam.transforms;

import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.NdjsonBatch;
import org.fhirbeam.data.NdjsonBatchCoder;
import org.fhirbeam.data.RowBatch;

/**
 * Applies one compiled mapping to row batches. The main output {@link #RESOURCES} carries NDJSON batches of
 * resources; {@link #REJECTS} carries the rows that could not become a resource, with source location, element,
 * rule and reason. Rows are counted in {@link Counters#mapped} and {@link Counters#rejected}.
 */
public final class MapRows extends PTransform<PCollection<RowBatch>, PCollectionTuple> {
  public static final TupleTag<NdjsonBatch> RESOURCES = new TupleTag<>("resources") {};
  public static final TupleTag<NdjsonBatch> REJECTS = new TupleTag<>("rejects") {};

  private final CompiledMapping mapping;
  private final String runId;

  private MapRows(CompiledMapping mapping, String runId) {
    this.mapping = mapping;
    this.runId = runId;
  }

  public static MapRows with(CompiledMapping mapping) {
    if (mapping == null) {
      throw new IllegalArgumentException("mapping is required");
    }
    return new MapRows(mapping, null);
  }

  /** The run id written into every reject record. */
  public MapRows withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new MapRows(mapping, runId);
  }

  @Override
  public PCollectionTuple expand(PCollection<RowBatch> input) {
    if (runId == null) {
      throw new IllegalStateException("withRunId() is required");
    }
    PCollectionTuple out = input.apply("MapBatches",
        ParDo.of(new MapFn(mapping, runId)).withOutputTags(RESOURCES, TupleTagList.of(REJECTS)));
    out.get(RESOURCES).setCoder(NdjsonBatchCoder.of());
    out.get(REJECTS).setCoder(NdjsonBatchCoder.of());
    return out;
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("mapping", mapping.name()))
        .add(DisplayData.item("resourceType", mapping.resourceType()));
  }

  static final class MapFn extends DoFn<RowBatch, NdjsonBatch> {
    private final CompiledMapping mapping;
    private final String runId;
    private final Counter mapped;
    private final Counter rejected;
    private transient BatchMapper mapper;

    MapFn(CompiledMapping mapping, String runId) {
      this.mapping = mapping;
      this.runId = runId;
      this.mapped = Metrics.counter(Counters.NAMESPACE, Counters.mapped(mapping.name()));
      this.rejected = Metrics.counter(Counters.NAMESPACE, Counters.rejected(mapping.name()));
    }

    @Setup
    public void setup() {
      mapper = new BatchMapper(mapping, runId);
    }

    @ProcessElement
    public void process(@Element RowBatch batch, MultiOutputReceiver out) {
      BatchMapper.Result result = mapper.map(batch);
      if (result.resources().lineCount() > 0) {
        out.get(RESOURCES).output(result.resources());
        mapped.inc(result.resources().lineCount());
      }
      if (result.rejects().lineCount() > 0) {
        out.get(REJECTS).output(result.rejects());
        rejected.inc(result.rejects().lineCount());
      }
    }
  }
}
