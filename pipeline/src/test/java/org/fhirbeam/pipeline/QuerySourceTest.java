package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.startsWith;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sources that are DuckDB queries over the file sources. */
class QuerySourceTest {
  @TempDir
  Path tmp;

  Path job(String query) throws IOException {
    Files.writeString(tmp.resolve("people.csv"), "id,name\np1,Ann\np2,Bo\n");
    Files.writeString(tmp.resolve("visits.csv"), "visit,person,day\nv1,p1,2024-01-02\nv2,p2,2024-02-03\nv3,p9,bad\n");
    Files.writeString(tmp.resolve("m.yaml"), """
        source: visits_named
        resource: Encounter
        id: {column: visit}
        elements:
          status: {value: finished}
          class.code: {value: AMB}
          subject.display: {column: name}
          period.start: {column: day}
        """);
    return Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n"
        + "  people: {path: people.csv}\n  visits: {path: visits.csv}\n  unused: {path: not-there.csv}\n"
        + "  extra: {path: none-*.csv, optional: true}\n"
        + "  visits_named:\n    sql: |\n" + query.indent(6) + "mappings: [m.yaml]\n");
  }

  @Test
  void aQueryJoinsFileSourcesAndItsRowsAreMappedAndCounted() throws IOException {
    Path config = job("""
        SELECT v.*, p.name FROM visits AS v LEFT JOIN people AS p ON p.id = v.person
        ORDER BY v.visit -- stable order
        """);
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 2 + rejected 1: OK"));
    String enc = "{\"resourceType\":\"Encounter\",\"id\":\"";
    assertThat(Files.readAllLines(out.resolve("fhir/Encounter-00000-of-00001.ndjson")), equalTo(List.of(
        enc + "v1\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},\"subject\":{\"display\":\"Ann\"},"
            + "\"period\":{\"start\":\"2024-01-02\"}}",
        enc + "v2\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},\"subject\":{\"display\":\"Bo\"},"
            + "\"period\":{\"start\":\"2024-02-03\"}}")));
    String reject;
    try (var files = Files.list(out.resolve("rejects"))) {
      reject = Files.readString(files.findFirst().orElseThrow());
    }
    assertThat(reject, containsString("\"source\":\"visits_named\",\"file\":\"sql:visits_named\",\"row_number\":3,"));
    assertThat(reject, containsString("\"row\":{\"visit\":\"v3\",\"person\":\"p9\",\"day\":\"bad\",\"name\":null}"));
  }

  @Test
  void aQueryOverAnOptionalSourceWithoutFilesSaysSo() throws IOException {
    Path config = job("SELECT v.* FROM visits AS v LEFT JOIN extra AS x ON x.id = v.person");
    Cli r = Cli.run("run", "--config", config.toString(), "--output", tmp.resolve("out").toString(), "--set",
        "duckdb.database=" + tmp.resolve("x.db"));
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), startsWith("error: " + config + ":8: sources.visits_named.sql: the query failed: Catalog"
        + " Error"));
    assertThat(r.err(), containsString("(optional source(s) without files, so not available to the query: extra)"));
  }
}
