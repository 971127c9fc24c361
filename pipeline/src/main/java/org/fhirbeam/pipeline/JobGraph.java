package org.fhirbeam.pipeline;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.fhirbeam.config.QualitySettings.DuplicateIds;
import org.fhirbeam.config.SinkSettings;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.DeltaFiles;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.quality.CheckFhirPathRules;
import org.fhirbeam.quality.DropDuplicateIds;
import org.fhirbeam.quality.MeasureResources;
import org.fhirbeam.quality.ResolveReferences;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.MapWithDuckDb;
import org.fhirbeam.validation.CheckInvariants;
import org.fhirbeam.validation.ValidateResources;

/**
 * Builds the job's Beam graph, the same for every runner: the mappings read the files of their sources and run in
 * DuckDB, one file (or piece of a large file) per task, writing resource and reject part files (a runner that runs one
 * element at a time gets the tasks in one element, mapped several at a time); resources whose id one of the same type
 * mapped before them has are dropped or fail the run (quality.duplicate_ids); a mapping's FHIRPath rules are checked
 * next on its resource parts, and when the job validates, each resource part is validated (resources that fail
 * move to reject parts); the parts of successful tasks are then committed into the staging output. A run committed by
 * a manifest measures the resources it commits for its quality figures ({@link MeasureResources},
 * {@link ResolveReferences}): a run committed by renames has the DuckDB load compute them.
 */
final class JobGraph {
  private JobGraph() {}

  /**
   * @param copyParts whether the tasks copy their parts to {@code stagingRoot} through Beam's file systems (and
   *     measure the resources for the quality report), as a commit without renames wants
   *     ({@link Committer#copiesParts}), rather than move them there
   * @param delta where the tasks write each resource part as a data file of its type's Delta table; null for none
   * @param localConcurrency how many files one worker maps at a time, all in one element (see
   *     {@link MapWithDuckDb#withLocalConcurrency}); 1 leaves it to the runner
   * @param parallelism how many tasks the runner's workers map at once in all: large files are cut into pieces to
   *     keep them busy (see {@link MapWithDuckDb#pieceBytes})
   */
  static void build(Pipeline p, JobPlan plan, String runId, String partsDir, String stagingRoot, boolean copyParts,
      DeltaFiles delta, int localConcurrency, int parallelism) {
    List<MapWithDuckDb.Work> works = new ArrayList<>();
    for (CompiledMapping mapping : plan.mappings()) {
      if (plan.sources().get(mapping.source()).tasks().isEmpty()) {
        continue; // an optional source without files: no rows, so nothing to map
      }
      works.add(new MapWithDuckDb.Work(mapping, plan.sources().get(mapping.source()).tasks()));
    }
    List<PCollection<PartFile>> parts = new ArrayList<>();
    List<PCollection<KV<String, String>>> keys = new ArrayList<>();
    if (!works.isEmpty()) {
      DuplicateIds duplicateIds = plan.config().quality().duplicateIds();
      boolean wholeRun = checksWholeRun(works, duplicateIds);
      PCollectionTuple mapped = p.apply("Map", MapWithDuckDb.of(works)
          .withSettings(plan.config().duckdb())
          .withPartsDirectory(partsDir)
          .withRunId(runId)
          .withLocalConcurrency(localConcurrency)
          .withPieceBytes(MapWithDuckDb.pieceBytes(works, parallelism))
          .withIdKeys(duplicateIds != DuplicateIds.KEEP));
      // Duplicates are dropped before rules and validation, so that neither spends time on them.
      Map<String, PCollection<PartFile>> unique = new LinkedHashMap<>();
      if (duplicateIds == DuplicateIds.KEEP) {
        works.forEach(w -> unique.put(w.mapping().name(), mapped.get(MapWithDuckDb.partsOf(w.mapping().name()))));
      } else {
        Map<String, List<String>> byType = new LinkedHashMap<>();
        works.forEach(w -> byType.computeIfAbsent(w.mapping().resourceType(), t -> new ArrayList<>())
            .add(w.mapping().name()));
        byType.forEach((type, names) -> {
          PCollectionTuple kept = mapped.apply("DropDuplicate" + type + "Ids", DropDuplicateIds.of(type, names)
              .withMode(duplicateIds)
              .withSettings(plan.config().duckdb())
              .withRunId(runId));
          names.forEach(n -> unique.put(n, kept.get(MapWithDuckDb.partsOf(n))));
        });
      }
      for (MapWithDuckDb.Work work : works) {
        CompiledMapping mapping = work.mapping();
        PCollection<PartFile> files = checked(unique.get(mapping.name()), mapping, plan, runId);
        if (copyParts) {
          // No DuckDB load computes the quality figures of this run: its committed resources are measured here.
          MeasureResources measure = MeasureResources.of(mapping, plan.config().duckdb());
          PCollectionTuple measured = files.apply("Measure" + capitalize(mapping.name()),
              wholeRun ? measure.emittingKeys() : measure);
          files = measured.get(MeasureResources.PARTS);
          if (wholeRun) {
            keys.add(measured.get(MeasureResources.KEYS));
          }
        }
        parts.add(files);
      }
    }
    CommitParts commit = commit(plan, stagingRoot, copyParts);
    if (delta != null) {
      commit = commit.writingDelta(delta, plan.config().duckdb());
    }
    if (!keys.isEmpty()) {
      commit = commit.addingUp(PCollectionList.of(keys).apply("CollectKeys", Flatten.pCollections())
          .apply("ResolveReferences", ResolveReferences.of(plan.config().externalPrefixes())));
    }
    PCollectionList.of(parts).apply("CollectParts", Flatten.pCollections())
        .setCoder(SerializableCoder.of(PartFile.class))
        .apply("CommitParts", commit);
  }

  /**
   * A mapping's parts after the stages that check its resources, as the job asks: its FHIRPath rules, the invariants
   * the compiled checks left to the FHIRPath engine, and HAPI's validator. Resources that fail move to reject parts.
   */
  static PCollection<PartFile> checked(PCollection<PartFile> files, CompiledMapping mapping, JobPlan plan,
      String runId) {
    if (!mapping.fhirPathRules().isEmpty()) {
      files = files.apply("CheckRules" + capitalize(mapping.name()),
          CheckFhirPathRules.of(mapping.name(), mapping.source(), mapping.resourceType(),
              mapping.fhirPathRules()).withRunId(runId));
    }
    if (plan.config().validation().compiled() && !mapping.fhirPathChecks().isEmpty()) {
      files = files.apply("CheckInvariants" + capitalize(mapping.name()),
          CheckInvariants.of(mapping.name(), mapping.source(), mapping.fhirPathChecks()).withRunId(runId));
    }
    if (plan.config().validation().usesValidator()) {
      files = files.apply("Validate" + capitalize(mapping.name()),
          ValidateResources.of(mapping.name(), mapping.source(), plan.config().validation()).withRunId(runId));
    }
    return files;
  }

  /**
   * Whether a run's quality figures need checks over all its resources at once: a mapping writes references (do they
   * resolve?), or repeated ids are kept (how many?).
   */
  private static boolean checksWholeRun(List<MapWithDuckDb.Work> works, DuplicateIds duplicateIds) {
    return duplicateIds == DuplicateIds.KEEP || works.stream()
        .anyMatch(w -> w.mapping().valueElements().stream().anyMatch(CompiledMapping.ValueElement::reference));
  }

  /**
   * The commit of the run's parts into {@code stagingRoot}; tasks that copy them also compress the resource files
   * and write the Parquet files, as the sinks ask (a run committed by renames does both itself, after numbering its
   * files).
   */
  private static CommitParts commit(JobPlan plan, String stagingRoot, boolean copyParts) {
    if (!copyParts) {
      return CommitParts.to(stagingRoot);
    }
    CommitParts commit = CommitParts.copyingTo(stagingRoot);
    SinkSettings sinks = plan.config().sinks();
    if (sinks.ndjsonCompression() == SinkSettings.Compression.GZIP) {
      commit = commit.gzippingResources();
    }
    return sinks.parquet() ? commit.writingParquet(FileSinks.parquetLayouts(plan), plan.config().duckdb()) : commit;
  }

  static String capitalize(String s) {
    StringBuilder out = new StringBuilder();
    for (String part : s.split("_")) {
      if (!part.isEmpty()) {
        out.append(Character.toUpperCase(part.charAt(0))).append(part.substring(1));
      }
    }
    return out.toString();
  }
}
