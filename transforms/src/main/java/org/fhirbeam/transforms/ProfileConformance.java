package org.fhirbeam.transforms;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.ValueRule;
import org.hl7.fhir.r5.model.DataType;
import org.hl7.fhir.r5.model.ElementDefinition;
import org.hl7.fhir.r5.model.PrimitiveType;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * What a mapping's structure says about a profile it claims, before any row is read: the elements the profile
 * requires (min &gt;= 1) that the mapping never writes, or writes only when a column has a value; the elements it
 * forbids (max 0) that the mapping writes; and constants that differ from the profile's fixed or pattern value of a
 * primitive element. Checked against the profile's snapshot, element by element below each element the mapping
 * writes, once per repetition it writes ({@code identifier[0]}, {@code identifier[1]}).
 *
 * <p>Not checked here (HAPI's validator still checks them in a run with validation): slices and their
 * discriminators, the elements inside extensions, elements below a choice element ({@code value[x]}), bindings,
 * invariants and reference targets.
 */
public final class ProfileConformance {
  private ProfileConformance() {}

  /** A finding: an error (no resource of the mapping can conform) or a warning, at a file:line of the mapping. */
  public record Finding(boolean error, String location, String message) {}

  /**
   * The findings for {@code mapping} against {@code profile}, a StructureDefinition with its snapshot (as the
   * validator's definitions give it: {@code FhirValidation#profile}).
   */
  public static List<Finding> check(MappingConfig mapping, StructureDefinition profile) {
    Map<String, ElementDefinition> elements = new LinkedHashMap<>();
    for (ElementDefinition e : profile.getSnapshot().getElement()) {
      if (!e.getId().contains(":")) {
        elements.put(e.getPath(), e);
      }
    }
    Written root = new Written();
    for (ValueRule rule : mapping.elements()) {
      Written node = root;
      for (String segment : MappingCompiler.segments(rule.path())) {
        node = node.children.computeIfAbsent(segment, s -> new Written());
        node.rules.add(rule);
      }
    }
    List<Finding> findings = new ArrayList<>();
    String name = profile.hasTitle() ? profile.getTitle() : profile.getName();
    visit(profile.getType(), root, root, mapping.resourceLocation(), elements, name, mapping, findings);
    return findings;
  }

  /** The rules below one element the mapping writes, by the next path segment. */
  private static final class Written {
    final Map<String, Written> children = new LinkedHashMap<>();
    final List<ValueRule> rules = new ArrayList<>();
  }

  private static void visit(String path, Written instance, Written root, String location,
      Map<String, ElementDefinition> elements, String profile, MappingConfig mapping, List<Finding> findings) {
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
      List<Map.Entry<String, Written>> written = new ArrayList<>();
      for (Map.Entry<String, Written> c : instance.children.entrySet()) {
        String element = c.getKey().replaceAll("\\[.*]$", "");
        if (choice ? element.startsWith(name.substring(0, name.length() - 3)) && element.length() > name.length() - 3
            && Character.isUpperCase(element.charAt(name.length() - 3)) : element.equals(name)) {
          written.add(c);
        }
      }
      if (e.getMin() >= 1 && written.isEmpty()) {
        findings.add(new Finding(true, location, "mapping " + mapping.name() + " never writes " + childPath
            + ", which " + profile + " requires (min " + e.getMin() + "): no resource of it can conform"));
        continue;
      }
      if ("0".equals(e.getMax()) && !written.isEmpty()) {
        findings.add(new Finding(true, written.get(0).getValue().rules.get(0).location(), "mapping " + mapping.name()
            + " writes " + childPath + ", which " + profile + " forbids (max 0)"));
        continue;
      }
      String idColumn = mapping.id().column();
      if (e.getMin() >= 1 && written.stream().allMatch(w -> canBeLeftOut(w.getValue(), instance, instance == root,
          idColumn))) {
        findings.add(new Finding(false, written.get(0).getValue().rules.get(0).location(), "mapping "
            + mapping.name() + " writes " + childPath + " (" + profile + " requires it) only when " + String.join(
                " or ", written.stream().flatMap(w -> w.getValue().rules.stream()).filter(r -> r.constant() == null)
                    .map(ProfileConformance::from).distinct().toList())
            + " has a value: rows without one give resources that do not conform (make the rule required, or give"
            + " it a default)"));
      }
      for (Map.Entry<String, Written> w : written) {
        Written child = w.getValue();
        String at = child.rules.get(0).location();
        DataType fixed = e.hasFixed() ? e.getFixed() : e.hasPattern() ? e.getPattern() : null;
        if (fixed instanceof PrimitiveType<?> value && child.children.isEmpty() && child.rules.size() == 1
            && child.rules.get(0).constant() != null && !child.rules.get(0).constant().equals(value.asStringValue())) {
          findings.add(new Finding(true, at, "mapping " + mapping.name() + " writes '" + child.rules.get(0).constant()
              + "' to " + childPath + ", which " + profile + " fixes to '" + value.asStringValue() + "'"));
        }
        if (!choice) {
          visit(childPath, child, root, at, elements, profile, mapping, findings);
        }
      }
    }
  }

  /**
   * Whether a row can give a resource with {@code parent} but without {@code child} (docs/MAPPINGS.md, "Empty
   * values"). A complex element exists when one of its rules that reads the row has a value (one made of constants
   * only exists wherever its parent does); a rule with a default, a required one, or one reading the column of the
   * resource's id (a row without it is a reject) always gives a value. So the
   * child can be left out when none of its rules always gives a value, it is not made of constants only, and its
   * parent can exist through a rule outside it (the resource itself always exists).
   */
  private static boolean canBeLeftOut(Written child, Written parent, boolean parentIsResource, String idColumn) {
    boolean alwaysThere = child.rules.stream().anyMatch(r -> r.defaultValue() != null || r.required()
        || (r.column() != null && r.column().equals(idColumn)))
        || child.rules.stream().allMatch(r -> r.constant() != null);
    return !alwaysThere && (parentIsResource || parent.rules.stream().anyMatch(r -> r.constant() == null
        && !child.rules.contains(r)));
  }

  /** What a rule's value comes from, for a message: its column or its expression. */
  private static String from(ValueRule rule) {
    return rule.column() != null ? "column " + rule.column() : "expression " + rule.expression();
  }
}
