package org.fhirbeam.io;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a single mapped value sits in a resource, step by step: element names, the index of a repeating element, and
 * extensions, which are picked by their url. A JSON path cannot say "the extension whose url is X", so elements inside
 * extensions have no flat column; they are read from the resource turned into a DuckDB struct that holds just the
 * elements wanted ({@link #structType}), where picking an extension by url costs no JSON parsing (about half the time
 * of filtering the extensions as JSON: docs/BENCHMARKS.md).
 */
public record ElementPath(List<Step> steps) implements Serializable {
  private static final long serialVersionUID = 1L;

  /** One step: {@code name}, with {@code index} >= 0 for a repeating element, or an extension with its {@code url}. */
  public record Step(String name, int index, String url) implements Serializable {
    private static final long serialVersionUID = 1L;
  }

  public ElementPath {
    steps = List.copyOf(steps);
    if (steps.isEmpty()) {
      throw new IllegalArgumentException("an element path has at least one step");
    }
  }

  /** The path of a JSON path of names and indexes, such as {@code $.name[0].given[1]}. */
  public static ElementPath ofJsonPath(String jsonPath) {
    if (!jsonPath.startsWith("$.")) {
      throw new IllegalArgumentException("not a JSON path of names: " + jsonPath);
    }
    List<Step> steps = new java.util.ArrayList<>();
    for (String part : jsonPath.substring(2).split("\\.")) {
      int bracket = part.indexOf('[');
      if (bracket < 0) {
        steps.add(new Step(part, -1, null));
      } else if (part.endsWith("]") && part.indexOf('[', bracket + 1) < 0) {
        steps.add(new Step(part.substring(0, bracket), Integer.parseInt(part.substring(bracket + 1, part.length() - 1)),
            null));
      } else {
        throw new IllegalArgumentException("not a JSON path of names: " + jsonPath);
      }
    }
    return new ElementPath(steps);
  }

  /**
   * The {@code json_transform} structure of a resource that holds the values of {@code paths} (and the urls of their
   * extensions), every value as text, as a SQL literal.
   */
  public static String structType(List<ElementPath> paths) {
    Node root = new Node();
    for (ElementPath p : paths) {
      Node node = root;
      for (Step s : p.steps()) {
        node = node.children.computeIfAbsent(s.name(), n -> new Node());
        if (s.url() != null) {
          node.list = true;
          node.children.computeIfAbsent("url", n -> new Node());
        } else if (s.index() >= 0) {
          node.list = true;
        }
      }
    }
    return DuckDb.literal(root.type());
  }

  /** An element of the structure: a value (no children), an object, or a list of objects. */
  private static final class Node {
    final Map<String, Node> children = new LinkedHashMap<>();
    boolean list;

    String type() {
      if (children.isEmpty()) {
        return list ? "[\"VARCHAR\"]" : "\"VARCHAR\"";
      }
      StringBuilder out = new StringBuilder("{");
      children.forEach((name, child) -> out.append(out.length() > 1 ? "," : "").append('"').append(name)
          .append("\":").append(child.type()));
      out.append('}');
      return list ? "[" + out + "]" : out.toString();
    }
  }

  /**
   * A DuckDB expression for the value as text (NULL when the resource lacks it), over {@code struct}, a resource
   * turned into the {@link #structType} of a list of paths that holds this one. An extension is the first item of
   * its parent's {@code extension} list with the url (a mapping writes one per url).
   */
  public String sql(String struct) {
    String value = struct;
    for (Step s : steps) {
      value = value + "." + DuckDb.identifier(s.name());
      if (s.url() != null) {
        value = "list_filter(" + value + ", lambda x: x.url = " + DuckDb.literal(s.url()) + ")[1]";
      } else if (s.index() >= 0) {
        value = value + "[" + (s.index() + 1) + "]";
      }
    }
    return value;
  }
}
