package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.List;
import org.apache.poi.ss.usermodel.CellStyle;
import org.apache.poi.ss.usermodel.Row;
import org.apache.poi.ss.usermodel.Sheet;
import org.apache.poi.xssf.usermodel.XSSFWorkbook;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * An Excel workbook as a source, end to end through the command line on both runners: the same rows as a CSV
 * file give the same resources byte for byte (dates typed as Excel dates included), and a bad row is rejected
 * with its row number in the sheet.
 */
class ExcelSourceTest {
  static final String[][] ROWS = {
      {"p1", "Maria", "Garcia", "1984-03-12", "F"},
      {"p2", "John", "Smith", "1979-11-02", "M"},
      {"p3", "Ann", "Lee", "not a date", "F"},
      {"p4", "Cy", "Begay", "2001-07-30", "other"}};

  @TempDir
  Path tmp;

  @ParameterizedTest
  @EnumSource(Runner.class)
  void aSheetGivesTheSameResourcesAsTheSameRowsInCsv(Runner runner) throws IOException {
    StringBuilder csv = new StringBuilder("patient_id,first_name,last_name,birth_date,gender\n");
    for (String[] r : ROWS) {
      csv.append(String.join(",", r)).append('\n');
    }
    Path csvFile = Files.writeString(tmp.resolve("people.csv"), csv);
    Path xlsx = tmp.resolve("people.xlsx");
    try (XSSFWorkbook wb = new XSSFWorkbook(); OutputStream out = Files.newOutputStream(xlsx)) {
      CellStyle date = wb.createCellStyle();
      date.setDataFormat(wb.getCreationHelper().createDataFormat().getFormat("m/d/yy"));
      Sheet s = wb.createSheet("Export");
      s.createRow(0).createCell(0).setCellValue("Clinic export, do not edit");
      Row h = s.createRow(1);
      String[] header = {"patient_id", "first_name", "last_name", "birth_date", "gender"};
      for (int i = 0; i < header.length; i++) {
        h.createCell(i).setCellValue(header[i]);
      }
      for (int r = 0; r < ROWS.length; r++) {
        Row row = s.createRow(r + 2);
        for (int i = 0; i < ROWS[r].length; i++) {
          if (i == 3 && !ROWS[r][i].startsWith("not")) {
            row.createCell(i).setCellValue(LocalDate.parse(ROWS[r][i])); // a real Excel date, not text
            row.getCell(i).setCellStyle(date);
          } else {
            row.createCell(i).setCellValue(ROWS[r][i]);
          }
        }
      }
      wb.write(out);
    }

    Path fromCsv = run(runner, "sources.patients.path=" + csvFile, "csv");
    Path fromExcel = run(runner, "sources.patients.path=" + xlsx, "xlsx", "--set", "sources.patients.header_row=2",
        "--set", "sources.patients.sheet=Export");
    String resources = Files.readString(fromCsv.resolve("fhir/Patient-00000-of-00001.ndjson"));
    assertThat(Files.readString(fromExcel.resolve("fhir/Patient-00000-of-00001.ndjson")), equalTo(resources));
    assertThat(resources.lines().count(), equalTo(3L));
    List<String> rejects;
    try (var files = Files.list(fromExcel.resolve("rejects"))) {
      rejects = Files.readAllLines(files.findFirst().orElseThrow());
    }
    assertThat(rejects.size(), equalTo(1));
    JsonNode reject = DefaultJobTest.JSON.readTree(rejects.get(0));
    assertThat(reject.get("file").asText(), equalTo(xlsx.toString()));
    assertThat(reject.get("line").asLong(), equalTo(5L)); // row 5 of the sheet: title, header, p1, p2, p3
    assertThat(reject.get("element").asText(), equalTo("Patient.birthDate"));
  }

  /** A value of a typed column that does not convert is an ingest reject at its row of the sheet, below the header. */
  @ParameterizedTest
  @EnumSource(Runner.class)
  void anUnconvertibleValueIsRejectedAtItsRowOfTheSheet(Runner runner) throws IOException {
    Path xlsx = tmp.resolve("visits.xlsx");
    try (XSSFWorkbook wb = new XSSFWorkbook(); OutputStream out = Files.newOutputStream(xlsx)) {
      Sheet s = wb.createSheet("Export");
      s.createRow(0).createCell(0).setCellValue("Clinic export, do not edit");
      String[][] rows = {{"patient_id", "first_name", "last_name", "birth_date", "gender", "visits"},
          {"p1", "Ann", "Lee", "1990-01-01", "f", "3"}, {"p2", "Bo", "Li", "1991-02-02", "m", "4"},
          {"p3", "Cy", "Ma", "1992-03-03", "f", "many"}, {"p4", "Di", "Ng", "1993-04-04", "m", "5"}};
      for (int r = 0; r < rows.length; r++) {
        Row row = s.createRow(r + 1);
        for (int i = 0; i < rows[r].length; i++) {
          row.createCell(i).setCellValue(rows[r][i]);
        }
      }
      wb.write(out);
    }
    Path out = tmp.resolve("out-visits-" + runner.label());
    Cli r = Cli.run("run", "--runner", runner.label(), "--output", out.toString(), "--set", "sources.patients.path=" + xlsx, "--set",
        "sources.patients.header_row=2", "--set", "sources.patients.types={visits: INTEGER}", "--set",
        "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 3 + rejected 1: OK"));
    List<com.fasterxml.jackson.databind.node.ObjectNode> rejects = DefaultJobTest.rejects(out);
    assertThat(rejects.size(), equalTo(1));
    JsonNode reject = rejects.get(0);
    assertThat(reject.get("stage").asText(), equalTo("ingest"));
    assertThat(reject.get("rule").asText(), equalTo("csv-cast"));
    assertThat(reject.get("line").asLong(), equalTo(5L)); // row 5 of the sheet: title, header, p1, p2, p3
  }

  Path run(Runner runner, String path, String name, String... more) {
    Path out = tmp.resolve("out-" + name + "-" + runner.label());
    List<String> a = new java.util.ArrayList<>(List.of("run", "--runner", runner.label(), "--output", out.toString(),
        "--set", path, "--set", "duckdb.database=" + tmp.resolve(name + "-" + runner.label() + ".db")));
    a.addAll(List.of(more));
    Cli r = Cli.run(a.toArray(new String[0]));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 4 = resources 3 + rejected 1: OK"));
    return out;
  }
}
