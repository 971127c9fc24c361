package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A load transaction commits all of its steps or none, and can be stopped from another thread. */
class DuckDbTablesTest {
  @TempDir
  Path dir;

  @Test
  void aCancelledStepFailsAndSoDoesEveryLaterOneAndNothingCommits() throws Exception {
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("t.db"))) {
      DuckDbTables.Transaction tx = DuckDbTables.begin(db, List.of("raw_data"));
      tx.create(new DuckDbTables.QueryTable("raw_data", "small", List.of("SELECT 1 AS x")));
      // A step long enough to be cancelled while it runs (minutes if it were not).
      CompletableFuture<Void> slow = CompletableFuture.runAsync(() -> tx.create(new DuckDbTables.QueryTable(
          "raw_data", "slow", List.of("SELECT sum(a.range * b.range) AS s FROM range(1000000) a, range(1000000) b"))));
      Thread.sleep(300);
      tx.cancel();
      // Stopped while it ran, or, on a machine too busy to have started it, before it began.
      ExecutionException failed = assertThrows(ExecutionException.class, slow::get);
      assertThat(failed.getCause().getMessage(), containsString("table raw_data.slow"));
      IllegalStateException later = assertThrows(IllegalStateException.class,
          () -> tx.create(new DuckDbTables.QueryTable("raw_data", "later", List.of("SELECT 2 AS y"))));
      assertThat(later.getMessage(), equalTo("loading results into DuckDB was cancelled before table raw_data.later"));
      tx.close();
      assertThat(DuckDb.tableExists(db, "raw_data", "small"), equalTo(false));
    }
  }

  @Test
  void aCommittedTransactionKeepsItsTablesAndTheirCounts() throws SQLException {
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:" + dir.resolve("t.db"))) {
      DuckDbTables.Transaction tx = DuckDbTables.begin(db, List.of("raw_data"));
      tx.create(new DuckDbTables.QueryTable("raw_data", "two", List.of("SELECT 1 AS x", "SELECT 2 AS x")));
      tx.view("raw_data", "v", "SELECT x FROM raw_data.two WHERE x > 1");
      tx.commit("run-1", counts -> assertThat(counts, equalTo(java.util.Map.of("raw_data.two", 2L, "raw_data.v", 1L))));
      tx.close();
      assertThat(DuckDb.tableExists(db, "raw_data", "two"), equalTo(true));
      assertThat(DuckDbTables.committed(db, "run-1"), equalTo(true));
      assertThat(tx.seconds().keySet(), equalTo(java.util.Set.of("raw_data.two", "commit")));
    }
  }
}
