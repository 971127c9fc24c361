package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.fhirbeam.validation.CompiledChecks;
import org.fhirbeam.validation.FhirValidation;
import org.fhirbeam.validation.FhirValidation.Issue;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The compiled checks of {@code fhirbeam validate} ({@link CompiledChecks}) against HAPI's validator as the oracle:
 * for every resource they decide, the errors and warnings they give must be the validator's, in its words (severity,
 * location, message id and text; codes that cannot be checked offline aside). The corpus:
 * <ul>
 *   <li>every resource the Synthea job builds, validation off, from {@link CompiledValidationTest}'s mutation corpus
 *       (the sample and 153 vital signs, every column of every row emptied, given an unknown code, an early or a
 *       partial date): our own output, valid and invalid;
 *   <li>resources of Synthea's own FHIR output for the same export (not our output), up to 60 per type, with their
 *       {@code urn:uuid} references written as {@code Type/id}, as they are and without narrative;
 *   <li>the official R4 examples;
 *   <li>mutants of the first three resources of each type the checks find clean (ours, then Synthea's): each element removed, each primitive given a value of
 *       the wrong format or an unknown code, each single element made a list or an element with an id alone, an
 *       unknown element added.
 * </ul>
 */
@Tag("shared-data")
class CompiledChecksTest {
  @TempDir
  Path tmp;

  private static final List<Path> PACKAGES = List.of(ValidationJobTest.US_CORE);

  @Test
  void whatTheCompiledChecksDecideTheValidatorReportsTheSameFor() throws Exception {
    Map<String, List<String>> corpus = new LinkedHashMap<>();
    corpus.put("our output", ourOutput());
    List<String> synthea = syntheaResources(60);
    corpus.put("Synthea's FHIR", synthea);
    corpus.put("Synthea's FHIR, no narrative", synthea.stream().map(CompiledChecksTest::withoutNarrative).toList());
    corpus.put("R4 examples", r4Examples());

    FhirValidation validation = FhirValidation.shared(PACKAGES);
    CompiledChecks clean = new CompiledChecks(validation);
    List<String> proved = new ArrayList<>();
    for (String r : Stream.concat(corpus.get("our output").stream(), corpus.get("Synthea's FHIR, no narrative")
        .stream()).toList()) {
      List<Issue> found = clean.check(r, List.of());
      if (found != null && found.isEmpty()) {
        proved.add(r);
      }
    }
    corpus.putAll(mutants(proved, 3));

    // corpus -> type -> {resources, the validator finds no error or warning, the compiled checks decide,
    // of which with issues, disagreeing}
    Map<String, Map<String, int[]>> table = new LinkedHashMap<>();
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<String, List<String>> c : corpus.entrySet()) {
      List<String> resources = c.getValue();
      List<List<Issue>> verdicts = validation.validateAll(resources, List.of());
      for (int i = 0; i < resources.size(); i++) {
        String r = resources.get(i);
        String type = DefaultJobTest.JSON.readTree(r).path("resourceType").asText("?");
        int[] n = table.computeIfAbsent(c.getKey(), k -> new TreeMap<>()).computeIfAbsent(type, k -> new int[5]);
        List<String> theirs = reported(verdicts.get(i));
        List<Issue> compiled = clean.check(r, List.of());
        n[0]++;
        n[1] += theirs.isEmpty() ? 1 : 0;
        if (compiled == null) {
          continue;
        }
        List<String> mine = reported(compiled);
        n[2]++;
        n[3] += mine.isEmpty() ? 0 : 1;
        if (!mine.equals(theirs)) {
          n[4]++;
          wrong.add(c.getKey() + " " + type + " " + r.substring(0, Math.min(r.length(), 120)) + ": compiled "
              + mine + ", validator " + theirs);
        }
      }
    }
    StringBuilder report = new StringBuilder("corpus / type: resources, the validator finds no error or warning,"
        + " the compiled checks decide, of which with issues, disagreeing with the validator\n");
    table.forEach((c, types) -> {
      int[] sum = new int[5];
      types.forEach((type, n) -> {
        if (!c.startsWith("mutants")) {
          report.append(c).append(" / ").append(type).append(": ").append(n[0]).append(", ").append(n[1])
              .append(", ").append(n[2]).append(", ").append(n[3]).append(", ").append(n[4]).append('\n');
        }
        for (int k = 0; k < 5; k++) {
          sum[k] += n[k];
        }
      });
      report.append(c).append(" / all: ").append(sum[0]).append(", ").append(sum[1]).append(", ").append(sum[2])
          .append(", ").append(sum[3]).append(", ").append(sum[4]).append('\n');
    });
    System.out.print(report);
    assertThat(report.toString(), wrong, equalTo(List.of()));
    // They decide what they decided on 2026-12-06 (9,883 of our 12,726; 100 of Synthea's 850): less is a regression.
    assertThat(report.toString(), decided(table.get("our output")), greaterThanOrEqualTo(9_800));
    assertThat(report.toString(), decided(table.get("Synthea's FHIR, no narrative")), greaterThanOrEqualTo(90));
    // The mutants break what they should: the validator finds an error or warning in most of them.
    int flagged = table.entrySet().stream().filter(e -> e.getKey().startsWith("mutants"))
        .flatMap(e -> e.getValue().values().stream()).mapToInt(n -> n[0] - n[1]).sum();
    assertThat(report.toString(), flagged, greaterThanOrEqualTo(3_000));
  }

  /** Errors and warnings (not codes that cannot be checked offline), as comparable text, sorted. */
  private static List<String> reported(List<Issue> issues) {
    return issues.stream().filter(i -> i.severity().isError() || (i.severity() == FhirValidation.Severity.WARNING
        && !i.category().equals(Issue.TERMINOLOGY_UNAVAILABLE)))
        .map(i -> i.severity().code() + " " + i.location() + " " + i.messageId() + " " + i.message()).sorted()
        .toList();
  }

  private static int decided(Map<String, int[]> types) {
    return types.values().stream().mapToInt(n -> n[2]).sum();
  }

  /** Every resource the Synthea job builds from the mutation corpus, validation off. */
  private List<String> ourOutput() throws Exception {
    Path input = CompiledValidationTest.mutationCorpus(DefaultJobTest.HOME.resolve("testdata/synthea"),
        tmp.resolve("corpus"));
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", SyntheaJobTest.CONFIG.toString(), "--output", out.toString(), "--set",
        "input_dir=" + input, "--set", "validation.mode=off", "--set", "quality.duplicate_ids=keep", "--set",
        "sinks.duckdb.enabled=false");
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString(": OK"));
    List<String> resources = new ArrayList<>();
    try (Stream<Path> files = Files.list(out.resolve("fhir"))) {
      for (Path f : files.sorted().toList()) {
        resources.addAll(Files.readAllLines(f));
      }
    }
    return resources;
  }

  /** Up to {@code perType} resources of each type from Synthea's bundles, references as {@code Type/id}. */
  private static List<String> syntheaResources(int perType) throws IOException {
    List<String> out = new ArrayList<>();
    Map<String, Integer> taken = new HashMap<>();
    List<Path> bundles;
    try (Stream<Path> files = Files.list(SyntheaAgreementTest.SHARED.resolve("fhir"))) {
      bundles = files.sorted().toList();
    }
    for (Path b : bundles) {
      JsonNode bundle = DefaultJobTest.JSON.readTree(b.toFile());
      Map<String, String> refs = new HashMap<>();
      for (JsonNode e : bundle.path("entry")) {
        refs.put(e.path("fullUrl").asText(), e.path("resource").path("resourceType").asText() + "/"
            + e.path("resource").path("id").asText());
      }
      for (JsonNode e : bundle.path("entry")) {
        JsonNode r = e.path("resource");
        String type = r.path("resourceType").asText();
        if (taken.merge(type, 1, Integer::sum) > perType) {
          continue;
        }
        rewrite(r, refs);
        out.add(DefaultJobTest.JSON.writeValueAsString(r));
      }
    }
    return out;
  }

  private static void rewrite(JsonNode node, Map<String, String> refs) {
    if (node instanceof ObjectNode o) {
      JsonNode ref = o.get("reference");
      if (ref != null && ref.isTextual() && refs.containsKey(ref.asText())) {
        o.put("reference", refs.get(ref.asText()));
      }
      o.elements().forEachRemaining(c -> rewrite(c, refs));
    } else if (node instanceof ArrayNode a) {
      a.forEach(c -> rewrite(c, refs));
    }
  }

  private static String withoutNarrative(String resource) {
    try {
      ObjectNode r = (ObjectNode) DefaultJobTest.JSON.readTree(resource);
      r.remove("text");
      return DefaultJobTest.JSON.writeValueAsString(r);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static List<String> r4Examples() throws IOException {
    try (Stream<Path> files = Files.list(DefaultJobTest.HOME.resolve("../shared/data/fhir-r4-examples").normalize())) {
      List<String> out = new ArrayList<>();
      for (Path f : files.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
        out.add(Files.readString(f));
      }
      return out;
    }
  }

  /**
   * For the first {@code perType} resources of each type: one defect each (see the class comment), by the kind of
   * check it breaks.
   */
  private static Map<String, List<String>> mutants(List<String> resources, int perType) throws IOException {
    Map<String, List<String>> out = new LinkedHashMap<>();
    Map<String, Integer> taken = new HashMap<>();
    JsonNodeFactory f = JsonNodeFactory.instance;
    for (String text : resources) {
      JsonNode original = DefaultJobTest.JSON.readTree(text);
      if (taken.merge(original.path("resourceType").asText(), 1, Integer::sum) > perType) {
        continue;
      }
      List<List<Object>> paths = new ArrayList<>();
      leaves(original, new ArrayList<>(), paths);
      for (List<Object> path : paths) {
        Object last = path.get(path.size() - 1);
        if (last.equals("resourceType")) {
          continue;
        }
        JsonNode leaf = at(original, path);
        mutate(original, path, parent -> remove(parent, last), out, "element removed (minimum, required slices)");
        if (leaf.isValueNode()) {
          String s = leaf.asText();
          Map<String, JsonNode> bad = new LinkedHashMap<>();
          bad.put("leading space (string format)", f.textNode(" " + s));
          bad.put("month 13 or two spaces (date and code formats)",
              f.textNode(s.length() > 4 ? s.substring(0, 4) + "-13" : s + "x  y"));
          bad.put("unknown code (bindings, code systems)", f.textNode("unknown-code"));
          bad.put("February 30 (dates)", f.textNode("2020-02-30"));
          bad.put("Group/1 (reference types, id characters)", f.textNode("Group/1"));
          bad.put("a number (JSON types)", f.numberNode(1));
          bad.put("empty (ele-1)", f.textNode(""));
          if (!leaf.isTextual()) {
            bad.put("text for a number or boolean (JSON types)", f.textNode(s));
            bad.put("false (JSON types)", f.booleanNode(false));
          }
          bad.forEach((kind, value) -> mutate(original, path, parent -> set(parent, last, value), out, kind));
        } else if (leaf.isObject() && last instanceof String name) {
          mutate(original, path, parent -> {
            ArrayNode list = f.arrayNode();
            list.add(leaf.deepCopy());
            ((ObjectNode) parent).set(name, list);
          }, out, "a single element as a list (maximum, array form)");
          mutate(original, path, parent -> ((ObjectNode) parent.get(name)).put("unknownElement", "x"), out,
              "unknown element");
          mutate(original, path, parent -> ((ObjectNode) parent).set(name, f.objectNode().put("id", "x")), out,
              "an element with an id alone (ele-1)");
        }
      }
    }
    return out;
  }

  private static void leaves(JsonNode node, List<Object> at, List<List<Object>> out) {
    if (!at.isEmpty()) {
      out.add(List.copyOf(at));
    }
    if (node.isObject()) {
      Iterator<String> names = node.fieldNames();
      while (names.hasNext()) {
        String n = names.next();
        at.add(n);
        leaves(node.get(n), at, out);
        at.remove(at.size() - 1);
      }
    } else if (node.isArray()) {
      for (int i = 0; i < node.size(); i++) {
        at.add(i);
        leaves(node.get(i), at, out);
        at.remove(at.size() - 1);
      }
    }
  }

  private static JsonNode at(JsonNode node, List<Object> path) {
    for (Object p : path) {
      node = p instanceof Integer i ? node.get(i) : node.get((String) p);
    }
    return node;
  }

  private static void mutate(JsonNode original, List<Object> path, Consumer<JsonNode> change,
      Map<String, List<String>> out, String kind) {
    JsonNode copy = original.deepCopy();
    change.accept(at(copy, path.subList(0, path.size() - 1)));
    out.computeIfAbsent("mutants: " + kind, k -> new ArrayList<>()).add(copy.toString());
  }

  private static void remove(JsonNode parent, Object key) {
    if (parent instanceof ObjectNode o) {
      o.remove((String) key);
    } else {
      ((ArrayNode) parent).remove((Integer) key);
    }
  }

  private static void set(JsonNode parent, Object key, JsonNode value) {
    if (parent instanceof ObjectNode o) {
      o.set((String) key, value);
    } else {
      ((ArrayNode) parent).set((Integer) key, value);
    }
  }
}
