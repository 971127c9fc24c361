package org.fhirbeam.config;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.Mark;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeId;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.Tag;
import org.yaml.snakeyaml.resolver.Resolver;

/** Reads YAML files into located node trees and applies {@code --set key=value} overrides to them. */
public final class YamlFiles {
  private YamlFiles() {}

  /** Parses one YAML document; a missing, unreadable or malformed file is a {@link ConfigException}. */
  public static ConfigNode read(Path file, Interpolator interpolator) {
    String name = file.toString();
    Node root;
    try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      LoaderOptions options = new LoaderOptions();
      options.setAllowDuplicateKeys(true); // duplicates are reported by ConfigNode with their line
      Yaml yaml = new Yaml(new SafeConstructor(options));
      root = compose(yaml, reader, name);
    } catch (NoSuchFileException e) {
      throw new ConfigException(name, "", "file not found");
    } catch (IOException e) {
      throw new ConfigException(name, "", "cannot read file (" + e.getClass().getSimpleName() + ")");
    }
    if (root == null) {
      throw new ConfigException(name + ":1", "", "file is empty");
    }
    if (!(root instanceof MappingNode)) {
      throw new ConfigException(name + ":" + (root.getStartMark().getLine() + 1), "",
          "expected a mapping of keys to values at the top level");
    }
    return new ConfigNode(root, "", name, interpolator);
  }

  private static Node compose(Yaml yaml, Reader reader, String name) {
    try {
      return yaml.compose(reader);
    } catch (MarkedYAMLException e) {
      Mark mark = e.getProblemMark() != null ? e.getProblemMark() : e.getContextMark();
      String where = mark == null ? name : name + ":" + (mark.getLine() + 1);
      String problem = e.getProblem() == null ? "malformed YAML" : "malformed YAML: " + e.getProblem();
      throw new ConfigException(where, "", problem.replace('\n', ' '));
    } catch (YAMLException e) {
      throw new ConfigException(name, "", "malformed YAML: " + String.valueOf(e.getMessage()).replace('\n', ' '));
    }
  }

  /**
   * Applies {@code key=value} overrides (dotted keys) to a document. Missing intermediate mappings are created;
   * the value is typed as a YAML scalar. Errors are located at {@code --set key=value}.
   */
  public static void applyOverrides(ConfigNode document, Map<String, String> overrides) {
    MappingNode root = (MappingNode) rawNode(document);
    Resolver resolver = new Resolver();
    for (Map.Entry<String, String> e : overrides.entrySet()) {
      String setting = "--set " + e.getKey() + "=" + e.getValue();
      Mark mark = new Mark(setting, 0, -1, 0, new int[0], 0);
      String[] parts = e.getKey().split("\\.", -1);
      for (String p : parts) {
        if (p.isEmpty()) {
          throw new ConfigException(setting, e.getKey(), "malformed key (expected dotted names like duckdb.threads)");
        }
      }
      MappingNode current = root;
      for (int i = 0; i < parts.length; i++) {
        boolean last = i == parts.length - 1;
        NodeTuple existing = find(current, parts[i]);
        if (last) {
          replace(current, existing, parts[i], overrideValue(e.getValue(), mark, setting, resolver), mark);
        } else if (existing != null && existing.getValueNode() instanceof MappingNode child) {
          current = child;
        } else if (existing == null || isNullScalar(existing.getValueNode())) {
          MappingNode child = new MappingNode(Tag.MAP, true, new ArrayList<>(), mark, mark,
              DumperOptions.FlowStyle.BLOCK);
          replace(current, existing, parts[i], child, mark);
          current = child;
        } else {
          String prefix = String.join(".", List.of(parts).subList(0, i + 1));
          throw new ConfigException(setting, prefix, "is a single value or list, so it has no key '" + parts[i + 1] + "'");
        }
      }
    }
  }

  /**
   * The node for an override's value: a YAML flow list or mapping when it starts with {@code [} or {@code {}
   * (e.g. {@code duckdb.extensions=[json,icu]}), a scalar typed as YAML would type it otherwise. Every node is
   * marked with the setting, so errors inside it point at {@code --set}.
   */
  private static Node overrideValue(String value, Mark mark, String setting, Resolver resolver) {
    String t = value.strip();
    if (t.startsWith("[") || t.startsWith("{")) {
      Node parsed;
      try {
        parsed = new Yaml(new SafeConstructor(new LoaderOptions())).compose(new java.io.StringReader(t));
      } catch (YAMLException e) {
        throw new ConfigException(setting, "", "malformed YAML value");
      }
      return remark(parsed, mark);
    }
    Tag tag = resolver.resolve(NodeId.scalar, value, true);
    return new ScalarNode(tag, value, mark, mark, DumperOptions.ScalarStyle.PLAIN);
  }

  private static Node remark(Node node, Mark mark) {
    if (node instanceof ScalarNode s) {
      return new ScalarNode(s.getTag(), s.getValue(), mark, mark, s.getScalarStyle());
    }
    if (node instanceof org.yaml.snakeyaml.nodes.SequenceNode seq) {
      List<Node> items = new ArrayList<>();
      for (Node item : seq.getValue()) {
        items.add(remark(item, mark));
      }
      return new org.yaml.snakeyaml.nodes.SequenceNode(seq.getTag(), true, items, mark, mark,
          DumperOptions.FlowStyle.FLOW);
    }
    MappingNode map = (MappingNode) node;
    List<NodeTuple> tuples = new ArrayList<>();
    for (NodeTuple tuple : map.getValue()) {
      tuples.add(new NodeTuple(remark(tuple.getKeyNode(), mark), remark(tuple.getValueNode(), mark)));
    }
    return new MappingNode(map.getTag(), true, tuples, mark, mark, DumperOptions.FlowStyle.FLOW);
  }

  private static boolean isNullScalar(Node n) {
    return n instanceof ScalarNode s && Tag.NULL.equals(s.getTag());
  }

  private static NodeTuple find(MappingNode map, String key) {
    for (NodeTuple t : map.getValue()) {
      if (t.getKeyNode() instanceof ScalarNode k && k.getValue().equals(key)) {
        return t;
      }
    }
    return null;
  }

  private static void replace(MappingNode map, NodeTuple existing, String key, Node value, Mark mark) {
    ScalarNode keyNode = new ScalarNode(Tag.STR, key, mark, mark, DumperOptions.ScalarStyle.PLAIN);
    NodeTuple tuple = new NodeTuple(keyNode, value);
    List<NodeTuple> tuples = new ArrayList<>(map.getValue());
    int idx = existing == null ? -1 : tuples.indexOf(existing);
    if (idx < 0) {
      tuples.add(tuple);
    } else {
      tuples.set(idx, tuple);
    }
    map.setValue(tuples);
  }

  static Node rawNode(ConfigNode node) {
    return node.rawNode();
  }
}
