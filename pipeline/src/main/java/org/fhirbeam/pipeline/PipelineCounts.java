package org.fhirbeam.pipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.CommitParts;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.QualityTables;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * What the pipeline's tasks counted, by the {@link Counters} names: rows per mapping and source, the lines of the
 * committed file sets, the checks and source columns of the quality figures, validation's issues. The run's figures
 * come from the tallies of the parts it committed ({@link CommitParts#readTally}), which count a task once however
 * often a runner ran it; the attempted counters only show progress while it runs.
 */
final class PipelineCounts {
  private final JobPlan plan;
  private final Tally committed;

  private PipelineCounts(JobPlan plan, Tally committed) {
    this.plan = plan;
    this.committed = committed;
  }

  /** The figures of a finished pipeline, which committed its parts into {@code directory} (or URI). */
  static PipelineCounts finished(JobPlan plan, String directory) throws IOException {
    return new PipelineCounts(plan, CommitParts.readTally(directory));
  }

  /** The figures of {@code committed}, the tallies of some committed parts added up (a stream's window, say). */
  static PipelineCounts of(JobPlan plan, Tally committed) {
    return new PipelineCounts(plan, committed);
  }

  /** How many lines the committed parts of a file set hold: a resource type's, or the rejects. */
  long committedLines(String fileSet) {
    return exact(Counters.committedLines(fileSet));
  }

  /** Rows read per source, as the first mapping of each source counted them. */
  Map<String, Long> rowsInBySource() {
    Map<String, Long> rowsIn = new LinkedHashMap<>();
    for (CompiledMapping m : plan.mappings()) {
      rowsIn.putIfAbsent(m.source(), exact(Counters.rowsIn(m.name())));
    }
    return rowsIn;
  }

  /**
   * Each mapping's rows in, resources kept and rows rejected, in configuration order, with its committed reject
   * records by stage and rule.
   */
  List<RunSummary.MappingCount> perMapping() {
    List<RunSummary.MappingCount> perMapping = new ArrayList<>();
    Map<String, Long> reasons = committed().withPrefix(Counters.REJECT_REASON_PREFIX);
    for (CompiledMapping m : plan.mappings()) {
      Map<String, Long> rejectedBy = new java.util.TreeMap<>();
      reasons.forEach((key, count) -> {
        if (key.startsWith(m.name() + "/")) {
          rejectedBy.put(key.substring(m.name().length() + 1), count);
        }
      });
      // Resources that duplicate ids, FHIRPath rules or validation rejected were counted as mapped by the mapping
      // stage first.
      perMapping.add(new RunSummary.MappingCount(m.name(), m.source(), m.resourceType(), exact(Counters.rowsIn(m.name())),
          exact(Counters.mapped(m.name())) - exact(Counters.invalid(m.name()))
              - exact(Counters.ruleRejected(m.name())) - exact(Counters.duplicates(m.name())),
          exact(Counters.rejected(m.name())), exact(Counters.millis(m.name())) / 1000.0, rejectedBy));
    }
    return perMapping;
  }

  /**
   * How often each column of each source has a value, in the source's column order, as the first mapping reading
   * the source counted it (every mapping of a source reads the same rows).
   */
  List<QualityTables.SourceColumn> sourceColumns() {
    Map<String, Long> populated = committed().withPrefix(Counters.COLUMN_POPULATED_PREFIX);
    List<QualityTables.SourceColumn> out = new ArrayList<>();
    java.util.Set<String> done = new java.util.HashSet<>();
    for (CompiledMapping m : plan.mappings()) {
      PlannedSource source = plan.sources().get(m.source());
      if (source.tasks().isEmpty() || !done.add(m.source())) {
        continue;
      }
      long rows = exact(Counters.rowsRead(m.name()));
      List<String> columns = source.columns();
      for (int i = 0; i < columns.size(); i++) {
        out.add(new QualityTables.SourceColumn(m.source(), i, columns.get(i),
            populated.getOrDefault(m.name() + "/" + columns.get(i), 0L), rows));
      }
    }
    return out;
  }

  /**
   * The checks the stages counted while the pipeline ran (warn rules, valid codes, ranges), per mapping in
   * configuration order, then by check and element.
   */
  List<QualityTables.Check> checks() {
    Map<String, long[]> byName = new java.util.TreeMap<>();
    committed().withPrefix(Counters.CHECK_FAILED_PREFIX)
        .forEach((k, n) -> byName.computeIfAbsent(k, x -> new long[2])[0] += n);
    committed().withPrefix(Counters.CHECK_TOTAL_PREFIX)
        .forEach((k, n) -> byName.computeIfAbsent(k, x -> new long[2])[1] += n);
    List<QualityTables.Check> out = new ArrayList<>();
    for (CompiledMapping m : plan.mappings()) {
      byName.forEach((key, counts) -> {
        // mapping/check/element; only the element may hold '/'
        String[] p = key.split("/", 3);
        if (p[0].equals(m.name())) {
          out.add(new QualityTables.Check(p[0], p[1], p[2].isEmpty() ? null : p[2], counts[0], counts[1]));
        }
      });
    }
    return out;
  }

  /**
   * The validation counters of a finished pipeline, or null when the job does not validate. Compiled checks count
   * every resource the mappings built (those they rejected, as reject records of stage {@code validation}, by message
   * id); HAPI's validator counts the resources it checked, and their issues.
   */
  RunSummary.Validation validation() {
    ValidationSettings v = plan.config().validation();
    if (!v.enabled()) {
      return null;
    }
    Map<String, Long> reasons = committed().withPrefix(Counters.REJECT_REASON_PREFIX);
    Map<String, Long> byValidator = committed().withPrefix(Counters.VALIDATOR_REJECTED_PREFIX);
    Map<String, Long> validated = new LinkedHashMap<>();
    Map<String, Long> invalid = new LinkedHashMap<>();
    List<RunSummary.IssueCount> issues = new ArrayList<>();
    for (CompiledMapping m : plan.mappings()) {
      long compiledRejects = 0;
      // Reject reasons are mapping/stage/rule; the validator's rejects are counted with its issues.
      String prefix = m.name() + "/validation/";
      for (Map.Entry<String, Long> r : reasons.entrySet()) {
        if (v.compiled() && r.getKey().startsWith(prefix)) {
          String rule = r.getKey().substring(prefix.length());
          long n = r.getValue() - byValidator.getOrDefault(m.name() + "/" + rule, 0L);
          if (n > 0) {
            compiledRejects += n;
            issues.add(new RunSummary.IssueCount(m.name(), "error", "content", rule, n));
          }
        }
      }
      validated.put(m.name(), v.compiled() ? exact(Counters.mapped(m.name())) + compiledRejects
          : exact(Counters.validated(m.name())));
      invalid.put(m.name(), compiledRejects + exact(Counters.invalid(m.name())));
    }
    committed().withPrefix(Counters.ISSUE_PREFIX).forEach((name, n) -> {
      // mapping/severity/category/message id; only the message id may hold '/'
      String[] p = name.split("/", 4);
      issues.add(new RunSummary.IssueCount(p[0], p[1], p[2], p[3], n));
    });
    issues.sort(java.util.Comparator.comparingLong(RunSummary.IssueCount::count).reversed()
        .thenComparing(RunSummary.IssueCount::mapping).thenComparing(RunSummary.IssueCount::messageId));
    return new RunSummary.Validation(v.mode().name().toLowerCase(java.util.Locale.ROOT), v.sampleRate(),
        v.rejectOn().name().toLowerCase(java.util.Locale.ROOT),
        plan.validator() == null ? 0 : v.usesValidator() ? plan.validator().buildSeconds()
            : plan.validator().loadSeconds(), validated, invalid,
        issues);
  }

  /** The counters of a pipeline while it runs, by name; none while the runner cannot report them. */
  static Map<String, Long> whileRunning(PipelineResult result) {
    Map<String, Long> counters = new HashMap<>();
    try {
      for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
          .addNameFilter(MetricNameFilter.inNamespace(Counters.NAMESPACE)).build()).getCounters()) {
        counters.merge(c.getName().getName(), c.getAttempted(), Long::sum);
      }
    } catch (RuntimeException e) {
      return Map.of();
    }
    return counters;
  }

  /** One figure of the finished pipeline; absent ones (nothing counted) are 0. */
  private long exact(String name) {
    return committed().get(name);
  }

  /** Every figure of the finished pipeline. */
  Tally committed() {
    return committed;
  }
}
