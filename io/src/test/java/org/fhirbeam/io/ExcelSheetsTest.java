package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import org.apache.poi.ss.usermodel.CellStyle;
import org.apache.poi.ss.usermodel.Row;
import org.apache.poi.ss.usermodel.Sheet;
import org.apache.poi.xssf.usermodel.XSSFWorkbook;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Excel sources: a sheet by name or number below a header row, typed cells read as the text DuckDB expects. */
class ExcelSheetsTest {
  @TempDir
  Path dir;

  /** A workbook with a notes sheet first and the data on "Patients", its header on row 2. */
  Path workbook() throws IOException {
    Path file = dir.resolve("people.xlsx");
    try (XSSFWorkbook wb = new XSSFWorkbook(); OutputStream out = Files.newOutputStream(file)) {
      wb.createSheet("Notes").createRow(0).createCell(0).setCellValue("exported 2024-05-01");
      Sheet s = wb.createSheet("Patients");
      CellStyle date = wb.createCellStyle();
      date.setDataFormat(wb.getCreationHelper().createDataFormat().getFormat("dd/mm/yyyy"));
      CellStyle dateTime = wb.createCellStyle();
      dateTime.setDataFormat(wb.getCreationHelper().createDataFormat().getFormat("yyyy-mm-dd hh:mm:ss"));
      s.createRow(0).createCell(0).setCellValue("Patient list");
      Row h = s.createRow(1);
      String[] header = {"patient_id", "first_name", "birth_date", "visits", "weight", "active", "seen", "total"};
      for (int i = 0; i < header.length; i++) {
        h.createCell(i).setCellValue(header[i]);
      }
      Row a = s.createRow(2);
      a.createCell(0).setCellValue("p1");
      a.createCell(1).setCellValue("Ann \"Annie\", Lee");
      a.createCell(2).setCellValue(LocalDate.of(1980, 2, 29));
      a.getCell(2).setCellStyle(date);
      a.createCell(3).setCellValue(42);
      a.createCell(4).setCellValue(70.25);
      a.createCell(5).setCellValue(true);
      a.createCell(6).setCellValue(LocalDateTime.of(2024, 1, 2, 13, 45, 30));
      a.getCell(6).setCellStyle(dateTime);
      a.createCell(7).setCellFormula("D3*2");
      // Row 4 is blank; row 5 has only an id and a value in the last column.
      Row c = s.createRow(4);
      c.createCell(0).setCellValue("p3");
      c.createCell(7).setCellValue(1e-7);
      s.createRow(6); // a blank row at the end
      wb.getCreationHelper().createFormulaEvaluator().evaluateAll();
      wb.write(out);
    }
    return file;
  }

  static List<String> rows(ReadTask t) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = DuckDb.openInMemory(FileSourcePlannerTest.SETTINGS); Statement st = c.createStatement();
        ResultSet rs = st.executeQuery(t.textRows(List.of(), null))) {
      int n = rs.getMetaData().getColumnCount();
      while (rs.next()) {
        List<String> row = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
          row.add(rs.getString(i));
        }
        out.add(String.join("|", row.stream().map(String::valueOf).toList()));
      }
    }
    return out;
  }

  @Test
  void aSheetByNameBelowItsHeaderRowIsReadWithTypedCellsAsText() throws Exception {
    Path file = workbook();
    PlannedSource p = FileSourcePlannerTest.plan(new SourceConfig("people",
        file.toString(), null, SourceConfig.Format.AUTO, false, "test", "Patients", 2));
    assertThat(p.columns(), equalTo(List.of("patient_id", "first_name", "birth_date", "visits", "weight", "active",
        "seen", "total")));
    ReadTask t = p.tasks().get(0);
    assertThat(t.file(), equalTo(file.toString()));
    assertThat(t.kind(), equalTo(ReadTask.LocationKind.LINE));
    assertThat(t.firstLocation(), equalTo(3L)); // the first data row is row 3 of the sheet
    assertThat(rows(t), equalTo(List.of(
        "p1|Ann \"Annie\", Lee|1980-02-29|42|70.25|TRUE|2024-01-02T13:45:30|84",
        "null|null|null|null|null|null|null|null",
        "p3|null|null|null|null|null|null|0.0000001")));
  }

  @Test
  void aSheetByNumberAndTheFirstSheetByDefault() throws Exception {
    Path file = workbook();
    PlannedSource second = FileSourcePlannerTest.plan(new SourceConfig("people",
        file.toString(), null, SourceConfig.Format.XLSX, false, "test", "2", 2));
    assertThat(second.columns().get(0), equalTo("patient_id"));
    PlannedSource first = FileSourcePlannerTest.plan(new SourceConfig("people",
        file.toString(), null, SourceConfig.Format.AUTO, false, "test"));
    assertThat(first.columns(), equalTo(List.of("exported 2024-05-01")));
  }

  @Test
  void aMissingSheetOrABrokenWorkbookIsNamed() throws Exception {
    Path file = workbook();
    InputException missing = assertThrows(InputException.class, () -> FileSourcePlannerTest.plan(new SourceConfig("people", file.toString(), null,
            SourceConfig.Format.AUTO, false, "test", "Visits", 1)));
    assertThat(missing.getMessage(), equalTo("source people: " + file + " has no sheet 'Visits' (sheets: Notes,"
        + " Patients; give a name or a number from 1)"));
    Path broken = Files.write(dir.resolve("broken.xlsx"), Files.readAllBytes(file), java.nio.file.StandardOpenOption.CREATE);
    Files.write(broken, new byte[] {1, 2, 3}, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING);
    InputException bad = assertThrows(InputException.class, () -> FileSourcePlannerTest.plan(new SourceConfig("people", broken.toString(), null,
            SourceConfig.Format.AUTO, false, "test")));
    assertThat(bad.getMessage(), containsString("source people: " + broken + " is not a readable Excel workbook"));
  }
}
