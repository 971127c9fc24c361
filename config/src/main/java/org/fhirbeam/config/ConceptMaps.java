package org.fhirbeam.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.commons.csv.CSVFormat;
import org.apache.commons.csv.CSVParser;
import org.apache.commons.csv.CSVRecord;

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
    CSVFormat format = CSVFormat.DEFAULT.builder().setHeader().setSkipHeaderRecord(true).setTrim(true).get();
    try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8); CSVParser p = CSVParser.parse(r, format)) {
      if (!p.getHeaderMap().containsKey("source") || !p.getHeaderMap().containsKey("target")) {
        throw new ConfigException(file + ":1", "header", "a concept map CSV needs the columns 'source' and 'target'"
            + " (found: " + String.join(", ", p.getHeaderNames()) + ")");
      }
      for (CSVRecord rec : p) {
        String where = file + ":" + (rec.getParser().getCurrentLineNumber());
        if (!rec.isSet("source") || !rec.isSet("target")) {
          throw new ConfigException(where, "row", "has fewer columns than the header");
        }
        put(out, rec.get("source"), rec.get("target"), where);
      }
    } catch (IOException | java.io.UncheckedIOException e) {
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
