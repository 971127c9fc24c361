package org.fhirbeam.pipeline.bench;

import org.apache.avro.generic.GenericRecord;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.io.parquet.ParquetIO;

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
    Pipeline p = CountedRead.pipeline();
    CountedRead.runAndPrint(p.apply("ReadParquet", ParquetIO.parseGenericRecords(ParquetIoBench::hash)
        .withCoder(VarLongCoder.of()).from(args[0])));
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
}
