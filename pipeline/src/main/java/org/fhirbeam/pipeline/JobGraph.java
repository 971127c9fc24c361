package org.fhirbeam.pipeline;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.fhirbeam.data.NdjsonBatch;
import org.fhirbeam.data.NdjsonBatchCoder;
import org.fhirbeam.data.RowBatch;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.ReadWithDuckDb;
import org.fhirbeam.io.WriteNdjson;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapRows;

/**
 * Builds the job's Beam graph, identical for every runner: read each source with DuckDB, apply its mappings,
 * and write resources and rejects as NDJSON file sets under a staging directory.
 */
final class JobGraph {
  private JobGraph() {}

  static void build(Pipeline p, JobPlan plan, String runId, String fhirDir, String rejectsDir) {
    List<PCollection<NdjsonBatch>> resources = new ArrayList<>();
    List<PCollection<NdjsonBatch>> rejects = new ArrayList<>();
    for (PlannedSource source : plan.sources().values()) {
      String name = capitalize(source.config().name());
      PCollection<RowBatch> rows = p.apply("Read" + name,
          ReadWithDuckDb.of(source.tasks()).withSettings(plan.config().duckdb())
              .withBatchSize(plan.config().batchSize()));
      for (CompiledMapping mapping : plan.mappings()) {
        if (!mapping.source().equals(source.config().name())) {
          continue;
        }
        PCollectionTuple mapped = rows.apply("Map" + capitalize(mapping.name()),
            MapRows.with(mapping).withRunId(runId));
        resources.add(mapped.get(MapRows.RESOURCES));
        rejects.add(mapped.get(MapRows.REJECTS));
      }
    }
    PCollectionList.of(resources).apply("CollectResources", Flatten.pCollections())
        .setCoder(NdjsonBatchCoder.of())
        .apply("WriteResources", WriteNdjson.to(fhirDir));
    PCollectionList.of(rejects).apply("CollectRejects", Flatten.pCollections())
        .setCoder(NdjsonBatchCoder.of())
        .apply("WriteRejects", WriteNdjson.to(rejectsDir));
  }

  private static String capitalize(String s) {
    StringBuilder out = new StringBuilder();
    for (String part : s.split("_")) {
      if (!part.isEmpty()) {
        out.append(Character.toUpperCase(part.charAt(0))).append(part.substring(1));
      }
    }
    return out.toString();
  }
}
