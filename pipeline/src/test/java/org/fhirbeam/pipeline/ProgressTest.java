package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.fhirbeam.data.Counters;
import org.fhirbeam.pipeline.Progress.Counts;
import org.fhirbeam.pipeline.Progress.Stage;
import org.fhirbeam.pipeline.Progress.Work;
import org.junit.jupiter.api.Test;

/**
 * The progress line names the stage that runs with that stage's own counts, rate and time left, from given counts
 * (the job tests show it on real runs: ValidationJobTest, QualityRulesTest).
 */
class ProgressTest {
  /** A tick that never comes during a test: what is printed is what the calls print. */
  static final long NEVER = 3_600_000;
  static final Work WORK = new Work(List.of("a", "b"), 10, 1_000, Set.of("b"), true);

  @Test
  void mappingShowsFilesRowsAndTheTimeLeftByBytes() {
    // 3 files and 300 of 1,000 bytes in 2 s: 700 bytes left at 150 bytes/s.
    Counts c = new Counts(3 * Counters.FILE, 600_000, 300, 0, 0, 0, 0);
    assertThat(Progress.stage(WORK, c), equalTo(Stage.MAPPING));
    assertThat(Progress.line(WORK, c, Stage.MAPPING, 2.0, Counts.NONE),
        equalTo("mapping: 3 of 10 files, 600,000 rows, 300,000 rows/s, ETA 5 s"));
    // Pieces of a file that are not all mapped leave the file uncounted; without sizes there is no ETA.
    Work database = new Work(List.of("a"), 1, 0, Set.of(), false);
    assertThat(Progress.line(database, new Counts(Counters.FILE / 2, 10, 0, 0, 0, 0, 0), Stage.MAPPING, 1.0,
        Counts.NONE), equalTo("mapping: 0 of 1 file, 10 rows, 10 rows/s"));
  }

  @Test
  void laterStagesShowResourcesOfTheirOwnWithRateAndTimeLeftSinceTheyBegan() {
    // Every file mapped, the rules done with all 15,000 of b's resources: validation has 12,000 of 40,000 done,
    // 2,000 of them when it became the stage shown 5 s ago.
    Counts c = new Counts(10 * Counters.FILE, 812_000, 1_000, 15_000, 15_000, 40_000, 12_000);
    Counts atStart = new Counts(10 * Counters.FILE, 812_000, 1_000, 15_000, 15_000, 40_000, 2_000);
    assertThat(Progress.stage(WORK, c), equalTo(Stage.VALIDATION));
    assertThat(Progress.line(WORK, c, Stage.VALIDATION, 5.0, atStart),
        equalTo("validation: 12,000 of 40,000 resources, 2,000/s, ETA 14 s"));
    Counts rules = new Counts(10 * Counters.FILE, 812_000, 1_000, 15_000, 3_000, 40_000, 1_000);
    assertThat(Progress.stage(WORK, rules), equalTo(Stage.RULES));
    assertThat(Progress.line(WORK, rules, Stage.RULES, 2.0, Counts.NONE),
        equalTo("rules: 3,000 of 15,000 resources, 1,500/s, ETA 8 s"));
    // While the mapping runs, validation's total is still growing: no time left is given for it.
    Counts mapping = new Counts(9 * Counters.FILE, 800_000, 900, 0, 0, 30_000, 12_000);
    assertThat(Progress.line(WORK, mapping, Stage.VALIDATION, 5.0, Counts.NONE),
        equalTo("validation: 12,000 of 30,000 resources, 2,400/s"));
    // All done: the last stage stays, with its final counts.
    Counts done = new Counts(10 * Counters.FILE, 812_000, 1_000, 15_000, 15_000, 40_000, 40_000);
    assertThat(Progress.stage(WORK, done), equalTo(Stage.VALIDATION));
    assertThat(Progress.eta(10_000, 10), equalTo(", ETA 17 min"));
  }

  @Test
  void theCountsComeFromTheStagesCounters() {
    Map<String, Long> counters = Map.of(Counters.filesMapped("a"), 4 * Counters.FILE, Counters.filesMapped("b"),
        Counters.FILE, Counters.rowsIn("a"), 70L, Counters.rowsIn("b"), 30L, Counters.mapped("a"), 60L,
        Counters.mapped("b"), 30L, Counters.ruleRejected("b"), 5L, Counters.checked(Counters.RULES, "b"), 30L,
        Counters.checked(Counters.VALIDATION, "a"), 60L, Counters.checked(Counters.VALIDATION, "b"), 20L);
    Counts c = Counts.of(WORK, counters);
    // b's resources reach validation less the 5 its rules rejected.
    assertThat(c, equalTo(new Counts(5 * Counters.FILE, 100, 0, 30, 30, 85, 80)));
    assertThat(Progress.done(WORK, c, Stage.MAPPING), equalTo("mapping: 5 of 10 files, 100 rows"));
    assertThat(Progress.done(WORK, c, Stage.RULES), equalTo("rules: 30 of 30 resources"));
    assertThat(Progress.done(WORK, c, Stage.VALIDATION), equalTo("validation: 80 of 85 resources"));

    // Repeated ids dropped before the rules and validation are not waited for there.
    Map<String, Long> withDuplicates = new HashMap<>(counters);
    withDuplicates.put(Counters.duplicates("a"), 10L);
    withDuplicates.put(Counters.duplicates("b"), 2L);
    withDuplicates.put(Counters.checked(Counters.RULES, "b"), 28L);
    withDuplicates.put(Counters.checked(Counters.VALIDATION, "a"), 50L);
    withDuplicates.put(Counters.checked(Counters.VALIDATION, "b"), 23L);
    Counts d = Counts.of(WORK, withDuplicates);
    assertThat(d, equalTo(new Counts(5 * Counters.FILE, 100, 0, 28, 28, 73, 73)));
  }

  @Test
  void plainOutputGetsEachStagesFinalCountsThenEachPhaseOfTheDriver() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    Work work = new Work(List.of("a"), 1, 0, Set.of(), true);
    try (Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), false, NEVER)) {
      p.pipelineDone(work, Map.of(Counters.filesMapped("a"), Counters.FILE, Counters.rowsIn("a"), 4L,
          Counters.mapped("a"), 4L, Counters.checked(Counters.VALIDATION, "a"), 4L));
      p.phase("writing files");
      p.phase("loading DuckDB");
    }
    assertThat(bytes.toString(StandardCharsets.UTF_8),
        equalTo("mapping: 1 of 1 file, 4 rows\nvalidation: 4 of 4 resources\nwriting files\nloading DuckDB\n"));
  }

  @Test
  void aTerminalGetsOneLineRedrawnInPlaceAndClearedAtTheEnd() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), true, NEVER)) {
      p.phase("writing files");
      p.phase("loading DuckDB");
    }
    // "loading DuckDB" is one character longer: nothing of the line before is left.
    assertThat(bytes.toString(StandardCharsets.UTF_8),
        equalTo("\rwriting files\rloading DuckDB\r" + " ".repeat(14) + "\r"));
  }
}
