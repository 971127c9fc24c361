package org.fhirbeam.pipeline.bench;

import org.apache.avro.generic.GenericRecord;
import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.io.parquet.ParquetIO;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.fhirbeam.io.ObjectStorage;

/**
 * The {@code parquetio} case of the benchmark, run as its own process: reads the bench's Parquet file with Beam's
 * ParquetIO on the DirectRunner, every field of every record turned to text and hashed, as {@code source-parquet}
 * reads the same file with DuckDB (the mapping stage's read); nothing mapped or written. Prints the records, then the
 * seconds from the pipeline's start to its end. It is the measurement behind reading Parquet with DuckDB in the
 * mapping tasks rather than with ParquetIO, whose records would then still have to reach DuckDB.
 */
public final class ParquetIoBench {
  private ParquetIoBench() {}

  public static void main(String[] args) {
    PipelineOptions options = PipelineOptionsFactory.create();
    options.setRunner(DirectRunner.class);
    ObjectStorage.configure(options, false, null);
    Pipeline p = Pipeline.create(options);
    p.apply("ReadParquet", ParquetIO.parseGenericRecords(ParquetIoBench::hash).withCoder(VarLongCoder.of())
            .from(args[0]))
        .apply("Count", ParDo.of(new CountFn()));
    long start = System.nanoTime();
    PipelineResult result = p.run();
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

  /** Every field of the record as text, hashed: each value touched, as DuckDB's read casts every column to text. */
  private static Long hash(GenericRecord record) {
    long h = 0;
    for (int i = 0; i < record.getSchema().getFields().size(); i++) {
      Object v = record.get(i);
      h = 31 * h + (v == null ? 0 : v.toString().hashCode());
    }
    return h;
  }

  private static final class CountFn extends DoFn<Long, Void> {
    private final Counter records = Metrics.counter(CountFn.class, "records");

    @ProcessElement
    public void process(@Element Long hash) {
      records.inc();
    }
  }
}
