package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.stream.Stream;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.validation.FhirValidation;
import org.hl7.fhir.r5.model.BooleanType;
import org.hl7.fhir.r5.model.ElementDefinition;
import org.hl7.fhir.r5.model.Enumerations;
import org.hl7.fhir.r5.model.StructureDefinition;
import org.hl7.fhir.r5.model.UriType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A mapping's structure against the profiles it claims, decided before any row is read. */
class ProfileConformanceTest {
  static final Path US_CORE = Path.of("../config/packages/hl7.fhir.us.core-3.1.1.tgz");

  static List<String> findings(MappingConfig mapping, StructureDefinition profile,
      Function<String, Set<String>> valueSetCodes) {
    List<String> out = new ArrayList<>();
    FhirValidation definitions = FhirValidation.shared(List.of(US_CORE));
    for (ProfileConformance.Finding f : ProfileConformance.check(mapping, profile, valueSetCodes,
        definitions::profile).findings()) {
      out.add((f.error() ? "error " : "warning ") + f.location().replaceAll("^.*/", "") + ": " + f.message());
    }
    return out;
  }

  static List<String> findings(MappingConfig mapping, String usCoreProfile) {
    FhirValidation definitions = FhirValidation.shared(List.of(US_CORE));
    return findings(mapping, definitions.profile(usCoreProfile), definitions::codesOf);
  }

  /** Each rule kind against a small profile of Patient. */
  @Test
  void requiredForbiddenAndFixedElementsAreCheckedForEachRepetition(@TempDir Path dir) throws IOException {
    StructureDefinition profile = new StructureDefinition().setType("Patient").setName("TestPatient");
    element(profile, "Patient", 0, "*");
    element(profile, "Patient.identifier", 1, "*");
    element(profile, "Patient.identifier:mrn", 1, "1"); // a slice: not checked here
    element(profile, "Patient.identifier.system", 1, "1").setFixed(new UriType("urn:test:ids"));
    element(profile, "Patient.identifier.value", 1, "1");
    element(profile, "Patient.active", 0, "1").setFixed(new BooleanType(true)).addType().setCode("boolean");
    element(profile, "Patient.gender", 1, "1");
    element(profile, "Patient.birthDate", 0, "0");
    ElementDefinition multipleBirth = element(profile, "Patient.multipleBirth[x]", 0, "0");
    multipleBirth.addType().setCode("boolean");
    multipleBirth.addType().setCode("integer");
    element(profile, "Patient.name", 0, "*");
    element(profile, "Patient.name.family", 1, "1");
    element(profile, "Patient.maritalStatus", 1, "1").getBinding()
        .setStrength(Enumerations.BindingStrength.REQUIRED).setValueSet("urn:test:marital|1.0");
    element(profile, "Patient.language", 0, "1").getBinding()
        .setStrength(Enumerations.BindingStrength.REQUIRED).setValueSet("urn:test:unknown-terminology");
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("m.yaml"), """
        name: t
        source: s
        resource: Patient
        id: {column: pid}
        elements:
          identifier.system: {value: "urn:other"}
          identifier[0].value: {column: mrn}
          identifier[1].value: {column: ssn}
          active: {value: "yes"}
          gender: {column: sex, map: {m: male, f: female}}
          birthDate: {column: dob}
          multipleBirthBoolean: {value: "false"}
          name[0].family: {column: last}
          name[0].given[0]: {column: first}
          name[1].family: {column: maiden, required: true}
          name[2].family: {value: Doe}
          name[2].given[0]: {column: first}
          maritalStatus.text: {expr: "coalesce(status, 'unknown')"}
          maritalStatus.coding[0].code: {column: ms, map: {married: M, single: S, divorced: D}}
          language: {value: xx}
        """));
    String tail = " has a value: rows without one give resources that do not conform (make the rule required, or give"
        + " it a default)";
    Function<String, Set<String>> codes = url -> url.equals("urn:test:marital|1.0") ? new TreeSet<>(Set.of("M", "S",
        "W")) : null;
    assertThat(findings(m, profile, codes), equalTo(List.of(
        // identifier and identifier[0] are one repetition
        "warning m.yaml:6: mapping t writes Patient.identifier (TestPatient requires it) only when column mrn or column"
            + " ssn" + tail,
        "error m.yaml:6: mapping t writes 'urn:other' to Patient.identifier.system, which TestPatient fixes to"
            + " 'urn:test:ids'",
        "error m.yaml:8: mapping t never writes Patient.identifier.system, which TestPatient requires (min 1): no"
            + " resource of it can conform",
        // active: "yes" is written as true, the fixed value
        "warning m.yaml:10: mapping t writes Patient.gender (TestPatient requires it) only when column sex" + tail,
        "warning m.yaml:11: mapping t writes Patient.birthDate, which TestPatient forbids (max 0), when column dob has"
            + " a value",
        "error m.yaml:12: mapping t writes Patient.multipleBirth[x], which TestPatient forbids (max 0)",
        // name[0] can exist through its given name alone; name[1] only with its (required) family name; name[2]
        // through its given name, with the family name it has as a constant.
        "warning m.yaml:13: mapping t writes Patient.name.family (TestPatient requires it) only when column last"
            + tail,
        // maritalStatus: coalesce(status, 'unknown') always gives it a value; of its codes, D is not in the value
        // set. The language's value set cannot be expanded here: left to a run's validation.
        "error m.yaml:19: mapping t writes 'D' to Patient.maritalStatus, which TestPatient binds to"
            + " urn:test:marital|1.0 (required), whose codes are M, S, W")));
  }

  /** A repeating element of {@code type}, sliced by the value at each of {@code paths}. */
  private static void sliced(StructureDefinition profile, String id, String type, ElementDefinition.SlicingRules rules,
      String... paths) {
    ElementDefinition e = element(profile, id, 0, "*");
    e.addType().setCode(type);
    e.getSlicing().setRules(rules);
    for (String path : paths) {
      e.getSlicing().addDiscriminator().setType(ElementDefinition.DiscriminatorType.VALUE).setPath(path);
    }
  }

  private static ElementDefinition element(StructureDefinition profile, String id, int min, String max) {
    ElementDefinition e = profile.getSnapshot().addElement().setPath(id.replaceAll(":[^.]*", "")).setMin(min)
        .setMax(max);
    e.setId(id);
    return e;
  }

  @Test
  void theDefaultPatientMappingWritesNoIdentifierWhichUsCorePatientRequires() {
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Path.of("../config/mappings/patient.yaml"));
    assertThat(findings(m, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"), equalTo(List.of(
        "error patient.yaml:4: mapping patient never writes Patient.identifier, which US Core Patient Profile requires"
            + " (min 1): no resource of it can conform",
        "warning patient.yaml:11: mapping patient writes Patient.name (US Core Patient Profile requires it) only when"
            + " column last_name or column first_name has a value: rows without one give resources that do not"
            + " conform (make the rule required, or give it a default)")));
  }

  /**
   * The shipped Synthea mappings, whose output HAPI's validator passes against US Core (SyntheaAgreementTest): no
   * error, and a warning for each required element that a row without a value would leave out (the status of a
   * MedicationRequest, if(present(STOP), 'stopped', 'active'), always has one).
   */
  @Test
  void theSyntheaMappingsCanConformToTheUsCoreProfilesTheyClaim() throws IOException {
    List<String> all = new ArrayList<>();
    try (Stream<Path> files = Files.list(Path.of("../config/mappings/synthea"))) {
      for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
        MappingConfig m = new ConfigLoader(Map.of()).loadMapping(f);
        for (String url : m.elements().stream().filter(r -> r.path().startsWith("meta.profile"))
            .map(r -> r.constant()).toList()) {
          all.addAll(findings(m, url));
        }
      }
    }
    String tail = " has a value: rows without one give resources that do not conform (make the rule required, or give"
        + " it a default)";
    assertThat(all, equalTo(List.of(
        "warning encounter.yaml:14: mapping synthea_encounter writes Encounter.class (US Core Encounter Profile"
            + " requires it) only when column ENCOUNTERCLASS" + tail,
        "warning medication_request.yaml:21: mapping synthea_medication_request writes MedicationRequest.authoredOn"
            + " (US Core MedicationRequest Profile requires it) only when column START" + tail,
        "warning medication_request.yaml:22: mapping synthea_medication_request writes MedicationRequest.requester (US"
            + " Core MedicationRequest Profile requires it) only when expression ref('Practitioner', PROVIDER)" + tail,
        // Geolocation needs both; LAT and LON are read apart (race's text and the codes all come from RACE).
        "warning patient.yaml:100: mapping synthea_patient writes the extension latitude of Geolocation (which requires"
            + " it) only when column LAT" + tail,
        "warning patient.yaml:101: mapping synthea_patient writes the extension longitude of Geolocation (which"
            + " requires it) only when column LON" + tail,
        "warning procedure.yaml:17: mapping synthea_procedure writes Procedure.performed[x] (US Core Procedure Profile"
            + " requires it) only when column DATE" + tail)));
  }

  /**
   * Codes outside required bindings of US Core, expanded from the package: a constant, and a literal of an expression
   * (the other, 'resolved', is a code).
   */
  /** A reference's type, from its ref() or its constant, against the types the element's target profiles allow. */
  @Test
  void aReferenceToATypeTheProfileDoesNotAllowIsFound(@TempDir Path dir) throws IOException {
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("e.yaml"), """
        name: visits
        source: s
        resource: Encounter
        id: {column: eid}
        elements:
          status: {value: finished}
          class.system: {value: "http://terminology.hl7.org/CodeSystem/v3-ActCode"}
          class.code: {value: AMB}
          type[0].text: {value: visit}
          subject.reference: {expr: "ref('Group', pid)", required: true}
          serviceProvider.reference: {expr: "ref('Practitioner', org)"}
          participant[0].individual.reference: {value: "Practitioner/p1"}
          partOf.reference: {expr: "concat('Encounter/', parent)"}
        """));
    FhirValidation definitions = FhirValidation.shared(List.of(US_CORE));
    // Base R4: subject may be a Group; serviceProvider must be an Organization, and is written only with org.
    assertThat(findings(m, definitions.profile("http://hl7.org/fhir/StructureDefinition/Encounter"),
        definitions::codesOf), equalTo(List.of(
            "warning e.yaml:11: mapping visits writes a reference to Practitioner into Encounter.serviceProvider,"
                + " where Encounter allows Organization: its resources with Encounter.serviceProvider do not"
                + " conform")));
    // US Core's subject is a US Core Patient: a Group never conforms, and every resource has one.
    assertThat(findings(m, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter").stream()
        .filter(f -> f.contains("reference")).toList(), equalTo(List.of(
            "error e.yaml:10: mapping visits writes a reference to Group into Encounter.subject, where US Core"
                + " Encounter Profile allows Patient: no resource of it can conform",
            "warning e.yaml:11: mapping visits writes a reference to Practitioner into Encounter.serviceProvider,"
                + " where US Core Encounter Profile allows Organization: its resources with"
                + " Encounter.serviceProvider do not conform")));
  }

  /**
   * A unit of UCUM is checked by UCUM's grammar: a constant that is not one is an error, a unit from the row a check in
   * the query.
   */
  @Test
  void unitsOfUcumAreCheckedByItsGrammar(@TempDir Path dir) throws IOException {
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("o.yaml"), """
        name: labs
        source: s
        resource: Observation
        id: {column: oid}
        elements:
          status: {value: final}
          code.text: {value: glucose}
          valueQuantity.value: {column: value}
          valueQuantity.system: {value: "http://unitsofmeasure.org"}
          valueQuantity.code: {column: unit}
          referenceRange[0].low.system: {value: "http://unitsofmeasure.org"}
          referenceRange[0].low.code: {value: "mg/dL"}
          referenceRange[0].high.system: {value: "http://unitsofmeasure.org"}
          referenceRange[0].high.code: {value: "milligrams"}
        """));
    ProfileConformance.Result r = ProfileConformance.codeSystems(m, url -> null);
    assertThat(r.findings().stream().map(f -> f.location().replaceAll("^.*/", "") + ": " + f.message()).toList(),
        equalTo(List.of("o.yaml:14: mapping labs writes 'milligrams' to referenceRange[0].high.code, which is not a"
            + " UCUM unit: " + UcumUnits.error("milligrams"))));
    assertThat(r.rowChecks(), equalTo(List.of(new RowCheck(RowCheck.Kind.INVARIANT, List.of("valueQuantity[0]"),
        List.of(), List.of(), new RowCheck.Or(List.of(new RowCheck.Not(new RowCheck.Present(List.of(
            "valueQuantity[0]", "code[0]"))), new RowCheck.Ucum(List.of("valueQuantity[0]", "code[0]")))),
        "Terminology_PassThrough_TX_Message", "The unit is not a unit of UCUM (http://unitsofmeasure.org)", null))));
    assertThat(UcumUnits.error("mg/dL"), equalTo(null));
    assertThat(UcumUnits.error("milligrams") != null, equalTo(true));
  }

  @Test
  void aConstantOutsideARequiredBindingIsAnError(@TempDir Path dir) throws IOException {
    Path copy = Files.writeString(dir.resolve("condition.yaml"), Files.readString(Path.of(
        "../config/mappings/synthea/condition.yaml")).replace("code: {value: confirmed}", "code: {value: certain}")
        .replace("'resolved', 'active'", "'resolved', 'ongoing'"));
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(copy);
    assertThat(findings(m, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"), equalTo(List.of(
        "error condition.yaml:12: mapping synthea_condition writes 'ongoing' to Condition.clinicalStatus, which US"
            + " Core Condition Profile binds to http://hl7.org/fhir/ValueSet/condition-clinical (required), whose"
            + " codes are active, inactive, recurrence, relapse, remission, resolved",
        "error condition.yaml:14: mapping synthea_condition writes 'certain' to Condition.verificationStatus, which US"
            + " Core Condition Profile binds to http://hl7.org/fhir/ValueSet/condition-ver-status (required),"
            + " whose codes are confirmed, differential, entered-in-error, provisional, refuted, unconfirmed")));
  }

  /**
   * A required slice told apart by value (identifiers by system), of a closed slicing: row checks when the row decides
   * them, an error when no item the mapping writes can ever be the slice's, and a warning for an item that can be none
   * of the slices.
   */
  @Test
  void aRequiredSliceByValueIsARowCheckOrAnErrorWhenNoItemCanBeIt(@TempDir Path dir) throws IOException {
    StructureDefinition profile = new StructureDefinition().setType("Patient").setName("MrnPatient");
    element(profile, "Patient", 0, "*");
    sliced(profile, "Patient.identifier", "Identifier", ElementDefinition.SlicingRules.CLOSED, "system");
    element(profile, "Patient.identifier:mrn", 1, "1").setSliceName("mrn");
    element(profile, "Patient.identifier:mrn.system", 1, "1").setFixed(new UriType("urn:oid:1.2.3.4"));
    element(profile, "Patient.identifier.system", 0, "1");
    element(profile, "Patient.identifier.value", 0, "1");
    element(profile, "Patient.meta", 0, "1").addType().setCode("Meta");
    sliced(profile, "Patient.meta.profile", "canonical", ElementDefinition.SlicingRules.OPEN, "$this");
    element(profile, "Patient.meta.profile:mine", 1, "1").setSliceName("mine")
        .setFixed(new org.hl7.fhir.r5.model.CanonicalType("urn:test:mine"));
    MappingConfig fromRow = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("a.yaml"), """
        name: a
        source: s
        resource: Patient
        id: {column: pid}
        elements:
          identifier[0].system: {column: sys}
          identifier[0].value: {column: mrn}
        """));
    ProfileConformance.Result a = ProfileConformance.check(fromRow, profile, url -> null, url -> null);
    assertThat(a.findings(), equalTo(List.of()));
    assertThat(a.rowChecks().toString(), a.rowChecks().stream().map(c -> c.messageId() + " " + c.condition())
        .toList(), equalTo(List.of("Validation_VAL_Profile_Minimum_SLICE Equals[keys=[identifier[0], system[0]],"
            + " value=urn:oid:1.2.3.4]", "Validation_VAL_Profile_NotSlice Equals[keys=[identifier[0], system[0]],"
            + " value=urn:oid:1.2.3.4]")));
    // The slice's system as a constant: the identifier is the slice whenever the row writes it (its value).
    MappingConfig constant = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("c.yaml"), """
        name: c
        source: s
        resource: Patient
        id: {column: pid}
        elements:
          identifier[0].system: {value: "urn:oid:1.2.3.4"}
          identifier[0].value: {column: mrn}
        """));
    ProfileConformance.Result c = ProfileConformance.check(constant, profile, url -> null, url -> null);
    assertThat(c.findings(), equalTo(List.of()));
    assertThat(c.rowChecks().stream().map(r -> r.messageId() + " " + r.condition()).toList(), equalTo(List.of(
        "Validation_VAL_Profile_Minimum_SLICE Present[keys=[identifier[0], system[0]]]",
        "Validation_VAL_Profile_NotSlice Present[keys=[identifier[0], system[0]]]")));
    // Identifiers without a system, or with another constant one; a profile of its own only (a slice by $this).
    for (String rule : List.of("identifier[0].value: {column: mrn}", "identifier[0].system: {value: urn:x}")) {
      MappingConfig never = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("b.yaml"), """
          name: b
          source: s
          resource: Patient
          id: {column: pid}
          elements:
            meta.profile[0]: {value: "urn:test:other"}
            %s
          """.formatted(rule)));
      assertThat(findings(never, profile, url -> null), equalTo(List.of("error b.yaml:7: mapping b writes no item of"
          + " Patient.identifier that can be slice Patient.identifier:mrn, which MrnPatient requires (min 1): no"
          + " resource of it can conform", "warning b.yaml:7: mapping b writes an item of Patient.identifier"
          + " (identifier[0]) that can be none of the slices of its closed slicing in MrnPatient: the resources with"
          + " it do not conform", "error b.yaml:6: mapping b writes no item of Patient.meta.profile that can be slice"
          + " Patient.meta.profile:mine, which MrnPatient requires (min 1): no resource of it can conform")));
    }
  }

  /**
   * A slice told apart by two paths through a repeating element (R4's vital signs' {@code category:VSCat}, by
   * {@code coding.code} and {@code coding.system}): each value may be in any coding, as the validator asks.
   */
  @Test
  void eachDiscriminatorPathIsMatchedOnItsOwn(@TempDir Path dir) throws IOException {
    StructureDefinition profile = new StructureDefinition().setType("Observation").setName("Signs");
    element(profile, "Observation", 0, "*");
    sliced(profile, "Observation.category", "CodeableConcept", ElementDefinition.SlicingRules.OPEN, "coding.code",
        "coding.system");
    element(profile, "Observation.category:VSCat", 1, "1").setSliceName("VSCat");
    element(profile, "Observation.category:VSCat.coding.system", 1, "1").setFixed(new UriType("urn:cat"));
    element(profile, "Observation.category:VSCat.coding.code", 1, "1")
        .setFixed(new org.hl7.fhir.r5.model.CodeType("vital-signs"));
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("o.yaml"), """
        name: o
        source: s
        resource: Observation
        id: {column: oid}
        elements:
          category[0].coding[0].system: {value: "urn:cat"}
          category[0].coding[0].code: {column: c0}
          category[0].coding[1].code: {column: c1}
        """));
    ProfileConformance.Result r = ProfileConformance.check(m, profile, url -> null, url -> null);
    assertThat(r.findings(), equalTo(List.of()));
    assertThat(r.rowChecks().stream().map(c -> c.messageId() + " " + c.condition()).toList(), equalTo(List.of(
        "Validation_VAL_Profile_Minimum_SLICE And[preds=[Or[preds=[Equals[keys=[category[0], coding[0], code[0]],"
            + " value=vital-signs], Equals[keys=[category[0], coding[1], code[0]], value=vital-signs]]],"
            + " Present[keys=[category[0], coding[0], system[0]]]]]")));
  }

  /** An extension's definition says which of its extensions it needs: US Core race, its text. */
  @Test
  void anExtensionWithoutTheExtensionsItRequiresFailsTheResourcesWithIt(@TempDir Path dir) throws IOException {
    MappingConfig m = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("r.yaml"), """
        name: r
        source: s
        resource: Patient
        id: {column: pid}
        elements:
          extension[http://hl7.org/fhir/us/core/StructureDefinition/us-core-race].extension[ombCategory].valueCoding.code: {column: race}
          identifier[0].value: {column: pid}
          name[0].family: {column: pid}
          gender: {value: unknown}
        """));
    // The race is written only when its column has a value: the rows without one conform.
    assertThat(findings(m, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"), equalTo(List.of(
        "warning r.yaml:6: mapping r writes US Core Race Extension without its extension text, which it requires (min"
            + " 1): its resources with that extension do not conform",
        "error r.yaml:7: mapping r never writes Patient.identifier.system, which US Core Patient Profile requires (min"
            + " 1): no resource of it can conform")));
    // Written always (a constant), no resource can conform.
    MappingConfig always = new ConfigLoader(Map.of()).loadMapping(Files.writeString(dir.resolve("a.yaml"),
        Files.readString(dir.resolve("r.yaml")).replace("{column: race}", "{value: \"2106-3\"}")
            .replace("name: r", "name: a")));
    assertThat(findings(always, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient").get(0), equalTo(
        "error a.yaml:6: mapping a writes US Core Race Extension without its extension text, which it requires (min"
            + " 1): no resource of it can conform"));
  }
}
