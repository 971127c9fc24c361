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
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.data.RowBatch;
import org.hl7.fhir.r4.model.Patient;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BatchMapperTest {
  static final String[] COLUMNS = {"patient_id", "first_name", "last_name", "birth_date", "gender"};
  static CompiledMapping patient;
  static IParser strict;

  @BeforeAll
  static void compile(@TempDir Path dir) throws IOException {
    Path repoMapping = Path.of("..", "config", "mappings", "patient.yaml");
    patient = MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(repoMapping), List.of(COLUMNS));
    strict = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
  }

  static BatchMapper.Result map(String[]... rows) {
    return new BatchMapper(patient, "run-1").map(
        new RowBatch("patients", "/data/p.csv", RowBatch.LocationKind.LINE, 2, COLUMNS, rows));
  }

  static String resource(String id, String first, String last, String birth, String gender) {
    List<String> lines = map(new String[] {id, first, last, birth, gender}).resources().lines();
    assertThat(lines.size(), equalTo(1));
    return lines.get(0);
  }

  @ParameterizedTest
  @CsvSource(nullValues = "NULL", value = {
      "m, male", "M, male", "male, male", "MALE, male", "' Male ', male",
      "f, female", "F, female", "female, female", "Female, female",
      "o, other", "O, other", "other, other", "OTHER, other",
      "x, unknown", "unknown, unknown", "'', unknown", "NULL, unknown", "mf, unknown"})
  void genderIsNormalisedCaseInsensitively(String input, String expected) {
    assertThat(resource("p1", "A", "B", "2000-01-01", input), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"B\",\"given\":[\"A\"]}],\"gender\":\"" + expected
        + "\",\"birthDate\":\"2000-01-01\"}"));
  }

  @ParameterizedTest
  @CsvSource({"1984-03-12, 1984-03-12", "' 2000-02-29 ', 2000-02-29", "1900-01-01, 1900-01-01"})
  void isoDatesAreWrittenAsFhirDates(String input, String expected) {
    assertThat(resource("p1", "A", "B", input, "f"), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"B\",\"given\":[\"A\"]}],\"gender\":\"female\","
        + "\"birthDate\":\"" + expected + "\"}"));
  }

  @ParameterizedTest
  @CsvSource({"1999-02-29", "1985-13-01", "not-a-date", "02/03/1990", "1990-1-5", "19900105"})
  void badDatesAreRejectedWithTheirLocation(String input) {
    BatchMapper.Result r = map(new String[] {"p1", "A", "B", input, "f"});
    assertThat(r.resources().lineCount(), equalTo(0));
    assertThat(r.rejects().lines(), contains("{\"run_id\":\"run-1\",\"source\":\"patients\",\"file\":\"/data/p.csv\","
        + "\"line\":2,\"stage\":\"mapping\",\"mapping\":\"patient\",\"element\":\"Patient.birthDate\",\"rule\":\"date\","
        + "\"reason\":\"value is not a date in the expected format (yyyy-MM-dd)\",\"row\":{\"patient_id\":\"p1\","
        + "\"first_name\":\"A\",\"last_name\":\"B\",\"birth_date\":\"" + input + "\",\"gender\":\"f\"}}"));
  }

  @Test
  void emptyValuesAreOmittedNeverWrittenEmpty() {
    assertThat(resource("p1", "", null, "  ", "m"),
        equalTo("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"male\"}"));
    assertThat(resource("p2", " ", "Doe", null, null), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p2\","
        + "\"name\":[{\"use\":\"official\",\"family\":\"Doe\"}],\"gender\":\"unknown\"}"));
  }

  @Test
  void rowsBecomeResourcesOrRejectsAndLocationsFollowTheBatch() {
    BatchMapper.Result r = map(
        new String[] {"p1", "A", "B", "2000-01-01", "f"},
        new String[] {null, "A", "B", "2000-01-01", "f"},
        new String[] {"p 3", "A", "B", "2000-01-01", "f"},
        new String[] {"p4", "Zoë", "O'Brien \"Jr\"", "2000-01-01", "f"});
    assertThat(r.resources().lineCount(), equalTo(2));
    assertThat(r.rejects().lineCount(), equalTo(2));
    List<String> rejects = r.rejects().lines();
    assertThat(rejects.get(0).contains("\"line\":3,\"stage\":\"mapping\",\"mapping\":\"patient\",\"element\":"
        + "\"Patient.id\",\"rule\":\"required\",\"reason\":\"id column 'patient_id' is empty\""), equalTo(true));
    assertThat(rejects.get(1).contains("\"line\":4,\"stage\":\"mapping\",\"mapping\":\"patient\",\"element\":"
        + "\"Patient.id\",\"rule\":\"id\",\"reason\":\"value is not a FHIR id (1-64 letters, digits, '-' or '.')\""),
        equalTo(true));
    assertThat(r.resources().lines().get(1), equalTo("{\"resourceType\":\"Patient\",\"id\":\"p4\",\"name\":[{\"use\":"
        + "\"official\",\"family\":\"O'Brien \\\"Jr\\\"\",\"given\":[\"Zoë\"]}],\"gender\":\"female\","
        + "\"birthDate\":\"2000-01-01\"}"));
  }

  @Test
  void outputIsExactlyWhatHapiWritesForTheSameResource() {
    BatchMapper.Result r = map(
        new String[] {"p1", "Zoë", "O'Brien", "1990-05-05", "o"},
        new String[] {"p2", null, "Müller \\ / \t", "1956-01-19", "M"},
        new String[] {"p3", "Wei", null, null, null});
    assertThat(r.rejects().lines(), empty());
    for (String line : r.resources().lines()) {
      Patient parsed = strict.parseResource(Patient.class, line);
      assertThat(strict.encodeResourceToString(parsed), equalTo(line));
    }
  }

  @Test
  void columnsMissingFromAFileCountAsEmpty() {
    BatchMapper.Result r = new BatchMapper(patient, "run-1").map(new RowBatch("patients", "/data/p.parquet",
        RowBatch.LocationKind.ROW, 1, new String[] {"gender", "patient_id"}, new String[][] {{"F", "p9"}}));
    assertThat(r.resources().lines(), contains("{\"resourceType\":\"Patient\",\"id\":\"p9\",\"gender\":\"female\"}"));
  }
}
