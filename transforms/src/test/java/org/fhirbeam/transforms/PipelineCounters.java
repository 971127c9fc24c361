package org.fhirbeam.transforms;

import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.fhirbeam.data.Counters;

/** The counters of a finished test pipeline in fhirbeam's namespace, by name, summed over steps. */
public final class PipelineCounters {
  private PipelineCounters() {}

  public static Map<String, Long> of(PipelineResult result) {
    Map<String, Long> counters = new TreeMap<>();
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.inNamespace(Counters.NAMESPACE)).build()).getCounters()) {
      counters.merge(c.getName().getName(), c.getAttempted(), Long::sum);
    }
    return counters;
  }
}
