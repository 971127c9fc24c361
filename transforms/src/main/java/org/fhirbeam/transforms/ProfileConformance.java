package org.fhirbeam.transforms;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.ValueRule;
import org.hl7.fhir.r5.model.DataType;
import org.hl7.fhir.r5.model.ElementDefinition;
import org.hl7.fhir.r5.model.Enumerations;
import org.hl7.fhir.r5.model.PrimitiveType;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * What a mapping's structure says about a profile it claims, before any row is read: the elements the profile
 * requires (min &gt;= 1) that the mapping never writes, or writes only when a column has a value; the elements it
 * forbids (max 0) that the mapping writes; and constants that differ from the profile's fixed or pattern value of a
 * primitive element. Checked against the profile's snapshot, element by element below each element the mapping
 * writes, once per repetition it writes ({@code identifier[0]}, {@code identifier[1]}).
 *
 * <p>Codes a mapping can write (constants, defaults, code-map values, the literals of an expression) are checked
 * against the profile's required bindings whose value sets expand offline. Not checked here (HAPI's validator still
 * checks them in a run with validation): slices and their discriminators, the elements inside extensions, elements
 * below a choice element ({@code value[x]}), codes an expression computes from the row, the system of a bound code,
 * invariants and reference targets.
 */
public final class ProfileConformance {
  private ProfileConformance() {}

  /** A finding: an error (no resource of the mapping can conform) or a warning, at a file:line of the mapping. */
  public record Finding(boolean error, String location, String message) {}

  /**
   * The findings for {@code mapping} against {@code profile}, a StructureDefinition with its snapshot (as the
   * validator's definitions give it: {@code FhirValidation#profile}); {@code valueSetCodes} gives the codes of a value
   * set by url, or null when they cannot be known here ({@code FhirValidation#codesOf}); {@code extensions} the
   * definition of an extension by url, or null ({@code FhirValidation#profile}).
   */
  public static List<Finding> check(MappingConfig mapping, StructureDefinition profile,
      Function<String, Set<String>> valueSetCodes, Function<String, StructureDefinition> extensions) {
    Map<String, ElementDefinition> elements = new LinkedHashMap<>();
    for (ElementDefinition e : profile.getSnapshot().getElement()) {
      if (!(e.hasId() ? e.getId() : e.getPath()).contains(":")) {
        elements.put(e.getPath(), e);
      }
    }
    Written root = new Written();
    for (ValueRule rule : mapping.elements()) {
      Written node = root;
      for (String segment : MappingCompiler.segments(rule.path())) {
        node = node.children.computeIfAbsent(repetition(segment), s -> new Written());
        node.rules.add(rule);
      }
    }
    List<Finding> findings = new ArrayList<>();
    String name = profile.hasTitle() ? profile.getTitle() : profile.getName();
    new Visit(mapping, elements, name, valueSetCodes, extensions, root, findings).visit(profile.getType(), root,
        mapping.resourceLocation());
    return findings;
  }

  /** The rules below one element the mapping writes, by the next path segment. */
  private static final class Written {
    final Map<String, Written> children = new LinkedHashMap<>();
    final List<ValueRule> rules = new ArrayList<>();
  }

  /** One mapping against one profile: the walk down the elements the mapping writes. */
  private record Visit(MappingConfig mapping, Map<String, ElementDefinition> elements, String profile,
      Function<String, Set<String>> valueSetCodes, Function<String, StructureDefinition> extensions, Written root,
      List<Finding> findings) {

    void visit(String path, Written instance, String location) {
      instance.children.forEach((key, written) -> {
        if (key.startsWith("extension[") && key.contains("://")) {
          StructureDefinition definition = extensions.apply(key.substring("extension[".length(), key.length() - 1));
          if (definition != null) {
            checkExtension(definition, written);
          }
        }
      });
      for (ElementDefinition e : elements.values()) {
        String childPath = e.getPath();
        if (!childPath.startsWith(path + ".") || childPath.indexOf('.', path.length() + 1) >= 0) {
          continue; // not a child of this element
        }
        String name = childPath.substring(path.length() + 1);
        if (name.equals("id") || name.equals("extension") || name.equals("modifierExtension")) {
          continue; // set by the mapping's id rule, or extensions (their slices are not checked here)
        }
        boolean choice = name.endsWith("[x]");
        // A choice element is written under the name of one of the types the profile allows (valueQuantity).
        List<String> names = !choice ? List.of(name) : e.getType().stream().map(t -> name.substring(0,
            name.length() - 3) + Character.toUpperCase(t.getCode().charAt(0)) + t.getCode().substring(1)).toList();
        List<Map.Entry<String, Written>> written = new ArrayList<>();
        for (Map.Entry<String, Written> c : instance.children.entrySet()) {
          if (names.contains(c.getKey().substring(0, c.getKey().indexOf('[')))) {
            written.add(c);
          }
        }
        if (e.getMin() >= 1 && written.isEmpty()) {
          findings.add(new Finding(true, location, "mapping " + mapping.name() + " never writes " + childPath
              + ", which " + profile + " requires (min " + e.getMin() + "): no resource of it can conform"));
          continue;
        }
        String idColumn = mapping.id().column();
        boolean canBeLeftOut = written.stream().allMatch(w -> canBeLeftOut(w.getValue(), instance, instance == root,
            idColumn));
        if ("0".equals(e.getMax()) && !written.isEmpty()) {
          // Written only when a column has a value, the rows without one still conform.
          findings.add(new Finding(!canBeLeftOut, written.get(0).getValue().rules.get(0).location(), "mapping "
              + mapping.name() + " writes " + childPath + ", which " + profile + " forbids (max 0)" + (canBeLeftOut
                  ? ", when " + columns(written) + " has a value" : "")));
          continue;
        }
        if (e.getMin() >= 1 && canBeLeftOut) {
          findings.add(new Finding(false, written.get(0).getValue().rules.get(0).location(), "mapping "
              + mapping.name() + " writes " + childPath + " (" + profile + " requires it) only when "
              + columns(written) + " has a value: rows without one give resources that do not conform (make the rule"
              + " required, or give it a default)"));
        }
        DataType fixed = e.hasFixed() ? e.getFixed() : e.hasPattern() ? e.getPattern() : null;
        for (Map.Entry<String, Written> w : written) {
          Written child = w.getValue();
          String at = child.rules.get(0).location();
          if (fixed instanceof PrimitiveType<?> value && child.children.isEmpty() && child.rules.size() == 1
              && child.rules.get(0).constant() != null) {
            String constant = asWritten(child.rules.get(0).constant(), e);
            if (!constant.equals(value.asStringValue())) {
              findings.add(new Finding(true, at, "mapping " + mapping.name() + " writes '" + constant + "' to "
                  + childPath + ", which " + profile + " fixes to '" + value.asStringValue() + "'"));
            }
          }
          checkBinding(e, childPath, child);
          if (!choice) {
            visit(childPath, child, at);
          }
        }
      }
    }

    /**
     * The sub-extensions (slices of {@code Extension.extension}, by their url) that an extension's definition requires
     * of each one the mapping writes: US Core race needs its {@code text}.
     */
    void checkExtension(StructureDefinition definition, Written extension) {
      String name = definition.hasTitle() ? definition.getTitle() : definition.getName();
      for (ElementDefinition slice : definition.getSnapshot().getElement()) {
        String id = slice.hasId() ? slice.getId() : "";
        if (!id.matches("Extension\\.extension:[^.]+") || slice.getMin() < 1) {
          continue;
        }
        String sliceName = id.substring("Extension.extension:".length());
        String url = definition.getSnapshot().getElement().stream().filter(e -> (id + ".url").equals(e.getId())
            && e.hasFixed()).map(e -> ((PrimitiveType<?>) e.getFixed()).asStringValue()).findFirst().orElse(sliceName);
        Written sub = extension.children.get("extension[" + url + "]");
        String at = extension.rules.get(0).location();
        if (sub == null) {
          findings.add(new Finding(true, at, "mapping " + mapping.name() + " writes " + name + " without its"
              + " extension " + url + ", which it requires (min " + slice.getMin() + "): no resource of it can"
              + " conform"));
        } else if (canBeLeftOut(sub, extension, false, mapping.id().column())) {
          findings.add(new Finding(false, sub.rules.get(0).location(), "mapping " + mapping.name() + " writes the"
              + " extension " + url + " of " + name + " (which requires it) only when " + columns(List.of(
                  Map.entry(url, sub))) + " has a value: rows without one give resources that do not conform (make"
              + " the rule required, or give it a default)"));
        }
      }
    }

    /**
     * The codes a leaf can write (its constant, default, code map's values, the literals of its expression) against a
     * required binding of the profile on that element, or on the Coding or CodeableConcept it is the code of.
     */
    void checkBinding(ElementDefinition e, String elementPath, Written child) {
      if (!e.hasBinding() || e.getBinding().getStrength() != Enumerations.BindingStrength.REQUIRED
          || !e.getBinding().hasValueSet()) {
        return;
      }
      List<ValueRule> leaves = new ArrayList<>();
      if (child.children.isEmpty()) {
        leaves.addAll(child.rules);
      } else {
        // A CodeableConcept's coding[i].code, or a Coding's code.
        child.children.forEach((k, grandchild) -> {
          if (k.startsWith("code[")) {
            leaves.addAll(grandchild.rules);
          } else if (k.startsWith("coding[")) {
            Written code = grandchild.children.get("code[0]");
            if (code != null) {
              leaves.addAll(code.rules);
            }
          }
        });
      }
      if (leaves.isEmpty()) {
        return;
      }
      Set<String> codes = valueSetCodes.apply(e.getBinding().getValueSet());
      if (codes == null) {
        return; // not expandable here: left to a run's validation
      }
      for (ValueRule r : leaves) {
        List<String> values = new ArrayList<>();
        if (r.constant() != null) {
          values.add(r.constant().strip());
        }
        if (r.defaultValue() != null) {
          values.add(r.defaultValue().strip());
        }
        if (r.unmapped() != ValueRule.Unmapped.KEEP) {
          r.codeMap().values().forEach(v -> values.add(v.strip()));
        }
        if (r.expression() != null && r.codeMap().isEmpty()) {
          values.addAll(literalsWritten(r.expression()));
        }
        for (String v : values.stream().distinct().toList()) {
          if (!codes.contains(v)) {
            findings.add(new Finding(true, r.location(), "mapping " + mapping.name() + " writes '" + v + "' to "
                + elementPath + ", which " + profile + " binds to " + e.getBinding().getValueSet() + " (required)"
                + (codes.size() <= 12 ? ", whose codes are " + String.join(", ", codes) : ", which does not hold it ("
                    + codes.size() + " codes)")));
          }
        }
      }
    }
  }

  /**
   * Whether a row can give a resource with {@code parent} but without {@code child} (docs/MAPPINGS.md, "Empty
   * values"). A complex element exists when one of its rules that reads the row has a value (one made of constants
   * only exists wherever its parent does); a rule with a default, a required one, or one reading the column of the
   * resource's id (a row without it is a reject) always gives a value, and one copying a column gives one whenever
   * that column has one. So the
   * child can be left out when none of its rules always gives a value, it is not made of constants only, and its
   * parent can exist through a rule outside it (the resource itself always exists).
   */
  private static boolean canBeLeftOut(Written child, Written parent, boolean parentIsResource, String idColumn) {
    boolean alwaysThere = child.rules.stream().anyMatch(r -> (r.defaultValue() != null
            && r.unmapped() != ValueRule.Unmapped.OMIT) || r.required()
            || (r.column() != null && r.column().equals(idColumn)) || alwaysHasAValue(r.expression()))
        || child.rules.stream().allMatch(r -> r.constant() != null);
    if (alwaysThere) {
      return false;
    }
    // The child has a value whenever one of these columns has (its rules that copy a column).
    Set<String> guaranteeing = new java.util.HashSet<>();
    child.rules.stream().filter(r -> r.column() != null).forEach(r -> guaranteeing.add(r.column()));
    // A rule outside the child gives the parent a value without the child when it may have one while none of those
    // columns has: it always has a value, or it reads another column.
    return parentIsResource || parent.rules.stream().anyMatch(r -> r.constant() == null && !child.rules.contains(r)
        && (alwaysHasAValue(r.expression()) || !guaranteeing.containsAll(columnsRead(r))));
  }

  /** The columns a rule reads: its column, or those its expression names. */
  private static Set<String> columnsRead(ValueRule rule) {
    Set<String> columns = new java.util.HashSet<>();
    if (rule.column() != null) {
      columns.add(rule.column());
    } else if (rule.expression() != null) {
      try {
        columnsRead(Expr.parse(rule.expression()), columns);
      } catch (Expr.BadExpression e) {
        columns.add(""); // the compiler reports it; unknown columns
      }
    }
    return columns;
  }

  private static void columnsRead(Expr e, Set<String> into) {
    if (e instanceof Expr.Column c) {
      into.add(c.name());
    } else if (e instanceof Expr.Call c) {
      c.args().forEach(a -> columnsRead(a, into));
    }
  }

  /** The segment of a rule's path as the engine takes it: {@code name} is {@code name[0]}, {@code [007]} is [7]. */
  private static String repetition(String segment) {
    int bracket = segment.indexOf('[');
    if (bracket < 0) {
      return segment + "[0]";
    }
    String inside = segment.substring(bracket + 1, segment.length() - 1);
    return inside.matches("\\d+") ? segment.substring(0, bracket) + "[" + Integer.parseInt(inside) + "]" : segment;
  }

  /** A constant as the engine writes it to the element (trimmed and converted to its type: yes is true). */
  private static String asWritten(String constant, ElementDefinition e) {
    if (e.getType().size() != 1) {
      return constant.strip();
    }
    try {
      return PrimitiveKind.of(e.getType().get(0).getCode()).convert(constant.strip());
    } catch (PrimitiveKind.BadValue | RuntimeException ex) {
      return constant.strip(); // the compiler reports a constant that its element cannot take
    }
  }

  /** The columns and expressions the rules below the written elements read, for a message. */
  private static String columns(List<Map.Entry<String, Written>> written) {
    return String.join(" or ", written.stream().flatMap(w -> w.getValue().rules.stream())
        .filter(r -> r.constant() == null).map(ProfileConformance::from).distinct().toList());
  }

  /**
   * Whether an expression gives a value whatever the row holds: a literal that is not blank, {@code if} with both
   * branches such, or {@code coalesce} with one such argument.
   */
  private static boolean alwaysHasAValue(String expression) {
    if (expression == null) {
      return false;
    }
    try {
      return alwaysHasAValue(Expr.parse(expression));
    } catch (Expr.BadExpression e) {
      return false; // the compiler reports it
    }
  }

  private static boolean alwaysHasAValue(Expr e) {
    if (e instanceof Expr.Literal l) {
      return !l.text().isBlank();
    }
    if (e instanceof Expr.Call c && c.function().equals("if")) {
      return c.args().size() == 3 && alwaysHasAValue(c.args().get(1)) && alwaysHasAValue(c.args().get(2));
    }
    return e instanceof Expr.Call c && c.function().equals("coalesce") && c.args().stream()
        .anyMatch(ProfileConformance::alwaysHasAValue);
  }

  /**
   * The literals an expression can give as they are: itself, the branches of an {@code if}, the arguments of a
   * {@code coalesce} (what it computes from the row is not known here).
   */
  private static List<String> literalsWritten(String expression) {
    try {
      List<String> out = new ArrayList<>();
      literalsWritten(Expr.parse(expression), out);
      return out;
    } catch (Expr.BadExpression e) {
      return List.of(); // the compiler reports it
    }
  }

  private static void literalsWritten(Expr e, List<String> out) {
    if (e instanceof Expr.Literal l && !l.text().isBlank()) {
      out.add(l.text().strip());
    } else if (e instanceof Expr.Call c && c.function().equals("if")) {
      c.args().subList(1, c.args().size()).forEach(a -> literalsWritten(a, out));
    } else if (e instanceof Expr.Call c && c.function().equals("coalesce")) {
      c.args().forEach(a -> literalsWritten(a, out));
    }
  }

  /** What a rule's value comes from, for a message: its column or its expression. */
  private static String from(ValueRule rule) {
    return rule.column() != null ? "column " + rule.column() : "expression " + rule.expression();
  }
}
