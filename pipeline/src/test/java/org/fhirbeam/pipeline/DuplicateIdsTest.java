package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Resources of one type that share an id within a run (quality.duplicate_ids): by default the first keeps it and
 * every later one is a reject naming the first one's source location, across files of one source and across
 * mappings; {@code keep} writes them all, {@code fail} fails the run.
 */
class DuplicateIdsTest {
  @TempDir
  Path tmp;

  /**
   * Two mappings write Patients: {@code people} over two files, {@code more} over a third. p1 repeats within a.csv,
   * p2 of b.csv repeats a.csv's, and p3 of extra.csv repeats b.csv's.
   */
  Path job(String extra) throws IOException {
    Files.createDirectories(tmp.resolve("people"));
    Files.writeString(tmp.resolve("people/a.csv"), "id,sex\np1,f\np2,m\np1,m\n");
    Files.writeString(tmp.resolve("people/b.csv"), "id,sex\np3,f\np2,f\n");
    Files.writeString(tmp.resolve("extra.csv"), "id,sex\np3,m\np9,f\n");
    String mapping = "resource: Patient\nid: {column: id}\nelements:\n"
        + "  gender: {column: sex, map: {m: male, f: female}}\n";
    Files.writeString(tmp.resolve("people.yaml"), "source: people\n" + mapping);
    Files.writeString(tmp.resolve("more.yaml"), "source: extra\n" + mapping);
    return Files.writeString(tmp.resolve("p.yaml"), "name: dups\ninput_dir: " + tmp + "\nsources:\n"
        + "  people: {path: 'people/*.csv'}\n  extra: {path: extra.csv}\nmappings: [people.yaml, more.yaml]\n"
        + extra);
  }

  Cli run(Path config, Runner runner, Path out, String... more) {
    List<String> args = new ArrayList<>(List.of("run", "--config", config.toString(), "--runner", runner.label(),
        "--output", out.toString(), "--set", "duckdb.database=" + tmp.resolve(runner.label() + ".db"),
        "--direct-checks"));
    args.addAll(List.of(more));
    return Cli.run(args.toArray(String[]::new));
  }

  static List<String> ids(Path out) throws IOException {
    List<String> ids = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.sorted().toList()) {
        for (String line : Files.readAllLines(f)) {
          JsonNode r = DefaultJobTest.JSON.readTree(line);
          ids.add(f.getFileName() + " " + r.get("id").asText() + " " + r.get("gender").asText());
        }
      }
    }
    return ids;
  }

  @ParameterizedTest
  @EnumSource(Runner.class)
  void laterResourcesWithAnIdAreRejectedNamingTheFirst(Runner runner) throws IOException {
    Path out = tmp.resolve("out");
    Cli r = run(job(""), runner, out);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 7 = resources 4 + rejected 3: OK"));
    assertThat(ids(out), equalTo(List.of("Patient-00000-of-00003.ndjson p1 female",
        "Patient-00000-of-00003.ndjson p2 male", "Patient-00001-of-00003.ndjson p3 female",
        "Patient-00002-of-00003.ndjson p9 female")));

    String a = tmp.resolve("people/a.csv").toString();
    String b = tmp.resolve("people/b.csv").toString();
    String extra = tmp.resolve("extra.csv").toString();
    List<String> rejects = new ArrayList<>();
    for (ObjectNode j : DefaultJobTest.rejects(out)) {
      rejects.add(j.get("mapping").asText() + " " + j.get("source").asText() + " " + j.get("file").asText() + ":"
          + j.get("line") + " " + j.get("stage").asText() + " " + j.get("element").asText() + " "
          + j.get("rule").asText() + " " + j.get("resource_id").asText() + ": " + j.get("reason").asText() + " | "
          + j.get("resource"));
    }
    rejects.sort(null);
    assertThat(rejects, equalTo(List.of(
        "more extra " + extra + ":2 quality Patient duplicate_id p3: a Patient mapped before this one has its id:"
            + " mapping people, source people, file " + b + ", line 2 | {\"resourceType\":\"Patient\","
            + "\"id\":\"p3\",\"gender\":\"male\"}",
        "people people " + a + ":4 quality Patient duplicate_id p1: a Patient mapped before this one has its id:"
            + " mapping people, source people, file " + a + ", line 2 | {\"resourceType\":\"Patient\","
            + "\"id\":\"p1\",\"gender\":\"male\"}",
        "people people " + b + ":3 quality Patient duplicate_id p2: a Patient mapped before this one has its id:"
            + " mapping people, source people, file " + a + ", line 3 | {\"resourceType\":\"Patient\","
            + "\"id\":\"p2\",\"gender\":\"female\"}")));

    JsonNode summary = DefaultJobTest.JSON.readTree(out.resolve("run-summary.json").toFile());
    assertThat(summary.at("/mappings/0/mapped").asLong() + " " + summary.at("/mappings/0/rejected").asLong() + " "
        + summary.at("/mappings/1/mapped").asLong() + " " + summary.at("/mappings/1/rejected").asLong(),
        equalTo("3 2 1 1"));
    // Nothing repeats in the loaded table any more.
    assertThat(r.out(), containsString("quality checks: 6 run, all passed"));
  }

  @Test
  void repeatsInAQuerySourceAreNamedByRowNumber() throws IOException {
    job("");
    Files.writeString(tmp.resolve("sorted.yaml"), "source: sorted\nresource: Patient\nid: {column: id}\nelements:\n  active: {value: 'true'}\n");
    Path config = Files.writeString(tmp.resolve("q.yaml"), "name: dups\ninput_dir: " + tmp + "\nsources:\n"
        + "  people: {path: 'people/*.csv'}\n  sorted: {sql: 'SELECT id FROM people ORDER BY id'}\n"
        + "mappings: [sorted.yaml]\n");
    Path out = tmp.resolve("out");
    Cli r = run(config, Runner.DIRECT, out, "--set", "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 5 = resources 3 + rejected 2: OK"));
    List<String> rejects = new ArrayList<>();
    for (ObjectNode j : DefaultJobTest.rejects(out)) {
      rejects.add(j.get("file").asText() + ":" + j.get("row_number") + " " + j.get("resource_id").asText() + ": "
          + j.get("reason").asText());
    }
    rejects.sort(null);
    assertThat(rejects, equalTo(List.of(
        "sql:sorted:2 p1: a Patient mapped before this one has its id: mapping sorted, source sorted, file sql:sorted,"
            + " row_number 1",
        "sql:sorted:4 p2: a Patient mapped before this one has its id: mapping sorted, source sorted, file sql:sorted,"
            + " row_number 3")));
  }

  @Test
  void keepWritesEveryResourceAndTheCheckCountsTheRepeats() throws IOException {
    Path out = tmp.resolve("out");
    Cli r = run(job("quality: {duplicate_ids: keep}\n"), Runner.DIRECT, out);
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 7 = resources 7 + rejected 0: OK"));
    assertThat(ids(out), equalTo(List.of("Patient-00000-of-00003.ndjson p1 female",
        "Patient-00000-of-00003.ndjson p2 male", "Patient-00000-of-00003.ndjson p1 male",
        "Patient-00001-of-00003.ndjson p3 female", "Patient-00001-of-00003.ndjson p2 female",
        "Patient-00002-of-00003.ndjson p3 male", "Patient-00002-of-00003.ndjson p9 female")));
    assertThat(r.out(), containsString("people duplicate_id 3 of 7"));
  }

  @Test
  void failStopsTheRunNamingTheFirstRepeatAndReplacesNothing() throws IOException {
    Path out = tmp.resolve("out");
    Path config = job("");
    assertThat(run(config, Runner.DIRECT, out).code(), equalTo(0));
    List<String> before = ids(out);
    Cli r = run(config, Runner.DIRECT, out, "--set", "quality.duplicate_ids=fail");
    assertThat(r.out(), r.code(), equalTo(1));
    assertThat(r.err(), containsString("quality.duplicate_ids is 'fail', and 3 Patient resource(s) repeat the id"
        + " of one mapped before them; the first is at " + tmp.resolve("people/a.csv") + " line 4 (mapping people),"
        + " repeating " + tmp.resolve("people/a.csv") + " line 2 (mapping people); nothing was replaced"));
    assertThat(ids(out), equalTo(before));
  }

  @Test
  void anUnknownPolicyIsAConfigErrorWithItsLine() throws IOException {
    Cli r = run(job("quality:\n  duplicate_ids: drop\n"), Runner.DIRECT, tmp.resolve("out"));
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString(tmp.resolve("p.yaml") + ":8: quality.duplicate_ids:"));
  }
}
