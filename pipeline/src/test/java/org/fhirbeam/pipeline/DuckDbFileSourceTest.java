package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A table, a view or a query of a DuckDB database file as a source, opened read-only, read in key ranges. */
class DuckDbFileSourceTest {
  @TempDir
  Path tmp;

  @Test
  void aViewOfADuckDbFileGivesTheSameResourcesAsTheSameRowsInCsv() throws Exception {
    Path db = tmp.resolve("clinic.duckdb");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:" + db); Statement st = c.createStatement()) {
      st.execute("CREATE TABLE people AS SELECT * FROM (VALUES (1, 'p1', 'Maria', 'Garcia', DATE '1984-03-12', 'F'),"
          + " (2, 'p2', 'John', 'Smith', DATE '1979-11-02', 'M'), (3, 'p3', 'Ann', 'Lee', NULL, 'F'))"
          + " AS t(n, patient_id, first_name, last_name, birth_date, gender)");
      st.execute("CREATE VIEW patients AS SELECT * FROM people");
    }
    long before = Files.getLastModifiedTime(db).toMillis();
    Path config = Files.writeString(tmp.resolve("p.yaml"), "sources:\n  patients:\n    jdbc:\n      url: jdbc:duckdb:"
        + db + "\n      table: patients\n      partition_column: n\n      partitions: 2\nmappings: ["
        + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(), "--set",
        "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 3 + rejected 0: OK"));
    Path csv = Files.writeString(tmp.resolve("p.csv"), "n,patient_id,first_name,last_name,birth_date,gender\n"
        + "1,p1,Maria,Garcia,1984-03-12,F\n2,p2,John,Smith,1979-11-02,M\n3,p3,Ann,Lee,,F\n");
    Cli c = Cli.run("run", "--output", tmp.resolve("csv").toString(), "--set", "sources.patients.path=" + csv,
        "--set", "duckdb.database=" + tmp.resolve("c.db"));
    assertThat(c.err(), c.code(), equalTo(0));
    assertThat(MixedFormatsTest.resources(tmp.resolve("out")), equalTo(MixedFormatsTest.resources(tmp.resolve("csv"))));
    assertThat(Files.getLastModifiedTime(db).toMillis(), equalTo(before)); // only read
  }
}
