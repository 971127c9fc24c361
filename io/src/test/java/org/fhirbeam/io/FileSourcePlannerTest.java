package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.config.SourceConfig.Format;
import org.fhirbeam.io.ReadTask.LocationKind;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileSourcePlannerTest {
  static final DuckDbSettings SETTINGS = new DuckDbSettings("unused.db", false, "256MB", 1, List.of("json"));
  static final Path SAMPLE = Path.of("..", "testdata", "patients").toAbsolutePath().normalize();

  @TempDir
  Path dir;

  /** Plans one source on a planner of its own, closed afterwards. */
  static PlannedSource plan(SourceConfig source) {
    try (FileSourcePlanner planner = new FileSourcePlanner(SETTINGS)) {
      return planner.plan(source);
    }
  }

  static SourceConfig source(String path) {
    return new SourceConfig("patients", path, null, Format.AUTO, false, "test:1");
  }

  @Test
  void mixedFormatsFormOneSourceAlignedByColumnName() {
    PlannedSource s = plan(source(SAMPLE + "/patients.{csv,parquet,json}"));
    assertThat(s.tasks().stream().map(ReadTask::file).toList(), contains(SAMPLE + "/patients.csv",
        SAMPLE + "/patients.json", SAMPLE + "/patients.parquet"));
    assertThat(s.columns(), contains("patient_id", "first_name", "last_name", "birth_date", "gender", "phone"));
    assertThat(s.tasks().get(0).kind(), equalTo(LocationKind.LINE));
    assertThat(s.tasks().get(0).firstLocation(), equalTo(2L));
    assertThat(s.tasks().get(1).kind(), equalTo(LocationKind.LINE));
    assertThat(s.tasks().get(1).firstLocation(), equalTo(1L));
    assertThat(s.tasks().get(2).kind(), equalTo(LocationKind.ROW));
  }

  @Test
  void aDirectoryMeansItsDataFiles() throws IOException {
    Files.writeString(dir.resolve("a.csv"), "x\n1\n");
    Files.writeString(dir.resolve("notes.txt"), "ignored");
    PlannedSource s = plan(source(dir.toString()));
    assertThat(s.tasks().stream().map(ReadTask::file).toList(), contains(dir.resolve("a.csv").toString()));
  }

  @Test
  void recursiveGlobsAndRelativeSegmentsMatch() throws IOException {
    Files.createDirectories(dir.resolve("2024/01"));
    Files.writeString(dir.resolve("2024/01/a.csv"), "x\n1\n");
    Files.writeString(dir.resolve("2024/b.csv"), "x\n2\n");
    PlannedSource s = plan(source(dir + "/2024/../2024/**.csv"));
    assertThat(s.tasks().stream().map(ReadTask::file).toList(),
        contains(dir.resolve("2024/01/a.csv").toString(), dir.resolve("2024/b.csv").toString()));
  }

  @Test
  void doubleStarAlsoMatchesNoDirectoryAndBracketsInNamesAreLiteral() throws IOException {
    Files.createDirectories(dir.resolve("in [2024]/sub"));
    Files.writeString(dir.resolve("in [2024]/top.csv"), "x\n1\n");
    Files.writeString(dir.resolve("in [2024]/sub/deep.csv"), "x\n2\n");
    PlannedSource s = plan(source(dir + "/in [2024]/**/*.csv"));
    assertThat(s.tasks().stream().map(ReadTask::file).toList(), contains(
        dir.resolve("in [2024]/sub/deep.csv").toString(), dir.resolve("in [2024]/top.csv").toString()));
    Path literal = Files.writeString(dir.resolve("pat [1].csv"), "x\n1\n");
    assertThat(plan(source(literal.toString())).tasks().get(0).file(),
        equalTo(literal.toString()));
  }

  @Test
  void csvRowsAreNeverTakenForCommentsOrPreambles() throws Exception {
    Path csv = Files.writeString(dir.resolve("c.csv"), "id,name\n#3,x\np4,y\n");
    PlannedSource s = plan(source(csv.toString()));
    try (var db = DuckDb.openInMemory(SETTINGS); var st = db.createStatement();
        var rs = st.executeQuery("SELECT count(*) FROM (" + s.tasks().get(0).textRows(List.of(), null) + ")")) {
      rs.next();
      assertThat(rs.getLong(1), equalTo(2L));
    }
  }

  @Test
  void jsonFieldsAreReadAsTextWhateverTypeTheSampleSuggested() throws Exception {
    StringBuilder ndjson = new StringBuilder();
    for (int i = 0; i < 25_000; i++) {
      ndjson.append("{\"id\": ").append(i).append(", \"o\": {\"a\": 1}}\n");
    }
    ndjson.append("{\"id\": \"x-1\", \"o\": \"text\"}\n");
    Path file = Files.writeString(dir.resolve("drift.ndjson"), ndjson);
    PlannedSource s = plan(source(file.toString()));
    try (var db = DuckDb.openInMemory(SETTINGS); var st = db.createStatement();
        var rs = st.executeQuery("SELECT count(*), max(id), min(o) FROM (" + s.tasks().get(0).textRows(List.of(), null)
            + ")")) {
      rs.next();
      assertThat(rs.getLong(1), equalTo(25_001L));
      assertThat(rs.getString(2), equalTo("x-1"));
      assertThat(rs.getString(3), equalTo("text"));
    }
  }

  @Test
  void ndjsonLinesAreKnownOnlyWithOneObjectPerLine() throws IOException {
    Path good = Files.writeString(dir.resolve("a.ndjson"), "{\"x\": 1}\n{\"x\": 2}\n");
    Path blank = Files.writeString(dir.resolve("b.ndjson"), "{\"x\": 1}\n\n{\"x\": 2}\n");
    try (FileSourcePlanner planner = new FileSourcePlanner(SETTINGS)) {
      assertThat(planner.plan(source(good.toString())).tasks().get(0).kind(), equalTo(LocationKind.LINE));
      assertThat(planner.plan(source(blank.toString())).tasks().get(0).kind(), equalTo(LocationKind.ROW));
    }
  }

  @Test
  void columnNamesStartingWithHashAreReserved() throws IOException {
    Path csv = Files.writeString(dir.resolve("h.csv"), "#id,name\n1,x\n");
    InputException e = assertThrows(InputException.class, () -> plan(source(csv.toString())));
    assertThat(e.getMessage(), equalTo("source patients: " + csv + " has a column named '#id'; names starting with '#'"
        + " are reserved for fhirbeam's own columns, so rename it"));
  }

  @Test
  void aPatternThatMatchesNothingIsAnError() {
    InputException e = assertThrows(InputException.class,
        () -> plan(source(dir + "/*.csv")));
    assertThat(e.getMessage(), equalTo("test:1: sources.patients.path: " + dir + "/*.csv matches no file"));
  }

  @Test
  void anUnknownExtensionNeedsAFormat() throws IOException {
    Files.writeString(dir.resolve("a.txt"), "x\n1\n");
    InputException e = assertThrows(InputException.class,
        () -> plan(source(dir + "/a.txt")));
    assertThat(e.getMessage(), equalTo("source patients: cannot tell the format of " + dir.resolve("a.txt")
        + " from its extension (.csv, .parquet, .json, .ndjson, .jsonl, .xlsx, and .gz of the text ones); set sources.patients.format"));
  }

  @Test
  void anUnreadableFileIsNamedBeforeTheRun() throws IOException {
    Files.writeString(dir.resolve("broken.parquet"), "not parquet at all");
    InputException e = assertThrows(InputException.class,
        () -> plan(source(dir + "/broken.parquet")));
    assertThat(e.getMessage().startsWith("source patients: cannot read " + dir.resolve("broken.parquet")
        + " as parquet: "), equalTo(true));
  }

  /**
   * A CSV file of {@code rows} lines after its header, every 97th malformed (a field too many), some values quoted
   * with a comma or a doubled quote inside, CRLF line breaks when asked.
   */
  static Path largeCsv(Path file, int rows, boolean crlf) throws IOException {
    String br = crlf ? "\r\n" : "\n";
    StringBuilder b = new StringBuilder("id,name,note" + br);
    for (int i = 1; i <= rows; i++) {
      b.append(i).append(",name ").append(i % 1000).append(i % 97 == 0 ? ",x,extra" : i % 13 == 0 ? ",\"a, \"\"b\"\"\"" : ",n")
          .append(br);
    }
    return Files.writeString(file, b);
  }

  @Test
  void aFileWithOneRecordPerLineIsCutAtLineStartsWithTheirLineNumbers() throws Exception {
    Path csv = largeCsv(dir.resolve("big.csv"), 150_000, true);
    byte[] bytes = Files.readAllBytes(csv);
    FileSourcePlanner.LineLayout layout = FileSourcePlanner.lineLayout(csv, '"');
    assertThat(layout.onePerLine(), equalTo(true));
    assertThat(layout.headerEnd(), equalTo((long) "id,name,note\r\n".length()));
    assertThat(layout.size(), equalTo((long) bytes.length));
    long[] at = layout.offsets();
    assertThat(at[0], equalTo(layout.headerEnd()));
    assertThat(at[at.length - 1], equalTo((long) bytes.length));
    assertThat(at.length, equalTo((int) (bytes.length / FileSourcePlanner.CUT_GRAIN) + 2));
    for (int k = 0; k < at.length; k++) {
      long line = 1;
      for (int i = 0; i < at[k]; i++) {
        line += bytes[i] == '\n' ? 1 : 0;
      }
      assertThat(layout.lines()[k], equalTo(line));
      assertThat(bytes[(int) at[k] - 1], equalTo((byte) '\n'));
    }
    assertThat(layout.lines()[at.length - 1], equalTo(150_002L));

    // Pieces cover the body exactly once, each read with the options DuckDB detects on the whole file, spelt out.
    ReadTask task = plan(source(csv.toString())).tasks().get(0);
    assertThat(task.cuts().path(), equalTo(csv.toString()));
    List<ReadTask> pieces = task.cut(task.bytes() / 3);
    assertThat(pieces.size(), equalTo(3));
    java.io.ByteArrayOutputStream body = new java.io.ByteArrayOutputStream();
    long next = 2;
    for (ReadTask piece : pieces) {
      assertThat(piece.isPiece(), equalTo(true));
      assertThat(piece.file(), equalTo(csv.toString()));
      assertThat(piece.firstLocation(), equalTo(next));
      assertThat(piece.lineShift(), equalTo(next - 2));
      Path copy = dir.resolve("piece-" + next + ".csv");
      ReadTask read = piece.writePiece(copy);
      assertThat(read.scan(), equalTo("read_csv('" + copy + "', auto_detect=false, delim=',', quote='\"',"
          + " escape='\"', new_line='\\r\\n', columns={'id': 'VARCHAR', 'name': 'VARCHAR', 'note': 'VARCHAR'},"
          + " all_varchar=true, comment='', header=true, skip=0)"));
      byte[] written = Files.readAllBytes(copy);
      String text = new String(written, java.nio.charset.StandardCharsets.UTF_8);
      assertThat(text.startsWith("id,name,note\r\n"), equalTo(true));
      body.write(written, (int) layout.headerEnd(), written.length - (int) layout.headerEnd());
      next += text.chars().filter(c -> c == '\n').count() - 1;
    }
    assertThat(java.util.Arrays.equals(body.toByteArray(),
        java.util.Arrays.copyOfRange(bytes, (int) layout.headerEnd(), bytes.length)), equalTo(true));
    assertThat(task.cut(task.bytes()), contains(task));
    assertThat(task.cut(0), contains(task));
    // A file's pieces add up to one whole file, however it is cut (the run's progress counts files by them).
    assertThat(task.fileShare(1_000_000), equalTo(1_000_000L));
    for (int n : new int[] {3, 7}) {
      List<ReadTask> cut = task.cut(task.bytes() / n);
      assertThat(cut.stream().map(p -> p.fileShare(1_000_000) > 0 && p.fileShare(1_000_000) < 1_000_000).distinct()
          .toList(), contains(true));
      assertThat(cut.stream().mapToLong(p -> p.fileShare(1_000_000)).sum(), equalTo(1_000_000L));
    }
  }

  /** Every value of a read and the lines it set aside, as text, in order. */
  private static List<String> readAll(java.sql.Connection db, String scan) throws java.sql.SQLException {
    List<String> out = new ArrayList<>();
    try (java.sql.Statement st = db.createStatement()) {
      st.execute("DROP TABLE IF EXISTS bad");
      st.execute("DROP TABLE IF EXISTS bad_scans");
      String read = scan.substring(0, scan.lastIndexOf(')'))
          + ", ignore_errors = true, store_rejects = true, rejects_table = 'bad', rejects_scan = 'bad_scans')";
      for (String q : List.of("SELECT * FROM " + read, "SELECT line, error_type, column_name FROM bad ORDER BY line")) {
        try (java.sql.ResultSet rs = st.executeQuery(q)) {
          while (rs.next()) {
            StringBuilder row = new StringBuilder();
            for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
              row.append(rs.getMetaData().getColumnName(i)).append('=').append(rs.getString(i)).append(';');
            }
            out.add(row.toString());
          }
        }
      }
    }
    return out;
  }

  @Test
  void csvFilesAreReadWithTheOptionsDuckDbDetectsSpeltOut() throws Exception {
    String body = "1;\"Ann \"\"A\"\"\";x;y;z;5\n2;Bo;x;y\n3;Cy;x;y;z;abc\n4;Di;x;y;z;7;extra\n";
    Path csv = Files.writeString(dir.resolve("odd.csv"), "id;\"full name\";O;\"a;b\";na\u00efve;n\n" + body);
    // DuckDB spells out a column named O'Brien unescaped: that file is read with DuckDB's own detection.
    Path quoted = Files.writeString(dir.resolve("quoted.csv"), "id;\"full name\";O'Brien;\"a;b\";na\u00efve;n\n" + body);
    for (Path file : List.of(csv, quoted)) {
      for (org.fhirbeam.config.CsvOptions options : List.of(org.fhirbeam.config.CsvOptions.DETECT,
          new org.fhirbeam.config.CsvOptions(null, null, null, null, java.util.Map.of("n", "INTEGER")))) {
        ReadTask task = plan(new SourceConfig("patients", file.toString(), null, Format.AUTO, false, "test", null, 1,
            null, null, options, false, org.fhirbeam.config.S3Settings.DEFAULT, null, java.util.Map.of(), null))
            .tasks().get(0);
        String auto = FileSourcePlanner.scan(file, Format.CSV, options);
        if (file == csv) {
          assertThat(task.scan(), org.hamcrest.Matchers.startsWith("read_csv('" + file + "', auto_detect=false, delim=';',"
              + " quote='\"', escape='\"', new_line='\\n', columns={'id': 'VARCHAR', 'full name': 'VARCHAR', 'O':"
              + " 'VARCHAR', 'a;b': 'VARCHAR', 'na\u00efve': 'VARCHAR', 'n': '"
              + (options.types().isEmpty() ? "VARCHAR" : "INTEGER") + "'}, all_varchar=true, comment='', "));
        } else {
          assertThat(task.scan(), equalTo(auto));
        }
        assertThat(task.columns(), contains("id", "full name", file == csv ? "O" : "O'Brien", "a;b", "na\u00efve", "n"));
        // The same rows, and the same lines set aside, as DuckDB's own detection reads.
        try (java.sql.Connection db = DuckDb.openInMemory(SETTINGS)) {
          List<String> rows = readAll(db, task.scan());
          assertThat(rows, equalTo(readAll(db, auto)));
          assertThat(rows.size(), equalTo(5));
        }
      }
    }
  }

  @Test
  void filesThatCannotBeCutAreReadWhole() throws IOException {
    // Too small to cut.
    assertThat(plan(source(SAMPLE + "/patients.csv")).tasks().get(0).cuts(),
        equalTo(null));
    // Compressed: byte offsets of the stored file are not offsets of the text.
    Path csv = largeCsv(dir.resolve("big.csv"), 150_000, false);
    Path gz = dir.resolve("big.csv.gz");
    try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(gz))) {
      out.write(Files.readAllBytes(csv));
    }
    assertThat(FileSourcePlanner.lineLayout(gz, '"').onePerLine(), equalTo(true));
    assertThat(FileSourcePlanner.lineLayout(gz, '"').offsets(), equalTo(null));
    assertThat(plan(source(gz.toString())).tasks().get(0).cuts(), equalTo(null));
    // Quotes escaped by a backslash: the layout's pass does not follow them.
    SourceConfig escaped = new SourceConfig("patients", csv.toString(), null, Format.AUTO, false, "test", null, 1,
        null, null, new org.fhirbeam.config.CsvOptions(null, null, "\\", null), false,
        org.fhirbeam.config.S3Settings.DEFAULT, null, java.util.Map.of(), null);
    assertThat(plan(escaped).tasks().get(0).cuts(), equalTo(null));
    Files.writeString(dir.resolve("backslash.csv"), Files.readString(csv) + "1,\"a \\\"b\\\" c\",n\n");
    assertThat(FileSourcePlanner.lineLayout(dir.resolve("backslash.csv"), '"').offsets(), equalTo(null));
    assertThat(plan(source(csv.toString())).tasks().get(0).cuts() != null,
        equalTo(true));
  }

  @Test
  void csvLinesAreKnownOnlyWithoutBlankLinesOrQuotedBreaks() throws IOException {
    assertThat(FileSourcePlanner.lineLayout(Files.writeString(dir.resolve("a.csv"), "a,b\n1,\"x,y\"\n2,z\n"), '\"').onePerLine(),
        equalTo(true));
    assertThat(FileSourcePlanner.lineLayout(Files.writeString(dir.resolve("b.csv"), "a,b\r\n1,x\r\n"), '\"').onePerLine(),
        equalTo(true));
    assertThat(FileSourcePlanner.lineLayout(Files.writeString(dir.resolve("c.csv"), "a,b\n1,x\n\n2,y\n"), '\"').onePerLine(),
        equalTo(false));
    assertThat(FileSourcePlanner.lineLayout(Files.writeString(dir.resolve("d.csv"), "a,b\n1,\"x\ny\"\n"), '\"').onePerLine(),
        equalTo(false));
    Files.writeString(dir.resolve("e.csv"), "a,b\n1,x\n\n2,y\n");
    PlannedSource s = plan(source(dir + "/e.csv"));
    assertThat(s.tasks().get(0).kind(), equalTo(LocationKind.ROW));
    assertThat(s.tasks().get(0).firstLocation(), equalTo(1L));
  }

  @Test
  void csvOptionsAndGzipAreReadAsConfigured() throws Exception {
    Path raw = dir.resolve("l1.csv");
    Files.write(raw, "id;name\n1;M\u00fcller\n2;'A;B'\n".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
    Path gz = dir.resolve("l1.csv.gz");
    try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(gz))) {
      out.write(Files.readAllBytes(raw));
    }
    Files.delete(raw);
    SourceConfig c = new SourceConfig("people", gz.toString(), null, SourceConfig.Format.AUTO, false, "test", null, 1,
        null, null, new org.fhirbeam.config.CsvOptions(";", "'", null, "latin-1"), false,
        org.fhirbeam.config.S3Settings.DEFAULT, null, java.util.Map.of(), null);
    PlannedSource s = plan(c);
    assertThat(s.columns(), contains("id", "name"));
    assertThat(s.tasks().get(0).kind(), equalTo(LocationKind.LINE)); // line numbers known through the gzip
    List<String> rows = new java.util.ArrayList<>();
    try (var db = DuckDb.openInMemory(SETTINGS); var st = db.createStatement();
        var rs = st.executeQuery(s.tasks().get(0).textRows(List.of(), null))) {
      while (rs.next()) {
        rows.add(rs.getString(1) + "|" + rs.getString(2));
      }
    }
    assertThat(rows, contains("1|M\u00fcller", "2|A;B"));
  }

  @Test
  void nestedJsonIsUnnestedAndReachedByPath() throws Exception {
    Files.writeString(dir.resolve("bundle.json"), "{\"resourceType\":\"Bundle\",\"entry\":["
        + "{\"id\":\"a\",\"name\":{\"family\":\"Lee\"},\"tags\":[1,2]},"
        + "{\"id\":\"b\",\"name\":{\"family\":\"Ng\"},\"extra\":true}]}\n"
        + "{\"entry\":[{\"id\":\"c\"}]}\n");
    SourceConfig c = new SourceConfig("people", dir + "/bundle.json", null, SourceConfig.Format.AUTO, false, "test",
        null, 1, null, null, org.fhirbeam.config.CsvOptions.DETECT, false, org.fhirbeam.config.S3Settings.DEFAULT,
        "entry", java.util.Map.of("family", "name.family"), null);
    PlannedSource s = plan(c);
    assertThat(s.columns(), contains("id", "name", "tags", "extra", "family"));
    assertThat(s.tasks().get(0).kind(), equalTo(LocationKind.ROW));
    List<String> rows = new java.util.ArrayList<>();
    try (var db = DuckDb.openInMemory(SETTINGS); var st = db.createStatement();
        var rs = st.executeQuery(s.tasks().get(0).textRows(List.of(), null))) {
      while (rs.next()) {
        List<String> row = new java.util.ArrayList<>();
        for (int i = 1; i <= 5; i++) {
          row.add(rs.getString(i));
        }
        rows.add(String.join("|", row.stream().map(String::valueOf).toList()));
      }
    }
    assertThat(rows, contains("a|{\"family\":\"Lee\"}|[1,2]|null|Lee", "b|{\"family\":\"Ng\"}|null|true|Ng",
        "c|null|null|null|null"));
  }
}
