package org.fhirbeam.pipeline;

import java.sql.Connection;
import java.sql.DriverManager;

/** Run as a separate process by tests: holds a DuckDB file open (and so locked) until its stdin closes. */
public final class LockHolder {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + args[0])) {
      c.createStatement().execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)");
      System.out.println("locked");
      System.out.flush();
      while (System.in.read() >= 0) {
        // wait for the test to close our stdin
      }
    }
  }
}
