package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.PartFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The per-file mapping transform on the DirectRunner with its checks on: part files, their contents, counters. */
class MapWithDuckDbTest {
  static final DuckDbSettings SETTINGS = new DuckDbSettings("unused.db", false, "256MB", 1, List.of());

  @TempDir
  Path dir;

  /** Values hold '#', which once made DuckDB quote the lines it wrote. */
  @Test
  void eachFileBecomesResourceAndRejectPartsAndEveryRowIsCounted() throws IOException {
    Files.writeString(dir.resolve("a.csv"), "patient_id,first_name,last_name,birth_date,gender\n"
        + "a1,#Ann,Lee # 2,2000-01-01,F\na2,,,bad,M\na3,Cy,Q#,1999-12-31,x,EXTRA\n");
    Files.writeString(dir.resolve("b.ndjson"), "{\"patient_id\": \"b1\", \"gender\": \"o\"}\n");
    var source = new FileSourcePlanner(SETTINGS).plan(new SourceConfig("patients", dir + "/*.{csv,ndjson}", null,
        SourceConfig.Format.AUTO, false, "test"));
    CompiledMapping mapping = MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(
        Path.of("..", "config", "mappings", "patient.yaml")), source.columns());

    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(true);
    PCollection<PartFile> parts = p.apply(MapWithDuckDb.of(mapping, source.tasks()).withSettings(SETTINGS)
        .withPartsDirectory(dir.resolve("parts").toString()).withRunId("run-1"));
    PAssert.that(parts).satisfies(new PartsAre(dir.resolve("a.csv").toString()));
    PipelineResult result = p.run();
    result.waitUntilFinish();
    Map<String, Long> counters = new TreeMap<>();
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.inNamespace(Counters.NAMESPACE)).build()).getCounters()) {
      counters.merge(c.getName().getName(), c.getAttempted(), Long::sum);
    }
    assertThat(counters.remove("ms/patient"), greaterThan(0L));
    // The genders of the rows read (F, M, o; a3's line is unreadable) are in the code map: valid_code is 0 of 3.
    // Each column's populated count is over the 3 rows read; b.ndjson has only patient_id and gender.
    assertThat(counters, equalTo(Map.ofEntries(Map.entry("rows_in/patient", 4L), Map.entry("mapped/patient", 2L),
        Map.entry("rejected/patient", 2L), Map.entry("check_failed/patient/valid_code/gender", 0L),
        Map.entry("check_total/patient/valid_code/gender", 3L), Map.entry("rows_read/patient", 3L),
        Map.entry("column_populated/patient/patient_id", 3L), Map.entry("column_populated/patient/first_name", 1L),
        Map.entry("column_populated/patient/last_name", 1L), Map.entry("column_populated/patient/birth_date", 2L),
        Map.entry("column_populated/patient/gender", 3L))));
  }

  /** The expected part files; a serializable value, as PAssert ships its checks to the runner. */
  static final class PartsAre implements SerializableFunction<Iterable<PartFile>, Void> {
    private final String csv;

    PartsAre(String csv) {
      this.csv = csv;
    }

    @Override
    public Void apply(Iterable<PartFile> all) {
      Map<String, List<String>> bySet = new TreeMap<>();
      for (PartFile part : all) {
        String set = part.target().substring(0, part.target().indexOf('-'));
        try {
          List<String> lines = Files.readAllLines(Path.of(part.path()));
          assertThat(part.target(), (long) lines.size(), equalTo(part.lines()));
          bySet.computeIfAbsent(set, k -> new ArrayList<>()).addAll(lines);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
      bySet.values().forEach(lines -> lines.sort(null));
      assertThat(bySet.get("fhir/Patient"), equalTo(List.of(
          "{\"resourceType\":\"Patient\",\"id\":\"a1\",\"name\":[{\"use\":\"official\",\"family\":\"Lee # 2\","
              + "\"given\":[\"#Ann\"]}],\"gender\":\"female\",\"birthDate\":\"2000-01-01\"}",
          "{\"resourceType\":\"Patient\",\"id\":\"b1\",\"gender\":\"other\"}")));
      List<String> rejects = bySet.get("rejects/rejects");
      assertThat(rejects.size(), equalTo(2));
      assertThat(rejects.get(0), equalTo("{\"run_id\":\"run-1\",\"source\":\"patients\",\"file\":\""
          + csv + "\",\"line\":3,\"stage\":\"mapping\",\"mapping\":\"patient\",\"element\":"
          + "\"Patient.birthDate\",\"rule\":\"date\",\"reason\":\"value is not a date in the expected format"
          + " (yyyy-MM-dd)\",\"row\":{\"patient_id\":\"a2\",\"first_name\":null,\"last_name\":null,\"birth_date\":"
          + "\"bad\",\"gender\":\"M\"}}"));
      assertThat(rejects.get(1), equalTo("{\"run_id\":\"run-1\",\"source\":\"patients\",\"file\":\""
          + csv + "\",\"line\":4,\"stage\":\"ingest\",\"mapping\":\"patient\",\"rule\":"
          + "\"csv-too-many-columns\",\"reason\":\"the line has more fields than the header\",\"raw\":"
          + "\"a3,Cy,Q#,1999-12-31,x,EXTRA\"}"));
      return null;
    }
  }
}
