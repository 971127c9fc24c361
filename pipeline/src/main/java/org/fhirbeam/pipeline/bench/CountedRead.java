package org.fhirbeam.pipeline.bench;

import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.io.ObjectStorage;

/**
 * How the bench's Beam-IO cases ({@link ParquetIoBench}, {@link JdbcIoBench}) read: a DirectRunner pipeline whose
 * read yields one hash per record, counted by a Beam counter; prints the records, then the seconds from the
 * pipeline's start to its end, as {@link SourceBench} prints its rows and reading time.
 */
final class CountedRead {
  private CountedRead() {}

  /** A pipeline on the DirectRunner, without an S3 file system to set up. */
  static Pipeline pipeline() {
    PipelineOptions options = PipelineOptionsFactory.create();
    options.setRunner(DirectRunner.class);
    ObjectStorage.configure(options, false, null);
    return Pipeline.create(options);
  }

  /** Counts {@code hashes}, runs their pipeline and prints the records and the seconds it took. */
  static void runAndPrint(PCollection<Long> hashes) {
    hashes.apply("Count", ParDo.of(new CountFn()));
    long start = System.nanoTime();
    PipelineResult result = hashes.getPipeline().run();
    result.waitUntilFinish();
    double seconds = (System.nanoTime() - start) / 1e9;
    long records = 0;
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(CountFn.class, "records")).build()).getCounters()) {
      records += c.getAttempted();
    }
    System.out.println(records);
    System.out.println(seconds);
  }

  private static final class CountFn extends DoFn<Long, Void> {
    private final Counter records = Metrics.counter(CountFn.class, "records");

    @ProcessElement
    public void process(@Element Long hash) {
      records.inc();
    }
  }
}
