package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.util.Map;
import org.junit.jupiter.api.Test;

class RunSummaryTest {
  static RunSummary summary(long rowsIn, long patients, long observations, long rejected) {
    return new RunSummary("r", "direct", "c.yaml", Map.of("a", rowsIn - 1, "b", 1L),
        Map.of("Patient", patients, "Observation", observations), rejected, 2.0, Map.of(), null);
  }

  @Test
  void balancesWhenEveryRowIsAResourceOrAReject() {
    RunSummary s = summary(10, 5, 3, 2);
    assertThat(s.rowsIn(), equalTo(10L));
    assertThat(s.resourcesTotal(), equalTo(8L));
    assertThat(s.balanced(), equalTo(true));
    assertThat(s.rowsPerSecond(), equalTo(5.0));
  }

  @Test
  void aLostOrDuplicatedRowUnbalances() {
    assertThat(summary(10, 5, 3, 1).balanced(), equalTo(false));
    assertThat(summary(10, 5, 3, 3).balanced(), equalTo(false));
  }
}
