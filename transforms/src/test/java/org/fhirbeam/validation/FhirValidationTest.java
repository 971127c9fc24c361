package org.fhirbeam.validation;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.lessThan;

import java.nio.file.Path;
import java.util.List;
import org.fhirbeam.validation.FhirValidation.Issue;
import org.fhirbeam.validation.FhirValidation.Severity;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** One test per kind of problem: what the validator reports, where, and in which category. */
class FhirValidationTest {
  static final Path US_CORE = Path.of("../config/packages/hl7.fhir.us.core-3.1.1.tgz");
  static FhirValidation validation;

  @BeforeAll
  static void build() {
    validation = FhirValidation.shared(List.of(US_CORE));
  }

  /** Errors and fatal issues as "location message-id". */
  static List<String> errors(String resource) {
    return validation.validate(resource, List.of()).stream().filter(i -> i.severity().isError())
        .map(i -> i.location() + " " + i.messageId()).toList();
  }

  @Test
  void aValidPatientHasNoErrors() {
    assertThat(errors("{\"resourceType\":\"Patient\",\"id\":\"p4\",\"gender\":\"female\"}"), equalTo(List.of()));
  }

  @Test
  void aCodeOutsideARequiredValueSetIsAnErrorAtItsElement() {
    assertThat(errors("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"x\"}"), equalTo(List.of(
        "Patient.gender Terminology_PassThrough_TX_Message", "Patient.gender Terminology_TX_NoValid_16")));
  }

  @Test
  void aValueOutsideAnExtensibleBindingIsAWarningNotAnError() {
    // US Core binds address.state to the USPS codes extensibly: a state outside the USA is allowed as written.
    String patient = "{\"resourceType\":\"Patient\",\"id\":\"p6\",\"meta\":{\"profile\":"
        + "[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]},\"identifier\":[{\"system\":"
        + "\"urn:x\",\"value\":\"1\"}],\"name\":[{\"family\":\"Berg\"}],\"gender\":\"female\",\"address\":"
        + "[{\"city\":\"Stockholm\",\"state\":\"Stockholm\"}]}";
    assertThat(errors(patient), equalTo(List.of()));
    assertThat(validation.validate(patient, List.of()).stream()
        .filter(i -> i.location().equals("Patient.address[0].state") && i.category().equals(Issue.CONTENT))
        .map(i -> i.severity() + " " + i.messageId()).toList(), equalTo(List.of(
            "WARNING Terminology_PassThrough_TX_Message", "WARNING Terminology_TX_NoValid_17")));
  }

  @Test
  void anUnknownCodeOfALoadedCodeSystemUnderAnExtensibleBindingStaysAnError() {
    // Encounter.class is bound extensibly, but a code that its own (loaded) code system lacks is still wrong.
    String encounter = "{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"finished\",\"class\":"
        + "{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"NOPE\"}}";
    assertThat(errors(encounter), equalTo(List.of("Encounter.class Terminology_PassThrough_TX_Message")));
  }

  @Test
  void aMissingElementTheClaimedProfileRequiresIsAnError() {
    List<Issue> issues = validation.validate("{\"resourceType\":\"Patient\",\"id\":\"p2\",\"meta\":{\"profile\":"
        + "[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]},\"gender\":\"male\","
        + "\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}]}", List.of());
    List<Issue> errors = issues.stream().filter(i -> i.severity().isError()).toList();
    assertThat(errors.size(), equalTo(1));
    assertThat(errors.get(0).location(), equalTo("Patient"));
    assertThat(errors.get(0).messageId(), equalTo("Validation_VAL_Profile_Minimum"));
    assertThat(errors.get(0).message(), allOf(containsString("Patient.name: minimum required = 1"),
        containsString("us-core-patient|3.1.1")));
  }

  @Test
  void aProfileGivenByTheCallerIsCheckedToo() {
    String patient = "{\"resourceType\":\"Patient\",\"id\":\"p5\",\"gender\":\"male\"}";
    assertThat(errors(patient), equalTo(List.of()));
    List<String> withProfile = validation.validate(patient,
        List.of("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient")).stream()
        .filter(i -> i.severity().isError()).map(i -> i.message().substring(0, i.message().indexOf(':'))).toList();
    assertThat(withProfile, equalTo(List.of("Patient.identifier", "Patient.name")));
  }

  @Test
  void aValueOfTheWrongTypeIsAnErrorAtItsElement() {
    assertThat(errors("{\"resourceType\":\"Patient\",\"id\":\"p3\",\"active\":\"yes\"}"), equalTo(List.of(
        "Patient.active ", "Patient.active Type_Specific_Checks_DT_Boolean_Value")));
  }

  @Test
  void textThatIsNotJsonIsOneFatalIssue() {
    List<Issue> issues = validation.validate("{\"resourceType\":\"Patient\", \"id\":", List.of());
    assertThat(issues.size(), equalTo(1));
    assertThat(issues.get(0).severity(), equalTo(Severity.FATAL));
  }

  @Test
  void anUnknownExtensionIsAnErrorButFhirsOwnNamespaceIsAllowed() {
    assertThat(errors("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://example.com/no-such\","
        + "\"valueString\":\"x\"}]}"), equalTo(List.of("Patient.extension[0] Extension_EXT_Unknown_NotHere")));
    assertThat(errors("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
        + "\"http://hl7.org/fhir/StructureDefinition/patient-birthPlace\",\"valueAddress\":{\"city\":\"X\"}}]}"),
        equalTo(List.of()));
  }

  @Test
  void snomedCodesCannotBeCheckedOfflineAndAreCountedApartNotAsErrors() {
    List<Issue> issues = validation.validate("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"meta\":{\"profile\":"
        + "[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition\"]},\"clinicalStatus\":{\"coding\":"
        + "[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"active\"}]},"
        + "\"verificationStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-ver-status\","
        + "\"code\":\"confirmed\"}]},\"category\":[{\"coding\":[{\"system\":"
        + "\"http://terminology.hl7.org/CodeSystem/condition-category\",\"code\":\"encounter-diagnosis\"}]}],"
        + "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"44054006\"}]},"
        + "\"subject\":{\"reference\":\"Patient/p4\"}}", List.of());
    assertThat(issues.stream().filter(i -> i.severity().isError()).toList(), equalTo(List.of()));
    List<String> unavailable = issues.stream().filter(i -> i.category().equals(Issue.TERMINOLOGY_UNAVAILABLE))
        .map(i -> i.location() + " " + i.messageId()).toList();
    assertThat(unavailable, equalTo(List.of("Condition.code Terminology_PassThrough_TX_Message",
        "Condition.code Terminology_TX_NoValid_2_CC")));
  }

  @Test
  void aCodeListedInAValueSetOfAnUnloadedSystemIsAcceptedAndAnUnlistedOneIsNot() {
    // US Core's OMB race categories list CDC race codes, whose code system is not loaded.
    String race = "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
        + "\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race\",\"extension\":[{\"url\":\"ombCategory\","
        + "\"valueCoding\":{\"system\":\"urn:oid:2.16.840.1.113883.6.238\",\"code\":\"%s\"}},{\"url\":\"text\","
        + "\"valueString\":\"t\"}]}]}";
    assertThat(errors(String.format(race, "2106-3")), equalTo(List.of()));
    assertThat(errors(String.format(race, "2131-1")), equalTo(List.of(
        "Patient.extension[0].extension[0].value.ofType(Coding) Terminology_TX_NoValid_12")));
  }

  @Test
  void theSampleIsAStableShareOfTheResources() {
    int in = 0;
    for (int i = 0; i < 200_000; i++) {
      String r = "{\"resourceType\":\"Patient\",\"id\":\"" + i + "\"}";
      assertThat(ValidateResources.sampled(r, 0.01), equalTo(ValidateResources.sampled(r, 0.01)));
      in += ValidateResources.sampled(r, 0.01) ? 1 : 0;
    }
    assertThat(in, allOf(greaterThan(1800), lessThan(2200)));
    assertThat(ValidateResources.sampled("anything", 1.0), equalTo(true));
  }
}
