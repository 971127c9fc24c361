package org.fhirbeam.io;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.JdbcSource;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.fhirbeam.io.ReadTask.LocationKind;

/**
 * Plans a database source before the pipeline starts: connects once (so an unreachable server or wrong
 * credentials stop the run with exit code 2), learns the columns, and splits the rows into parallel reads by
 * key range of the partition column, plus one read for rows whose key is null, so that no row is left out.
 */
public final class JdbcSourcePlanner {
  private JdbcSourcePlanner() {}

  public static PlannedSource plan(SourceConfig source) {
    JdbcSource j = source.jdbc();
    String select = j.select();
    List<String> columns = new ArrayList<>();
    List<String> partitions = new ArrayList<>();
    try (Connection c = JdbcRead.connect(j, source.name()); Statement st = c.createStatement()) {
      try (ResultSet rs = st.executeQuery("SELECT * FROM (" + select + ") AS fhirbeam_source WHERE 1 = 0")) {
        ResultSetMetaData md = rs.getMetaData();
        for (int i = 1; i <= md.getColumnCount(); i++) {
          String name = md.getColumnLabel(i);
          if (name.startsWith("#")) {
            throw new InputException("source " + source.name() + ": column '" + name + "' starts with '#', which"
                + " is reserved for fhirbeam's own columns");
          }
          columns.add(name);
        }
      }
      for (String k : j.key()) {
        if (!columns.contains(k)) {
          throw new InputException(source.location() + ": jdbc.key: " + source.name() + " has no column '" + k
              + "' (columns: " + String.join(", ", columns) + ")");
        }
      }
      if (j.partitionColumn() == null) {
        partitions.add(select);
      } else {
        if (!columns.contains(j.partitionColumn())) {
          throw new InputException(source.location() + ": jdbc.partition_column: " + source.name() + " has no"
              + " column '" + j.partitionColumn() + "' (columns: " + String.join(", ", columns) + ")");
        }
        String key = quote(c, j.partitionColumn());
        BigDecimal min;
        BigDecimal max;
        try (ResultSet rs = st.executeQuery("SELECT min(" + key + "), max(" + key + ") FROM (" + select
            + ") AS fhirbeam_source")) {
          rs.next();
          min = rs.getBigDecimal(1);
          max = rs.getBigDecimal(2);
        }
        String from = "SELECT * FROM (" + select + ") AS fhirbeam_source WHERE ";
        if (min != null) {
          BigDecimal step = max.subtract(min).divide(BigDecimal.valueOf(j.partitions()), 10, RoundingMode.CEILING);
          for (int p = 0; p < j.partitions(); p++) {
            BigDecimal lo = min.add(step.multiply(BigDecimal.valueOf(p)));
            boolean last = p == j.partitions() - 1;
            partitions.add(from + key + " >= " + lo.toPlainString() + " AND " + key
                + (last ? " <= " + max.toPlainString() : " < " + min.add(step.multiply(BigDecimal.valueOf(p + 1)))
                    .toPlainString()));
            if (step.signum() == 0) {
              break; // one key value: one range
            }
          }
        }
        partitions.add(from + key + " IS NULL");
      }
    } catch (SQLException e) {
      throw new InputException("source " + source.name() + ": " + j.describe() + ": " + DuckDb.firstLine(
          e.getMessage()), e);
    }
    List<ReadTask> tasks = new ArrayList<>();
    for (int p = 0; p < partitions.size(); p++) {
      String where = partitions.size() == 1 ? "" : " part " + (p + 1) + " of " + partitions.size();
      tasks.add(new ReadTask(source.name(), "jdbc:" + j.describe() + where, "#jdbc_" + source.name() + "_" + p,
          columns, LocationKind.ROW, 1, false, new JdbcRead(j, partitions.get(p), columns)));
    }
    return new PlannedSource(source, List.copyOf(tasks), List.copyOf(columns));
  }

  private static String quote(Connection c, String identifier) throws SQLException {
    String q = c.getMetaData().getIdentifierQuoteString();
    q = q == null || q.isBlank() ? "" : q.trim();
    return q + identifier.replace(q, q + q) + q;
  }
}
