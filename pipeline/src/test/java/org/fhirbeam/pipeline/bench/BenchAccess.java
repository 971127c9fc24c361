package org.fhirbeam.pipeline.bench;

/** Test access to the benchmark's package-private helpers. */
public final class BenchAccess {
  private BenchAccess() {}

  public static double median(double[] values) {
    return Bench.median(values);
  }
}
