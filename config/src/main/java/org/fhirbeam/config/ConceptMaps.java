package org.fhirbeam.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;

/**
 * Reads the code map of a rule's {@code map_file}: a CSV file with the columns {@code source} and {@code target}
 * (more columns, such as a display, are allowed and ignored), or a FHIR ConceptMap in JSON, whose
 * {@code group[].element[]} entries map {@code code} to the first {@code target[].code} that is not
 * {@code unmatched} or {@code disjoint}. A source code listed twice with different targets is an error.
 */
final class ConceptMaps {
  private ConceptMaps() {}

  static Map<String, String> load(Path file, ConfigNode ref) {
    if (!Files.isRegularFile(file)) {
      throw ref.error("concept map file " + file + " does not exist");
    }
    Map<String, String> map = file.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".json")
        ? json(file) : csv(file);
    if (map.isEmpty()) {
      throw ref.error("concept map file " + file + " maps no code");
    }
    return map;
  }

  private static Map<String, String> csv(Path file) {
    Map<String, String> out = new LinkedHashMap<>();
    CsvMapper mapper = new CsvMapper();
    CsvSchema schema = CsvSchema.emptySchema().withHeader();
    try (MappingIterator<Map<String, String>> rows = mapper.readerForMapOf(String.class).with(schema)
        .readValues(file.toFile())) {
      while (rows.hasNext()) {
        Map<String, String> row = rows.next();
        String where = file + ":" + rows.getParser().currentTokenLocation().getLineNr();
        List<String> header = new java.util.ArrayList<>();
        ((com.fasterxml.jackson.dataformat.csv.CsvParser) rows.getParser()).getSchema()
            .forEach(c -> header.add(c.getName()));
        if (!header.contains("source") || !header.contains("target")) {
          throw new ConfigException(file + ":1", "header", "a concept map CSV needs the columns 'source' and"
              + " 'target' (found: " + String.join(", ", header) + ")");
        }
        if (row.get("source") == null || row.get("target") == null) {
          throw new ConfigException(where, "row", "has fewer columns than the header");
        }
        put(out, row.get("source").strip(), row.get("target").strip(), where);
      }
    } catch (IOException | RuntimeException e) {
      if (e instanceof ConfigException c) {
        throw c;
      }
      throw new ConfigException(file.toString(), "map_file", "cannot be read as CSV: " + e.getMessage());
    }
    return out;
  }

  private static Map<String, String> json(Path file) {
    Map<String, String> out = new LinkedHashMap<>();
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(file.toFile());
    } catch (JsonProcessingException e) {
      throw new ConfigException(file + ":" + e.getLocation().getLineNr(), "json", e.getOriginalMessage());
    } catch (IOException e) {
      throw new ConfigException(file.toString(), "map_file", "cannot be read: " + e.getMessage());
    }
    if (!"ConceptMap".equals(root.path("resourceType").asText())) {
      throw new ConfigException(file.toString(), "resourceType", "a JSON concept map must be a FHIR ConceptMap");
    }
    for (JsonNode group : root.path("group")) {
      for (JsonNode element : group.path("element")) {
        String code = element.path("code").asText(null);
        if (code == null) {
          throw new ConfigException(file.toString(), "group.element.code", "an element has no code");
        }
        for (JsonNode target : element.path("target")) {
          String equivalence = target.path("equivalence").asText("");
          if (!equivalence.equals("unmatched") && !equivalence.equals("disjoint") && target.has("code")) {
            put(out, code, target.get("code").asText(), file + ": element '" + code + "'");
            break;
          }
        }
      }
    }
    return out;
  }

  private static void put(Map<String, String> out, String source, String target, String where) {
    String before = out.putIfAbsent(source, target);
    if (before != null && !before.equals(target)) {
      throw new ConfigException(where, "source", "code '" + source + "' is mapped twice, to different targets");
    }
  }
}
