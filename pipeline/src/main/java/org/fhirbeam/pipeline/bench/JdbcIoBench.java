package org.fhirbeam.pipeline.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.ResultSet;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.io.jdbc.JdbcIO;

/**
 * The {@code jdbcio} case of the benchmark, run as its own process: reads the bench's database table with Beam's
 * JdbcIO ({@code readWithPartitions}, the same key ranges as {@code source-jdbc}) on the DirectRunner, every column of
 * every row as text, hashed; nothing mapped or written. Prints the rows, then the seconds from the pipeline's start
 * to its end. It is the measurement behind reading database sources with our key-range reader, which streams each
 * range into the worker's DuckDB, where JdbcIO's rows would still have to go for the mapping.
 * Arguments: url, user, password file, table, partition column, partitions.
 */
public final class JdbcIoBench {
  private JdbcIoBench() {}

  public static void main(String[] args) throws Exception {
    Pipeline p = CountedRead.pipeline();
    String password = Files.readString(Path.of(args[2])).strip();
    // The key range, asked first as our planner asks it (planning is not timed in source-jdbc either).
    long lower;
    long upper;
    try (java.sql.Connection c = java.sql.DriverManager.getConnection(args[0], args[1], password);
        java.sql.Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT min(" + args[4] + "), max(" + args[4] + ") FROM " + args[3])) {
      rs.next();
      lower = rs.getLong(1);
      upper = rs.getLong(2) + 1;
    }
    CountedRead.runAndPrint(p.apply("ReadTable", JdbcIO.<Long>readWithPartitions()
        .withDataSourceConfiguration(JdbcIO.DataSourceConfiguration.create("org.postgresql.Driver", args[0])
            .withUsername(args[1]).withPassword(password))
        .withTable(args[3]).withPartitionColumn(args[4]).withNumPartitions(Integer.parseInt(args[5]))
        .withLowerBound(lower).withUpperBound(upper)
        .withRowMapper(new Hash()).withCoder(VarLongCoder.of())));
  }

  /**
   * Every column of the row as text, hashed, as DuckDB's read of a copied range casts every column to text. A named
   * class: JdbcIO names its row mapper's class in its display data, which a lambda's has no name for.
   */
  static final class Hash implements JdbcIO.RowMapper<Long> {
    @Override
    public Long mapRow(ResultSet rs) throws Exception {
      long h = 0;
      for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
        String v = rs.getString(i);
        h = 31 * h + (v == null ? 0 : v.hashCode());
      }
      return h;
    }
  }
}
