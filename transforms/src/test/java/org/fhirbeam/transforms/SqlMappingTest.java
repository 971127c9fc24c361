package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.fhirbeam.config.ConfigLoader;
import org.hl7.fhir.r4.model.Patient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Runs compiled mappings in a real in-memory DuckDB and checks the exact JSON and rejects they produce. */
class SqlMappingTest {
  static final List<String> COLUMNS = List.of("patient_id", "first_name", "last_name", "birth_date", "gender");
  static SqlMapping patient;
  static IParser strict;
  static Connection db;
  static final ObjectMapper JSON = new ObjectMapper();

  @BeforeAll
  static void compile() throws SQLException {
    Path repoMapping = Path.of("..", "config", "mappings", "patient.yaml");
    patient = new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(repoMapping), COLUMNS));
    strict = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
    db = DriverManager.getConnection("jdbc:duckdb:");
  }

  @AfterAll
  static void close() throws SQLException {
    db.close();
  }

  /** What one mapping run over some rows produced. */
  record Result(List<String> resources, List<String> rejects) {}

  /** Loads rows (all text) into a table and runs both queries of the mapping over it. */
  static Result run(SqlMapping mapping, List<String> columns, String[]... rows) throws SQLException {
    try (Statement st = db.createStatement()) {
      List<String> defs = new ArrayList<>();
      for (String c : columns) {
        defs.add(SqlMapping.q(c) + " VARCHAR");
      }
      st.execute("CREATE OR REPLACE TABLE src (" + String.join(", ", defs) + ")");
      try (PreparedStatement insert = db.prepareStatement("INSERT INTO src VALUES ("
          + String.join(", ", java.util.Collections.nCopies(columns.size(), "?")) + ")")) {
        for (String[] row : rows) {
          for (int i = 0; i < row.length; i++) {
            insert.setString(i + 1, row[i]);
          }
          insert.executeUpdate();
        }
      }
      List<String> resources = new ArrayList<>();
      List<String> rejects = new ArrayList<>();
      SqlMapping.Origin origin = new SqlMapping.Origin("run-1", "s", "/data/f.csv", "line", 2, columns, null);
      try (ResultSet rs = st.executeQuery(mapping.outputQuery("SELECT * FROM src", origin))) {
        while (rs.next()) {
          if (rs.getString("kind").equals(SqlMapping.RESOURCE)) {
            resources.add(rs.getString("line"));
          } else {
            JsonNode r = JSON.readTree(rs.getString("line"));
            assertThat(r.get("run_id").asText() + r.get("source").asText() + r.get("file").asText()
                + r.get("stage").asText(), equalTo("run-1s/data/f.csvmapping"));
            assertThat(r.get("row").size(), equalTo(columns.size()));
            rejects.add((r.get("line").asLong() - 1) + " " + r.get("element").asText() + " "
                + r.get("rule").asText() + ": " + r.get("reason").asText());
          }
        }
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new AssertionError(e);
      }
      return new Result(resources, rejects);
    }
  }

  static Result map(String[]... rows) throws SQLException {
    return run(patient, COLUMNS, rows);
  }

  static String resource(String id, String first, String last, String birth, String gender) throws SQLException {
    Result r = map(new String[] {id, first, last, birth, gender});
    assertThat(r.rejects(), empty());
    assertThat(r.resources().size(), equalTo(1));
    return r.resources().get(0);
  }

  @ParameterizedTest
  @CsvSource(nullValues = "NULL", value = {
      "m, male", "M, male", "male, male", "MALE, male", "' Male ', male",
      "f, female", "F, female", "female, female", "Female, female",
      "o, other", "O, other", "other, other", "OTHER, other",
      "x, unknown", "unknown, unknown", "'', unknown", "NULL, unknown", "mf, unknown"})
  void genderIsNormalisedCaseInsensitively(String input, String expected) throws SQLException {
    assertThat(resource("p1", "A", "B", "2000-01-01", input), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"B\",\"given\":[\"A\"]}],\"gender\":\"" + expected
        + "\",\"birthDate\":\"2000-01-01\"}"));
  }

  @ParameterizedTest
  @CsvSource({"1984-03-12, 1984-03-12", "' 2000-02-29 ', 2000-02-29", "1900-01-01, 1900-01-01",
      "0999-12-31, 0999-12-31", "0001-01-01, 0001-01-01"})
  void isoDatesAreWrittenAsFhirDates(String input, String expected) throws SQLException {
    assertThat(resource("p1", "A", "B", input, "f"), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"B\",\"given\":[\"A\"]}],\"gender\":\"female\","
        + "\"birthDate\":\"" + expected + "\"}"));
  }

  @ParameterizedTest
  @CsvSource({"1999-02-29", "1985-13-01", "not-a-date", "02/03/1990", "1990-1-5", "19900105", "1990-01-05T10:00",
      "0000-01-01", "+12345-01-01", "-0001-01-01", "990-01-01"})
  void badDatesAreRejected(String input) throws SQLException {
    Result r = map(new String[] {"p1", "A", "B", input, "f"});
    assertThat(r.resources(), empty());
    assertThat(r.rejects(), contains(
        "1 Patient.birthDate date: value is not a date in the expected format (yyyy-MM-dd)"));
  }

  /** The fast path of clean() gives exactly what trimming every value gives, for every kind of end. */
  @Test
  void cleanEqualsPlainTrimming() throws SQLException {
    String[] values = {"", " ", "\t", "\r\n", "a", "a ", " a", "a\t", "\ta", "a\n", "a\r", "\r\na b\r\n", " a b ",
        "!", "!x!", "\u0001a", "a\u0001", "\u00a0a\u00a0", "é ", " é", "名前", "a\u3000", "  \t  "};
    try (Statement st = db.createStatement()) {
      st.execute("CREATE OR REPLACE TABLE texts (v VARCHAR)");
      try (PreparedStatement insert = db.prepareStatement("INSERT INTO texts VALUES (?)")) {
        for (String v : values) {
          insert.setString(1, v);
          insert.executeUpdate();
        }
        insert.setString(1, null);
        insert.executeUpdate();
      }
      try (ResultSet rs = st.executeQuery("SELECT v, " + SqlMapping.clean("v") + ", nullif(trim(v, "
          + SqlMapping.lit(SqlMapping.WHITESPACE) + "), '') FROM texts")) {
        int rows = 0;
        while (rs.next()) {
          rows++;
          assertThat("value " + JSON.valueToTree(rs.getString(1)), rs.getString(2), equalTo(rs.getString(3)));
        }
        assertThat(rows, equalTo(values.length + 1));
      }
      try (ResultSet rs = st.executeQuery("SELECT list(" + SqlMapping.clean("v") + " ORDER BY rowid) FROM texts")) {
        rs.next();
        assertThat(rs.getString(1), equalTo("[NULL, NULL, NULL, NULL, a, a, a, a, a, a, a, a b, a b, !, !x!, \u0001a,"
            + " a\u0001, \u00a0a\u00a0, é, é, 名前, a\u3000, NULL, NULL]"));
      }
    }
  }

  @Test
  void emptyValuesAreOmittedNeverWrittenEmpty() throws SQLException {
    assertThat(resource("p1", "", null, "  ", "m"),
        equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"male\"}"));
    assertThat(resource("p2", " \t", "Doe", null, null), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p2\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"Doe\"}],\"gender\":\"unknown\"}"));
  }

  @Test
  void rowsBecomeResourcesOrRejectsWithTheirPositions() throws SQLException {
    Result r = map(
        new String[] {"p1", "A", "B", "2000-01-01", "f"},
        new String[] {null, "A", "B", "bad", "f"},
        new String[] {"p 3", "A", "B", "2000-01-01", "f"},
        new String[] {"p4", "Zoë", "O'Brien \"Jr\"", "2000-01-01", "f"});
    assertThat(r.resources().size(), equalTo(2));
    assertThat(r.rejects(), contains("2 Patient.id required: id column 'patient_id' is empty",
        "3 Patient.id id: value is not a FHIR id (1-64 letters, digits, '-' or '.')"));
    assertThat(r.resources().get(1), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p4\",\"name\":[{\"use\":"
        + "\"official\",\"family\":\"O'Brien \\\"Jr\\\"\",\"given\":[\"Zoë\"]}],\"gender\":\"female\","
        + "\"birthDate\":\"2000-01-01\"}"));
  }

  @Test
  void outputIsExactlyWhatHapiWritesForTheSameResource() throws SQLException {
    Result r = map(
        new String[] {"p1", "Zoë \u2028 \u00a0 😀", "O'Brien", "1990-05-05", "o"},
        new String[] {"p2", "line\nbreak", "Müller \\ / \t \u0001 \u007f", "1956-01-19", "M"},
        new String[] {"p3", "Wei", "<b>&amp;</b>", null, null});
    assertThat(r.rejects(), empty());
    assertThat(r.resources().size(), equalTo(3));
    for (String line : r.resources()) {
      Patient parsed = strict.parseResource(Patient.class, line);
      assertThat(strict.encodeResourceToString(parsed), equalTo(line));
    }
  }

  @Test
  void typesCodeMapsDefaultsAndRequiredInputs(@TempDir Path dir) throws IOException, SQLException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        name: t
        source: s
        resource: Patient
        id: {column: id}
        elements:
          active: {column: active}
          multipleBirthInteger: {column: births}
          deceasedDateTime: {column: died}
          maritalStatus.coding[0].code: {column: marital, map: {M: M, S: S}}
          maritalStatus.coding[0].system: {value: "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"}
          birthDate: {column: born, formats: [dd.MM.yyyy, d/M/yyyy], required: true}
          name[0].family: {column: family, default: Unknown}
        """);
    List<String> cols = List.of("id", "active", "births", "died", "marital", "born", "family");
    SqlMapping m = new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), cols));
    Result r = run(m, cols,
        new String[] {"a", "Yes", "2", "2001-02-03T04:05:06+01:00", "M", "03.02.1990", null},
        new String[] {"b", "0", "+7", "2001", null, "3/2/1990", "Lee"},
        new String[] {"c", "maybe", null, null, null, "03.02.1990", null},
        new String[] {"d", null, "1.5", null, null, "03.02.1990", null},
        new String[] {"e", null, "99999999999", null, null, "03.02.1990", null},
        new String[] {"f", null, null, "2001-02-03 04:05", null, "03.02.1990", null},
        new String[] {"g", null, null, null, "X", "03.02.1990", null},
        new String[] {"h", null, null, null, null, null, null},
        new String[] {"i", null, null, null, null, "1990-02-03", null});
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"active\":true,\"name\":[{\"family\":\"Unknown\"}],"
            + "\"birthDate\":\"1990-02-03\",\"deceasedDateTime\":\"2001-02-03T04:05:06+01:00\",\"maritalStatus\":"
            + "{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\",\"code\":\"M\"}]},"
            + "\"multipleBirthInteger\":2}",
        "{\"resourceType\":\"Patient\",\"id\":\"b\",\"active\":false,\"name\":[{\"family\":\"Lee\"}],"
            + "\"birthDate\":\"1990-02-03\",\"deceasedDateTime\":\"2001\",\"multipleBirthInteger\":7}"));
    assertThat(r.rejects(), contains(
        "3 Patient.active boolean: value is not a boolean (true/false, yes/no, 1/0)",
        "4 Patient.multipleBirthInteger integer: value is not a whole number",
        "5 Patient.multipleBirthInteger integer: value is outside the 32-bit range of FHIR integers",
        "6 Patient.deceasedDateTime dateTime: value is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or"
            + " YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time",
        "7 Patient.maritalStatus.coding[0].code code-map: value of column 'marital' is not in the rule's code map"
            + " (or the element's required value set) and the rule has no default",
        "8 Patient.birthDate required: required column 'born' is empty",
        "9 Patient.birthDate date: value is not a date in the expected format (dd.MM.yyyy or d/M/yyyy)"));
    IParser parser = strict;
    for (String line : r.resources()) {
      assertThat(parser.encodeResourceToString(parser.parseResource(Patient.class, line)), equalTo(line));
    }
  }

  static final String YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})";

  @Test
  void aMappingWithOnlyAnIdWritesJustTheId(@TempDir Path dir) throws IOException, SQLException {
    Path file = Files.writeString(dir.resolve("m.yaml"), "source: s\nresource: Patient\nid: {column: id}\nelements: {}\n");
    SqlMapping m = new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), List.of("id")));
    assertThat(run(m, List.of("id"), new String[] {"x1"}).resources(),
        contains("{\"resourceType\":\"Patient\",\"id\":\"x1\"}"));
  }

  @Test
  void datePatternsBecomeStrictRegexesAndStrptimeFormats() {
    assertThat(PrimitiveKind.datePattern("dd.MM.yyyy"),
        equalTo(new PrimitiveKind.DatePattern("dd.MM.yyyy", "[0-9]{2}\\.[0-9]{2}\\." + YEAR, "%d.%m.%Y", false, false,
            false, true, true)));
    assertThat(PrimitiveKind.datePattern("yyyyMMdd'Z'"),
        equalTo(new PrimitiveKind.DatePattern("yyyyMMdd'Z'", YEAR + "[0-9]{2}[0-9]{2}Z", "%Y%m%dZ", false, false,
            false, true, true)));
    assertThat(PrimitiveKind.datePattern("M/d/yyyy H:mm:ss.SSSX"),
        equalTo(new PrimitiveKind.DatePattern("M/d/yyyy H:mm:ss.SSSX", "[0-9]{1,2}/[0-9]{1,2}/" + YEAR
            + " ([01]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}(Z|[+-]((0[0-9]|1[0-3])(:?[0-5][0-9])?|14(:?00)?))",
            "%m/%d/%Y %H:%M:%S.%g%z", true, true, true, true, true)));
  }

  @Test
  void dateTimesAreReadWithPatternsAndTimeZonesAndWrittenWithTheirOffset(@TempDir Path dir)
      throws IOException, SQLException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        source: s
        resource: Encounter
        id: {column: id}
        elements:
          status: {value: finished}
          class.code: {value: AMB}
          period.start: {column: local, formats: ["dd.MM.yyyy HH:mm", "dd.MM.yyyy"], timezone: Europe/Berlin}
          period.end: {column: stamped, formats: ["yyyy-MM-dd'T'HH:mm:ss.SSSX", "M/d/yyyy h:mm a"], timezone: UTC}
        """);
    List<String> cols = List.of("id", "local", "stamped");
    SqlMapping m = new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), cols));
    Result r = run(m, cols,
        new String[] {"a", "05.01.2024 10:30", "2024-01-05T12:00:00.250+02:00"},
        new String[] {"b", "05.07.2024 10:30", "2024-07-05T12:00:00.000Z"},
        new String[] {"c", "31.03.2024 02:30", null},
        new String[] {"d", "05.07.2024", null},
        new String[] {"e", "05.13.2024 10:30", null},
        new String[] {"f", null, "2024-07-05T12:00:00Z"},
        new String[] {"g", null, "7/5/2024 2:05 pm"},
        new String[] {"h", null, "7/5/2024 12:05 AM"});
    String head = "{\"resourceType\":\"Encounter\",\"id\":\"";
    String tail = "\"status\":\"finished\",\"class\":{\"code\":\"AMB\"}";
    assertThat(r.resources(), contains(
        head + "a\"," + tail + ",\"period\":{\"start\":\"2024-01-05T10:30:00+01:00\",\"end\":\"2024-01-05T10:00:00.250Z\"}}",
        head + "b\"," + tail + ",\"period\":{\"start\":\"2024-07-05T10:30:00+02:00\",\"end\":\"2024-07-05T12:00:00.000Z\"}}",
        // 02:30 does not exist on the night clocks go forward; ICU moves it an hour on, as java.time does.
        head + "c\"," + tail + ",\"period\":{\"start\":\"2024-03-31T03:30:00+02:00\"}}",
        head + "d\"," + tail + ",\"period\":{\"start\":\"2024-07-05\"}}",
        head + "g\"," + tail + ",\"period\":{\"end\":\"2024-07-05T14:05:00Z\"}}",
        head + "h\"," + tail + ",\"period\":{\"end\":\"2024-07-05T00:05:00Z\"}}"));
    assertThat(r.rejects(), contains(
        "5 Encounter.period.start dateTime: value is not a date/time in the expected format (dd.MM.yyyy HH:mm or"
            + " dd.MM.yyyy)",
        "6 Encounter.period.end dateTime: value is not a date/time in the expected format"
            + " (yyyy-MM-dd'T'HH:mm:ss.SSSX or M/d/yyyy h:mm a)"));
    for (String line : r.resources()) {
      assertThat(strict.encodeResourceToString(strict.parseResource(org.hl7.fhir.r4.model.Encounter.class, line)),
          equalTo(line));
    }
  }

  @Test
  void dateTimesKeepTheirPrecisionAndStayInsideFhirsRanges(@TempDir Path dir) throws IOException, SQLException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        source: s
        resource: Observation
        id: {column: id}
        elements:
          status: {value: final}
          code.text: {value: x}
          meta.lastUpdated: {column: stamp}
          effectiveDateTime: {column: when, formats: ["yyyy-MM-dd'T'HH:mm:ssX", yyyy-MM, yyyy], timezone: Europe/Berlin}
          issued: {column: at, formats: ["yyyy-MM-dd'T'HH:mm:ssX"]}
        """);
    List<String> cols = List.of("id", "stamp", "when", "at");
    SqlMapping m = new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), cols));
    Result r = run(m, cols,
        new String[] {"a", "2024-05-01T10:00:00Z", "2024-05", null},
        new String[] {"b", null, "1999", null},
        new String[] {"c", "2024-05-01", null, null},
        new String[] {"d", null, "2024-01-05T10:30:00+99:99", null},
        new String[] {"e", null, "9999-12-31T23:30:00-05:00", null},
        new String[] {"f", null, "2024-01-05T10:30:00-14:00", "2024-01-05T10:30:00-14:00"});
    String head = "{\"resourceType\":\"Observation\",\"id\":\"";
    assertThat(r.resources(), contains(
        head + "a\",\"meta\":{\"lastUpdated\":\"2024-05-01T10:00:00Z\"},\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            + "\"effectiveDateTime\":\"2024-05\"}",
        head + "b\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"effectiveDateTime\":\"1999\"}",
        head + "f\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"effectiveDateTime\":"
            + "\"2024-01-06T01:30:00+01:00\",\"issued\":\"2024-01-06T00:30:00Z\"}"));
    assertThat(r.rejects(), contains(
        "3 Observation.meta.lastUpdated instant: value is not a FHIR instant (YYYY-MM-DDThh:mm:ss with an offset"
            + " such as Z or +01:00) of a real day and time",
        "4 Observation.effectiveDateTime dateTime: value is not a date/time in the expected format"
            + " (yyyy-MM-dd'T'HH:mm:ssX or yyyy-MM or yyyy)",
        // Written in Berlin time, the last half hour of 9999 would be in the year 10000.
        "5 Observation.effectiveDateTime dateTime: value is not a date/time in the expected format"
            + " (yyyy-MM-dd'T'HH:mm:ssX or yyyy-MM or yyyy)"));
    for (String line : r.resources()) {
      assertThat(strict.encodeResourceToString(strict.parseResource(org.hl7.fhir.r4.model.Observation.class, line)),
          equalTo(line));
    }
  }

  @Test
  void dateTimePatternProblemsAreFoundBeforeTheRun(@TempDir Path dir) throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        source: s
        resource: Patient
        id: {column: id}
        elements:
          birthDate: {column: v, formats: ["yyyy-MM-dd HH:mm"]}
          deceasedDateTime: {column: v, formats: ["yyyy-MM-dd HH:mm"]}
          name[0].family: {column: v, timezone: UTC}
          multipleBirthInteger: {column: v, formats: [yyyy]}
          contact[0].period.start: {column: v, formats: ["yyyy-MM-dd HH:mm"], timezone: Mars/Olympus}
          contact[0].period.end: {column: v, formats: ["yyyy-MM-dd mm"]}
          contact[1].period.start: {column: v, formats: ["yyyy-MM-dd hh:mm"], timezone: UTC}
          contact[1].period.end: {column: v, formats: ["MM/dd"]}
        """);
    MappingException e = org.junit.jupiter.api.Assertions.assertThrows(MappingException.class,
        () -> MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), List.of("id", "v")));
    String f = file.toString();
    assertThat(e.problems(), contains(
        f + ":5: birthDate: formats: 'yyyy-MM-dd HH:mm' has a time of day, which a date element cannot hold",
        f + ":6: deceasedDateTime: formats: 'yyyy-MM-dd HH:mm' has a time but no offset (X): say which 'timezone'"
            + " it is in",
        f + ":7: name[0].family: 'timezone' applies to dateTime and instant elements with 'formats' only",
        f + ":8: multipleBirthInteger: 'formats' applies to date, dateTime and instant elements only",
        f + ":9: contact[0].period.start: timezone: 'Mars/Olympus' is not an IANA time zone (like Europe/Berlin or"
            + " UTC)",
        f + ":10: contact[0].period.end: formats: 'yyyy-MM-dd mm': minutes, seconds and offsets need hours (HH)",
        f + ":11: contact[1].period.start: formats: 'yyyy-MM-dd hh:mm': a 12-hour clock (hh) needs its AM/PM"
            + " marker (a), and the other way round",
        f + ":12: contact[1].period.end: formats: 'MM/dd': a pattern reads the year (yyyy), then optionally the month"
            + " (MM), the day (dd) and a time: nothing may be left out in between"));
  }
  static SqlMapping compileYaml(Path dir, String yaml, List<String> columns) throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"), yaml);
    return new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), columns));
  }

  @Test
  void unmappedKeepWritesValuesOutsideTheMapAsTheyAre(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "state", "country");
    SqlMapping m = compileYaml(dir, """
        source: s
        resource: Patient
        id: {column: id}
        elements:
          address[0].state: {column: state, ignore_case: true, map: {massachusetts: MA, ohio: OH}, unmapped: keep}
          address[0].country: {column: country, map: {USA: US}, default: US, unmapped: keep}
        """, cols);
    Result r = run(m, cols,
        new String[] {"a", "Massachusetts", "USA"},
        new String[] {"b", " Stockholm ", "SE"},
        new String[] {"c", "OHIO", null},
        new String[] {"d", null, null});
    assertThat(r.rejects(), empty());
    String head = "{\"resourceType\":\"Patient\",\"id\":\"";
    assertThat(r.resources(), contains(
        head + "a\",\"address\":[{\"state\":\"MA\",\"country\":\"US\"}]}",
        head + "b\",\"address\":[{\"state\":\"Stockholm\",\"country\":\"SE\"}]}",
        head + "c\",\"address\":[{\"state\":\"OH\",\"country\":\"US\"}]}",
        // The default stands for a missing input only.
        head + "d\",\"address\":[{\"country\":\"US\"}]}"));
    // valid_code still counts the values the map does not know (Stockholm; SE), kept or not.
    assertThat(checkCounts(m, "SELECT * FROM src"), equalTo(List.of(1L, 3L, 1L, 2L)));
    assertThat(m.elementRules().get(0).rule(), equalTo("column 'state' via code map (others kept)"));
  }

  /** The failed and total counts of a mapping's checks over the rows of {@code source}. */
  static List<Long> checkCounts(SqlMapping m, String source) throws SQLException {
    try (Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT " + String.join(", ", m.checkSums()) + " FROM ("
            + m.detailQuery(source) + ")")) {
      rs.next();
      List<Long> out = new ArrayList<>();
      for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
        out.add(rs.getLong(i));
      }
      return out;
    }
  }

  @Test
  void aKeptValueMustStillBeValidForItsElement(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "g", "m");
    SqlMapping m = compileYaml(dir, """
        source: s
        resource: Patient
        id: {column: id}
        elements:
          gender: {column: g, map: {m: male, f: female}, unmapped: keep}
          maritalStatus.coding[0].code: {column: m, map: {married: M}, unmapped: keep}
        """, cols);
    Result r = run(m, cols,
        new String[] {"a", "m", "married"},
        new String[] {"b", "other", "S"},
        new String[] {"c", "Male", null},
        new String[] {"d", "x", null},
        new String[] {"e", null, "never  married"});
    String head = "{\"resourceType\":\"Patient\",\"id\":\"";
    assertThat(r.resources(), contains(
        head + "a\",\"gender\":\"male\",\"maritalStatus\":{\"coding\":[{\"code\":\"M\"}]}}",
        head + "b\",\"gender\":\"other\",\"maritalStatus\":{\"coding\":[{\"code\":\"S\"}]}}"));
    // gender's required value set still holds for kept values; a code keeps its format.
    String notBound = " Patient.gender code-map: value of column 'g' is neither in the rule's code map nor a code of"
        + " the element's required value set (codes: male, female, other, unknown)";
    assertThat(r.rejects(), contains("3" + notBound, "4" + notBound,
        "5 Patient.maritalStatus.coding[0].code code: value is not a FHIR code (no leading, trailing or repeated"
            + " spaces)"));
  }

  @Test
  void unmappedOmitLeavesTheElementOutAndKeepsTheRow(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "state");
    SqlMapping m = compileYaml(dir, """
        source: s
        resource: Patient
        id: {column: id}
        elements:
          address[0].city: {column: state}
          address[0].country: {column: state, map: {Ohio: US, Ontario: CA}, unmapped: omit}
        """, cols);
    Result r = run(m, cols, new String[] {"a", "Ohio"}, new String[] {"b", "Stockholm"});
    assertThat(r.rejects(), empty());
    String head = "{\"resourceType\":\"Patient\",\"id\":\"";
    assertThat(r.resources(), contains(head + "a\",\"address\":[{\"city\":\"Ohio\",\"country\":\"US\"}]}",
        head + "b\",\"address\":[{\"city\":\"Stockholm\"}]}"));
    assertThat(checkCounts(m, "SELECT * FROM src"), equalTo(List.of(1L, 2L)));
    assertThat(m.elementRules().get(1).rule(), equalTo("column 'state' via code map (others left out)"));
  }

  @Test
  void unmappedRejectWithADefaultRejectsUnknownValuesAndDefaultsMissingOnes(@TempDir Path dir)
      throws IOException, SQLException {
    List<String> cols = List.of("id", "g");
    SqlMapping m = compileYaml(dir, """
        source: s
        resource: Patient
        id: {column: id}
        elements:
          gender: {column: g, map: {m: male, f: female}, default: unknown, unmapped: reject}
        """, cols);
    Result r = run(m, cols, new String[] {"a", "f"}, new String[] {"b", null}, new String[] {"c", "x"});
    String head = "{\"resourceType\":\"Patient\",\"id\":\"";
    assertThat(r.resources(), contains(head + "a\",\"gender\":\"female\"}", head + "b\",\"gender\":\"unknown\"}"));
    assertThat(r.rejects(), contains("3 Patient.gender code-map: value of column 'g' is not in the rule's code map,"
        + " and the rule has 'unmapped: reject'"));
  }

  /** A Patient with every kind of date and time, read without formats. */
  static final String DATES = """
      source: s
      resource: Patient
      id: {column: id}
      elements:
        meta.lastUpdated: {column: instant}
        extension[http://example.org/at].valueTime: {column: time}
        birthDate: {column: date}
        deceasedDateTime: {column: dateTime}
      """;

  @ParameterizedTest
  @CsvSource({"2015-02-29", "2015-02-30", "2015-04-31", "1900-02-29", "2015-06-30T10:00:00Z",
      "2015-02-29T10:00:00Z", "2015-01-01T24:00:00Z", "2015-01-01T10:60:00Z", "2015-06-30T23:59:60Z",
      "2015-01-01T10:00:00+14:30"})
  void aDateTimeWithoutFormatsMustBeARealDayAndTime(String input, @TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "instant", "time", "date", "dateTime");
    Result r = run(compileYaml(dir, DATES, cols), cols, new String[] {"a", null, null, null, input});
    if (input.equals("2015-06-30T10:00:00Z")) {
      assertThat(r.rejects(), empty());
      return;
    }
    assertThat(r.rejects(), contains("1 Patient.deceasedDateTime dateTime: value is not a FHIR dateTime (YYYY,"
        + " YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time"));
  }

  @ParameterizedTest
  @CsvSource({"2015-02-29T10:00:00Z", "2015-11-31T10:00:00.5+01:00", "2015-01-01T24:00:00Z", "2015-06-30T23:59:60Z",
      "2100-02-29T10:00:00Z"})
  void anInstantWithoutFormatsMustBeARealDayAndTime(String input, @TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "instant", "time", "date", "dateTime");
    Result r = run(compileYaml(dir, DATES, cols), cols, new String[] {"a", input, null, null, null});
    assertThat(r.rejects(), contains("1 Patient.meta.lastUpdated instant: value is not a FHIR instant"
        + " (YYYY-MM-DDThh:mm:ss with an offset such as Z or +01:00) of a real day and time"));
  }

  @ParameterizedTest
  @CsvSource({"2015-02-29", "2015-09-31", "2100-02-29"})
  void aDateWithoutFormatsMustBeARealDay(String input, @TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "instant", "time", "date", "dateTime");
    Result r = run(compileYaml(dir, DATES, cols), cols, new String[] {"a", null, null, input, null});
    assertThat(r.rejects(), contains(
        "1 Patient.birthDate date: value is not a date in the expected format (yyyy-MM-dd)"));
  }

  @ParameterizedTest
  @CsvSource({"24:00:00", "10:60:00", "23:59:60", "7:00:00", "10:00"})
  void aTimeMustBeARealTimeOfDay(String input, @TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "instant", "time", "date", "dateTime");
    Result r = run(compileYaml(dir, DATES, cols), cols, new String[] {"a", null, input, null, null});
    assertThat(r.rejects(), contains(
        "1 Patient.extension[http://example.org/at].valueTime time: value is not a FHIR time (hh:mm:ss, hours 00 to"
            + " 23)"));
  }

  @Test
  void leapDaysAndRealTimesOfEveryKindPass(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("id", "instant", "time", "date", "dateTime");
    SqlMapping m = compileYaml(dir, DATES, cols);
    Result r = run(m, cols,
        new String[] {"a", "2016-02-29T23:59:59.999+14:00", "23:59:59.5", "2000-02-29", "2024-02-29T00:00:00-12:00"},
        new String[] {"b", "2015-12-31T00:00:00Z", "00:00:00", "2015-01-31", "2016-02"},
        new String[] {"c", "2000-02-29T12:00:00Z", null, null, "2016-02-29"});
    assertThat(r.rejects(), empty());
    String head = "{\"resourceType\":\"Patient\",\"id\":\"";
    assertThat(r.resources(), contains(
        head + "a\",\"meta\":{\"lastUpdated\":\"2016-02-29T23:59:59.999+14:00\"},\"extension\":[{\"url\":"
            + "\"http://example.org/at\",\"valueTime\":\"23:59:59.5\"}],\"birthDate\":\"2000-02-29\","
            + "\"deceasedDateTime\":\"2024-02-29T00:00:00-12:00\"}",
        head + "b\",\"meta\":{\"lastUpdated\":\"2015-12-31T00:00:00Z\"},\"extension\":[{\"url\":"
            + "\"http://example.org/at\",\"valueTime\":\"00:00:00\"}],\"birthDate\":\"2015-01-31\","
            + "\"deceasedDateTime\":\"2016-02\"}",
        head + "c\",\"meta\":{\"lastUpdated\":\"2000-02-29T12:00:00Z\"},\"deceasedDateTime\":\"2016-02-29\"}"));
    for (String line : r.resources()) {
      assertThat(strict.encodeResourceToString(strict.parseResource(Patient.class, line)), equalTo(line));
    }
  }
}
