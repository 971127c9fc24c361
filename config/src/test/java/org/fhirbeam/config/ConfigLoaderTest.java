package org.fhirbeam.config;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.is;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigLoaderTest {
  @TempDir
  Path dir;

  private Path mapping;

  private static final String MAPPING = """
      name: patient
      source: patients
      resource: Patient
      id:
        column: patient_id
      elements:
        gender:
          column: gender
          ignore_case: true
          map: {M: male, f: female}
          default: unknown
        birthDate:
          column: birth_date
          formats: [yyyy-MM-dd, dd/MM/yyyy]
      """;

  private static final String PIPELINE = """
      name: test
      duckdb:
        database: ${DB_DIR:-data}/x.db
        memory_limit: 512MB
        threads: auto
        extensions: [json]
      sources:
        patients:
          path: ${INPUT}/*.csv
      mappings:
        - mapping.yaml
      """;

  @BeforeEach
  void writeMapping() throws IOException {
    mapping = Files.writeString(dir.resolve("mapping.yaml"), MAPPING);
  }

  private Path pipeline(String text) throws IOException {
    return Files.writeString(dir.resolve("pipeline.yaml"), text);
  }

  private PipelineConfig load(String text, Map<String, String> overrides) throws IOException {
    return new ConfigLoader(Map.of("INPUT", "/in")).load(pipeline(text), overrides);
  }

  private ConfigException reject(String text) {
    return reject(text, Map.of());
  }

  private ConfigException reject(String text, Map<String, String> overrides) {
    return assertThrows(ConfigException.class, () -> load(text, overrides));
  }

  @Test
  void loadsATypedConfigurationWithItsMapping() throws IOException {
    PipelineConfig c = load(PIPELINE, Map.of());
    assertThat(c.name(), equalTo("test"));
    assertThat(c.duckdb(), equalTo(new DuckDbSettings("data/x.db", false, "512MB", 0, List.of("json"))));
    assertThat(c.sources().get("patients").path(), equalTo("/in/*.csv"));
    assertThat(c.sources().get("patients").format(), equalTo(SourceConfig.Format.AUTO));
    MappingConfig m = c.mappings().get(0);
    assertThat(m.resourceType(), equalTo("Patient"));
    assertThat(m.id().column(), equalTo("patient_id"));
    ValueRule gender = m.elements().get(0);
    assertThat(gender.path(), equalTo("gender"));
    assertThat(gender.codeMap(), equalTo(Map.of("m", "male", "f", "female")));
    assertThat(gender.defaultValue(), equalTo("unknown"));
    assertThat(gender.location(), equalTo(mapping + ":8"));
    assertThat(m.elements().get(1).formats(), contains("yyyy-MM-dd", "dd/MM/yyyy"));
  }

  @Test
  void missingFileIsNamed() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> new ConfigLoader(Map.of()).load(dir.resolve("absent.yaml"), Map.of()));
    assertThat(e.getMessage(), equalTo(dir.resolve("absent.yaml") + ": file not found"));
  }

  @Test
  void malformedYamlNamesFileAndLine() throws IOException {
    Path p = pipeline("name: x\nsources:\n  a: [1, 2\nmappings: []\n");
    ConfigException e = assertThrows(ConfigException.class, () -> new ConfigLoader(Map.of()).load(p, Map.of()));
    assertThat(e.location(), equalTo(p + ":4"));
    assertThat(e.getMessage().startsWith(p + ":4: malformed YAML: "), equalTo(true));
  }

  @Test
  void unknownKeyNamesFileLineAndKey() throws IOException {
    ConfigException e = reject(PIPELINE.replace("  threads: auto", "  threads: auto\n  theads: 2"));
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":6: duckdb.theads: unknown key (expected"
        + " one of: database, extension_directory, extensions, memory_limit, mode, preserve_insertion_order, temp_directory, threads)"));
  }

  @Test
  void wrongTypeIsRejected() {
    ConfigException e = reject(PIPELINE.replace("threads: auto", "threads: many"));
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":5: duckdb.threads: expected a whole number,"
        + " found 'many'"));
  }

  @Test
  void listWhereAValueBelongsIsRejected() {
    ConfigException e = reject(PIPELINE.replace("memory_limit: 512MB", "memory_limit: [1, 2]"));
    assertThat(e.problem(), equalTo("expected a single value, found a list"));
    assertThat(e.key(), equalTo("duckdb.memory_limit"));
  }

  @Test
  void badMemoryLimitIsRejected() {
    assertThat(reject(PIPELINE.replace("512MB", "lots")).problem(),
        equalTo("'lots' is not a size like 512MB, 2GB or 80%"));
  }

  @Test
  void missingRequiredKeyIsNamed() {
    ConfigException e = reject(PIPELINE.replace("mappings:\n  - mapping.yaml\n", ""));
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":1: mappings: required key is missing"));
  }

  @Test
  void duplicateKeyIsRejected() {
    ConfigException e = reject(PIPELINE.replace("name: test", "name: test\nname: again"));
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":2: name: duplicate key"));
  }

  @Test
  void unknownEnumValueListsTheAllowedOnes() {
    ConfigException e = reject(PIPELINE.replace("path: ${INPUT}/*.csv", "path: x\n    format: xls"));
    assertThat(e.problem(), equalTo("'xls' is not one of auto, csv, parquet, json, xlsx"));
    assertThat(e.key(), equalTo("sources.patients.format"));
  }

  @Test
  void environmentVariablesAndDefaultsAreReplaced() throws IOException {
    PipelineConfig c = new ConfigLoader(Map.of("INPUT", "/data/in", "DB_DIR", "/var/db"))
        .load(pipeline(PIPELINE), Map.of());
    assertThat(c.sources().get("patients").path(), equalTo("/data/in/*.csv"));
    assertThat(c.duckdb().database(), equalTo("/var/db/x.db"));
  }

  @Test
  void missingEnvironmentVariableIsNamedWhereUsed() throws IOException {
    Path p = pipeline(PIPELINE);
    ConfigException e = assertThrows(ConfigException.class, () -> new ConfigLoader(Map.of()).load(p, Map.of()));
    assertThat(e.getMessage(), equalTo(p + ":9: sources.patients.path: environment variable INPUT is not set"
        + " (write ${INPUT:-default} to give a default)"));
  }

  @Test
  void overridesReplaceAndAddKeysWithTypes() throws IOException {
    Map<String, String> set = new LinkedHashMap<>();
    set.put("sources.patients.path", "/other/*.parquet");
    set.put("duckdb.threads", "3");
    set.put("sources.more.path", "/more.csv");
    PipelineConfig c = load(PIPELINE, set);
    assertThat(c.sources().get("patients").path(), equalTo("/other/*.parquet"));
    assertThat(c.duckdb().threads(), equalTo(3));
    assertThat(List.copyOf(c.sources().keySet()), contains("patients", "more"));
  }

  @Test
  void overridesTakeFlowListsAndMappings() throws IOException {
    Map<String, String> set = new LinkedHashMap<>();
    set.put("duckdb.extensions", "[json, icu]");
    set.put("sinks", "{duckdb: {enabled: false}}");
    PipelineConfig c = load(PIPELINE, set);
    assertThat(c.duckdb().extensions(), contains("json", "icu"));
    assertThat(c.sinks().duckdb(), equalTo(false));
    ConfigException e = reject(PIPELINE, Map.of("duckdb.extensions", "[json, Bad-Name]"));
    assertThat(e.getMessage(), equalTo("--set duckdb.extensions=[json, Bad-Name]: duckdb.extensions[1]:"
        + " 'Bad-Name' is not an extension name"));
    ConfigException malformed = reject(PIPELINE, Map.of("duckdb.extensions", "[json"));
    assertThat(malformed.getMessage(), equalTo("--set duckdb.extensions=[json: malformed YAML value"));
  }

  @Test
  void sinkModesCompressionAndParquetDefaultToTodaysOutputsAndAreChecked() throws IOException {
    SinkSettings defaults = load(PIPELINE, Map.of()).sinks();
    assertThat(List.of(defaults.ndjsonCompression(), defaults.ndjsonMode(), defaults.parquet(),
        defaults.parquetMode(), defaults.duckdbMode()), equalTo(List.of(SinkSettings.Compression.NONE,
            WriteMode.OVERWRITE, false, WriteMode.OVERWRITE, WriteMode.OVERWRITE)));
    SinkSettings set = load(PIPELINE + """
        sinks:
          ndjson: {compression: gzip, mode: append}
          parquet: {enabled: true, mode: upsert}
          duckdb: {mode: append, raw_copy: false}
        """, Map.of()).sinks();
    assertThat(List.of(set.ndjsonCompression(), set.ndjsonMode(), set.parquet(), set.parquetMode(),
        set.duckdbMode(), set.duckdb(), set.rawCopy()), equalTo(List.of(SinkSettings.Compression.GZIP,
            WriteMode.APPEND, true, WriteMode.UPSERT, WriteMode.APPEND, true, false)));
    assertThat(SinkSettings.Compression.GZIP.extension(), equalTo(".ndjson.gz"));
    assertThat(reject(PIPELINE, Map.of("sinks.ndjson.mode", "merge")).getMessage(), equalTo(
        "--set sinks.ndjson.mode=merge: sinks.ndjson.mode: 'merge' is not one of overwrite, append, upsert"));
    assertThat(reject(PIPELINE, Map.of("sinks.ndjson.compression", "zstd")).getMessage(), equalTo(
        "--set sinks.ndjson.compression=zstd: sinks.ndjson.compression: 'zstd' is not one of none, gzip"));
    assertThat(reject(PIPELINE, Map.of("sinks.parquet.path", "x")).getMessage(), equalTo(
        "--set sinks.parquet.path=x: sinks.parquet.path: unknown key (expected one of: enabled, mode)"));
  }

  @Test
  void deltaSinkAndSourceSettingsAreChecked() throws IOException {
    assertThat(load(PIPELINE, Map.of()).sinks().delta(), equalTo(null));
    assertThat(load(PIPELINE, Map.of("sinks.delta", "{enabled: false, location: d}")).sinks().delta(),
        equalTo(null));
    assertThat(load(PIPELINE, Map.of("sinks.delta", "{enabled: true, location: d, mode: append}")).sinks().delta(),
        equalTo(new SinkSettings.Delta("d", null, Map.of(), WriteMode.APPEND, false)));
    SinkSettings.Delta catalog = load(PIPELINE, Map.of("sinks.delta", "{enabled: true, catalog: fhir_catalog,"
        + " schema: fhir, transformed_schema: mapped, raw_copy: true}")).sinks().delta();
    assertThat(catalog, equalTo(new SinkSettings.Delta(null, "fhir_catalog", Map.of("fhir_resources", "fhir",
        "transformed_data", "mapped"), WriteMode.OVERWRITE, true)));
    assertThat(List.of(catalog.schema("fhir_resources"), catalog.schema("raw_data"), catalog.schema(
        "transformed_data"), catalog.schema("quality")), equalTo(List.of("fhir", "raw_data", "mapped", "quality")));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true, catalog: c, schema: x, transformed_schema:"
        + " x}")).getMessage(), equalTo("--set sinks.delta={enabled: true, catalog: c, schema: x, transformed_schema:"
        + " x}: sinks.delta.transformed_schema: schema x is already another table kind's: each of schema, raw_schema,"
        + " transformed_schema and quality_schema needs its own (a resource type and a mapping share names)"));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true, location: d, quality_schema: q}"))
        .getMessage(), equalTo("--set sinks.delta={enabled: true, location: d, quality_schema: q}:"
            + " sinks.delta.quality_schema: only tables of a 'catalog' take a schema; under a location the tables are"
            + " in fhir_resources/, raw_data/, transformed_data/ and quality/"));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true}")).getMessage(), equalTo(
        "--set sinks.delta={enabled: true}: sinks.delta: give exactly one of 'location' (a folder of path-based"
            + " tables) and 'catalog' (tables of a catalog of the job's Spark session: Unity Catalog on Databricks)"));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true, catalog: 'my-cat'}")).getMessage(),
        containsString("sinks.delta.catalog: a catalog or schema name is letters, digits and underscores"));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true, location: d, mode: merge}")).getMessage(),
        equalTo("--set sinks.delta={enabled: true, location: d, mode: merge}: sinks.delta.mode: 'merge' is not one of"
            + " overwrite, append, upsert"));
    assertThat(reject(PIPELINE, Map.of("sinks.delta", "{enabled: true, location: 's3://b/t'}")).getMessage(),
        containsString("sinks.delta.location: Delta tables are written to a path"));

    SourceConfig.DeltaRead since = load(PIPELINE, Map.of("sources.patients", "{delta: {table: t, since_version: 3}}"))
        .sources().get("patients").delta();
    assertThat(since, equalTo(new SourceConfig.DeltaRead(null, null, 3L)));
    SourceConfig at = load(PIPELINE, Map.of("sources.patients",
        "{delta: {table: /t, timestamp: '2026-12-05T10:00:00Z'}}")).sources().get("patients");
    assertThat(List.of(at.path(), at.format(), at.delta().timestamp()), equalTo(List.of("/t",
        SourceConfig.Format.PARQUET, "2026-12-05T10:00:00Z")));
    assertThat(reject(PIPELINE, Map.of("sources.patients", "{delta: {table: t, version: 1, since_version: 0}}"))
        .getMessage(), containsString("sources.patients.delta.version: give at most one of 'version', 'timestamp'"
            + " (a snapshot) and 'since_version' (the rows added after that version)"));
    assertThat(reject(PIPELINE, Map.of("sources.patients", "{path: a.csv, delta: {table: t}}")).getMessage(),
        containsString("sources.patients.delta: give the Delta table's folder as delta.table, without 'path'"));
    assertThat(reject(PIPELINE, Map.of("sources.patients", "{delta: {table: t, timestamp: yesterday}}"))
        .getMessage(), containsString("sources.patients.delta.timestamp: an ISO 8601 time with its offset"));
  }

  @Test
  void badOverrideIsLocatedAtTheSetting() {
    ConfigException e = reject(PIPELINE, Map.of("duckdb.thread", "2"));
    assertThat(e.getMessage(), equalTo("--set duckdb.thread=2: duckdb.thread: unknown key (expected one of:"
        + " database, extension_directory, extensions, memory_limit, mode, preserve_insertion_order, temp_directory, threads)"));
    ConfigException nested = reject(PIPELINE, Map.of("name.x", "2"));
    assertThat(nested.getMessage(), equalTo("--set name.x=2: name: is a single value or list, so it has no key 'x'"));
  }

  @Test
  void readOnlyDatabaseCannotTakeTheDuckDbSink() {
    ConfigException e = reject(PIPELINE.replace("threads: auto", "threads: auto\n  mode: read_only"));
    assertThat(e.problem(), equalTo("mode read_only cannot be used while sinks.duckdb.enabled is true"));
  }

  @Test
  void mappingMustNameADeclaredSource() throws IOException {
    Files.writeString(mapping, MAPPING.replace("source: patients", "source: people"));
    ConfigException e = reject(PIPELINE);
    assertThat(e.getMessage(), equalTo(mapping + ":2: source: names source 'people', which "
        + dir.resolve("pipeline.yaml") + " does not declare (declared: patients)"));
  }

  @Test
  void everyMappingFilesProblemIsReportedTogetherWithTheLineThatNamesAMissingOne() throws IOException {
    Path other = Files.writeString(dir.resolve("other.yaml"), MAPPING.replace("name: patient", "name: other")
        .replace("source: patients", "source: people"));
    InputException e = assertThrows(InputException.class, () -> load(PIPELINE.replace("  - mapping.yaml\n",
        "  - mapping.yaml\n  - absent.yaml\n  - other.yaml\n"), Map.of()));
    assertThat(e.getMessage(), equalTo("the configuration has 2 problems:\n"
        + "  " + dir.resolve("pipeline.yaml") + ":12: mappings[1]: no mapping file " + dir.resolve("absent.yaml") + "\n"
        + "  " + other + ":2: source: names source 'people', which " + dir.resolve("pipeline.yaml") + " does not"
        + " declare (declared: patients)"));
  }

  @Test
  void aSourceIsLocatedAtTheKeyThatSaysWhereItsRowsComeFrom() throws IOException {
    PipelineConfig c = load(PIPELINE.replace("    path: ${INPUT}/*.csv\n", "    format: csv\n    path: ${INPUT}/*.csv\n"
        + "  joined:\n    sql:\n      SELECT * FROM patients\n"), Map.of());
    assertThat(c.sources().get("patients").location(), equalTo(dir.resolve("pipeline.yaml") + ":10"));
    assertThat(c.sources().get("joined").at("sql"), equalTo(dir.resolve("pipeline.yaml") + ":12: sources.joined.sql"));
  }

  @Test
  void mappingRuleNeedsExactlyOneOfColumnValueAndExpr() throws IOException {
    Files.writeString(mapping, MAPPING.replace("column: birth_date", "column: birth_date\n    value: 2000-01-01"));
    assertThat(reject(PIPELINE).getMessage(),
        equalTo(mapping + ":13: elements.birthDate: give exactly one of 'column', 'value' or 'expr'"));
  }

  @Test
  void unknownMappingRuleKeyIsRejected() throws IOException {
    Files.writeString(mapping, MAPPING.replace("default: unknown", "defualt: unknown"));
    assertThat(reject(PIPELINE).getMessage(), equalTo(mapping + ":11: elements.gender.defualt: unknown key"
        + " (expected one of: column, default, expr, formats, ignore_case, map, map_file, range, required,"
        + " timezone, unmapped, value)"));
  }

  @Test
  void ignoreCaseKeysThatCollideAreRejected() throws IOException {
    Files.writeString(mapping, MAPPING.replace("map: {M: male, f: female}", "map: {M: male, m: female}"));
    assertThat(reject(PIPELINE).problem(), equalTo("keys 'm' differ only in case but map to different codes"));
  }

  @Test
  void conceptMapFilesLoadFromCsvAndFhirConceptMapJson() throws IOException {
    Files.writeString(dir.resolve("g.csv"), "source,target,display\nM,male,Male\n\"F\",female,\"Fem, ale\"\n");
    Files.writeString(mapping, MAPPING.replace("map: {M: male, f: female}", "map_file: g.csv"));
    assertThat(load(PIPELINE, Map.of()).mappings().get(0).elements().get(0).codeMap(),
        equalTo(Map.of("m", "male", "f", "female")));
    Files.writeString(dir.resolve("g.json"), """
        {"resourceType": "ConceptMap", "group": [{"element": [
          {"code": "1", "target": [{"code": "male", "equivalence": "equivalent"}]},
          {"code": "2", "target": [{"code": "x", "equivalence": "unmatched"}, {"code": "female"}]},
          {"code": "9", "target": [{"equivalence": "unmatched"}]}]}]}
        """);
    Files.writeString(mapping, MAPPING.replace("map: {M: male, f: female}", "map_file: g.json")
        .replace("ignore_case: true\n    ", ""));
    assertThat(load(PIPELINE, Map.of()).mappings().get(0).elements().get(0).codeMap(),
        equalTo(Map.of("1", "male", "2", "female")));
  }

  @Test
  void conceptMapFileProblemsNameTheFileAndLine() throws IOException {
    Files.writeString(mapping, MAPPING.replace("map: {M: male, f: female}", "map_file: g.csv"));
    assertThat(reject(PIPELINE).getMessage(),
        equalTo(mapping + ":10: elements.gender.map_file: concept map file " + dir.resolve("g.csv") + " does not exist"));
    Files.writeString(dir.resolve("g.csv"), "code,target\nM,male\n");
    assertThat(reject(PIPELINE).getMessage(), equalTo(dir.resolve("g.csv") + ":1: header: a concept map CSV needs"
        + " the columns 'source' and 'target' (found: code, target)"));
    Files.writeString(dir.resolve("g.csv"), "source,target\nM,male\nF\n");
    assertThat(reject(PIPELINE).getMessage(), equalTo(dir.resolve("g.csv") + ":3: row: has fewer columns than the"
        + " header"));
    Files.writeString(dir.resolve("g.csv"), "source,target\nM,male\nF,female\nM,female\n");
    assertThat(reject(PIPELINE).getMessage(), equalTo(dir.resolve("g.csv") + ":4: source: code 'M' is mapped twice,"
        + " to different targets"));
  }

  @Test
  void sourcesAreFilesOrAQueryAndResolveAgainstInputDir() throws IOException {
    PipelineConfig c = load(PIPELINE.replace("name: test\n", "name: test\ninput_dir: /exports/2024/\n").replace(
        "    path: ${INPUT}/*.csv\n", "    path: p/*.csv\n    optional: true\n  abs: {path: /x/a.csv}\n"
            + "  joined: {sql: 'SELECT * FROM patients JOIN abs USING (id)'}\n"), Map.of());
    assertThat(c.sources().get("patients"), equalTo(new SourceConfig("patients", "/exports/2024/p/*.csv", null,
        SourceConfig.Format.AUTO, true, pipeline("x") + ":10")));
    assertThat(c.sources().get("abs").path(), equalTo("/x/a.csv"));
    assertThat(c.sources().get("joined").sql(), equalTo("SELECT * FROM patients JOIN abs USING (id)"));
    assertThat(reject(PIPELINE.replace("    path: ${INPUT}/*.csv\n", "    path: a.csv\n    sql: SELECT 1\n"))
        .getMessage(), equalTo(pipeline("x") + ":9: sources.patients: give exactly one of 'path' (files), 'delta'"
            + " (a Delta table), 'sql' (a query over the file sources), 'jdbc' (a database table or query), 'http'"
            + " (a REST API) or 'kafka' (topics)"));
  }

  private static final String STREAM = PIPELINE.replace("    path: ${INPUT}/*.csv\n", """
          kafka:
            bootstrap_servers: 127.0.0.1:9092
            topics: [patients]
            columns: [patient_id, first_name]
            consumer: {max.poll.records: '2000'}
            consumer_env: {sasl.jaas.config: KAFKA_JAAS}
      """.stripTrailing().indent(4));

  @Test
  void kafkaSourcesMakeAStreamingJobThatAppendsWindows() throws IOException {
    PipelineConfig c = load(STREAM, Map.of());
    KafkaSource k = c.sources().get("patients").kafka();
    assertThat(k, equalTo(new KafkaSource("127.0.0.1:9092", List.of("patients"), KafkaSource.Format.JSON,
        List.of("patient_id", "first_name"), KafkaSource.Start.EARLIEST, "fhirbeam-test",
        Map.of("max.poll.records", "2000"), Map.of("sasl.jaas.config", "KAFKA_JAAS"))));
    assertThat(c.streams(), is(true));
    assertThat(c.streaming(), equalTo(StreamingSettings.DEFAULTS));
    // A stream appends window after window; it keeps no copy of the rows and finds no ids repeated across windows.
    assertThat(c.sinks().duckdbMode(), is(WriteMode.APPEND));
    assertThat(c.sinks().ndjsonMode(), is(WriteMode.APPEND));
    assertThat(c.sinks().parquetMode(), is(WriteMode.APPEND));
    assertThat(c.sinks().rawCopy(), is(false));
    assertThat(c.quality().duplicateIds(), is(QualitySettings.DuplicateIds.KEEP));
    assertThat(k.consumerSettings(Map.of("KAFKA_JAAS", "secret")), equalTo(Map.of("max.poll.records", "2000",
        "sasl.jaas.config", "secret")));
    InputException unset = assertThrows(InputException.class, () -> k.consumerSettings(Map.of()));
    assertThat(unset.getMessage(), equalTo("the environment variable KAFKA_JAAS (consumer_env.sasl.jaas.config) is"
        + " not set"));

    // Its Delta tables too: a batch job's default is overwrite.
    SinkSettings.Delta delta = load(STREAM + "sinks: {delta: {enabled: true, location: /d}}\n", Map.of()).sinks()
        .delta();
    assertThat(delta.mode(), is(WriteMode.APPEND));
    assertThat(delta.location(), equalTo("/d"));

    PipelineConfig windowed = load(STREAM + "streaming: {window: 2.5s}\n", Map.of());
    assertThat(windowed.streaming().window(), equalTo(java.time.Duration.ofMillis(2500)));
    assertThat(load(PIPELINE, Map.of()).streams(), is(false));
  }

  @Test
  void aDeltaTableReadAsItsVersionsAreCommittedMakesAStreamingJob() throws IOException {
    String delta = PIPELINE.replace("    path: ${INPUT}/*.csv\n", "    delta: {table: /t, streaming: true, poll: 500ms,"
        + " since_version: 4}\n");
    PipelineConfig c = load(delta, Map.of());
    assertThat(c.streams(), is(true));
    assertThat(c.sources().get("patients").delta(), equalTo(new SourceConfig.DeltaRead(null, null, 4L,
        java.time.Duration.ofMillis(500))));
    assertThat(c.sinks().duckdbMode(), is(WriteMode.APPEND));
    String at = pipeline("x").toString();
    assertThat(reject(delta.replace("since_version: 4", "version: 4")).getMessage(), equalTo(at + ":9:"
        + " sources.patients.delta.version: a streaming read reads every version as it is committed: give"
        + " since_version to start after one"));
    assertThat(reject(delta.replace("streaming: true, ", "")).getMessage(), equalTo(at + ":9:"
        + " sources.patients.delta.poll: only a streaming read (streaming: true) polls the table"));
    // A batch read of a Delta table is no stream.
    assertThat(load(delta.replace("streaming: true, poll: 500ms, ", ""), Map.of()).streams(), is(false));
  }

  @Test
  void streamingJobsNameWhatTheyCannotDoAtItsKey() throws IOException {
    String at = pipeline("x").toString();
    assertThat(reject(STREAM + "streaming: {window: soon}\n").getMessage(), equalTo(at + ":17: streaming.window:"
        + " window soon: a duration is a number with ms, s, m or h (90s, 30m)"));
    assertThat(reject(PIPELINE + "streaming: {window: 10s}\n").getMessage(), equalTo(at + ":12: streaming: only a"
        + " job with a streaming source (kafka, or delta with streaming: true) takes 'streaming'"));
    assertThat(reject(STREAM + "sinks: {ndjson: {mode: overwrite}}\n").getMessage(), equalTo(at + ":17:"
        + " sinks.ndjson.mode: a streaming job appends each window to its outputs: use append (or leave it out)"));
    assertThat(reject(STREAM + "sinks: {parquet: {enabled: true, mode: upsert}}\n").getMessage(), equalTo(at
        + ":17: sinks.parquet.mode: a streaming job appends each window to its outputs: use append (or leave it"
        + " out)"));
    assertThat(reject(STREAM + "sinks: {delta: {enabled: true, location: /d, mode: overwrite}}\n").getMessage(),
        equalTo(at + ":17: sinks.delta.mode: a streaming job appends each window to its outputs: use append (or"
            + " leave it out)"));
    assertThat(reject(STREAM + "sinks: {delta: {enabled: true, catalog: main}}\n").getMessage(), equalTo(at + ":17:"
        + " sinks.delta.catalog: a streaming job writes path-based Delta tables (sinks.delta.location); tables of a"
        + " catalog are not written by streaming jobs yet"));
    assertThat(reject(STREAM + "sinks: {delta: {enabled: true, location: /d, raw_copy: true}}\n").getMessage(),
        equalTo(at + ":17: sinks.delta.raw_copy: a streaming job keeps no copy of the source rows yet"));
    assertThat(reject(STREAM + "quality: {duplicate_ids: reject}\n").getMessage(), equalTo(at + ":17:"
        + " quality.duplicate_ids: a streaming job does not look for ids repeated across windows yet: use keep (or"
        + " leave it out)"));
    assertThat(reject(STREAM.replace("  patients:\n", "  more: {path: /in/a.csv}\n  patients:\n")).getMessage(),
        equalTo(at + ":8: sources.more: a job with a streaming source reads only streaming sources (kafka, or delta"
            + " with streaming: true); move this source to a batch job"));
    assertThat(reject(STREAM.replace("max.poll.records: '2000'", "group.id: mine")).getMessage(), equalTo(at
        + ":13: sources.patients.kafka.consumer.group.id: the job sets group.id itself (bootstrap_servers, group_id,"
        + " start)"));
    assertThat(reject(STREAM.replace("max.poll.records: '2000'", "ssl.keystore.password: hunter2")).getMessage(),
        equalTo(at + ":13: sources.patients.kafka.consumer.ssl.keystore.password: a secret does not belong in the"
            + " configuration: name its environment variable in consumer_env"));
    assertThat(reject(STREAM.replace("columns: [patient_id, first_name]", "columns: []")).getMessage(),
        equalTo(at + ":12: sources.patients.kafka.columns: name at least one column"));
    assertThat(reject(STREAM.replaceAll(" *columns: \\[patient_id, first_name]\n", "")).getMessage(),
        equalTo(at + ":10: sources.patients.kafka.columns: required key is missing"));
  }

  @Test
  void validationSettingsLoadWithPackagesResolvedAgainstTheConfiguration() throws IOException {
    Files.writeString(dir.resolve("ig.tgz"), "x");
    PipelineConfig c = load(PIPELINE + "validation:\n  mode: sample\n  sample_rate: 0.05\n  packages: [ig.tgz]\n"
        + "  profiles: [\"http://example.org/StructureDefinition/p\"]\n  reject_on: warning\n", Map.of());
    assertThat(c.validation(), equalTo(new ValidationSettings(ValidationSettings.Mode.SAMPLE, 0.05,
        List.of("http://example.org/StructureDefinition/p"), List.of(dir.resolve("ig.tgz").toString()),
        ValidationSettings.RejectOn.WARNING)));
    assertThat(load(PIPELINE, Map.of()).validation(), equalTo(ValidationSettings.OFF));
    // The block without a mode compiles the profiles' checks into the mappings.
    assertThat(load(PIPELINE + "validation:\n  reject_on: warning\n", Map.of()).validation().mode(),
        equalTo(ValidationSettings.Mode.COMPILED));
  }

  @Test
  void badValidationSettingsNameTheirKey() {
    ConfigException e = reject(PIPELINE + "validation:\n  mode: strict\n");
    assertThat(e.key(), equalTo("validation.mode"));
    assertThat(e.problem(), equalTo("'strict' is not one of off, compiled, sample, full"));
    e = reject(PIPELINE + "validation:\n  reject_on: never\n");
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":13: validation.reject_on: 'never' only counts"
        + " the validator's issues, but mode compiled (the default) rejects each row whose resource fails a profile's"
        + " check: set mode to full to count without rejecting"));
    e = reject(PIPELINE + "validation:\n  mode: sample\n  sample_rate: 2\n");
    assertThat(e.problem(), equalTo("must be greater than 0 and at most 1 (0.01 validates 1% of the resources)"));
    e = reject(PIPELINE + "validation:\n  packages: [missing.tgz]\n");
    assertThat(e.getMessage(), equalTo(dir.resolve("pipeline.yaml") + ":13: validation.packages[0]: no file or folder "
        + dir.resolve("missing.tgz")));
  }
}
