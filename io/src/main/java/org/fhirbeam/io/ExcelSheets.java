package org.fhirbeam.io;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.apache.poi.ooxml.util.SAXHelper;
import org.apache.poi.openxml4j.exceptions.OpenXML4JException;
import org.apache.poi.openxml4j.opc.OPCPackage;
import org.apache.poi.openxml4j.opc.PackageAccess;
import org.apache.poi.ss.usermodel.DataFormatter;
import org.apache.poi.ss.usermodel.DateUtil;
import org.apache.poi.ss.util.CellReference;
import org.apache.poi.xssf.eventusermodel.ReadOnlySharedStringsTable;
import org.apache.poi.xssf.eventusermodel.XSSFReader;
import org.apache.poi.xssf.eventusermodel.XSSFSheetXMLHandler;
import org.apache.poi.xssf.usermodel.XSSFComment;
import org.fhirbeam.config.InputException;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;
import org.xml.sax.XMLReader;

/**
 * Turns one sheet of an Excel workbook (.xlsx) into a CSV file that DuckDB then reads like any other, streaming
 * the sheet with Apache POI's SAX reader so memory does not grow with the sheet. Cells become text: dates (cells
 * with a date format) as ISO {@code yyyy-MM-dd} or {@code yyyy-MM-ddTHH:mm:ss}, numbers in plain notation
 * ({@code 42}, {@code 0.5}, never {@code 4.2E1}), text as is, formulas as their cached result. Line {@code n} of
 * the CSV is row {@code headerRow + n - 1} of the sheet: blank rows between data rows are kept as rows of empty
 * fields, blank rows at the end are left out. The CSV is cached per workbook version (path, size, modification
 * time, sheet, header row), so a second run reuses it.
 */
public final class ExcelSheets {
  private static final DateTimeFormatter DATE_TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss");

  private ExcelSheets() {}

  /** The CSV of {@code sheet} (name or 1-based number; null for the first) of {@code workbook}, made if needed. */
  public static Path toCsv(String source, Path workbook, String sheet, int headerRow, Path cacheDir) {
    try {
      Files.createDirectories(cacheDir);
      Path csv = cacheDir.resolve(cacheKey(workbook, sheet, headerRow) + ".csv");
      if (Files.exists(csv)) {
        return csv;
      }
      Path partial = Files.createTempFile(cacheDir, "sheet", ".partial");
      try {
        convert(source, workbook, sheet, headerRow, partial);
        Files.move(partial, csv, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } finally {
        Files.deleteIfExists(partial);
      }
      return csv;
    } catch (IOException e) {
      throw new UncheckedIOException("source " + source + ": cannot convert " + workbook + " to CSV", e);
    }
  }

  private static String cacheKey(Path workbook, String sheet, int headerRow) throws IOException {
    String key = workbook.toAbsolutePath().normalize() + "|" + Files.size(workbook) + "|"
        + Files.getLastModifiedTime(workbook).toMillis() + "|" + sheet + "|" + headerRow;
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(
          key.getBytes(StandardCharsets.UTF_8))).substring(0, 32);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static void convert(String source, Path workbook, String sheet, int headerRow, Path csv)
      throws IOException {
    try (OPCPackage pkg = OPCPackage.open(workbook.toFile(), PackageAccess.READ)) {
      XSSFReader reader = new XSSFReader(pkg);
      XSSFReader.SheetIterator sheets = (XSSFReader.SheetIterator) reader.getSheetsData();
      List<String> names = new ArrayList<>();
      int number = 0;
      while (sheets.hasNext()) {
        try (InputStream in = sheets.next()) {
          number++;
          names.add(sheets.getSheetName());
          boolean wanted = sheet == null ? number == 1
              : sheet.equals(sheets.getSheetName()) || sheet.equals(String.valueOf(number));
          if (wanted) {
            try (BufferedWriter out = Files.newBufferedWriter(csv, StandardCharsets.UTF_8)) {
              Rows rows = new Rows(out, headerRow);
              XMLReader xml = SAXHelper.newXMLReader();
              xml.setContentHandler(new XSSFSheetXMLHandler(reader.getStylesTable(),
                  new ReadOnlySharedStringsTable(pkg), rows, new PlainFormatter(), false));
              xml.parse(new InputSource(in));
              if (!rows.sawHeader) {
                throw new InputException("source " + source + ": sheet '" + sheets.getSheetName() + "' of "
                    + workbook + " has no row " + headerRow + " (header_row)");
              }
            }
            return;
          }
        }
      }
      throw new InputException("source " + source + ": " + workbook + " has no sheet '" + sheet + "' (sheets: "
          + String.join(", ", names) + "; give a name or a number from 1)");
    } catch (OpenXML4JException | SAXException | org.apache.poi.ooxml.POIXMLException
        | UncheckedIOException | IllegalArgumentException e) {
      throw new InputException("source " + source + ": " + workbook + " is not a readable Excel workbook (.xlsx): "
          + e.getClass().getSimpleName(), e);
    } catch (javax.xml.parsers.ParserConfigurationException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Cell values as the text DuckDB reads: ISO dates, plain numbers. */
  private static final class PlainFormatter extends DataFormatter {
    @Override
    public String formatRawCellContents(double value, int formatIndex, String formatString, boolean use1904) {
      if (DateUtil.isADateFormat(formatIndex, formatString) && DateUtil.isValidExcelDate(value)) {
        LocalDateTime t = DateUtil.getLocalDateTime(value, use1904, true);
        return t.toLocalTime().toSecondOfDay() == 0 ? t.toLocalDate().toString() : t.format(DATE_TIME);
      }
      BigDecimal d = BigDecimal.valueOf(value).stripTrailingZeros();
      return d.scale() < 0 ? d.setScale(0).toPlainString() : d.toPlainString();
    }
  }

  /** Writes the header row and the rows below it as CSV, in sheet order, keeping blank rows in between. */
  private static final class Rows implements XSSFSheetXMLHandler.SheetContentsHandler {
    private final BufferedWriter out;
    private final int headerRow;
    private final List<String> cells = new ArrayList<>();
    private int columns;
    private int written; // sheet rows written so far (the header row counts as headerRow)
    private int current;
    private boolean sawHeader;

    Rows(BufferedWriter out, int headerRow) {
      this.out = out;
      this.headerRow = headerRow;
    }

    @Override
    public void startRow(int rowIndex) {
      current = rowIndex + 1;
      cells.clear();
    }

    @Override
    public void cell(String reference, String value, XSSFComment comment) {
      int column = new CellReference(reference).getCol();
      while (cells.size() < column) {
        cells.add("");
      }
      cells.add(value == null ? "" : value);
    }

    @Override
    public void endRow(int rowIndex) {
      try {
        if (current < headerRow) {
          return;
        }
        if (current == headerRow) {
          sawHeader = true;
          columns = cells.size();
          write(cells);
          written = headerRow;
          return;
        }
        if (!sawHeader || cells.stream().allMatch(String::isEmpty)) {
          return; // blank rows are written only when a later row has data
        }
        List<String> blank = new ArrayList<>();
        for (int i = 0; i < columns; i++) {
          blank.add("");
        }
        while (written < current - 1) {
          write(blank);
          written++;
        }
        List<String> row = new ArrayList<>(cells.subList(0, Math.min(cells.size(), Math.max(columns, cells.size()))));
        while (row.size() < columns) {
          row.add("");
        }
        write(row);
        written = current;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    private void write(List<String> fields) throws IOException {
      for (int i = 0; i < fields.size(); i++) {
        if (i > 0) {
          out.write(',');
        }
        String f = fields.get(i);
        if (f.isEmpty()) {
          continue;
        }
        out.write('"');
        out.write(f.replace("\"", "\"\""));
        out.write('"');
      }
      out.write('\n');
    }
  }
}
