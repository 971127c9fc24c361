package org.fhirbeam.pipeline;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.quality.CheckFhirPathRules;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapWithDuckDb;
import org.fhirbeam.validation.ValidateResources;

/**
 * Builds the job's Beam graph, identical for every runner: each mapping reads the files of its source and runs
 * in DuckDB, one file per task, writing resource and reject part files; a mapping's FHIRPath rules are checked
 * next on its resource parts, and when the job validates, each resource part is validated (resources that fail
 * move to reject parts); the parts of successful tasks are then committed into the staging output.
 */
final class JobGraph {
  private JobGraph() {}

  static void build(Pipeline p, JobPlan plan, String runId, String partsDir, String stagingRoot) {
    List<PCollection<PartFile>> parts = new ArrayList<>();
    for (CompiledMapping mapping : plan.mappings()) {
      if (plan.sources().get(mapping.source()).tasks().isEmpty()) {
        continue; // an optional source without files: no rows, so nothing to map
      }
      PCollection<PartFile> mapped = p.apply("Map" + capitalize(mapping.name()),
          MapWithDuckDb.of(mapping, plan.sources().get(mapping.source()).tasks())
              .withSettings(plan.config().duckdb())
              .withPartsDirectory(partsDir)
              .withRunId(runId));
      if (!mapping.fhirPathRules().isEmpty()) {
        mapped = mapped.apply("CheckRules" + capitalize(mapping.name()),
            CheckFhirPathRules.of(mapping.name(), mapping.source(), mapping.resourceType(), mapping.fhirPathRules())
                .withRunId(runId));
      }
      if (plan.config().validation().enabled()) {
        mapped = mapped.apply("Validate" + capitalize(mapping.name()),
            ValidateResources.of(mapping.name(), mapping.source(), plan.config().validation()).withRunId(runId));
      }
      parts.add(mapped);
    }
    PCollectionList.of(parts).apply("CollectParts", Flatten.pCollections())
        .setCoder(SerializableCoder.of(PartFile.class))
        .apply("CommitParts", CommitParts.to(stagingRoot));
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
