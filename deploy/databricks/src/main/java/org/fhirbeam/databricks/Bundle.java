package org.fhirbeam.databricks;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.fhirbeam.config.InputException;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.YAMLException;

/**
 * A Databricks Asset Bundle file ({@code databricks.yml}) as {@code fhirbeam submit} reads it: its targets, variables,
 * sync paths and jobs, with {@code ${var.NAME}}, {@code ${bundle.name}} and {@code ${bundle.target}} resolved the way
 * the bundle CLI resolves them. A value that is a complex variable's reference alone becomes that variable's value.
 * References only a deployment knows ({@code ${workspace.file_path}}) are an error when a value {@code submit} sends
 * needs them.
 */
public final class Bundle {
  private static final Pattern REFERENCE = Pattern.compile("\\$\\{([A-Za-z0-9_.-]+)}");
  /**
   * What a target may set for {@code submit} to read it as the bundle CLI does; {@code workspace} and {@code mode}
   * concern only a deployment.
   */
  private static final List<String> TARGET_KEYS = List.of("default", "mode", "workspace", "run_as", "variables");

  private final Path file;
  private final Map<String, Object> root;

  private Bundle(Path file, Map<String, Object> root) {
    this.file = file;
    this.root = root;
  }

  /** Reads {@code file}; an unreadable or malformed file is an {@link InputException} naming it. */
  public static Bundle read(Path file) {
    try (Reader reader = Files.newBufferedReader(file)) {
      Object loaded = new Yaml(new SafeConstructor(new LoaderOptions())).load(reader);
      if (!(loaded instanceof Map<?, ?>)) {
        throw new InputException(file + ": not a bundle (no mapping at the top)");
      }
      return new Bundle(file, map(loaded));
    } catch (IOException e) {
      throw new InputException("cannot read the bundle " + file + ": " + e.getMessage(), e);
    } catch (YAMLException e) {
      throw new InputException(file + ": not valid YAML: " + e.getMessage().lines().findFirst().orElse(""), e);
    }
  }

  public Path file() {
    return file;
  }

  public String name() {
    return (String) map(root.get("bundle")).get("name");
  }

  /** The target named {@code default: true}. */
  public String defaultTarget() {
    return targets().entrySet().stream().filter(t -> Boolean.TRUE.equals(map(t.getValue()).get("default")))
        .map(Map.Entry::getKey).findFirst()
        .orElseThrow(() -> new InputException(file + ": no target is marked 'default: true'; give --target"));
  }

  public Set<String> targetNames() {
    return targets().keySet();
  }

  /** The variables the file declares (top level). */
  public Set<String> variables() {
    return map(root.get("variables")).keySet();
  }

  /** Every {@code ${var.NAME}} the file uses, anywhere. */
  public Set<String> variablesUsed() {
    Set<String> used = new LinkedHashSet<>();
    collectReferences(root, used);
    return used;
  }

  /**
   * The folders the bundle syncs, as local paths ({@code sync.paths}, relative to the bundle's folder), and the
   * folder they are relative to once synced: the deepest folder holding them and the bundle's own.
   */
  public List<Path> syncPaths() {
    List<Path> paths = new ArrayList<>();
    for (Object p : list(map(root.get("sync")).get("paths"))) {
      paths.add(file.toAbsolutePath().getParent().resolve((String) p).normalize());
    }
    return paths;
  }

  /** The folder the synced paths are relative to in the deployment (their common ancestor with the bundle's). */
  public Path syncRoot() {
    Path common = file.toAbsolutePath().getParent().normalize();
    for (Path p : syncPaths()) {
      while (!p.startsWith(common)) {
        common = common.getParent();
      }
    }
    return common;
  }

  /**
   * The bundle for one target, with variable values taken as the bundle CLI takes them: {@code given} (its
   * {@code --var} values) first, then the environment's {@code BUNDLE_VAR_<name>}, then the target's
   * {@code variables}, then each variable's {@code default}.
   */
  public Target target(String name, Map<String, String> given, Map<String, String> env) {
    if (!targets().containsKey(name)) {
      throw new InputException(file + ": no target '" + name + "' (targets: " + String.join(", ", targetNames())
          + ")");
    }
    for (String v : given.keySet()) {
      if (!variables().contains(v)) {
        throw new InputException("--var " + v + ": " + file + " declares no such variable (variables: "
            + String.join(", ", variables()) + ")");
      }
    }
    for (String key : map(targets().get(name)).keySet()) {
      if (!TARGET_KEYS.contains(key)) {
        throw new InputException(file + ": target " + name + " sets " + key + ", which `fhirbeam submit` does not"
            + " read: it would run something else than the deployed bundle (it reads " + String.join(", ",
                TARGET_KEYS) + ")");
      }
    }
    Map<String, Object> targetValues = map(map(targets().get(name)).get("variables"));
    Map<String, Object> values = new LinkedHashMap<>();
    for (Map.Entry<String, Object> v : map(root.get("variables")).entrySet()) {
      String var = v.getKey();
      if (given.containsKey(var)) {
        values.put(var, given.get(var));
      } else if (env.containsKey("BUNDLE_VAR_" + var)) {
        values.put(var, env.get("BUNDLE_VAR_" + var));
      } else if (targetValues.containsKey(var)) {
        values.put(var, targetValues.get(var));
      } else if (map(v.getValue()).containsKey("default")) {
        values.put(var, map(v.getValue()).get("default"));
      }
    }
    return new Target(name, values);
  }

  private Map<String, Object> targets() {
    return map(root.get("targets"));
  }

  /** One target of the bundle, whose values resolve. */
  public final class Target {
    private final String name;
    private final Map<String, Object> values;

    private Target(String name, Map<String, Object> values) {
      this.name = name;
      this.values = values;
    }

    public String name() {
      return name;
    }

    /** A job of {@code resources.jobs}, every reference in it resolved. */
    public Map<String, Object> job(String key) {
      Object job = map(map(root.get("resources")).get("jobs")).get(key);
      if (job == null) {
        throw new InputException(file + ": no job '" + key + "' under resources.jobs");
      }
      return map(resolve(job, new ArrayList<>()));
    }

    /** A variable's value, resolved. */
    public Object variable(String var) {
      return resolve("${var." + var + "}", new ArrayList<>());
    }

    /** The target's {@code run_as}, or the bundle's. */
    public Map<String, Object> runAs() {
      Object runAs = map(targets().get(name)).getOrDefault("run_as", root.get("run_as"));
      return runAs == null ? Map.of() : map(resolve(runAs, new ArrayList<>()));
    }

    private Object resolve(Object value, List<String> resolving) {
      if (value instanceof Map<?, ?> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((k, v) -> out.put((String) k, resolve(v, resolving)));
        return out;
      }
      if (value instanceof List<?> l) {
        return l.stream().map(v -> resolve(v, resolving)).toList();
      }
      if (!(value instanceof String s)) {
        return value;
      }
      Matcher whole = REFERENCE.matcher(s);
      if (whole.matches()) {
        return lookup(whole.group(1), resolving);
      }
      Matcher m = REFERENCE.matcher(s);
      StringBuilder out = new StringBuilder();
      while (m.find()) {
        Object v = lookup(m.group(1), resolving);
        if (v instanceof Map<?, ?> || v instanceof List<?>) {
          throw new InputException(file + ": ${" + m.group(1) + "} is a complex value and cannot be part of '" + s
              + "'");
        }
        m.appendReplacement(out, Matcher.quoteReplacement(String.valueOf(v)));
      }
      m.appendTail(out);
      return out.toString();
    }

    private Object lookup(String reference, List<String> resolving) {
      if (reference.equals("bundle.name")) {
        return Bundle.this.name();
      }
      if (reference.equals("bundle.target")) {
        return name;
      }
      if (!reference.startsWith("var.")) {
        throw new InputException(file + ": ${" + reference + "} is known only to a bundle deployment (`databricks"
            + " bundle deploy`); `fhirbeam submit` sets the variables that use it");
      }
      String var = reference.substring("var.".length());
      if (!variables().contains(var)) {
        throw new InputException(file + ": ${" + reference + "} names no declared variable");
      }
      if (resolving.contains(var)) {
        throw new InputException(file + ": variable '" + var + "' refers to itself (" + String.join(" -> ",
            resolving) + " -> " + var + ")");
      }
      if (!values.containsKey(var)) {
        throw new InputException(file + ": variable '" + var + "' has no value for target " + name + ": give --var "
            + var + "=VALUE or set BUNDLE_VAR_" + var);
      }
      resolving.add(var);
      Object v = resolve(values.get(var), resolving);
      resolving.remove(resolving.size() - 1);
      return v;
    }
  }

  private static void collectReferences(Object value, Set<String> used) {
    if (value instanceof Map<?, ?> m) {
      m.values().forEach(v -> collectReferences(v, used));
    } else if (value instanceof List<?> l) {
      l.forEach(v -> collectReferences(v, used));
    } else if (value instanceof String s) {
      Matcher m = REFERENCE.matcher(s);
      while (m.find()) {
        if (m.group(1).startsWith("var.")) {
          used.add(m.group(1).substring("var.".length()));
        }
      }
    }
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> map(Object value) {
    return value instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
  }

  private static List<Object> list(Object value) {
    return value instanceof List<?> l ? List.copyOf(l) : List.of();
  }
}
