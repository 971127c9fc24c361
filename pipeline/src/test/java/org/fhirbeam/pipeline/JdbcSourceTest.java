package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import org.fhirbeam.pipeline.bench.PostgresServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A PostgreSQL table as a source, against a real server on loopback, through the command line on both runners:
 * read in parallel key ranges (plus the rows without a key), it gives the same resources as the same rows in a
 * CSV file; bad credentials and an unreachable server stop the run before it starts.
 */
@Tag("servers")
class JdbcSourceTest {
  static PostgresServer pg;

  @TempDir
  Path tmp;

  static final String[] ROWS = {
      "1,p1,Maria,Garcia,1984-03-12,F", "2,p2,John,Smith,1979-11-02,M", "3,p3,Ann,Lee,not a date,F",
      "7,p4,Cy,Begay,2001-07-30,other", "10,p5,Bo,Ng,1990-01-01,m", ",p6,Di,Roe,1970-05-06,f"};

  @BeforeAll
  static void startPostgres() throws Exception {
    pg = PostgresServer.start();
    try (Connection c = pg.connect("postgres"); Statement st = c.createStatement()) {
      st.execute("CREATE DATABASE clinic");
    }
    try (Connection c = pg.connect("clinic"); Statement st = c.createStatement()) {
      st.execute("CREATE TABLE patients (row_id integer, patient_id text, first_name text, last_name text,"
          + " birth_date text, gender text)");
      for (String r : ROWS) {
        String[] f = r.split(",", -1);
        st.execute("INSERT INTO patients VALUES (" + (f[0].isEmpty() ? "NULL" : f[0]) + ", '" + f[1] + "', '" + f[2]
            + "', '" + f[3] + "', '" + f[4] + "', '" + f[5] + "')");
      }
    }
  }

  @AfterAll
  static void stopPostgres() throws Exception {
    if (pg != null) {
      pg.close();
    }
  }

  Path config(String jdbc) throws IOException {
    return Files.writeString(tmp.resolve("p.yaml"), "sources:\n  patients:\n    jdbc:\n" + jdbc.indent(6)
        + "mappings: [" + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
  }

  @ParameterizedTest
  @EnumSource(Runner.class)
  void aTableReadInKeyRangesGivesTheSameResourcesAsTheSameRowsInCsv(Runner runner) throws IOException {
    Path config = config("url: " + pg.url("clinic") + "\nuser: " + PostgresServer.USER + "\npassword_file: "
        + pg.passwordFile + "\ntable: public.patients\npartition_column: row_id\npartitions: 3\n");
    Path out = tmp.resolve("db");
    Cli r = Cli.run("run", "--config", config.toString(), "--runner", runner.label(), "--output", out.toString(),
        "--set", "duckdb.database=" + tmp.resolve("db.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 6 = resources 5 + rejected 1: OK"));

    StringBuilder csv = new StringBuilder("row_id,patient_id,first_name,last_name,birth_date,gender\n");
    for (String row : ROWS) {
      csv.append(row).append('\n');
    }
    Path csvFile = Files.writeString(tmp.resolve("patients.csv"), csv);
    Path fromCsv = tmp.resolve("csv");
    Cli c = Cli.run("run", "--runner", runner.label(), "--output", fromCsv.toString(), "--set",
        "sources.patients.path=" + csvFile, "--set", "duckdb.database=" + tmp.resolve("csv.db"));
    assertThat(c.err(), c.code(), equalTo(0));
    // Parallel reads write one part file each: MixedFormatsTest.resources collects and sorts them.
    assertThat(MixedFormatsTest.resources(out).size(), equalTo(5));
    assertThat(MixedFormatsTest.resources(out), equalTo(MixedFormatsTest.resources(fromCsv)));

    List<String> rejects;
    try (var files = Files.list(out.resolve("rejects"))) {
      rejects = Files.readAllLines(files.findFirst().orElseThrow());
    }
    JsonNode reject = DefaultJobTest.JSON.readTree(rejects.get(0));
    assertThat(reject.get("file").asText(), equalTo("jdbc:" + pg.url("clinic") + " public.patients part 1 of 4"));
    assertThat(reject.get("row").get("patient_id").asText(), equalTo("p3"));
    // The row's key in its table: the partition column by default.
    assertThat(reject.get("key").toString(), equalTo("{\"row_id\":\"3\"}"));
    assertThat(reject.get("row_number").asLong(), equalTo(3L));
  }

  @Test
  void rejectsNameTheConfiguredKeyColumns() throws IOException {
    Path config = config("url: " + pg.url("clinic") + "\nuser: " + PostgresServer.USER + "\npassword_file: "
        + pg.passwordFile + "\nquery: SELECT * FROM public.patients ORDER BY row_id\nkey: [patient_id, last_name]\n");
    Path out = tmp.resolve("keyed");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("k.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    List<com.fasterxml.jackson.databind.node.ObjectNode> rejects = DefaultJobTest.rejects(out);
    assertThat(rejects.size(), equalTo(1));
    JsonNode reject = rejects.get(0);
    assertThat(reject.get("key").toString(), equalTo("{\"patient_id\":\"p3\",\"last_name\":\"Lee\"}"));
    // The rejects table of the database holds the same key.
    try (Connection db = java.sql.DriverManager.getConnection("jdbc:duckdb:" + tmp.resolve("k.db"));
        Statement st = db.createStatement();
        java.sql.ResultSet rs = st.executeQuery("SELECT CAST(key AS VARCHAR), file, row_number FROM quality.rejects")) {
      assertThat(rs.next(), equalTo(true));
      assertThat(rs.getString(1), equalTo("{\"patient_id\":\"p3\",\"last_name\":\"Lee\"}"));
      assertThat(rs.getString(2), equalTo("jdbc:" + pg.url("clinic") + " (query)"));
      assertThat(rs.getLong(3), equalTo(3L));
      assertThat(rs.next(), equalTo(false));
    } catch (java.sql.SQLException e) {
      throw new AssertionError(e);
    }

    Path unknown = config("url: " + pg.url("clinic") + "\nuser: " + PostgresServer.USER + "\npassword_file: "
        + pg.passwordFile + "\ntable: public.patients\nkey: [mrn]\n");
    Cli bad = Cli.run("run", "--config", unknown.toString(), "--output", tmp.resolve("bad").toString());
    assertThat(bad.code(), equalTo(2));
    assertThat(bad.err(), containsString("jdbc.key: patients has no column 'mrn' (columns: row_id, patient_id,"));
  }

  @Test
  void wrongCredentialsAndAnUnreachableServerStopTheRunWithExitCodeTwo() throws IOException {
    Path wrong = Files.writeString(tmp.resolve("wrong-pw"), "not-the-password\n");
    Cli r = Cli.run("run", "--config", config("url: " + pg.url("clinic") + "\nuser: " + PostgresServer.USER
        + "\npassword_file: " + wrong + "\ntable: patients\n").toString(), "--output", tmp.resolve("o").toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString("error: source patients: cannot connect to " + pg.url("clinic")
        + " patients: FATAL: password authentication failed for user \"fhirbeam\""));
    assertThat(r.err(), org.hamcrest.Matchers.not(containsString("not-the-password")));

    Cli down = Cli.run("run", "--config", config("url: jdbc:postgresql://127.0.0.1:1/clinic\nuser: x\n"
        + "table: patients\n").toString(), "--output", tmp.resolve("o").toString());
    assertThat(down.code(), equalTo(2));
    assertThat(down.err(), containsString("error: source patients: cannot connect to jdbc:postgresql://127.0.0.1:1/clinic"));
  }

  @Test
  void aPasswordInTheUrlIsRefused() throws IOException {
    Cli r = Cli.run("check-config", config("url: " + pg.url("clinic") + "?password=x\ntable: patients\n").toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString("jdbc.url: no password in the URL: use password_env or password_file"));
  }
}
