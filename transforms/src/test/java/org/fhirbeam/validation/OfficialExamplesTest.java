package org.fhirbeam.validation;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The 72 official R4 examples in ../shared/data against base R4. 64 have no errors; the 8 others break rules of
 * R4 or of today's validator, each named here and explained in docs/VALIDATION.md.
 */
@Tag("shared-data")
class OfficialExamplesTest {
  static final Path EXAMPLES = Path.of("../../shared/data/fhir-r4-examples");

  @Test
  void officialExamplesHaveNoErrorsExceptTheKnownRuleBreaks() throws Exception {
    FhirValidation v = FhirValidation.shared(List.of());
    Map<String, Set<String>> errors = new TreeMap<>();
    int files = 0;
    try (Stream<Path> s = Files.list(EXAMPLES)) {
      for (Path f : s.sorted().toList()) {
        files++;
        for (FhirValidation.Issue i : v.validate(Files.readString(f), List.of())) {
          if (i.severity().isError()) {
            errors.computeIfAbsent(f.getFileName().toString(), k -> new TreeSet<>()).add(i.messageId());
          }
        }
      }
    }
    assertThat(files, equalTo(72));
    assertThat(errors, equalTo(new TreeMap<>(Map.of(
        "bundle-questionnaire.json", Set.of("Validation_VAL_Profile_Minimum", "Profile_EXT_Not_Here"),
        "capabilitystatement-example.json", Set.of("Type_Specific_Checks_DT_UUID_Valid",
            "TYPE_SPECIFIC_CHECKS_CANONICAL_ABSOLUTE"),
        "implementationguide-example.json", Set.of("IG_HL7_WG_REQUIRED", "IG_HL7_STANDARDS_STATUS_REQUIRED"),
        "medicationdispense0301.json", Set.of("Terminology_PassThrough_TX_Message"),
        "medicationstatementexample1.json", Set.of("Terminology_PassThrough_TX_Message"),
        "operationdefinition-example.json", Set.of("TYPE_SPECIFIC_CHECKS_CANONICAL_ABSOLUTE"),
        "structuredefinition-example-composition.json", Set.of("SD_DERIVATION_KIND_MISMATCH",
            "SD_CONSTRAINED_KIND_NO_MATCH"),
        "structuremap-example.json", Set.of("SM_SOURCE_CONTEXT_UNKNOWN", "SM_TARGET_CONTEXT_UNKNOWN")))));
  }
}
