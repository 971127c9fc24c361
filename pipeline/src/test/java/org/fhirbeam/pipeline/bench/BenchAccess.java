package org.fhirbeam.pipeline.bench;

import java.sql.SQLException;

/** Test access to the benchmark's package-private helpers. */
public final class BenchAccess {
  private BenchAccess() {}

  public static double median(double[] values) {
    return Bench.median(values);
  }

  public static long baseline(String input, String output) throws SQLException {
    return DuckDbBaseline.write(input, output);
  }

  public static long baselineWithDatabase(String input, String output, String database) throws SQLException {
    return DuckDbBaseline.writeWithDatabase(input, output, database);
  }
}
