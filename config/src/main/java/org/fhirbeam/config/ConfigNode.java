package org.fhirbeam.config;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * One node of a YAML document with its location and dotted key, and typed accessors that fail with a
 * {@link ConfigException} naming file, line and key. Scalars are interpolated when read, so a missing
 * environment variable is reported where it is used.
 */
public final class ConfigNode {
  private final Node node;
  /** The key this node is the value of, when it is one (a value may start on the line after its key). */
  private final Node keyNode;
  private final String key;
  private final String file;
  private final Interpolator interpolator;

  ConfigNode(Node node, String key, String file, Interpolator interpolator) {
    this(node, null, key, file, interpolator);
  }

  private ConfigNode(Node node, Node keyNode, String key, String file, Interpolator interpolator) {
    this.node = node;
    this.keyNode = keyNode;
    this.key = key;
    this.file = file;
    this.interpolator = interpolator;
  }

  /** {@code file:line} of this node, or {@code --set key} for a value given on the command line. */
  public String location() {
    return locationOf(node);
  }

  /** {@code file:line} of the key whose value this node is ({@link #location} when it is no key's value). */
  public String keyLocation() {
    return locationOf(keyNode != null ? keyNode : node);
  }

  private String locationOf(Node n) {
    var mark = n.getStartMark();
    if (mark == null) {
      return file;
    }
    // Values given with --set carry a mark named after the setting, with no line.
    return mark.getLine() < 0 ? mark.getName() : file + ":" + (mark.getLine() + 1);
  }

  public String key() {
    return key;
  }

  Node rawNode() {
    return node;
  }

  public ConfigException error(String problem) {
    return new ConfigException(location(), key, problem);
  }

  public boolean isNull() {
    return node instanceof ScalarNode s && Tag.NULL.equals(s.getTag());
  }

  /** The scalar's text after interpolation. */
  public String text() {
    if (!(node instanceof ScalarNode scalar) || isNull()) {
      throw error("expected a single value, found " + describe());
    }
    try {
      return interpolator.apply(scalar.getValue());
    } catch (IllegalArgumentException e) {
      throw error(e.getMessage());
    }
  }

  public int integer() {
    String t = text();
    try {
      return Integer.parseInt(t.trim());
    } catch (NumberFormatException e) {
      throw error("expected a whole number, found '" + t + "'");
    }
  }

  public boolean bool() {
    String t = text().trim().toLowerCase(Locale.ROOT);
    return switch (t) {
      case "true", "yes", "on" -> true;
      case "false", "no", "off" -> false;
      default -> throw error("expected true or false, found '" + t + "'");
    };
  }

  /** A value from a fixed set, written in lower case in YAML; the error lists the allowed values. */
  public <E extends Enum<E>> E enumValue(Class<E> type) {
    String t = text().trim();
    for (E e : type.getEnumConstants()) {
      if (e.name().equalsIgnoreCase(t)) {
        return e;
      }
    }
    List<String> allowed = new ArrayList<>();
    for (E e : type.getEnumConstants()) {
      allowed.add(e.name().toLowerCase(Locale.ROOT));
    }
    throw error("'" + t + "' is not one of " + String.join(", ", allowed));
  }

  /** Whether the value is a mapping of keys to values. */
  public boolean isMapping() {
    return node instanceof MappingNode;
  }

  public List<ConfigNode> list() {
    if (!(node instanceof SequenceNode seq)) {
      throw error("expected a list, found " + describe());
    }
    List<ConfigNode> out = new ArrayList<>();
    List<Node> items = seq.getValue();
    for (int i = 0; i < items.size(); i++) {
      out.add(new ConfigNode(items.get(i), key + "[" + i + "]", file, interpolator));
    }
    return out;
  }

  public List<String> stringList() {
    List<String> out = new ArrayList<>();
    for (ConfigNode item : list()) {
      out.add(item.text());
    }
    return out;
  }

  /** Entries of a mapping whose keys are free (names of sources, codes of a code map). Duplicates are errors. */
  public Map<String, ConfigNode> entries() {
    if (!(node instanceof MappingNode map)) {
      throw error("expected a mapping of keys to values, found " + describe());
    }
    Map<String, ConfigNode> out = new LinkedHashMap<>();
    for (NodeTuple t : map.getValue()) {
      if (!(t.getKeyNode() instanceof ScalarNode k)) {
        throw error("keys must be plain values");
      }
      String childKey = key.isEmpty() ? k.getValue() : key + "." + k.getValue();
      ConfigNode child = new ConfigNode(t.getValueNode(), k, childKey, file, interpolator);
      if (out.containsKey(k.getValue())) {
        throw new ConfigException(child.keyLocation(), childKey, "duplicate key");
      }
      out.put(k.getValue(), child);
    }
    return out;
  }

  /** A mapping with a fixed set of keys: any other key is an error that lists the allowed ones. */
  public Fields fields(Set<String> allowed) {
    Map<String, ConfigNode> entries = entries();
    for (ConfigNode child : entries.values()) {
      String name = child.key.substring(child.key.lastIndexOf('.') + 1);
      if (!allowed.contains(name)) {
        throw child.error("unknown key (expected one of: " + String.join(", ", new TreeSet<>(allowed)) + ")");
      }
    }
    return new Fields(this, entries);
  }

  private String describe() {
    if (node instanceof MappingNode) {
      return "a mapping";
    }
    if (node instanceof SequenceNode) {
      return "a list";
    }
    return isNull() ? "nothing" : "a single value";
  }

  /** The checked keys of a mapping, with typed getters. Absent and null values count as not given. */
  public static final class Fields {
    private final ConfigNode owner;
    private final Map<String, ConfigNode> entries;

    Fields(ConfigNode owner, Map<String, ConfigNode> entries) {
      this.owner = owner;
      this.entries = entries;
    }

    public ConfigNode owner() {
      return owner;
    }

    public boolean has(String name) {
      ConfigNode n = entries.get(name);
      return n != null && !n.isNull();
    }

    public ConfigNode get(String name) {
      return has(name) ? entries.get(name) : null;
    }

    public ConfigNode require(String name) {
      if (!has(name)) {
        String k = owner.key.isEmpty() ? name : owner.key + "." + name;
        throw new ConfigException(owner.location(), k, "required key is missing");
      }
      return entries.get(name);
    }

    public String string(String name, String defaultValue) {
      return has(name) ? entries.get(name).text() : defaultValue;
    }

    public String requiredString(String name) {
      String v = require(name).text();
      if (v.isBlank()) {
        throw entries.get(name).error("must not be empty");
      }
      return v;
    }

    public int integer(String name, int defaultValue) {
      return has(name) ? entries.get(name).integer() : defaultValue;
    }

    public boolean bool(String name, boolean defaultValue) {
      return has(name) ? entries.get(name).bool() : defaultValue;
    }

    public <E extends Enum<E>> E enumValue(String name, Class<E> type, E defaultValue) {
      return has(name) ? entries.get(name).enumValue(type) : defaultValue;
    }

    public List<String> stringList(String name) {
      return has(name) ? entries.get(name).stringList() : List.of();
    }
  }
}
