package org.fhirbeam.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads a pipeline configuration and the mapping files it names, checking every key before anything runs.
 * Relative paths of mapping files are resolved against the file that names them; data paths (sources,
 * database) are resolved by the run against the working directory.
 */
public final class ConfigLoader {
  private static final Set<String> TOP = Set.of("name", "input_dir", "duckdb", "sources", "mappings", "sinks",
      "validation", "external_references", "quality", "streaming");
  private static final Set<String> STREAMING = Set.of("window");
  private static final Set<String> KAFKA = Set.of("bootstrap_servers", "topics", "format", "columns", "start",
      "group_id", "consumer", "consumer_env");
  /** Consumer settings the job decides itself. */
  private static final Set<String> KAFKA_OWN = Set.of("bootstrap.servers", "group.id", "enable.auto.commit",
      "auto.offset.reset", "key.deserializer", "value.deserializer");
  private static final Set<String> VALIDATION = Set.of("mode", "sample_rate", "profiles", "packages", "reject_on");
  private static final Set<String> DUCKDB = Set.of("database", "mode", "memory_limit", "threads", "extensions",
      "temp_directory", "extension_directory", "preserve_insertion_order");
  private static final Set<String> SOURCE = Set.of("path", "sql", "jdbc", "http", "delta", "kafka", "format",
      "optional", "sheet",
      "header_row", "delimiter", "quote", "escape", "encoding", "on_error", "s3", "unnest", "fields", "types");
  private static final Set<String> FILE_ONLY = Set.of("format", "optional", "sheet", "header_row", "delimiter",
      "quote", "escape", "encoding", "on_error", "s3", "unnest", "fields", "types");
  private static final Set<String> S3 = Set.of("endpoint", "region", "path_style");
  private static final Set<String> DELTA_SOURCE = Set.of("table", "version", "timestamp", "since_version",
      "streaming", "poll");
  private static final Set<String> HTTP = Set.of("url", "items", "next_link", "page_param", "headers_env",
      "max_retries");
  private static final Set<String> JDBC = Set.of("url", "user", "password_env", "password_file", "table", "query",
      "partition_column", "partitions", "key");
  private static final Set<String> SINKS = Set.of("duckdb", "ndjson", "parquet", "delta");
  private static final Set<String> DUCKDB_SINK = Set.of("enabled", "raw_copy", "views", "mode");
  private static final Set<String> NDJSON_SINK = Set.of("compression", "mode");
  private static final Set<String> PARQUET_SINK = Set.of("enabled", "mode");
  private static final Set<String> DELTA_SINK = Set.of("enabled", "location", "catalog", "schema", "raw_schema",
      "transformed_schema", "quality_schema", "mode", "raw_copy");
  /** The keys naming a catalog's schema of each of the job's schemas (sinks.delta). */
  private static final Map<String, String> DELTA_SCHEMAS = Map.of("schema", "fhir_resources", "raw_schema",
      "raw_data", "transformed_schema", "transformed_data", "quality_schema", "quality");
  private static final Set<String> MAPPING = Set.of("name", "source", "resource", "id", "elements", "rules",
      "optional_columns");
  private static final Set<String> RULE =
      Set.of("column", "value", "expr", "map", "map_file", "ignore_case", "default", "formats", "timezone",
          "required", "range", "unmapped");
  private static final Set<String> RANGE = Set.of("min", "max");
  private static final Set<String> QUALITY = Set.of("duplicate_ids");
  private static final Set<String> QUALITY_RULE = Set.of("severity", "sql", "fhirpath");
  /**
   * Names of the built-in quality checks, which a rule (whose name is its check's name) cannot take.
   */
  public static final Set<String> BUILT_IN_CHECKS = Set.of("duplicate_id", "reference_resolves",
      "reference_external", "not_in_future", "birth_before_death", "valid_code", "in_range");

  private final Interpolator interpolator;

  public ConfigLoader(Map<String, String> variables) {
    this.interpolator = new Interpolator(variables);
  }

  /** Loads {@code file}, applying {@code overrides} (dotted key to value) before checking. */
  public PipelineConfig load(Path file, Map<String, String> overrides) {
    Loaded loaded = loadAll(file, overrides);
    if (!loaded.problems().isEmpty()) {
      throw InputException.together(loaded.problems());
    }
    return loaded.config();
  }

  /**
   * A configuration as far as it loads, and the problems of its mapping list.
   *
   * @param config the configuration with the mappings that loaded (a mapping naming an undeclared source included)
   * @param problems each mapping file's problem (missing, or malformed, or naming an undeclared source), so that
   *     {@code check-config} reports them together with what it finds in the rest
   */
  public record Loaded(PipelineConfig config, List<InputException> problems) {
    public Loaded {
      problems = List.copyOf(problems);
    }
  }

  /**
   * Loads {@code file} as {@link #load} does, but reports the problems of the mapping files instead of stopping at
   * the first; a problem of the configuration file itself still stops it.
   */
  public Loaded loadAll(Path file, Map<String, String> overrides) {
    ConfigNode root = YamlFiles.read(file, interpolator);
    YamlFiles.applyOverrides(root, overrides);
    ConfigNode.Fields top = root.fields(TOP);

    String name = top.string("name", fileStem(file));
    DuckDbSettings duckdb = duckdb(top.get("duckdb"));
    String inputDir = top.string("input_dir", null);
    Map<String, SourceConfig> sources = sources(top.require("sources"), inputDir, name);
    SinkSettings sinks = sinks(top.get("sinks"));
    QualitySettings quality = quality(top.get("quality"));
    StreamingSettings streaming = null;
    if (sources.values().stream().anyMatch(SourceConfig::streams)) {
      streaming = streaming(top, sources);
      sinks = sinks.streaming();
      quality = new QualitySettings(QualitySettings.DuplicateIds.KEEP);
    } else if (top.has("streaming")) {
      throw top.get("streaming").error("only a job with a streaming source (kafka, or delta with streaming: true)"
          + " takes 'streaming'");
    }
    ValidationSettings validation = validation(top.get("validation"), file);
    if (sinks.duckdb() && duckdb.readOnly()) {
      throw top.require("duckdb").error("mode read_only cannot be used while sinks.duckdb.enabled is true");
    }

    ConfigNode mappingList = top.require("mappings");
    if (mappingList.list().isEmpty()) {
      throw mappingList.error("at least one mapping is required");
    }
    List<MappingConfig> mappings = new ArrayList<>();
    List<InputException> problems = new ArrayList<>();
    Path base = file.toAbsolutePath().getParent();
    for (ConfigNode ref : mappingList.list()) {
      Path mappingFile = base.resolve(ref.text()).normalize();
      if (!Files.isRegularFile(mappingFile)) {
        problems.add(ref.error("no mapping file " + mappingFile));
        continue;
      }
      MappingConfig mapping;
      try {
        mapping = loadMapping(mappingFile);
      } catch (InputException e) {
        problems.add(e);
        continue;
      }
      if (!sources.containsKey(mapping.source())) {
        problems.add(new ConfigException(mapping.sourceLocation(), "source",
            "names source '" + mapping.source() + "', which " + file + " does not declare (declared: "
                + String.join(", ", sources.keySet()) + ")"));
      }
      if (mappings.stream().anyMatch(other -> other.name().equals(mapping.name()))) {
        problems.add(ref.error("a second mapping is named '" + mapping.name() + "'"));
      }
      mappings.add(mapping);
    }
    return new Loaded(new PipelineConfig(file.toString(), name, duckdb, sources, mappings, sinks, validation,
        externalReferences(top), quality, streaming), problems);
  }

  private static QualitySettings quality(ConfigNode node) {
    if (node == null) {
      return QualitySettings.DEFAULTS;
    }
    ConfigNode.Fields f = node.fields(QUALITY);
    return new QualitySettings(f.enumValue("duplicate_ids", QualitySettings.DuplicateIds.class,
        QualitySettings.DEFAULTS.duplicateIds()));
  }

  /** Loads one mapping file. */
  public MappingConfig loadMapping(Path file) {
    ConfigNode root = YamlFiles.read(file, interpolator);
    ConfigNode.Fields f = root.fields(MAPPING);
    String name = f.string("name", fileStem(file));
    if (!name.matches("[A-Za-z0-9_-]+")) {
      throw (f.has("name") ? f.get("name") : root).error("mapping names are letters, digits, '_' and '-' (it names"
          + " files and counters), not '" + name + "'");
    }
    String source = f.requiredString("source");
    String resource = f.requiredString("resource");
    ValueRule id = rule("id", f.require("id"), file);
    List<ValueRule> elements = new ArrayList<>();
    for (Map.Entry<String, ConfigNode> e : f.require("elements").entries().entrySet()) {
      elements.add(rule(e.getKey(), e.getValue(), file));
    }
    List<QualityRule> rules = new ArrayList<>();
    if (f.has("rules")) {
      for (Map.Entry<String, ConfigNode> e : f.get("rules").entries().entrySet()) {
        rules.add(qualityRule(e.getKey(), e.getValue()));
      }
    }
    List<String> optionalColumns = f.has("optional_columns") ? f.get("optional_columns").stringList() : List.of();
    return new MappingConfig(name, file.toString(), source, resource, id, elements, rules,
        optionalColumns, f.get("source").keyLocation(), f.get("resource").keyLocation());
  }

  private static QualityRule qualityRule(String name, ConfigNode node) {
    if (!name.matches("[A-Za-z][A-Za-z0-9_-]*")) {
      throw node.error("rule names are letters, digits, '_' and '-', starting with a letter (the name is the"
          + " rule of its rejects and the name of its check)");
    }
    if (BUILT_IN_CHECKS.contains(name)) {
      throw node.error("'" + name + "' is the name of a built-in check; give the rule another name");
    }
    ConfigNode.Fields f = node.fields(QUALITY_RULE);
    QualityRule.Severity severity = f.require("severity").enumValue(QualityRule.Severity.class);
    String sql = f.string("sql", null);
    String fhirPath = f.string("fhirpath", null);
    if ((sql == null) == (fhirPath == null)) {
      throw node.error("give exactly one of 'sql' (a predicate over the source row) or 'fhirpath' (an invariant"
          + " over the built resource)");
    }
    String text = sql != null ? sql : fhirPath;
    if (text.isBlank()) {
      throw f.get(sql != null ? "sql" : "fhirpath").error("must not be empty");
    }
    return new QualityRule(name, severity, sql == null ? null : sql.strip(), fhirPath == null ? null : fhirPath.strip(),
        (sql != null ? f.get("sql") : f.get("fhirpath")).location());
  }

  /** Resource types ({@code Practitioner}) or reference prefixes ({@code https://...}, {@code urn:oid:}). */
  private static List<String> externalReferences(ConfigNode.Fields top) {
    if (!top.has("external_references")) {
      return List.of();
    }
    List<String> out = new ArrayList<>();
    for (ConfigNode n : top.get("external_references").list()) {
      String v = n.text().strip();
      if (!v.matches("[A-Z][A-Za-z]*") && !(v.contains("/") || v.contains(":")) || v.chars().anyMatch(
          Character::isWhitespace)) {
        throw n.error("'" + v + "' is neither a resource type (like Practitioner) nor a reference prefix (like"
            + " https://fhir.example.org/ or urn:oid:)");
      }
      out.add(v);
    }
    return out;
  }

  private ValueRule rule(String path, ConfigNode node, Path mappingFile) {
    ConfigNode.Fields f = node.fields(RULE);
    String column = f.string("column", null);
    String constant = f.string("value", null);
    String expression = f.string("expr", null);
    if ((column != null ? 1 : 0) + (constant != null ? 1 : 0) + (expression != null ? 1 : 0) != 1) {
      throw node.error("give exactly one of 'column', 'value' or 'expr'");
    }
    Map<String, String> codeMap = new LinkedHashMap<>();
    if (f.has("map") && f.has("map_file")) {
      throw f.get("map_file").error("give either 'map' or 'map_file', not both");
    }
    if (f.has("map")) {
      for (Map.Entry<String, ConfigNode> e : f.get("map").entries().entrySet()) {
        codeMap.put(e.getKey(), e.getValue().text());
      }
      if (codeMap.isEmpty()) {
        throw f.get("map").error("a code map needs at least one entry");
      }
    }
    if (f.has("map_file")) {
      ConfigNode ref = f.get("map_file");
      codeMap = ConceptMaps.load(mappingFile.toAbsolutePath().getParent().resolve(ref.text()).normalize(), ref);
    }
    boolean ignoreCase = f.bool("ignore_case", false);
    if (ignoreCase && codeMap.isEmpty()) {
      throw f.get("ignore_case").error("only applies together with 'map' or 'map_file'");
    }
    String defaultValue = f.string("default", null);
    ValueRule.Unmapped unmapped = defaultValue == null ? ValueRule.Unmapped.REJECT : ValueRule.Unmapped.DEFAULT;
    if (f.has("unmapped")) {
      ConfigNode key = f.get("unmapped");
      unmapped = key.enumValue(ValueRule.Unmapped.class);
      if (codeMap.isEmpty()) {
        throw key.error("only applies together with 'map' or 'map_file'");
      }
      if (unmapped == ValueRule.Unmapped.DEFAULT && defaultValue == null) {
        throw key.error("'default' writes the rule's default, and the rule has none");
      }
    }
    if (constant != null && (!codeMap.isEmpty() || f.has("default") || f.has("required") || f.has("range"))) {
      throw node.error("a constant 'value' takes no 'map', 'map_file', 'default', 'required' or 'range'");
    }
    if (ignoreCase) {
      Map<String, String> folded = new LinkedHashMap<>();
      for (Map.Entry<String, String> e : codeMap.entrySet()) {
        String k = e.getKey().toLowerCase(java.util.Locale.ROOT);
        if (folded.containsKey(k) && !folded.get(k).equals(e.getValue())) {
          throw f.get(f.has("map") ? "map" : "map_file").error("keys '" + k
              + "' differ only in case but map to different codes");
        }
        folded.put(k, e.getValue());
      }
      codeMap = folded;
    }
    java.math.BigDecimal[] range = range(f.get("range"));
    return new ValueRule(path, column, constant, expression, codeMap, ignoreCase, defaultValue,
        f.stringList("formats"), f.string("timezone", null), f.bool("required", false), node.location(), range[0],
        range[1], unmapped);
  }

  /** {@code {min: 0, max: 300}}: either bound may be left out, not both. */
  private static java.math.BigDecimal[] range(ConfigNode node) {
    java.math.BigDecimal[] out = new java.math.BigDecimal[2];
    if (node == null) {
      return out;
    }
    ConfigNode.Fields f = node.fields(RANGE);
    List<String> keys = List.of("min", "max");
    for (int i = 0; i < 2; i++) {
      if (f.has(keys.get(i))) {
        ConfigNode b = f.get(keys.get(i));
        try {
          out[i] = new java.math.BigDecimal(b.text().strip());
        } catch (NumberFormatException e) {
          throw b.error("'" + b.text() + "' is not a number");
        }
      }
    }
    if (out[0] == null && out[1] == null) {
      throw node.error("give 'min', 'max' or both");
    }
    if (out[0] != null && out[1] != null && out[0].compareTo(out[1]) > 0) {
      throw f.get("min").error("min is greater than max");
    }
    return out;
  }

  private DuckDbSettings duckdb(ConfigNode node) {
    if (node == null) {
      return new DuckDbSettings("data/fhir_mappings.db", false, null, 0, List.of());
    }
    ConfigNode.Fields f = node.fields(DUCKDB);
    String database = f.string("database", "data/fhir_mappings.db");
    boolean readOnly = f.enumValue("mode", DuckDbSettings.Mode.class, DuckDbSettings.Mode.READ_WRITE)
        == DuckDbSettings.Mode.READ_ONLY;
    String memoryLimit = f.string("memory_limit", null);
    if (memoryLimit != null && !memoryLimit.trim().matches("(?i)\\d+(\\.\\d+)?\\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)")) {
      throw f.get("memory_limit").error("'" + memoryLimit + "' is not a size like 512MB, 2GB or 80%");
    }
    int threads = 0;
    if (f.has("threads")) {
      ConfigNode t = f.get("threads");
      if (!t.text().trim().equalsIgnoreCase("auto")) {
        threads = t.integer();
        if (threads < 1) {
          throw t.error("must be 'auto' or at least 1");
        }
      }
    }
    List<String> extensions = f.stringList("extensions");
    for (int i = 0; i < extensions.size(); i++) {
      if (!extensions.get(i).matches("[a-z0-9_]+")) {
        throw f.get("extensions").list().get(i).error("'" + extensions.get(i) + "' is not an extension name");
      }
    }
    return new DuckDbSettings(database, readOnly, memoryLimit == null ? null : memoryLimit.trim(), threads,
        extensions, f.string("temp_directory", null), f.string("extension_directory", null),
        f.bool("preserve_insertion_order", true));
  }

  /** Relative source paths are resolved against {@code inputDir} when it is set. */
  private Map<String, SourceConfig> sources(ConfigNode node, String inputDir, String job) {
    Map<String, SourceConfig> out = new LinkedHashMap<>();
    for (Map.Entry<String, ConfigNode> e : node.entries().entrySet()) {
      if (!e.getKey().matches("[A-Za-z_][A-Za-z0-9_]*")) {
        throw e.getValue().error("source names are letters, digits and underscores");
      }
      ConfigNode.Fields f = e.getValue().fields(SOURCE);
      String path = f.string("path", null);
      String sql = f.string("sql", null);
      JdbcSource jdbc = f.has("jdbc") ? jdbc(f.get("jdbc")) : null;
      HttpSource http = f.has("http") ? http(f.get("http")) : null;
      KafkaSource kafka = f.has("kafka") ? kafka(f.get("kafka"), job) : null;
      SourceConfig.DeltaRead delta = null;
      if (f.has("delta")) {
        ConfigNode.Fields d = f.get("delta").fields(DELTA_SOURCE);
        if (path != null) {
          throw f.get("delta").error("give the Delta table's folder as delta.table, without 'path'");
        }
        path = d.requiredString("table");
        delta = deltaRead(d);
      }
      if ((path != null ? 1 : 0) + (sql != null ? 1 : 0) + (jdbc != null ? 1 : 0) + (http != null ? 1 : 0)
          + (kafka != null ? 1 : 0) != 1) {
        throw e.getValue().error("give exactly one of 'path' (files), 'delta' (a Delta table), 'sql' (a query over"
            + " the file sources), 'jdbc' (a database table or query), 'http' (a REST API) or 'kafka' (topics)");
      }
      if (delta != null && path.contains("://")) {
        throw f.get("delta").error("Delta tables are read from a path (a local folder, or a mounted Volume); object"
            + " storage URIs are not supported yet");
      }
      if (delta != null) {
        for (String k : FILE_ONLY) {
          if (f.has(k)) {
            throw f.get(k).error("a Delta table source does not take '" + k + "': its files are Parquet");
          }
        }
      }
      if (path == null) {
        for (String k : FILE_ONLY) {
          if (f.has(k)) {
            throw f.get(k).error("only file sources ('path') take '" + k + "'");
          }
        }
      }

      int headerRow = f.integer("header_row", 1);
      if (headerRow < 1) {
        throw f.get("header_row").error("must be 1 or more (the row of the sheet that holds the column names)");
      }
      if (path != null && inputDir != null && !inputDir.isBlank() && !path.contains("://")
          && !Path.of(path).isAbsolute()) {
        path = inputDir.replaceAll("/+$", "") + "/" + path;
      }
      // Errors about where the rows come from name the line of the key that says so.
      String location = f.get(delta != null ? "delta" : path != null ? "path" : sql != null ? "sql"
          : jdbc != null ? "jdbc" : kafka != null ? "kafka" : "http").keyLocation();
      out.put(e.getKey(), new SourceConfig(e.getKey(), path, sql, delta != null ? SourceConfig.Format.PARQUET
          : f.enumValue("format", SourceConfig.Format.class, SourceConfig.Format.AUTO), f.bool("optional", false),
          location, f.string("sheet", null), headerRow, jdbc, http, csvOptions(f),
          f.enumValue("on_error", SourceConfig.OnError.class, SourceConfig.OnError.FAIL)
              == SourceConfig.OnError.SKIP_FILE, s3(f, path), jsonPath(f, "unnest"), jsonFields(f), delta, kafka));
    }
    if (out.isEmpty()) {
      throw node.error("at least one source is required");
    }
    return out;
  }

 /** At most one of a snapshot version, a timestamp (ISO 8601) and the version after which rows are read. */
  private static SourceConfig.DeltaRead deltaRead(ConfigNode.Fields d) {
    Long version = d.has("version") ? (long) d.integer("version", 0) : null;
    Long since = d.has("since_version") ? (long) d.integer("since_version", 0) : null;
    String timestamp = d.string("timestamp", null);
    if ((version != null ? 1 : 0) + (since != null ? 1 : 0) + (timestamp != null ? 1 : 0) > 1) {
      throw d.get(version != null ? "version" : "since_version").error("give at most one of 'version',"
          + " 'timestamp' (a snapshot) and 'since_version' (the rows added after that version)");
    }
    for (String k : List.of("version", "since_version")) {
      if (d.has(k) && d.integer(k, 0) < 0) {
        throw d.get(k).error("a table version is 0 or more");
      }
    }
    if (timestamp != null) {
      try {
        java.time.OffsetDateTime.parse(timestamp);
      } catch (java.time.format.DateTimeParseException e) {
        throw d.get("timestamp").error("an ISO 8601 time with its offset, such as 2026-12-05T10:00:00Z, not '"
            + timestamp + "'");
      }
    }
    if (!d.bool("streaming", false)) {
      if (d.has("poll")) {
        throw d.get("poll").error("only a streaming read (streaming: true) polls the table");
      }
      return new SourceConfig.DeltaRead(version, timestamp, since);
    }
    for (String k : List.of("version", "timestamp")) {
      if (d.has(k)) {
        throw d.get(k).error("a streaming read reads every version as it is committed: give since_version to start"
            + " after one");
      }
    }
    java.time.Duration poll = duration(d, "poll", java.time.Duration.ofSeconds(2),
        "the table is polled at most every 100ms");
    return new SourceConfig.DeltaRead(null, null, since, poll);
  }

  private static final String DOTTED = "[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*";

  private static String jsonPath(ConfigNode.Fields f, String key) {
    String p = f.string(key, null);
    if (p != null && !p.matches(DOTTED)) {
      throw f.get(key).error("a dotted path of field names, like entry or contact.telecom, not '" + p + "'");
    }
    return p;
  }

  private static Map<String, String> jsonFields(ConfigNode.Fields f) {
    Map<String, String> out = new LinkedHashMap<>();
    if (f.has("fields")) {
      for (Map.Entry<String, ConfigNode> e : f.get("fields").entries().entrySet()) {
        if (!e.getValue().text().matches(DOTTED)) {
          throw e.getValue().error("a dotted path of field names, like address.city, not '" + e.getValue().text()
              + "'");
        }
        out.put(e.getKey(), e.getValue().text());
      }
    }
    return out;
  }

  private static S3Settings s3(ConfigNode.Fields f, String path) {
    if (!f.has("s3")) {
      return S3Settings.DEFAULT;
    }
    if (path == null || !path.startsWith("s3://")) {
      throw f.get("s3").error("only applies to a path starting with s3://");
    }
    ConfigNode.Fields s = f.get("s3").fields(S3);
    String endpoint = s.string("endpoint", null);
    if (endpoint != null && !endpoint.matches("https?://.+")) {
      throw s.get("endpoint").error("an endpoint URL starts with http:// or https://");
    }
    return new S3Settings(endpoint, s.string("region", null), s.bool("path_style", endpoint != null));
  }

  private static CsvOptions csvOptions(ConfigNode.Fields f) {
    for (String k : List.of("delimiter", "quote", "escape")) {
      if (f.has(k)) {
        String v = f.get(k).text();
        if (!(v.length() == 1 || v.equals("\\t"))) {
          throw f.get(k).error("one character (or \\t for a tab), not '" + v + "'");
        }
      }
    }
    String encoding = f.string("encoding", null);
    if (encoding != null && !List.of("utf-8", "utf-16", "latin-1").contains(encoding.toLowerCase(java.util.Locale.ROOT))) {
      throw f.get("encoding").error("'" + encoding + "' is not one of utf-8, utf-16, latin-1");
    }
    Map<String, String> types = new LinkedHashMap<>();
    if (f.has("types")) {
      for (Map.Entry<String, ConfigNode> e : f.get("types").entries().entrySet()) {
        String type = e.getValue().text().strip();
        // A DuckDB type name, possibly with parameters: checked by DuckDB when the file is opened.
        if (!type.matches("[A-Za-z][A-Za-z0-9_ ]*(\\(\\s*\\d+\\s*(,\\s*\\d+\\s*)?\\))?")) {
          throw e.getValue().error("'" + type + "' is not a type name such as INTEGER, DOUBLE, DATE or DECIMAL(10,2)");
        }
        types.put(e.getKey(), type.toUpperCase(java.util.Locale.ROOT));
      }
    }
    return new CsvOptions(f.string("delimiter", null), f.string("quote", null), f.string("escape", null),
        encoding == null ? null : encoding.toLowerCase(java.util.Locale.ROOT), types);
  }

  private static HttpSource http(ConfigNode node) {
    ConfigNode.Fields f = node.fields(HTTP);
    String url = f.requiredString("url");
    if (!url.startsWith("http://") && !url.startsWith("https://")) {
      throw f.get("url").error("an http source's url starts with http:// or https://");
    }
    if (f.has("next_link") && f.has("page_param")) {
      throw f.get("page_param").error("give either 'next_link' or 'page_param', not both");
    }
    Map<String, String> headers = new LinkedHashMap<>();
    if (f.has("headers_env")) {
      for (Map.Entry<String, ConfigNode> h : f.get("headers_env").entries().entrySet()) {
        if (!h.getValue().text().matches("[A-Za-z_][A-Za-z0-9_]*")) {
          throw h.getValue().error("the name of the environment variable holding the header's value");
        }
        headers.put(h.getKey(), h.getValue().text());
      }
    }
    int retries = f.integer("max_retries", 4);
    if (retries < 0) {
      throw f.get("max_retries").error("must be 0 or more");
    }
    return new HttpSource(url, f.string("items", null), f.string("next_link", null), f.string("page_param", null),
        headers, retries);
  }

  /** A Kafka source; the consumer group defaults to {@code fhirbeam-<job>}. */
  private static KafkaSource kafka(ConfigNode node, String job) {
    ConfigNode.Fields f = node.fields(KAFKA);
    String servers = f.requiredString("bootstrap_servers");
    List<String> topics = f.require("topics").stringList();
    if (topics.isEmpty()) {
      throw f.get("topics").error("name at least one topic");
    }
    List<String> columns = f.require("columns").stringList();
    if (columns.isEmpty()) {
      throw f.get("columns").error("name at least one column");
    }
    if (new java.util.HashSet<>(columns).size() != columns.size()) {
      throw f.get("columns").error("a column is named twice");
    }
    Map<String, String> consumer = new LinkedHashMap<>();
    Map<String, String> consumerEnv = new LinkedHashMap<>();
    for (String key : List.of("consumer", "consumer_env")) {
      if (!f.has(key)) {
        continue;
      }
      for (Map.Entry<String, ConfigNode> e : f.get(key).entries().entrySet()) {
        if (KAFKA_OWN.contains(e.getKey())) {
          throw e.getValue().error("the job sets " + e.getKey() + " itself (bootstrap_servers, group_id, start)");
        }
        if (key.equals("consumer") && e.getKey().matches("(?i).*(password|jaas|secret).*")) {
          throw e.getValue().error("a secret does not belong in the configuration: name its environment variable"
              + " in consumer_env");
        }
        (key.equals("consumer") ? consumer : consumerEnv).put(e.getKey(), e.getValue().text());
      }
    }
    return new KafkaSource(servers, topics, f.enumValue("format", KafkaSource.Format.class,
        KafkaSource.Format.JSON), columns, f.enumValue("start", KafkaSource.Start.class, KafkaSource.Start.EARLIEST),
        f.string("group_id", "fhirbeam-" + job), consumer, consumerEnv);
  }

  /**
   * The settings of a job with a streaming source, after checking what such a job cannot do yet: read batch sources
   * beside it, write Delta tables of a catalog, copy the source rows, find duplicate ids (across windows) or replace
   * earlier output (a stream appends window after window).
   */
  private static StreamingSettings streaming(ConfigNode.Fields top, Map<String, SourceConfig> sources) {
    for (SourceConfig s : sources.values()) {
      if (!s.streams()) {
        throw new ConfigException(s.location(), "sources." + s.name(), "a job with a streaming source reads only"
            + " streaming sources (kafka, or delta with streaming: true); move this source to a batch job");
      }
    }
    ConfigNode sinks = top.get("sinks");
    refuse(sinks, List.of("delta", "raw_copy"), "true", "a streaming job keeps no copy of the source rows yet");
    ConfigNode catalog = child(sinks, List.of("delta", "catalog"));
    if (catalog != null) {
      throw catalog.error("a streaming job writes path-based Delta tables (sinks.delta.location); tables of a"
          + " catalog are not written by streaming jobs yet");
    }
    refuse(sinks, List.of("duckdb", "raw_copy"), "true", "a streaming job keeps no copy of the source rows yet");
    for (String sink : List.of("ndjson", "duckdb", "parquet", "delta")) {
      ConfigNode mode = child(sinks, List.of(sink, "mode"));
      if (mode != null && !mode.text().equalsIgnoreCase("append")) {
        throw mode.error("a streaming job appends each window to its outputs: use append (or leave it out)");
      }
    }
    ConfigNode duplicates = child(top.get("quality"), List.of("duplicate_ids"));
    if (duplicates != null && !duplicates.text().equalsIgnoreCase("keep")) {
      throw duplicates.error("a streaming job does not look for ids repeated across windows yet: use keep (or leave"
          + " it out)");
    }
    if (!top.has("streaming")) {
      return StreamingSettings.DEFAULTS;
    }
    ConfigNode.Fields f = top.get("streaming").fields(STREAMING);
    java.time.Duration window = duration(f, "window", StreamingSettings.DEFAULTS.window(),
        "a window lasts at least 100ms");
    return new StreamingSettings(window);
  }

  /**
   * The duration at key {@code key} of {@code f} ({@link Durations#parse}), or {@code otherwise} without one; an error
   * at the key, saying {@code tooShort}, below 100 ms.
   */
  private static java.time.Duration duration(ConfigNode.Fields f, String key, java.time.Duration otherwise,
      String tooShort) {
    if (!f.has(key)) {
      return otherwise;
    }
    java.time.Duration d;
    try {
      d = Durations.parse(key, f.get(key).text());
    } catch (InputException e) {
      throw f.get(key).error(e.getMessage());
    }
    if (d.toMillis() < 100) {
      throw f.get(key).error(tooShort);
    }
    return d;
  }

  /** The node at {@code path} below {@code node}; null when a step is missing or not a mapping. */
  private static ConfigNode child(ConfigNode node, List<String> path) {
    ConfigNode at = node;
    for (String key : path) {
      if (at == null || at.isNull() || !at.isMapping()) {
        return null;
      }
      at = at.entries().get(key);
    }
    return at == null || at.isNull() ? null : at;
  }

  /** An error at the key at {@code path} below {@code node} when its value is {@code value}. */
  private static void refuse(ConfigNode node, List<String> path, String value, String why) {
    ConfigNode at = child(node, path);
    if (at != null && at.text().equalsIgnoreCase(value)) {
      throw at.error(why);
    }
  }

  private static JdbcSource jdbc(ConfigNode node) {
    ConfigNode.Fields f = node.fields(JDBC);
    String url = f.requiredString("url");
    if (!url.startsWith("jdbc:")) {
      throw f.get("url").error("a JDBC URL starts with 'jdbc:'");
    }
    if (url.toLowerCase(java.util.Locale.ROOT).contains("password=")) {
      throw f.get("url").error("no password in the URL: use password_env or password_file");
    }
    String table = f.string("table", null);
    String query = f.string("query", null);
    if ((table == null) == (query == null)) {
      throw node.error("give exactly one of 'table' or 'query'");
    }
    if (f.has("password_env") && f.has("password_file")) {
      throw f.get("password_file").error("give either 'password_env' or 'password_file', not both");
    }
    int partitions = f.integer("partitions", 1);
    if (partitions < 1) {
      throw f.get("partitions").error("must be at least 1");
    }
    String column = f.string("partition_column", null);
    if (partitions > 1 && column == null) {
      throw f.get("partitions").error("needs partition_column (a numeric column whose range is split)");
    }
    List<String> key = f.has("key") ? f.stringList("key") : column != null ? List.of(column) : List.of();
    return new JdbcSource(url, f.string("user", null), f.string("password_env", null),
        f.string("password_file", null), table, query, column, partitions, key);
  }

  private SinkSettings sinks(ConfigNode node) {
    if (node == null) {
      return new SinkSettings(true, true, Map.of(), Map.of());
    }
    ConfigNode.Fields f = node.fields(SINKS);
    SinkSettings.Compression compression = SinkSettings.Compression.NONE;
    WriteMode ndjsonMode = WriteMode.OVERWRITE;
    if (f.has("ndjson")) {
      ConfigNode.Fields n = f.get("ndjson").fields(NDJSON_SINK);
      compression = n.enumValue("compression", SinkSettings.Compression.class, SinkSettings.Compression.NONE);
      ndjsonMode = n.enumValue("mode", WriteMode.class, WriteMode.OVERWRITE);
    }
    boolean parquet = false;
    WriteMode parquetMode = WriteMode.OVERWRITE;
    if (f.has("parquet")) {
      ConfigNode.Fields q = f.get("parquet").fields(PARQUET_SINK);
      parquet = q.bool("enabled", false);
      parquetMode = q.enumValue("mode", WriteMode.class, WriteMode.OVERWRITE);
    }
    SinkSettings.Delta delta = f.has("delta") ? delta(f.get("delta")) : null;
    if (!f.has("duckdb")) {
      return new SinkSettings(true, true, Map.of(), Map.of(), WriteMode.OVERWRITE, compression, ndjsonMode, parquet,
          parquetMode, delta);
    }
    ConfigNode.Fields d = f.get("duckdb").fields(DUCKDB_SINK);
    Map<String, String> views = new LinkedHashMap<>();
    Map<String, String> locations = new LinkedHashMap<>();
    if (d.has("views")) {
      for (Map.Entry<String, ConfigNode> e : d.get("views").entries().entrySet()) {
        if (!e.getKey().matches("[A-Za-z_][A-Za-z0-9_]*")) {
          throw e.getValue().error("view names are letters, digits and underscores");
        }
        if (e.getKey().equalsIgnoreCase("data_quality_report")) {
          // Every run creates this view from its quality figures; a user view would silently replace it.
          throw e.getValue().error("data_quality_report is the run's data-quality view; give this view another name");
        }
        views.put(e.getKey(), e.getValue().text());
        locations.put(e.getKey(), e.getValue().location());
      }
    }
    return new SinkSettings(d.bool("enabled", true), d.bool("raw_copy", true), views, locations,
        d.enumValue("mode", WriteMode.class, WriteMode.OVERWRITE), compression, ndjsonMode, parquet, parquetMode,
        delta);
  }

  /** The Delta sink's settings; null when it is not enabled. */
  private static SinkSettings.Delta delta(ConfigNode node) {
    ConfigNode.Fields d = node.fields(DELTA_SINK);
    if (!d.bool("enabled", false)) {
      return null;
    }
    String location = d.string("location", null);
    String catalog = d.string("catalog", null);
    if ((location == null) == (catalog == null)) {
      throw node.error("give exactly one of 'location' (a folder of path-based tables) and 'catalog' (tables of a"
          + " catalog of the job's Spark session: Unity Catalog on Databricks)");
    }
    if (location != null && location.matches("[A-Za-z][A-Za-z0-9+.-]*://.*")) {
      throw d.get("location").error("Delta tables are written to a path (a local folder, or a mounted Volume such"
          + " as /Volumes/<catalog>/<schema>/<volume>/...); object storage URIs are not supported yet");
    }
    Map<String, String> schemas = new LinkedHashMap<>();
    for (String k : List.of("catalog", "schema", "raw_schema", "transformed_schema", "quality_schema")) {
      if (d.has(k) && !d.get(k).text().matches("[A-Za-z_][A-Za-z0-9_]*")) {
        throw d.get(k).error("a catalog or schema name is letters, digits and underscores");
      }
      if (d.has(k) && !k.equals("catalog")) {
        if (location != null) {
          throw d.get(k).error("only tables of a 'catalog' take a schema; under a location the tables are in"
              + " fhir_resources/, raw_data/, transformed_data/ and quality/");
        }
        schemas.put(DELTA_SCHEMAS.get(k), d.get(k).text());
      }
    }
    Map<String, String> keyOfSchema = new LinkedHashMap<>();
    for (String k : List.of("schema", "raw_schema", "transformed_schema", "quality_schema")) {
      String schema = schemas.getOrDefault(DELTA_SCHEMAS.get(k), DELTA_SCHEMAS.get(k));
      String other = keyOfSchema.putIfAbsent(schema, k);
      if (other != null) {
        throw d.get(d.has(k) ? k : other).error("schema " + schema + " is already another table kind's: each of"
            + " schema, raw_schema, transformed_schema and quality_schema needs its own (a resource type and a"
            + " mapping share names)");
      }
    }
    return new SinkSettings.Delta(location, catalog, schemas, d.enumValue("mode", WriteMode.class,
        WriteMode.OVERWRITE), d.bool("raw_copy", false));
  }

  /** Package paths are resolved against the configuration file, as mapping files are. */
  private ValidationSettings validation(ConfigNode node, Path file) {
    if (node == null) {
      return ValidationSettings.OFF;
    }
    ConfigNode.Fields f = node.fields(VALIDATION);
    ValidationSettings.Mode mode = f.enumValue("mode", ValidationSettings.Mode.class,
        ValidationSettings.Mode.COMPILED);
    double rate = 0.01;
    if (f.has("sample_rate")) {
      ConfigNode r = f.get("sample_rate");
      try {
        rate = Double.parseDouble(r.text().trim());
      } catch (NumberFormatException e) {
        throw r.error("'" + r.text() + "' is not a number");
      }
      if (!(rate > 0 && rate <= 1)) {
        throw r.error("must be greater than 0 and at most 1 (0.01 validates 1% of the resources)");
      }
      // Kept, but used only in sample mode: --set validation.mode=full must work on a sampling configuration.
    }
    List<String> profiles = f.stringList("profiles");
    for (int i = 0; i < profiles.size(); i++) {
      if (!profiles.get(i).matches("[a-z][a-z0-9+.-]*:\\S+")) {
        throw f.get("profiles").list().get(i).error("'" + profiles.get(i) + "' is not a profile's canonical URL");
      }
    }
    List<String> packages = new ArrayList<>();
    Path base = file.toAbsolutePath().getParent();
    if (f.has("packages")) {
      for (ConfigNode p : f.get("packages").list()) {
        Path resolved = base.resolve(p.text().trim()).normalize();
        if (!java.nio.file.Files.exists(resolved)) {
          throw p.error("no file or folder " + resolved);
        }
        packages.add(resolved.toString());
      }
    }
    ValidationSettings.RejectOn rejectOn = f.enumValue("reject_on", ValidationSettings.RejectOn.class,
        ValidationSettings.RejectOn.ERROR);
    if (mode == ValidationSettings.Mode.COMPILED && rejectOn == ValidationSettings.RejectOn.NEVER) {
      throw f.get("reject_on").error("'never' only counts the validator's issues, but mode compiled (the default)"
          + " rejects each row whose resource fails a profile's check: set mode to full to count without rejecting");
    }
    return new ValidationSettings(mode, rate, profiles, packages, rejectOn);
  }

  private static String fileStem(Path file) {
    String n = file.getFileName().toString();
    int dot = n.lastIndexOf('.');
    return dot > 0 ? n.substring(0, dot) : n;
  }
}
