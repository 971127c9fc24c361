package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;

import java.util.List;
import java.util.Map;
import org.fhirbeam.pipeline.RunSummary.MappingCount;
import org.junit.jupiter.api.Test;

class RunSummaryTest {
  static RunSummary summary(List<MappingCount> mappings, Map<String, Long> written, long rejectsWritten) {
    return new RunSummary("r", "direct", "c.yaml", Map.of("patients", 10L, "labs", 7L), mappings, written,
        rejectsWritten, 2.0, Map.of(), null, Map.of(), null, Map.of(), Map.of());
  }

  static final MappingCount PATIENT = new MappingCount("patient", "patients", "Patient", 10, 8, 2, 0.5);
  static final MappingCount LAB = new MappingCount("lab", "labs", "Observation", 7, 6, 1, 0.5);

  @Test
  void balancesWhenEveryRowIsAResourceOrARejectAndEverythingWasWritten() {
    RunSummary s = summary(List.of(PATIENT, LAB), Map.of("Patient", 8L, "Observation", 6L), 3);
    assertThat(s.imbalances(), empty());
    assertThat(s.balanced(), equalTo(true));
    assertThat(s.rowsIn(), equalTo(17L));
    assertThat(s.resourcesTotal(), equalTo(14L));
    assertThat(s.rowsPerSecond(), equalTo(8.5));
  }

  @Test
  void twoMappingsOfOneSourceEachAccountForEveryRow() {
    MappingCount names = new MappingCount("names", "patients", "RelatedPerson", 10, 10, 0, 0.5);
    RunSummary s = new RunSummary("r", "direct", "c.yaml", Map.of("patients", 10L), List.of(PATIENT, names),
        Map.of("Patient", 8L, "RelatedPerson", 10L), 2, 1.0, Map.of(), null, Map.of(), null, Map.of(), Map.of());
    assertThat(s.imbalances(), empty());
  }

  @Test
  void aLostRowInMappingOrWritingIsNamed() {
    RunSummary lostInMapping = summary(List.of(new MappingCount("patient", "patients", "Patient", 10, 7, 2, 0.5), LAB),
        Map.of("Patient", 7L, "Observation", 6L), 3);
    assertThat(lostInMapping.imbalances(), contains("mapping patient: rows in 10 != mapped 7 + rejected 2"));
    RunSummary lostInWriting = summary(List.of(PATIENT, LAB), Map.of("Patient", 8L, "Observation", 5L), 2);
    assertThat(lostInWriting.imbalances(),
        contains("Observation: 6 mapped but 5 written", "rejects: 3 rejected but 2 written"));
    assertThat(lostInWriting.balanced(), equalTo(false));
  }
}
