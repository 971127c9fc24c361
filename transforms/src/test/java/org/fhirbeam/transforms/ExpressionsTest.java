package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.fhirbeam.config.ConfigLoader;
import org.hl7.fhir.r4.model.Patient;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The expression language, extensions by url, meta, ids and references: exact output, checked against HAPI. */
class ExpressionsTest {
  static final String RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
  static final String GEO = "http://hl7.org/fhir/StructureDefinition/geolocation";
  static IParser strict;

  @BeforeAll
  static void setUp() throws SQLException {
    SqlMappingTest.compile();
    strict = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
  }

  static SqlMapping compile(Path dir, String yaml, List<String> columns) throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"), yaml);
    return new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(file), columns));
  }

  static final List<String> COLS = List.of("ID", "FIRST", "LAST", "PREFIX", "PHONE", "PLACE", "ZIP", "G", "RACE",
      "LAT", "SSN", "STATUS", "ORG");

  static final String MAPPING = """
      source: s
      resource: Patient
      id: {expr: "uuid('patient', ID)"}
      elements:
        meta.profile[0]: {value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}
        extension[%s].extension[ombCategory].valueCoding.system: {value: "urn:oid:2.16.840.1.113883.6.238"}
        extension[%s].extension[ombCategory].valueCoding.code: {column: RACE, map: {white: 2106-3, black: 2054-5}}
        extension[%s].extension[text].valueString: {expr: "upper(RACE)"}
        extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex].valueCode: {column: G}
        identifier[0].type.coding[0].system: {value: "http://terminology.hl7.org/CodeSystem/v2-0203"}
        identifier[0].type.coding[0].code: {value: SS}
        identifier[0].system: {value: "http://hl7.org/fhir/sid/us-ssn"}
        identifier[0].value: {column: SSN}
        active: {expr: "if(in(STATUS, 'a', 'b'), 'true', 'false')"}
        name[0].use: {value: official}
        name[0].text: {expr: "join(' ', PREFIX, FIRST, LAST)"}
        name[0].family: {expr: "regex_replace(LAST, '[0-9]+$', '')"}
        name[0].given: {expr: "split(FIRST, ' ')"}
        name[0].prefix[0]: {column: PREFIX}
        telecom[0].system: {value: phone}
        telecom[0].value: {expr: "concat('+1 ', regex_replace(PHONE, '[^0-9]', ''))"}
        gender: {expr: "if(eq(G, 'M'), 'male', if(eq(G, 'F'), 'female'))"}
        address[0].extension[%s].extension[latitude].valueDecimal: {column: LAT}
        address[0].city: {expr: "part(PLACE, '  ', 1)"}
        address[0].postalCode: {expr: "substring(ZIP, 1, 5)"}
        managingOrganization.reference: {expr: "ref('Organization', ORG)"}
      """.formatted(RACE, RACE, RACE, GEO);

  @Test
  void everyFunctionExtensionsMetaIdsAndReferencesWriteWhatHapiWrites(@TempDir Path dir)
      throws IOException, SQLException {
    SqlMapping m = compile(dir, MAPPING, COLS);
    SqlMappingTest.Result r = SqlMappingTest.run(m, COLS,
        new String[] {"p1", "Ann  Marie", "Lee12", "Dr.", "(555) 123-4567", "Boston  Massachusetts  US", "021381234",
            "F", "white", "42.5", "999-12-3456", "a", "org1"},
        new String[] {"p2", null, null, null, null, null, null, "M", null, null, null, "z", null},
        new String[] {"p3", null, null, null, null, null, null, null, null, null, null, null, null});
    assertThat(r.rejects(), empty());
    String p1 = uuid("[\"patient\",\"p1\"]");
    String p2 = uuid("[\"patient\",\"p2\"]");
    String p3 = uuid("[\"patient\",\"p3\"]");
    String meta = "\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]}";
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"Patient\",\"id\":\"" + p1 + "\"," + meta + ",\"extension\":[{\"url\":\"" + RACE + "\","
            + "\"extension\":[{\"url\":\"ombCategory\",\"valueCoding\":{\"system\":\"urn:oid:2.16.840.1.113883.6.238\","
            + "\"code\":\"2106-3\"}},{\"url\":\"text\",\"valueString\":\"WHITE\"}]},{\"url\":"
            + "\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex\",\"valueCode\":\"F\"}],"
            + "\"identifier\":[{\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v2-0203\","
            + "\"code\":\"SS\"}]},\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":\"999-12-3456\"}],"
            + "\"active\":true,\"name\":[{\"use\":\"official\",\"text\":\"Dr. Ann  Marie Lee12\",\"family\":\"Lee\","
            + "\"given\":[\"Ann\",\"Marie\"],\"prefix\":[\"Dr.\"]}],\"telecom\":[{\"system\":\"phone\","
            + "\"value\":\"+1 5551234567\"}],\"gender\":\"female\",\"address\":[{\"extension\":[{\"url\":\"" + GEO
            + "\",\"extension\":[{\"url\":\"latitude\",\"valueDecimal\":42.5}]}],\"city\":\"Boston\","
            + "\"postalCode\":\"02138\"}],\"managingOrganization\":{\"reference\":\"Organization/org1\"}}",
        // Constant-only parts (meta) are written; parts whose row values are all empty are not.
        "{\"resourceType\":\"Patient\",\"id\":\"" + p2 + "\"," + meta + ",\"extension\":[{\"url\":"
            + "\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex\",\"valueCode\":\"M\"}],"
            + "\"active\":false,\"gender\":\"male\"}",
        "{\"resourceType\":\"Patient\",\"id\":\"" + p3 + "\"," + meta + ",\"active\":false}"));
    for (String line : r.resources()) {
      assertThat(strict.encodeResourceToString(strict.parseResource(Patient.class, line)), equalTo(line));
    }
  }

  /** The SQL uuid() is Java's name-based UUID of the JSON array of namespace and keys. */
  static String uuid(String name) {
    return UUID.nameUUIDFromBytes(name.getBytes(StandardCharsets.UTF_8)).toString();
  }

  @Test
  void uuidsAreStableNameBasedAndTellMissingFromEmptyKeys(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("A", "B");
    SqlMapping m = compile(dir, """
        source: s
        resource: Condition
        id: {expr: "uuid('condition', A, B)"}
        elements:
          subject.reference: {expr: "ref('Patient', uuid('patient', A))"}
        """, cols);
    SqlMappingTest.Result r = SqlMappingTest.run(m, cols, new String[] {"x", "é \"q\""}, new String[] {"x", null},
        new String[] {"x", "é \"q\""});
    String a = uuid("[\"condition\",\"x\",\"é \\\"q\\\"\"]");
    String b = uuid("[\"condition\",\"x\",null]");
    String subject = ",\"subject\":{\"reference\":\"Patient/" + uuid("[\"patient\",\"x\"]") + "\"}}";
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"Condition\",\"id\":\"" + a + "\"" + subject,
        "{\"resourceType\":\"Condition\",\"id\":\"" + b + "\"" + subject,
        "{\"resourceType\":\"Condition\",\"id\":\"" + a + "\"" + subject));
  }

  @Test
  void aRowThatSetsTwoTypesOfOneChoiceElementIsRejected(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("ID", "T", "V");
    SqlMapping m = compile(dir, """
        source: s
        resource: Observation
        id: {column: ID}
        elements:
          status: {value: final}
          code.text: {value: x}
          valueQuantity.value: {expr: "if(eq(T, 'n'), V)"}
          valueString: {expr: "if(ne(T, 'x'), V)"}
        """, cols);
    SqlMappingTest.Result r = SqlMappingTest.run(m, cols, new String[] {"a", "n", "5"},
        new String[] {"b", "s", "five"}, new String[] {"c", "x", "5"});
    String head = "{\"resourceType\":\"Observation\",\"id\":\"";
    assertThat(r.resources(), contains(
        head + "b\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"valueString\":\"five\"}",
        head + "c\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}"));
    assertThat(r.rejects(), contains("1 Observation.valueString choice: another type of this choice element also has"
        + " a value in the row; FHIR allows one (make the rules' conditions exclusive)"));
  }

  @Test
  void constantChoicesInAnAbsentPartConflictWithNothingAndPartialDatesKeepTextColumns(@TempDir Path dir)
      throws IOException, SQLException {
    List<String> cols = List.of("ID", "T", "B");
    SqlMapping m = compile(dir, """
        source: s
        resource: Observation
        id: {column: ID}
        elements:
          status: {value: final}
          code.text: {expr: "coalesce(' ', T, 'none')"}
          component[0].code.text: {column: T}
          component[0].valueString: {value: a}
          component[0].valueBoolean: {value: "true"}
          effectiveDateTime: {column: B, formats: [yyyy]}
        """, cols);
    SqlMappingTest.Result r = SqlMappingTest.run(m, cols, new String[] {"a", null, "1990"},
        new String[] {"b", "t", null});
    // Without a component the two constant types conflict with nothing; with one they always do.
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"final\",\"code\":{\"text\":\"none\"},"
            + "\"effectiveDateTime\":\"1990\"}"));
    assertThat(r.rejects(), contains("2 Observation.component[0].valueString choice: another type of this choice"
        + " element also has a value in the row; FHIR allows one (make the rules' conditions exclusive)"));
    Path dates = Files.writeString(dir.resolve("d.yaml"), "source: s\nresource: Patient\nid: {column: ID}\n"
        + "elements:\n  birthDate: {column: B, formats: [yyyy, dd.MM.yyyy]}\n  deceasedDateTime: {value: '2001'}\n");
    CompiledMapping patient = MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(dates), cols);
    assertThat(patient.flatColumns().get(0).sqlType(), equalTo("VARCHAR"));
    Path constant = Files.writeString(dir.resolve("c.yaml"), "source: s\nresource: Patient\nid: {column: ID}\n"
        + "elements:\n  birthDate: {value: '1990-05'}\n");
    assertThat(SqlMappingTest.run(new SqlMapping(MappingCompiler.compile(new ConfigLoader(Map.of())
        .loadMapping(constant), cols)), cols, new String[] {"p", null, null}).resources(),
        contains("{\"resourceType\":\"Patient\",\"id\":\"p\",\"birthDate\":\"1990-05\"}"));
  }

  @Test
  void positiveAndUnsignedIntegersKeepToTheirRanges(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("ID", "N");
    SqlMapping m = compile(dir, """
        source: s
        resource: MedicationRequest
        id: {column: ID}
        elements:
          status: {value: active}
          intent: {value: order}
          medicationCodeableConcept.text: {value: x}
          subject.display: {value: y}
          dispenseRequest.numberOfRepeatsAllowed: {column: N}
        """, cols);
    SqlMappingTest.Result r = SqlMappingTest.run(m, cols, new String[] {"a", "0"}, new String[] {"b", "-1"},
        new String[] {"c", "+3"});
    String body = "\"status\":\"active\",\"intent\":\"order\",\"medicationCodeableConcept\":{\"text\":\"x\"},"
        + "\"subject\":{\"display\":\"y\"},\"dispenseRequest\":{\"numberOfRepeatsAllowed\":";
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"MedicationRequest\",\"id\":\"a\"," + body + "0}}",
        "{\"resourceType\":\"MedicationRequest\",\"id\":\"c\"," + body + "3}}"));
    assertThat(r.rejects(), contains("2 MedicationRequest.dispenseRequest.numberOfRepeatsAllowed integer: value is"
        + " outside the range of FHIR unsignedInt (0 to 2147483647)"));
    Path file = Files.writeString(dir.resolve("e.yaml"), "source: s\nresource: Encounter\nid: {column: ID}\n"
        + "elements:\n  status: {value: finished}\n  class.code: {value: AMB}\n  diagnosis[0].rank: {value: 0}\n");
    assertThat(assertThrows(MappingException.class, () -> MappingCompiler.compile(new ConfigLoader(Map.of())
        .loadMapping(file), cols)).getMessage(), equalTo(file + ":7: diagnosis[0].rank: value: value is outside"
            + " the range of FHIR positiveInt (1 to 2147483647)"));
  }

  @Test
  void emptyExpressionResultsAreMissingAndRequiredOnesReject(@TempDir Path dir) throws IOException, SQLException {
    List<String> cols = List.of("ID", "V");
    SqlMapping m = compile(dir, """
        source: s
        resource: Patient
        id: {column: ID}
        elements:
          name[0].family: {expr: "regex_replace(V, '[a-z]', '')", required: true}
          birthDate: {expr: "coalesce(part(V, '/', 2), '2000-01-01')"}
        """, cols);
    SqlMappingTest.Result r = SqlMappingTest.run(m, cols, new String[] {"a", "xy/1999-02-03"},
        new String[] {"b", "abc"}, new String[] {"c", "Q/bad"});
    assertThat(r.resources(), contains(
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"name\":[{\"family\":\"/1999-02-03\"}],"
            + "\"birthDate\":\"1999-02-03\"}"));
    assertThat(r.rejects(), contains(
        "2 Patient.name[0].family required: required expression 'regex_replace(V, '[a-z]', '')' is empty",
        "3 Patient.birthDate date: value is not a date in the expected format (yyyy-MM-dd)"));
  }

  @Test
  void everyExpressionAndPathProblemIsReportedAtOnceWithFileAndLine(@TempDir Path dir) throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        source: s
        resource: Patient
        id: {expr: "uuid(ID, ID)"}
        elements:
          name[0].family: {expr: "lowr(LAST)"}
          name[0].text: {expr: "concat(LAST, NOPE)"}
          gender: {expr: "split(G, ',')"}
          birthDate: {expr: "if(G, 'x')"}
          active: {expr: "eq(G, 'x')"}
          telecom[0].value: {expr: "regex_replace(G, '(', '')"}
          managingOrganization.reference: {expr: "ref('Organisation', G)"}
          extension[0].valueString: {column: G}
          address[http://x].city: {column: G}
          name[0].given[0]: {expr: "upper(G"}
          name[0].suffix[0]: {expr: "part(G, ',', 0)"}
          name[0].prefix[0]: {expr: "regex_replace(G, '(a)\\\\1(?=b)', '')"}
          name[0].prefix[1]: {expr: "regex_replace(G, '(b)', 'X\\\\2')"}
          name[0].suffix[1]: {expr: "if(matches(G, '[0-9]++'), G)"}
          deceased: {column: G}
          maritalStatus.coding[0].system: {value: snomed}
          identifier[0].system: {value: "http://x.org/a b"}
          meta.lastUpdated: {column: G, formats: [yyyy-MM-dd]}
          extension[http://x.org/e].valueString: {column: G}
          extension[http://x.org/e].extension[part].valueString: {column: G}
        """);
    MappingException e = assertThrows(MappingException.class, () -> MappingCompiler.compile(
        new ConfigLoader(Map.of()).loadMapping(file), List.of("ID", "LAST", "G")));
    String f = file.toString();
    Path bundle = Files.writeString(dir.resolve("b.yaml"),
        "source: s\nresource: Bundle\nid: {column: ID}\nelements:\n  entry[0].resource.id: {column: ID}\n");
    assertThat(assertThrows(MappingException.class, () -> MappingCompiler.compile(new ConfigLoader(Map.of())
        .loadMapping(bundle), List.of("ID"))).getMessage(), equalTo(bundle + ":5: entry[0].resource.id: 'resource'"
            + " holds a whole resource, which an element rule cannot build (map that resource with a mapping of its"
            + " own)"));
    assertThat(e.problems(), contains(
        f + ":3: id: expr: argument 1 of uuid() must be a constant in quotes: uuid(namespace, key, ...)",
        f + ":5: name[0].family: expr: unknown function 'lowr' (functions: lower, upper, trim, concat, join,"
            + " substring, regex_replace, part, coalesce, if, uuid, ref, split, eq, ne, in, matches, present, empty,"
            + " and, or, not)",
        f + ":6: name[0].text: expr: column 'NOPE' is not in source s (columns: ID, LAST, G)",
        f + ":7: gender: expr: split() makes repetitions: it must be the whole rule of a repeating element",
        f + ":8: birthDate: expr: column 'G' is a value where a condition is expected (write present(G) or"
            + " eq(G, '...'))",
        f + ":9: active: expr: eq() is a condition where a value is expected",
        f + ":10: telecom[0].value: expr: '(' is not a regular expression DuckDB can run (RE2): missing ): (",
        f + ":11: managingOrganization.reference: expr: ref(): 'Organisation' is not a FHIR R4 resource type",
        f + ":12: extension[0].valueString: extensions are picked by url: write extension[http://...] (or"
            + " extension[name] inside an extension)",
        f + ":13: address[http://x].city: 'http://x' is not an index: only extension[...] takes a url",
        f + ":14: name[0].given[0]: expr: ')' is missing at character 8 of 'upper(G'",
        f + ":15: name[0].suffix[0]: expr: part(): the piece number must be a whole number from 1",
        f + ":16: name[0].prefix[0]: expr: '(a)\\1(?=b)' is not a regular expression DuckDB can run (RE2): invalid"
            + " escape sequence: \\1",
        f + ":17: name[0].prefix[1]: expr: regex_replace(): the replacement uses group \\2, but the pattern has 1"
            + " group(s)",
        f + ":18: name[0].suffix[1]: expr: '[0-9]++' is not a regular expression DuckDB can run (RE2): bad"
            + " repetition operator: ++",
        f + ":19: deceased: 'deceased' is a choice element: name it with its type (deceasedBoolean,"
            + " deceasedDateTime)",
        f + ":20: maritalStatus.coding[0].system: value: 'snomed' is not an absolute URI: a system is named by one,"
            + " like http://snomed.info/sct or urn:oid:2.16.840.1.113883.6.238",
        f + ":21: identifier[0].system: value: 'http://x.org/a b' is not a URI (it has spaces)",
        f + ":22: meta.lastUpdated: formats: 'yyyy-MM-dd': an instant needs a time with seconds (ss)",
        f + ":24: extension[http://x.org/e].extension[part].valueString: an extension has either a value or nested"
            + " extensions, not both (FHIR rule ext-1)"));
    assertThat(e.getMessage(), containsString("mapping m has 20 errors:"));
  }

  @Test
  void parsedExpressionsPrintBack() throws Expr.BadExpression {
    String text = "if(and(present(\"odd col\"), not(matches(X, '[0-9]+'))), concat('it''s ', X), -1.5)";
    assertThat(Expr.text(Expr.parse(text)), equalTo(text));
    assertThat(new ObjectMapper().valueToTree(Expr.FUNCTIONS).size(), equalTo(22));
  }
}
