package org.fhirbeam.transforms;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.FileSourcePlanner;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.io.ReadTask;
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
    var source = plan(new SourceConfig("patients", dir + "/*.{csv,ndjson}", null,
        SourceConfig.Format.AUTO, false, "test"));
    CompiledMapping mapping = MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(
        Path.of("..", "config", "mappings", "patient.yaml")), source.columns());

    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(true);
    PCollection<PartFile> parts = p.apply(MapWithDuckDb.of(mapping, source.tasks()).withSettings(SETTINGS)
        .withPartsDirectory(dir.resolve("parts").toString()).withRunId("run-1"))
        .get(MapWithDuckDb.partsOf("patient"));
    PAssert.that(parts).satisfies(new PartsAre(dir.resolve("a.csv").toString()));
    PipelineResult result = p.run();
    result.waitUntilFinish();
    Map<String, Long> counters = PipelineCounters.of(result);
    assertThat(counters.remove("ms/patient"), greaterThan(0L));
    // How far the mapping has got, for the progress line: both files, all of their bytes.
    assertThat(counters.remove("bytes_mapped/patient"),
        equalTo(source.tasks().stream().mapToLong(ReadTask::bytes).sum()));
    // The genders of the rows read (F, M, o; a3's line is unreadable) are in the code map: valid_code is 0 of 3.
    // Each column's populated count is over the 3 rows read; b.ndjson has only patient_id and gender.
    assertThat(counters, equalTo(Map.ofEntries(Map.entry("rows_in/patient", 4L), Map.entry("mapped/patient", 2L),
        Map.entry("rejected/patient", 2L), Map.entry("check_failed/patient/valid_code/gender", 0L),
        Map.entry("check_total/patient/valid_code/gender", 3L), Map.entry("rows_read/patient", 3L),
        Map.entry("column_populated/patient/patient_id", 3L), Map.entry("column_populated/patient/first_name", 1L),
        Map.entry("column_populated/patient/last_name", 1L), Map.entry("column_populated/patient/birth_date", 2L),
        Map.entry("column_populated/patient/gender", 3L), Map.entry("files_mapped/patient", 2 * Counters.FILE))));
  }

  /**
   * Tasks of two mappings in one element, two at a time on one database, write the same lines and count the same as
   * one task per element; each mapping's output holds its own parts only.
   */
  @Test
  void tasksMappedTogetherGiveWhatTasksMappedOneByOneGive() throws IOException {
    Path in = Files.createDirectories(dir.resolve("in"));
    for (int f = 0; f < 4; f++) {
      StringBuilder csv = new StringBuilder("patient_id,first_name,last_name,birth_date,gender\n");
      for (int r = 0; r < 500; r++) {
        csv.append(r % 97 == 0 ? "" : "f" + f + "r" + r).append(",Ann,Lee,")
            .append(r % 89 == 0 ? "1990-02-30" : "19" + (10 + r % 90) + "-0" + (1 + r % 9) + "-1" + (r % 10))
            .append(',').append(r % 3 == 0 ? "F" : r % 3 == 1 ? "m" : "x").append(r % 211 == 0 ? ",EXTRA" : "")
            .append('\n');
      }
      Files.writeString(in.resolve("p" + f + ".csv"), csv);
    }
    var source = plan(new SourceConfig("patients", in + "/*.csv", null,
        SourceConfig.Format.AUTO, false, "test"));
    Path yaml = Path.of("..", "config", "mappings", "patient.yaml");
    Path other = dir.resolve("patient_b.yaml");
    Files.writeString(other, Files.readString(yaml).replace("name: patient\n", "name: patient_b\n"));
    List<MapWithDuckDb.Work> works = new ArrayList<>();
    for (Path m : List.of(yaml, other)) {
      works.add(new MapWithDuckDb.Work(MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(m),
          source.columns()), source.tasks()));
    }
    Map<String, List<String>> oneByOne = new TreeMap<>();
    Map<String, Long> countedOneByOne = runTogether(works, 1, dir.resolve("parts-1"), oneByOne);
    Map<String, List<String>> together = new TreeMap<>();
    Map<String, Long> countedTogether = runTogether(works, 2, dir.resolve("parts-2"), together);
    assertThat(together, equalTo(oneByOne));
    assertThat(countedTogether, equalTo(countedOneByOne));
    assertThat(oneByOne.keySet(), equalTo(java.util.Set.of("patient/ingest", "patient/reject", "patient/resource",
        "patient_b/ingest", "patient_b/reject", "patient_b/resource")));
    assertThat(countedTogether.get("rows_in/patient"), equalTo(2000L));
    assertThat(countedTogether.get("mapped/patient") + countedTogether.get("rejected/patient"), equalTo(2000L));
    assertThat(countedTogether.get("mapped/patient_b"), equalTo(countedTogether.get("mapped/patient")));
  }

  /** A task that fails among tasks mapped together fails the step with its own error, after the others ended. */
  @Test
  void aFailingTaskAmongOthersFailsTheStepNamingItsFile() throws IOException {
    Path in = Files.createDirectories(dir.resolve("in"));
    for (String f : List.of("a", "b", "c")) {
      Files.writeString(in.resolve(f + ".csv"), "patient_id,first_name,last_name,birth_date,gender\n" + f
          + "1,Ann,Lee,2000-01-01,F\n");
    }
    var source = plan(new SourceConfig("patients", in + "/*.csv", null,
        SourceConfig.Format.AUTO, false, "test"));
    Files.delete(in.resolve("b.csv")); // gone between planning and mapping
    CompiledMapping mapping = MappingCompiler.compile(new ConfigLoader(Map.of()).loadMapping(
        Path.of("..", "config", "mappings", "patient.yaml")), source.columns());
    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(false);
    p.apply(MapWithDuckDb.of(mapping, source.tasks()).withSettings(SETTINGS)
        .withPartsDirectory(dir.resolve("parts").toString()).withRunId("run-1").withLocalConcurrency(2));
    Throwable failure = org.junit.jupiter.api.Assertions.assertThrows(RuntimeException.class,
        () -> p.run().waitUntilFinish());
    while (failure.getCause() != null && !String.valueOf(failure.getMessage()).startsWith("mapping patient")) {
      failure = failure.getCause();
    }
    assertThat(failure.getMessage(), org.hamcrest.Matchers.startsWith("mapping patient failed on "
        + in.resolve("b.csv")));
    // The tasks of a.csv and c.csv ran to their end: each wrote its resource part.
    try (var files = Files.walk(dir.resolve("parts"))) {
      assertThat(files.filter(f -> f.toString().endsWith(".csv") && f.getParent().getFileName().toString()
          .equals("kind=resource")).count(), equalTo(2L));
    }
  }

  /**
   * A file cut into pieces mapped side by side gives the lines and counts it gives whole: the same resources, and
   * rejects at the same lines of the file, malformed lines (some in a row, so rows further down shift) included.
   */
  @Test
  void aFileMappedInPiecesGivesWhatItGivesWhole() throws IOException {
    StringBuilder csv = new StringBuilder("patient_id,first_name,last_name,birth_date,gender\n");
    for (int r = 0; r < 60_000; r++) {
      csv.append(r % 997 == 0 ? "" : "p" + r).append(",Ann,Lee,")
          .append(r % 89 == 0 ? "1990-02-30" : "19" + (10 + r % 90) + "-0" + (1 + r % 9) + "-1" + (r % 10))
          .append(',').append(r % 3 == 0 ? "F" : r % 3 == 1 ? "m" : "x").append(r % 500 < 3 ? ",EXTRA" : "")
          .append('\n');
    }
    Path file = Files.writeString(dir.resolve("patients.csv"), csv);
    var source = plan(new SourceConfig("patients", file.toString(), null,
        SourceConfig.Format.AUTO, false, "test"));
    List<MapWithDuckDb.Work> works = List.of(new MapWithDuckDb.Work(MappingCompiler.compile(
        new ConfigLoader(Map.of()).loadMapping(Path.of("..", "config", "mappings", "patient.yaml")),
        source.columns()), source.tasks()));
    Map<String, List<String>> whole = new TreeMap<>();
    Map<String, Long> countedWhole = runTogether(works, 1, 0, dir.resolve("parts-whole"), whole);
    Map<String, List<String>> pieces = new TreeMap<>();
    Map<String, Long> countedPieces = runTogether(works, 2, 1 << 20, dir.resolve("parts-pieces"), pieces);
    int cut = source.tasks().get(0).cut(1 << 20).size();
    assertThat(cut, equalTo((int) ((Files.size(file) + (1 << 20) - 1) >> 20))); // 1.7 MB: pieces of 1 MB
    try (var tasks = Files.list(dir.resolve("parts-pieces"))) {
      assertThat(tasks.count(), equalTo((long) cut));
    }
    assertThat(pieces, equalTo(whole));
    assertThat(countedPieces, equalTo(countedWhole));
    // Each piece an element of its own, as Spark maps them.
    Map<String, List<String>> elements = new TreeMap<>();
    assertThat(runTogether(works, 1, 1 << 20, dir.resolve("parts-elements"), elements), equalTo(countedWhole));
    assertThat(elements, equalTo(whole));
    assertThat(countedPieces.get("rows_in/patient"), equalTo(60_000L));
    // 360 lines of 60,001 have a field too many: 3 in a row every 500 rows, the first at line 2, the last at 59,504.
    assertThat(pieces.get("patient/ingest").size(), equalTo(360));
    assertThat(pieces.get("patient/ingest").stream().filter(l -> l.contains("\"line\":59503,")).count(),
        equalTo(1L));
    // Row 59,820 (line 59,822, in the last piece) has no id: its reject names its line in the file.
    assertThat(pieces.get("patient/reject").stream().filter(l -> l.contains("\"line\":59822,")).count(),
        equalTo(1L));
  }

  /** Plans one source on a planner of its own, closed afterwards. */
  private static FileSourcePlanner.PlannedSource plan(SourceConfig source) {
    try (FileSourcePlanner planner = new FileSourcePlanner(SETTINGS)) {
      return planner.plan(source);
    }
  }

  /** Runs the works with the given local concurrency; fills {@code lines} (mapping/kind to sorted lines). */
  private static Map<String, Long> runTogether(List<MapWithDuckDb.Work> works, int concurrency, Path parts,
      Map<String, List<String>> lines) throws IOException {
    return runTogether(works, concurrency, 0, parts, lines);
  }

  /** {@link #runTogether} with files cut into pieces of {@code pieceBytes} (0: whole). */
  private static Map<String, Long> runTogether(List<MapWithDuckDb.Work> works, int concurrency, long pieceBytes,
      Path parts, Map<String, List<String>> lines) throws IOException {
    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(true);
    var out = p.apply(MapWithDuckDb.of(works).withSettings(SETTINGS).withPartsDirectory(parts.toString())
        .withRunId("run-1").withLocalConcurrency(concurrency).withPieceBytes(pieceBytes));
    for (MapWithDuckDb.Work w : works) {
      String m = w.mapping().name();
      // Every task writes resources, rejects and the lines DuckDB could not read.
      PAssert.that(out.get(MapWithDuckDb.partsOf(m))).satisfies(new AllUnder(parts.resolve(m + "-").toString(),
          3 * w.tasks().size()));
    }
    PipelineResult result = p.run();
    result.waitUntilFinish();
    try (var files = Files.walk(parts)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        String task = parts.relativize(f).getName(0).toString();
        String parent = f.getParent().getFileName().toString();
        String kind = parent.startsWith("kind=") ? parent.substring("kind=".length()) : "ingest"; // bad-lines.ndjson
        lines.computeIfAbsent(task.substring(0, task.indexOf('-')) + "/" + kind, k -> new ArrayList<>())
            .addAll(Files.readAllLines(f));
      }
    }
    lines.values().forEach(l -> l.sort(null));
    Map<String, Long> counters = PipelineCounters.of(result);
    counters.keySet().removeIf(name -> name.startsWith("ms/")); // task times differ from run to run
    return counters;
  }

  /** Every part file lies under one prefix: a mapping's output holds its own parts. */
  static final class AllUnder implements SerializableFunction<Iterable<PartFile>, Void> {
    private final String prefix;
    private final int atLeast;

    /** Parts all under {@code prefix}, at least {@code atLeast} of them. */
    AllUnder(String prefix, int atLeast) {
      this.prefix = prefix;
      this.atLeast = atLeast;
    }

    @Override
    public Void apply(Iterable<PartFile> all) {
      int n = 0;
      for (PartFile part : all) {
        assertThat(part.path(), part.path().startsWith(prefix), equalTo(true));
        n++;
      }
      assertThat(n, greaterThanOrEqualTo(atLeast));
      return null;
    }
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
      Tally tally = Tally.EMPTY;
      for (PartFile part : all) {
        tally = tally.plus(part.tally());
        String set = part.fileSet();
        try {
          List<String> lines = Files.readAllLines(Path.of(part.path()));
          assertThat(part.target(), (long) lines.size(), equalTo(part.lines()));
          bySet.computeIfAbsent(set, k -> new ArrayList<>()).addAll(lines);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
      // The run's figures ride on the parts: the counters' figures, without the progress ones and the time.
      Map<String, Long> figures = new TreeMap<>(tally.counts());
      assertThat(figures.remove("ms/patient"), greaterThan(0L));
      assertThat(figures, equalTo(new TreeMap<>(Map.ofEntries(Map.entry("rows_in/patient", 4L),
          Map.entry("mapped/patient", 2L), Map.entry("rejected/patient", 2L),
          Map.entry("check_failed/patient/valid_code/gender", 0L),
          Map.entry("check_total/patient/valid_code/gender", 3L),
          Map.entry("rows_read/patient", 3L), Map.entry("column_populated/patient/patient_id", 3L),
          Map.entry("column_populated/patient/first_name", 1L), Map.entry("column_populated/patient/last_name", 1L),
          Map.entry("column_populated/patient/birth_date", 2L), Map.entry("column_populated/patient/gender", 3L)))));
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
