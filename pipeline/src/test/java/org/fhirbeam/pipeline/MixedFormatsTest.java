package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.apache.poi.ss.usermodel.Row;
import org.apache.poi.xssf.usermodel.XSSFWorkbook;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One logical source from files of every format (CSV, gzip CSV, Parquet, NDJSON, Excel), aligned by column name:
 * the same resources as the same rows in one CSV file; a column missing from one file is null there and the run
 * summary reports the drift.
 */
class MixedFormatsTest {
  static final String HEADER = "patient_id,first_name,last_name,birth_date,gender";
  static final List<String> ROWS = List.of("p1,Maria,Garcia,1984-03-12,F", "p2,John,Smith,1979-11-02,M",
      "p3,Ann,Lee,1990-01-01,F", "p4,Cy,Begay,2001-07-30,other", "p5,Bo,Ng,1970-05-06,m");

  @TempDir
  Path tmp;

  static List<String> resources(Path out) throws IOException {
    List<String> lines = new ArrayList<>();
    try (var files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.toList()) {
        if (f.getFileName().toString().endsWith(".gz")) {
          try (var in = new java.util.zip.GZIPInputStream(Files.newInputStream(f))) {
            lines.addAll(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).lines().toList());
          }
        } else {
          lines.addAll(Files.readAllLines(f));
        }
      }
    }
    lines.sort(null);
    return lines;
  }

  Cli run(String path, String name) {
    return run(path, name, "direct");
  }

  Cli run(String path, String name, String runner) {
    Cli r = Cli.run("run", "--runner", runner, "--output", tmp.resolve("out-" + name).toString(), "--set",
        "sources.patients.path=" + path, "--set", "duckdb.database=" + tmp.resolve(name + ".db"));
    assertThat(r.err(), r.code(), equalTo(0));
    return r;
  }

  @Test
  void filesOfEveryFormatFormOneSourceWithTheSameResourcesAsOneCsv() throws Exception {
    Path all = Files.writeString(tmp.resolve("all.csv"), HEADER + "\n" + String.join("\n", ROWS) + "\n");
    Path mixed = Files.createDirectories(tmp.resolve("mixed"));
    Files.writeString(mixed.resolve("a.csv"), HEADER + "\n" + ROWS.get(0) + "\n");
    try (OutputStream out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(mixed.resolve("b.csv.gz")))) {
      out.write((HEADER + "\n" + ROWS.get(1) + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      String[] f = ROWS.get(2).split(",");
      st.execute("COPY (SELECT '" + f[0] + "' AS patient_id, '" + f[1] + "' AS first_name, '" + f[2]
          + "' AS last_name, DATE '" + f[3] + "' AS birth_date, '" + f[4] + "' AS gender) TO '"
          + mixed.resolve("c.parquet") + "' (FORMAT parquet)");
    }
    String[] d = ROWS.get(3).split(",");
    Files.writeString(mixed.resolve("d.ndjson"), "{\"gender\":\"" + d[4] + "\",\"patient_id\":\"" + d[0]
        + "\",\"first_name\":\"" + d[1] + "\",\"last_name\":\"" + d[2] + "\",\"birth_date\":\"" + d[3] + "\"}\n");
    try (XSSFWorkbook wb = new XSSFWorkbook(); OutputStream out = Files.newOutputStream(mixed.resolve("e.xlsx"))) {
      var sheet = wb.createSheet("rows");
      String[] h = HEADER.split(",");
      String[] e = ROWS.get(4).split(",");
      Row hr = sheet.createRow(0);
      Row er = sheet.createRow(1);
      for (int i = 0; i < h.length; i++) {
        hr.createCell(i).setCellValue(h[i]);
        er.createCell(i).setCellValue(e[i]);
      }
      wb.write(out);
    }
    run(all.toString(), "one");
    Cli r = run(mixed.toString(), "mixed");
    assertThat(r.out(), containsString("balance: rows in 5 = resources 5 + rejected 0: OK"));
    assertThat(resources(tmp.resolve("out-mixed")), equalTo(resources(tmp.resolve("out-one"))));
    assertThat(r.out(), org.hamcrest.Matchers.not(containsString("column drift")));
    // The same union on the Spark runner.
    Cli spark = run(mixed.toString(), "mixed-spark", "spark");
    assertThat(spark.out(), containsString("Run "));
    assertThat(spark.out(), containsString(" on spark: 5 rows"));
    assertThat(resources(tmp.resolve("out-mixed-spark")), equalTo(resources(tmp.resolve("out-one"))));
  }

  @Test
  void aColumnMissingFromOneFileIsNullThereAndReported() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("drift"));
    Files.writeString(dir.resolve("a.csv"), HEADER + "\n" + ROWS.get(0) + "\n");
    Files.writeString(dir.resolve("b.csv"), "patient_id,first_name,last_name,birth_date\np2,John,Smith,1979-11-02\n");
    Cli r = run(dir.toString(), "drift");
    assertThat(r.out(), containsString("column drift: source patients: " + dir.resolve("b.csv")
        + " lacks gender (null there)"));
    JsonNode summary = DefaultJobTest.JSON.readTree(tmp.resolve("out-drift/run-summary.json").toFile());
    assertThat(summary.at("/column_drift/patients").toString(), equalTo("{\"" + dir.resolve("b.csv")
        + "\":[\"gender\"]}"));
  }

  @Test
  void aBrokenFileStopsTheRunOrIsSkippedAndReportedAsConfigured() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("broken"));
    Files.writeString(dir.resolve("a.csv"), HEADER + "\n" + ROWS.get(0) + "\n");
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      st.execute("COPY (SELECT 'p9' AS patient_id FROM range(1000)) TO '" + dir.resolve("b.parquet")
          + "' (FORMAT parquet)");
    }
    byte[] whole = Files.readAllBytes(dir.resolve("b.parquet"));
    Files.write(dir.resolve("b.parquet"), java.util.Arrays.copyOf(whole, whole.length / 2)); // truncated
    Files.writeString(dir.resolve("c.xlsx"), "not a workbook");

    Cli failed = Cli.run("run", "--output", tmp.resolve("out-fail").toString(), "--set", "sources.patients.path="
        + dir, "--set", "duckdb.database=" + tmp.resolve("f.db"));
    assertThat(failed.code(), equalTo(2));
    assertThat(failed.err(), containsString("error: source patients: cannot read " + dir.resolve("b.parquet")
        + " as parquet"));
    assertThat(Files.exists(tmp.resolve("out-fail/fhir")), equalTo(false));

    Cli skipped = Cli.run("run", "--output", tmp.resolve("out-skip").toString(), "--set", "sources.patients.path="
        + dir, "--set", "sources.patients.on_error=skip_file", "--set", "duckdb.database=" + tmp.resolve("s.db"));
    assertThat(skipped.err(), skipped.code(), equalTo(0));
    assertThat(skipped.out(), containsString("balance: rows in 1 = resources 1 + rejected 0: OK"));
    assertThat(skipped.out(), containsString("skipped (on_error: skip_file): source patients: "
        + dir.resolve("b.parquet")));
    assertThat(skipped.out(), containsString("skipped (on_error: skip_file): source patients: "
        + dir.resolve("c.xlsx")));
    JsonNode summary = DefaultJobTest.JSON.readTree(tmp.resolve("out-skip/run-summary.json").toFile());
    assertThat(summary.at("/skipped_files/patients").size(), equalTo(2));
    assertThat(summary.at("/skipped_files/patients").get(dir.resolve("c.xlsx").toString()).asText(),
        containsString("is not a readable Excel workbook"));
  }

  @Test
  void nestedJsonUnnestedAndReachedByPathGivesTheSameResourcesAsFlatCsv() throws Exception {
    StringBuilder entries = new StringBuilder();
    for (String row : ROWS) {
      String[] f = row.split(",");
      entries.append(entries.length() == 0 ? "" : ",").append("{\"patient_id\":\"").append(f[0])
          .append("\",\"name\":{\"first\":\"").append(f[1]).append("\",\"last\":\"").append(f[2])
          .append("\"},\"birth_date\":\"").append(f[3]).append("\",\"gender\":\"").append(f[4]).append("\"}");
    }
    Path json = Files.writeString(tmp.resolve("export.json"), "{\"exported\":\"2024-05-01\",\"entry\":[" + entries
        + "]}");
    Path config = Files.writeString(tmp.resolve("nested.yaml"), "sources:\n  patients:\n    path: " + json
        + "\n    unnest: entry\n    fields: {first_name: name.first, last_name: name.last}\nmappings: ["
        + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out-nested").toString(), "--set",
        "duckdb.database=" + tmp.resolve("n.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 5 = resources 5 + rejected 0: OK"));
    run(Files.writeString(tmp.resolve("flat.csv"), HEADER + "\n" + String.join("\n", ROWS) + "\n").toString(), "flat");
    assertThat(resources(tmp.resolve("out-nested")), equalTo(resources(tmp.resolve("out-flat"))));
  }
}
