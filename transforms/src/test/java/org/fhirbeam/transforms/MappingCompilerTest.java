package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.ConfigException;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.MappingConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MappingCompilerTest {
  static final List<String> COLUMNS = List.of("patient_id", "first_name", "last_name", "birth_date", "gender");

  @TempDir
  Path dir;

  MappingConfig mapping(String elements) throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"), """
        name: patient
        source: patients
        resource: Patient
        id: {column: patient_id}
        elements:
        """ + elements);
    return new ConfigLoader(Map.of()).loadMapping(file);
  }

  List<String> problems(String elements) throws IOException {
    MappingConfig m = mapping(elements);
    return assertThrows(MappingException.class, () -> MappingCompiler.compile(m, COLUMNS)).problems();
  }

  String at(int line) {
    return dir.resolve("m.yaml") + ":" + line + ": ";
  }

  @Test
  void compilesFlatColumnsInMappingOrder() throws IOException {
    CompiledMapping c = MappingCompiler.compile(mapping("""
          name[0].given[0]: {column: first_name}
          birthDate: {column: birth_date}
          active: {value: "true"}
        """), COLUMNS);
    assertThat(c.resourceType(), equalTo("Patient"));
    assertThat(c.flatColumns(), contains(
        new CompiledMapping.FlatColumn("name_0_given_0", "name[0].given[0]", "$.name[0].given[0]", "VARCHAR", false, "value"),
        new CompiledMapping.FlatColumn("birth_date", "birthDate", "$.birthDate", "DATE", true, "date"),
        new CompiledMapping.FlatColumn("active", "active", "$.active", "BOOLEAN", true, "boolean")));
  }

  @Test
  void unknownElementIsNamedWithItsLine() throws IOException {
    List<String> p = problems("  name[0].givn[0]: {column: first_name}\n");
    assertThat(p, contains(at(6) + "name[0].givn[0]: 'givn' is not an element of HumanName (elements: id,"
        + " extension, use, text, family, given, prefix, suffix, period)"));
  }

  @Test
  void allProblemsOfAMappingAreReportedAtOnce() throws IOException {
    List<String> p = problems("""
          gendr: {column: gender}
          birthDate: {column: birthdate}
          name: {column: last_name}
        """);
    assertThat(p.size(), equalTo(3));
    assertThat(p.get(0), equalTo(at(6) + "gendr: 'gendr' is not an element of Patient (elements: id, meta,"
        + " implicitRules, language, text, contained, extension, modifierExtension, identifier, active, name,"
        + " telecom, gender, birthDate, deceased[x], address, maritalStatus, multipleBirth[x], photo, contact,"
        + " communication, generalPractitioner, managingOrganization, link)"));
    assertThat(p.get(1), equalTo(at(7) + "birthDate: column 'birthdate' is not in source patients (columns:"
        + " patient_id, first_name, last_name, birth_date, gender)"));
    assertThat(p.get(2), equalTo(at(8) + "name: 'name' is a HumanName, not a single value: map its elements (id,"
        + " extension, use, text, family, given, prefix, suffix, period)"));
  }

  @Test
  void singleValuedElementTakesNoIndex() throws IOException {
    assertThat(problems("  gender[1]: {column: gender}\n"),
        contains(at(6) + "gender[1]: 'gender' is single-valued in Patient, so it takes no index"));
  }

  @Test
  void elementMappedTwiceIsRejected() throws IOException {
    assertThat(problems("  name[0].family: {column: last_name}\n  name.family: {column: first_name}\n"),
        contains(at(7) + "name.family: is mapped twice (name[0].family already has a rule)"));
  }

  @Test
  void primitiveHasNoChildren() throws IOException {
    assertThat(problems("  gender.code: {column: gender}\n"),
        contains(at(6) + "gender.code: 'gender' is a code, which has no element 'code'"));
  }

  @Test
  void codesOutsideARequiredBindingAreRejectedWithTheCodesListed() throws IOException {
    assertThat(problems("  gender: {column: gender, map: {m: man}, default: unknown}\n"),
        contains(at(6) + "gender: map.m: 'man' is not a code of the element's required value set (codes: male,"
            + " female, other, unknown)"));
  }

  @Test
  void aStatusOutsideItsValueSetListsTheCodes() throws IOException {
    Path file = Files.writeString(dir.resolve("e.yaml"), """
        source: s
        resource: Encounter
        id: {column: a}
        elements:
          status: {value: done}
          class.code: {value: AMB}
        """);
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(file);
    assertThat(assertThrows(MappingException.class, () -> MappingCompiler.compile(m, List.of("a"))).problems(),
        contains(file + ":5: status: value: 'done' is not a code of the element's required value set (codes: planned,"
            + " arrived, triaged, in-progress, onleave, finished, cancelled, entered-in-error, unknown)"));
  }

  @Test
  void aLargeValueSetListsItsFirstTwentyCodesAndTheCount() throws IOException {
    Path file = Files.writeString(dir.resolve("mr.yaml"), """
        source: s
        resource: MedicationRequest
        id: {column: a}
        elements:
          status: {value: active}
          intent: {value: order}
          subject.reference: {value: Patient/p1}
          dosageInstruction[0].timing.repeat.when[0]: {column: a, map: {x: breakfast}}
        """);
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(file);
    assertThat(assertThrows(MappingException.class, () -> MappingCompiler.compile(m, List.of("a"))).problems(),
        contains(file + ":8: dosageInstruction[0].timing.repeat.when[0]: map.x: 'breakfast' is not a code of the"
            + " element's required value set (20 of 26 codes: MORN, MORN.early, MORN.late, NOON, AFT, AFT.early,"
            + " AFT.late, EVE, EVE.early, EVE.late, NIGHT, PHS, HS, WAKE, C, CM, CD, CV, AC, ACM, ...)"));
  }

  @Test
  void constantsAreCheckedAgainstTheirType() throws IOException {
    assertThat(problems("  birthDate: {value: 12/01/1990}\n  active: {value: maybe}\n"), contains(
        at(6) + "birthDate: value: value is not a date in the expected format (yyyy-MM-dd, yyyy-MM or yyyy)",
        at(7) + "active: value: value is not a boolean (true/false, yes/no, 1/0)"));
  }

  @Test
  void constantsAndDefaultsMustBeRealDatesAndTimes() throws IOException {
    assertThat(problems("""
          birthDate: {value: 2015-02-30}
          deceasedDateTime: {column: birth_date, default: "2015-02-29T10:00:00Z"}
          meta.lastUpdated: {value: "2015-04-31T10:00:00+01:00"}
          extension[http://example.org/seen].valueDateTime: {value: "2015-06-30T23:59:60Z"}
          extension[http://example.org/at].valueTime: {value: "24:00:00"}
          extension[http://example.org/year].valueDate: {value: "0000"}
          name[0].period.start: {value: "2016-02-29T23:59:59+14:00"}
          name[0].period.end: {value: "2016-02-29"}
          extension[http://example.org/time].valueTime: {value: "23:59:59.5"}
        """), contains(
        at(6) + "birthDate: value: value is not a date in the expected format (yyyy-MM-dd, yyyy-MM or yyyy)",
        at(7) + "deceasedDateTime: default: value is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or"
            + " YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time",
        at(8) + "meta.lastUpdated: value: value is not a FHIR instant (YYYY-MM-DDThh:mm:ss with an offset such as Z"
            + " or +01:00) of a real day and time",
        at(9) + "extension[http://example.org/seen].valueDateTime: value: value is not a FHIR dateTime (YYYY,"
            + " YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time",
        at(10) + "extension[http://example.org/at].valueTime: value: value is not a FHIR time (hh:mm:ss, hours 00 to"
            + " 23)",
        at(11) + "extension[http://example.org/year].valueDate: value: value is not a date in the expected format"
            + " (yyyy-MM-dd, yyyy-MM or yyyy)"));
  }

  @Test
  void unmappedTakesRejectKeepOrDefaultWithAMap() throws IOException {
    assertThat(configError("  gender: {column: gender, map: {m: male}, unmapped: drop}\n"),
        equalTo(at(6) + "elements.gender.unmapped: 'drop' is not one of reject, keep, default, omit"));
    assertThat(configError("  name[0].family: {column: last_name, unmapped: keep}\n"),
        equalTo(at(6) + "elements.name[0].family.unmapped: only applies together with 'map' or 'map_file'"));
    assertThat(configError("  gender: {column: gender, map: {m: male}, unmapped: default}\n"),
        equalTo(at(6) + "elements.gender.unmapped: 'default' writes the rule's default, and the rule has none"));
  }

  String configError(String elements) {
    return assertThrows(ConfigException.class, () -> mapping(elements)).getMessage();
  }

  @Test
  void anOptionalColumnTheSourceLacksIsAllowedAndReadAsMissing() throws IOException {
    Path file = Files.writeString(dir.resolve("o.yaml"), """
        source: patients
        resource: Patient
        id: {column: patient_id}
        optional_columns: [middle_name]
        elements:
          name[0].given[0]: {column: first_name}
          name[0].given[1]: {column: middle_name}
          name[0].suffix[0]: {column: suffix}
        """);
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(file);
    assertThat(m.optionalColumns(), contains("middle_name"));
    // An optional column lets only itself be missing: 'suffix' is still an error.
    assertThat(assertThrows(MappingException.class, () -> MappingCompiler.compile(m, COLUMNS)).problems(),
        contains(file + ":8: name[0].suffix[0]: column 'suffix' is not in source patients (columns: patient_id,"
            + " first_name, last_name, birth_date, gender, middle_name)"));
    List<String> withSuffix = List.of("patient_id", "first_name", "suffix");
    assertThat(new SqlMapping(MappingCompiler.compile(m, withSuffix)).columns(),
        contains("patient_id", "first_name", "middle_name", "suffix"));
  }

  @Test
  void blankConstantsDefaultsAndTargetsAreRejected() throws IOException {
    assertThat(problems("  name[0].family: {value: \" \"}\n  name[0].given[0]: {column: first_name, default: \"\"}\n"),
        contains(at(6) + "name[0].family: value: must not be empty (FHIR has no empty values)",
            at(7) + "name[0].given[0]: default: must not be empty (FHIR has no empty values)"));
  }

  @Test
  void idIsSetOnlyByTheIdRule() throws IOException {
    assertThat(problems("  id: {column: patient_id}\n"),
        contains(at(6) + "id: the resource id is set by the mapping's 'id' rule"));
  }

  @Test
  void unknownResourceTypeIsRejected() throws IOException {
    Path file = Files.writeString(dir.resolve("m.yaml"),
        "source: s\nresource: Patients\nid: {column: a}\nelements:\n  x: {column: a}\n");
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(file);
    MappingException e = assertThrows(MappingException.class, () -> MappingCompiler.compile(m, null));
    assertThat(e.getMessage(), equalTo(file + ":2: resource: 'Patients' is not a FHIR R4 resource type"));
  }

  @Test
  void formatsOnlyApplyToDates() throws IOException {
    assertThat(problems("  name[0].family: {column: last_name, formats: [yyyy]}\n"),
        contains(at(6) + "name[0].family: 'formats' applies to date, dateTime and instant elements only"));
  }
}
