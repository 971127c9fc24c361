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
 * A mapping against a profile it claims, before any row is read: what its structure decides ({@link Finding}s:
 * elements the profile requires (min &gt;= 1) that the mapping never writes or writes only when a column has a value,
 * elements it forbids (max 0), constants that differ from a fixed or pattern value, codes outside a required binding
 * or outside a code system loaded with all its codes, an extension's required extensions) and what only the row can
 * decide ({@link RowCheck}s, which the mapping's query evaluates in validation mode {@code compiled}): the same
 * requirements where the row decides them, codes copied from the row, slices told apart by value, pattern or
 * existence (a CodeableConcept's coding, an Identifier's system: their minimum, maximum and closed slicing) and a
 * choice element's required type slices, and choice types a closed type slicing does not allow. Checked against the
 * profile's snapshot, element by element below each element the mapping writes, once per repetition it writes
 * ({@code identifier[0]}, {@code identifier[1]}).
 *
 * <p>The resource type of the references it writes is checked against the element's target profiles here only: HAPI's
 * validator does not check the target of a reference it cannot resolve offline. Not checked here (HAPI's validator
 * checks them in mode {@code full} or {@code sample}): other slices (by profile, by type other than a choice element's),
 * the elements inside extensions, and codes of
 * value sets that cannot be expanded offline. Invariants are {@link ProfileInvariants}'.
 */
public final class ProfileConformance {
  private ProfileConformance() {}

  /** A finding: an error (no resource of the mapping can conform) or a warning, at a file:line of the mapping. */
  public record Finding(boolean error, String location, String message) {}

  /**
   * What the structure decides ({@code findings}), and the checks that only the row can decide ({@code rowChecks}):
   * one for each warning that rows can give resources that do not conform, and one for each code the mapping copies
   * from the row into an element with a required binding whose value set expands here.
   */
  public record Result(List<Finding> findings, List<RowCheck> rowChecks) {
    public Result {
      findings = List.copyOf(findings);
      rowChecks = List.copyOf(rowChecks);
    }
  }

  /**
   * The findings for {@code mapping} against {@code profile}, a StructureDefinition with its snapshot (as the
   * validator's definitions give it: {@code FhirValidation#profile}); {@code valueSetCodes} gives the codes of a value
   * set by url, or null when they cannot be known here ({@code FhirValidation#codesOf}); {@code extensions} the
   * definition of an extension by url, or null ({@code FhirValidation#profile}).
   */
  public static Result check(MappingConfig mapping, StructureDefinition profile,
      Function<String, Set<String>> valueSetCodes, Function<String, StructureDefinition> extensions) {
    Map<String, ElementDefinition> elements = new LinkedHashMap<>();
    Map<String, ElementDefinition> typeSlices = new LinkedHashMap<>();
    // The named slices of each sliced element, by the element's id (Observation.category: its VSCat).
    Map<String, List<ElementDefinition>> slices = new LinkedHashMap<>();
    Map<String, ElementDefinition> byId = new LinkedHashMap<>();
    java.util.regex.Pattern typeSlice = java.util.regex.Pattern.compile("([A-Za-z]+)\\[x]:(\\1[A-Z][A-Za-z]*)");
    for (ElementDefinition e : profile.getSnapshot().getElement()) {
      String id = e.hasId() ? e.getId() : e.getPath();
      byId.put(id, e);
      if (e.hasSliceName() && id.endsWith(":" + e.getSliceName())) {
        slices.computeIfAbsent(id.substring(0, id.length() - e.getSliceName().length() - 1), k -> new ArrayList<>())
            .add(e);
      }
      if (!id.contains(":")) {
        elements.put(e.getPath(), e);
      } else {
        // A slice of a choice element by type (value[x]:valueQuantity) constrains that type's alternative: its
        // elements are found under the alternative's name (Observation.valueQuantity.code).
        String byType = typeSlice.matcher(id).replaceAll("$2");
        if (!byType.contains(":")) {
          typeSlices.put(byType, e);
        }
      }
    }
    typeSlices.forEach(elements::putIfAbsent);
    Written root = new Written();
    for (ValueRule rule : mapping.elements()) {
      Written node = root;
      for (String segment : MappingCompiler.segments(rule.path())) {
        node = node.children.computeIfAbsent(repetition(segment), s -> new Written());
        node.rules.add(rule);
      }
    }
    List<Finding> findings = new ArrayList<>();
    List<RowCheck> rowChecks = new ArrayList<>();
    String name = profile.hasTitle() ? profile.getTitle() : profile.getName();
    new Visit(mapping, elements, slices, byId, name, canonical(profile), valueSetCodes, extensions, root, findings,
        rowChecks)
        .visit(profile.getType(), root, mapping.resourceLocation(), List.of(), true);
    return new Result(findings, rowChecks);
  }

  /**
   * The codes a mapping writes into Codings of a code system that is loaded with all its codes ({@code codeSystemCodes}
   * gives them by url, or null), wherever the Coding is: the validator finds any other code an error, whatever the
   * binding. A constant, default or code-map value outside the code system is an error; a code copied from the row is
   * a row check, at the Coding, or at the CodeableConcept whose coding it is, as the validator reports it. The units
   * of UCUM (the code of a Quantity or Coding of its system) are a grammar's, checked by {@link UcumUnits}: in the
   * query for a unit from the row, at the Quantity.
   */
  public static Result codeSystems(MappingConfig mapping, Function<String, Set<String>> codeSystemCodes) {
    Map<String, ValueRule> byPath = new LinkedHashMap<>();
    for (ValueRule r : mapping.elements()) {
      byPath.put(String.join(".", MappingCompiler.segments(r.path()).stream().map(ProfileConformance::repetition)
          .toList()), r);
    }
    List<Finding> findings = new ArrayList<>();
    List<RowCheck> rowChecks = new ArrayList<>();
    byPath.forEach((path, code) -> {
      if (!path.endsWith("code[0]") || path.equals("code[0]")) {
        return;
      }
      String parent = path.substring(0, path.length() - ".code[0]".length());
      ValueRule system = byPath.get(parent + ".system[0]");
      if (system == null || system.constant() == null) {
        return;
      }
      List<String> keys = List.of(parent.split("\\.(?![^\\[]*])"));
      boolean ofConcept = keys.get(keys.size() - 1).startsWith("coding[");
      if (system.constant().strip().equals(UcumUnits.SYSTEM)) {
        // A grammar, not a list: a unit from the row is checked by UCUM's service in the query, at the Quantity (or
        // the Coding), where the validator reports it.
        for (String v : valuesWritten(code).stream().distinct().toList()) {
          String error = UcumUnits.error(v);
          if (error != null) {
            findings.add(new Finding(true, code.location(), "mapping " + mapping.name() + " writes '" + v + "' to "
                + code.path() + ", which is not a UCUM unit: " + error));
          }
        }
        if (copiesFromRow(code)) {
          List<String> unit = new ArrayList<>(keys);
          unit.add("code[0]");
          rowChecks.add(new RowCheck(RowCheck.Kind.INVARIANT, keys, List.of(), List.of(), new RowCheck.Or(List.of(
              new RowCheck.Not(new RowCheck.Present(unit)), new RowCheck.Ucum(unit))),
              "Terminology_PassThrough_TX_Message", "The unit is not a unit of UCUM (" + UcumUnits.SYSTEM + ")",
              null));
        }
        return;
      }
      Set<String> codes = codeSystemCodes.apply(system.constant().strip());
      if (codes == null) {
        return;
      }
      for (String v : valuesWritten(code).stream().distinct().toList()) {
        if (!codes.contains(v)) {
          findings.add(new Finding(true, code.location(), "mapping " + mapping.name() + " writes '" + v + "' to "
              + code.path() + ", which is not a code of " + system.constant().strip() + " (" + codes.size()
              + " codes)"));
        }
      }
      if (copiesFromRow(code)) {
        List<String> at = ofConcept ? keys.subList(0, keys.size() - 1) : keys;
        List<String> codeKeys = ofConcept ? List.of(keys.get(keys.size() - 1), "code[0]") : List.of("code[0]");
        rowChecks.add(new RowCheck(RowCheck.Kind.NOT_IN_VALUE_SET, at, List.of(codeKeys), List.copyOf(codes),
            "Terminology_PassThrough_TX_Message", "Unknown code in code system " + system.constant().strip()));
      }
    });
    return new Result(findings, rowChecks);
  }

  /** The validator's message id for a required slice that is missing. */
  private static final String SLICE_MISSING = "Validation_VAL_Profile_Minimum_SLICE";

  /** The validator's message for a required slice that is missing: slice {@code id} of definition {@code from}. */
  private static String sliceMissing(String id, String from) {
    return "Slice '" + id + "': a matching slice is required, but not found (from " + from + "). Note that other"
        + " slices are allowed in addition to this required slice";
  }

  /** The values a rule writes whatever the row holds: its constant, its default, its code map's values. */
  private static List<String> valuesWritten(ValueRule rule) {
    List<String> values = new ArrayList<>();
    if (rule.constant() != null) {
      values.add(rule.constant().strip());
    }
    if (rule.defaultValue() != null) {
      values.add(rule.defaultValue().strip());
    }
    if (rule.unmapped() != ValueRule.Unmapped.KEEP) {
      rule.codeMap().values().forEach(v -> values.add(v.strip()));
    }
    return values;
  }

  /** Whether a rule can write what the row holds: no code map, or one that keeps other values. */
  private static boolean copiesFromRow(ValueRule rule) {
    return rule.constant() == null && (rule.codeMap().isEmpty() || rule.unmapped() == ValueRule.Unmapped.KEEP);
  }

  /** A definition's url and version as the validator names it in messages: {@code url|3.1.1}. */
  private static String canonical(StructureDefinition definition) {
    return definition.getUrl() + (definition.hasVersion() ? "|" + definition.getVersion() : "");
  }

  private static List<String> plus(List<String> keys, String key) {
    List<String> out = new ArrayList<>(keys);
    out.add(key);
    return out;
  }

  /**
   * What tells a slice's items apart ({@code Visit#sliceKey}): its own value for the discriminator {@code $this} (or
   * null), the value at each other discriminator's path, and whether an element is there at each path of a
   * discriminator by existence.
   */
  private record SliceKey(DataType self, List<Map.Entry<String, DataType>> atPaths, Map<String, Boolean> exists) {}

  /** A slice whose items the mapping writes in a way its condition cannot be compiled for (a list the row splits). */
  private static final class NotCompiled extends RuntimeException {
    NotCompiled() {
      super(null, null, false, false);
    }
  }

  /** The rules below one element the mapping writes, by the next path segment. */
  private static final class Written {
    final Map<String, Written> children = new LinkedHashMap<>();
    final List<ValueRule> rules = new ArrayList<>();
  }

  /** One mapping against one profile: the walk down the elements the mapping writes. */
  private record Visit(MappingConfig mapping, Map<String, ElementDefinition> elements,
      Map<String, List<ElementDefinition>> slices, Map<String, ElementDefinition> byId, String profile,
      String profileUrl, Function<String, Set<String>> valueSetCodes, Function<String, StructureDefinition> extensions,
      Written root, List<Finding> findings, List<RowCheck> rowChecks) {

    /**
     * {@code keys}: the mapping's path of {@code instance}, one key per level (see {@link RowCheck}); {@code always}:
     * whether every conformant resource of the mapping has it (it always has a value, or the profile requires it).
     */
    void visit(String path, Written instance, String location, List<String> keys, boolean always) {
      instance.children.forEach((key, written) -> {
        if (key.startsWith("extension[") && key.contains("://")) {
          StructureDefinition definition = extensions.apply(key.substring("extension[".length(), key.length() - 1));
          if (definition != null) {
            checkExtension(definition, written, plus(keys, key), always && !canBeLeftOut(written, instance,
                instance == root, mapping.id().column()));
          }
        }
      });
      for (Map.Entry<String, ElementDefinition> element : elements.entrySet()) {
        ElementDefinition e = element.getValue();
        String childPath = element.getKey(); // a type slice's elements are under the alternative's name
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
          String alternative = c.getKey().substring(0, c.getKey().indexOf('['));
          if (names.contains(alternative)) {
            written.add(c);
          } else if (choice && alternative.startsWith(name.substring(0, name.length() - 3))
              && alternative.length() > name.length() - 3
              && Character.isUpperCase(alternative.charAt(name.length() - 3)) && e.hasSlicing()) {
            // A type the profile's slicing of the choice element (closed, by type) does not allow.
            rowChecks.add(new RowCheck(RowCheck.Kind.PRESENT, plus(keys, c.getKey()), List.of(List.of()), List.of(),
                "Validation_VAL_Profile_NotSlice", "This element does not match any known slice defined in the"
                + " profile " + profileUrl + " and slicing is CLOSED"));
          }
        }
        // Where the element's required slices are checked, the validator reports those rather than its minimum.
        boolean slicesChecked = checkPatternSlices(e, written, keys, location, always);
        if (e.getMin() >= 1 && written.isEmpty()) {
          // Every resource fails, or every one with the element the mapping writes only when a column has a value.
          findings.add(new Finding(always, location, "mapping " + mapping.name() + " never writes " + childPath
              + ", which " + profile + " requires (min " + e.getMin() + "): " + (always ? "no resource of it can"
                  + " conform" : "its resources with " + path + " do not conform")));
          // As a row check too: it fails every row where the profile applies (one implied by a code of the row).
          if (!slicesChecked) {
            rowChecks.add(missing(e, childPath, keys, List.of()));
          }
          continue;
        }
        String idColumn = mapping.id().column();
        boolean canBeLeftOut = written.stream().allMatch(w -> canBeLeftOut(w.getValue(), instance, instance == root,
            idColumn));
        if ("0".equals(e.getMax()) && !written.isEmpty()) {
          // Written only when a column has a value, the rows without one still conform.
          findings.add(new Finding(always && !canBeLeftOut, written.get(0).getValue().rules.get(0).location(), "mapping "
              + mapping.name() + " writes " + childPath + ", which " + profile + " forbids (max 0)" + (canBeLeftOut
                  ? ", when " + columns(written) + " has a value" : "")));
          rowChecks.add(new RowCheck(RowCheck.Kind.PRESENT, keys, written.stream().map(w -> List.of(w.getKey()))
              .toList(), List.of(), "Validation_VAL_Profile_Maximum", childPath + ": max allowed = 0, but found 1"
              + " or more (from " + profileUrl + ")"));
          continue;
        }
        if (e.getMin() >= 1 && canBeLeftOut) {
          findings.add(new Finding(false, written.get(0).getValue().rules.get(0).location(), "mapping "
              + mapping.name() + " writes " + childPath + " (" + profile + " requires it) only when "
              + columns(written) + " has a value: rows without one give resources that do not conform (make the rule"
              + " required, or give it a default)"));
          if (!slicesChecked) {
            rowChecks.add(missing(e, childPath, keys, written.stream().map(w -> List.of(w.getKey())).toList()));
          }
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
          if (fixed instanceof PrimitiveType<?> value && child.children.isEmpty() && child.rules.size() == 1) {
            // The row's value (or the constant, for a profile implied by the row) must be the fixed one.
            List<String> here = plus(keys, w.getKey());
            rowChecks.add(new RowCheck(RowCheck.Kind.INVARIANT, here, List.of(), List.of(),
                new RowCheck.Equals(here, value.asStringValue()), e.hasFixed() ? "_DT_Fixed_Wrong"
                    : "_DT_Pattern_Wrong", "Value is not '" + value.asStringValue() + "', which " + profile
                    + " " + (e.hasFixed() ? "fixes" : "requires") + " (from " + profileUrl + ")", null));
          }
          checkBinding(e, childPath, child, plus(keys, w.getKey()));
          checkReferenceTarget(e, childPath, child, always && !canBeLeftOut(child, instance, instance == root,
              idColumn));
          // A choice element's alternative is visited under its own name, where its type slice puts its elements.
          visit(choice ? path + "." + w.getKey().substring(0, w.getKey().indexOf('[')) : childPath, child, at,
              plus(keys, w.getKey()), always && (e.getMin() >= 1 || !canBeLeftOut(child, instance, instance == root,
                  idColumn)));
        }
      }
    }

    /**
     * The resource type each rule of a Reference element's {@code reference} writes ({@code ref('Organization', c)},
     * or a constant {@code Organization/1}) against the types of the element's target profiles: a type none of them
     * allows is an error when every resource has the reference ({@code always}), else a warning. Offline, HAPI's
     * validator does not check the target of a reference it cannot resolve, so this is no row check.
     */
    void checkReferenceTarget(ElementDefinition e, String childPath, Written reference, boolean always) {
      Written target = reference.children.get("reference[0]");
      if (target == null || e.getType().size() != 1 || !e.getType().get(0).getCode().equals("Reference")
          || !e.getType().get(0).hasTargetProfile()) {
        return;
      }
      Set<String> allowed = new java.util.TreeSet<>();
      for (org.hl7.fhir.r5.model.CanonicalType t : e.getType().get(0).getTargetProfile()) {
        String type = targetType(t.getValue());
        if (type == null || type.equals("Resource")) {
          return; // a target this definition cannot tell, or any resource
        }
        allowed.add(type);
      }
      for (ValueRule rule : target.rules) {
        String type = referenceType(rule);
        if (type != null && !allowed.contains(type)) {
          findings.add(new Finding(always, rule.location(), "mapping " + mapping.name() + " writes a reference to "
              + type + " into " + childPath + ", where " + profile + " allows " + String.join(", ", allowed)
              + (always ? ": no resource of it can conform" : ": its resources with " + childPath
                  + " do not conform")));
        }
      }
    }

    /** The resource type of the definitions a target profile names, or null when not known here. */
    private String targetType(String url) {
      String base = "http://hl7.org/fhir/StructureDefinition/";
      if (url.startsWith(base) && url.indexOf('/', base.length()) < 0) {
        return url.substring(base.length());
      }
      StructureDefinition definition = extensions.apply(url);
      return definition == null ? null : definition.getType();
    }

    /**
     * The sub-extensions (slices of {@code Extension.extension}, by their url) that an extension's definition requires
     * of each one the mapping writes: US Core race needs its {@code text}.
     */
    void checkExtension(StructureDefinition definition, Written extension, List<String> keys, boolean always) {
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
          findings.add(new Finding(always, at, "mapping " + mapping.name() + " writes " + name + " without its"
              + " extension " + url + ", which it requires (min " + slice.getMin() + "): " + (always ? "no resource of"
                  + " it can conform" : "its resources with that extension do not conform")));
          rowChecks.add(requiredSlice(keys, url, id, definition));
        } else if (canBeLeftOut(sub, extension, false, mapping.id().column())) {
          findings.add(new Finding(false, sub.rules.get(0).location(), "mapping " + mapping.name() + " writes the"
              + " extension " + url + " of " + name + " (which requires it) only when " + columns(List.of(
                  Map.entry(url, sub))) + " has a value: rows without one give resources that do not conform (make"
              + " the rule required, or give it a default)"));
          rowChecks.add(requiredSlice(keys, url, id, definition));
        }
      }
    }

    /**
     * Adds the row checks of the slices of element {@code e} that its slicing tells apart by value or pattern
     * ({@link #sliceKey}: a CodeableConcept's coding, an Identifier's system, ...): for a required slice (min &gt;= 1)
     * one of the items the row writes ({@code written}) must be the slice, else the validator's "a matching slice is
     * required"; no more items than the slice's max may be; with a closed slicing, each item must be one of the
     * slices. A required slice no item can ever be (none written, none with the slice's values, a constant of another
     * value) is also a finding at {@code location} or the items' rule, an error when {@code always}. Returns whether
     * a required slice was checked (the validator then reports the slice rather than the element's minimum).
     */
    boolean checkPatternSlices(ElementDefinition e, List<Map.Entry<String, Written>> written, List<String> keys,
        String location, boolean always) {
      boolean checked = false;
      if (!e.hasSlicing() || !e.hasId()) {
        return checked;
      }
      // Each slice's condition on each item, in the items' order; null for a slice that is not compiled.
      Map<ElementDefinition, List<RowCheck.Pred>> bySlice = new LinkedHashMap<>();
      for (ElementDefinition slice : slices.getOrDefault(e.getId(), List.of())) {
        bySlice.put(slice, itemsBeing(e, slice, written, keys));
      }
      for (Map.Entry<ElementDefinition, List<RowCheck.Pred>> s : bySlice.entrySet()) {
        ElementDefinition slice = s.getKey();
        List<RowCheck.Pred> items = s.getValue();
        if (items == null) {
          continue;
        }
        if (slice.hasMax() && !"*".equals(slice.getMax()) && items.size() > Integer.parseInt(slice.getMax())) {
          // More of the row's items than the slice allows can be it.
          rowChecks.add(new RowCheck(RowCheck.Kind.INVARIANT, keys, List.of(), List.of(), new RowCheck.Count(items,
              "<=", Integer.parseInt(slice.getMax())), "Validation_VAL_Profile_Maximum", slice.getId()
              + ": max allowed = " + slice.getMax() + ", but found more (from " + profileUrl + ")", null));
        }
        if (slice.getMin() < 1) {
          continue;
        }
        RowCheck.Pred any = ProfileInvariants.or(items);
        // (Written nowhere, a required element is a finding of its own already.)
        if (any instanceof RowCheck.Const c && !c.value() && (!written.isEmpty() || e.getMin() < 1)) {
          findings.add(new Finding(always, written.isEmpty() ? location
              : written.get(0).getValue().rules.get(0).location(), "mapping "
              + mapping.name() + " writes no item of " + e.getPath() + " that can be slice " + slice.getId()
              + ", which " + profile + " requires (min " + slice.getMin() + "): " + (always ? "no resource of it can"
                  + " conform" : "its resources with " + e.getPath().substring(0, e.getPath().lastIndexOf('.'))
                  + " do not conform")));
        }
        rowChecks.add(new RowCheck(RowCheck.Kind.INVARIANT, keys, List.of(), List.of(), any, SLICE_MISSING,
            sliceMissing(slice.getId(), profileUrl), null));
        checked = true;
      }
      checkClosedSlicing(e, written, keys, bySlice);
      return checked;
    }

    /**
     * The condition that each of {@code written} (in order) is {@code slice} of {@code e}; null when the slice is not
     * compiled ({@link #sliceKey}, {@link NotCompiled}).
     */
    private List<RowCheck.Pred> itemsBeing(ElementDefinition e, ElementDefinition slice,
        List<Map.Entry<String, Written>> written, List<String> keys) {
      SliceKey key = sliceKey(e, slice);
      if (key == null) {
        return null;
      }
      List<RowCheck.Pred> items = new ArrayList<>();
      try {
        for (Map.Entry<String, Written> item : written) {
          items.add(isSlice(plus(keys, item.getKey()), item.getValue(), key));
        }
      } catch (NotCompiled x) {
        return null;
      }
      return items;
    }

    /**
     * A closed slicing of element {@code e} whose slices are all compiled ({@code bySlice}: each slice's condition on
     * each item): each item the mapping writes must be one of them, else the validator's "does not match any known
     * slice" at the item. An item that can be none is also a warning. (A choice element's closed slicing by type is
     * checked where its types are.)
     */
    private void checkClosedSlicing(ElementDefinition e, List<Map.Entry<String, Written>> written, List<String> keys,
        Map<ElementDefinition, List<RowCheck.Pred>> bySlice) {
      if (e.getSlicing().getRules() != ElementDefinition.SlicingRules.CLOSED || bySlice.isEmpty()
          || bySlice.containsValue(null)) {
        return; // without slices, the validator marks no item as outside them
      }
      for (int i = 0; i < written.size(); i++) {
        Map.Entry<String, Written> item = written.get(i);
        List<RowCheck.Pred> any = new ArrayList<>();
        for (List<RowCheck.Pred> items : bySlice.values()) {
          any.add(items.get(i));
        }
        RowCheck.Pred isASlice = ProfileInvariants.or(any);
        if (isASlice instanceof RowCheck.Const c && !c.value()) {
          findings.add(new Finding(false, item.getValue().rules.get(0).location(), "mapping " + mapping.name()
              + " writes an item of " + e.getPath() + " (" + item.getKey() + ") that can be none of the slices of"
              + " its closed slicing in " + profile + ": the resources with it do not conform"));
        }
        rowChecks.add(new RowCheck(RowCheck.Kind.INVARIANT, plus(keys, item.getKey()), List.of(), List.of(),
            isASlice, "Validation_VAL_Profile_NotSlice", "This element does not match any known slice defined in the"
            + " profile " + profileUrl + " and slicing is CLOSED", null));
      }
    }

    /**
     * What tells the items of {@code slice} of {@code sliced} apart, by the slicing's discriminators of type value or
     * pattern: the slice's own fixed or pattern value for {@code $this}, and for each other path (plain element
     * names), the fixed or pattern value of the slice's element there ({@code category:VSCat.coding.code},
     * {@code identifier:mrn.system}); a path without a value is skipped, as the validator skips it. By existence:
     * whether the slice's element at the path is required or forbidden. Null when a discriminator is of another type
     * (type, profile) or path ({@code resolve()}, {@code extension('...')}), or when none tells anything (the validator
     * then cannot tell the slice, an error of its own).
     */
    private SliceKey sliceKey(ElementDefinition sliced, ElementDefinition slice) {
      if (!sliced.getSlicing().hasDiscriminator()) {
        return null;
      }
      DataType self = null;
      List<Map.Entry<String, DataType>> atPaths = new ArrayList<>();
      Map<String, Boolean> exists = new LinkedHashMap<>();
      for (ElementDefinition.ElementDefinitionSlicingDiscriminatorComponent d
          : sliced.getSlicing().getDiscriminator()) {
        String path = d.getPath();
        boolean byValue = d.getType() == ElementDefinition.DiscriminatorType.VALUE
            || d.getType() == ElementDefinition.DiscriminatorType.PATTERN;
        boolean byExistence = d.getType() == ElementDefinition.DiscriminatorType.EXISTS;
        if (!byValue && !byExistence || !path.equals("$this") && !path.matches("[a-z][A-Za-z]*(\\.[a-z][A-Za-z]*)*")
            || byExistence && path.equals("$this")) {
          return null;
        }
        if (byExistence) {
          // The slice's element there is required (min >= 1) or forbidden (max 0); otherwise the validator cannot
          // tell the slice, an error of its own.
          ElementDefinition at = byId.get(slice.getId() + "." + path);
          if (at == null || at.getMin() < 1 && !"0".equals(at.getMax())) {
            return null;
          }
          exists.put(path, at.getMin() >= 1);
          continue;
        }
        if (path.equals("$this")) {
          self = slice.hasPattern() ? slice.getPattern() : slice.hasFixed() ? slice.getFixed() : null;
          if (self == null) {
            return null;
          }
          continue;
        }
        ElementDefinition at = byId.get(slice.getId() + "." + path);
        DataType value = at == null ? null : at.hasFixed() ? at.getFixed() : at.hasPattern() ? at.getPattern() : null;
        if (value != null) {
          atPaths.add(Map.entry(path, value));
        }
      }
      return self == null && atPaths.isEmpty() && exists.isEmpty() ? null : new SliceKey(self, atPaths, exists);
    }

    /**
     * The condition that the item the mapping writes at {@code at} ({@code item}) is the slice {@code key} tells:
     * it holds the slice's own value, and each discriminator's value is among the item's values at its path (each path
     * on its own, as the validator asks: two codings may give the system and the code).
     */
    private RowCheck.Pred isSlice(List<String> at, Written item, SliceKey key) {
      List<RowCheck.Pred> all = new ArrayList<>();
      if (key.self() != null) {
        all.add(holds(at, item, key.self()));
      }
      for (Map.Entry<String, DataType> p : key.atPaths()) {
        all.add(somewhere(at, item, p.getKey().split("\\."), 0, p.getValue()));
      }
      key.exists().forEach((path, there) -> {
        RowCheck.Pred any = somewhere(at, item, path.split("\\."), 0, null);
        all.add(there ? any : ProfileInvariants.not(any));
      });
      return ProfileInvariants.and(all);
    }

    /**
     * Whether one of the item's instances at path {@code names} (from {@code i}) holds {@code value} (null: is
     * written).
     */
    private RowCheck.Pred somewhere(List<String> at, Written item, String[] names, int i,
        org.hl7.fhir.r5.model.Base value) {
      if (i == names.length) {
        return value == null ? new RowCheck.Present(at) : holds(at, item, value);
      }
      List<RowCheck.Pred> any = new ArrayList<>();
      item.children.forEach((k, child) -> {
        if (k.startsWith(names[i] + "[")) {
          any.add(somewhere(plus(at, k), child, names, i + 1, value));
        }
      });
      return ProfileInvariants.or(any);
    }

    /**
     * The condition that the item the mapping writes at {@code at} ({@code item}) holds every value of
     * {@code pattern}, as the validator matches a pattern: a primitive equal, each complex value held by one of the
     * item's repetitions of that element.
     */
    private RowCheck.Pred holds(List<String> at, Written item, org.hl7.fhir.r5.model.Base pattern) {
      if (pattern instanceof PrimitiveType<?> value) {
        return equalsWritten(at, item, value);
      }
      List<RowCheck.Pred> all = new ArrayList<>();
      for (org.hl7.fhir.r5.model.Property p : pattern.children()) {
        for (org.hl7.fhir.r5.model.Base v : p.getValues()) {
          if (v.isEmpty()) {
            continue;
          }
          List<RowCheck.Pred> any = new ArrayList<>();
          item.children.forEach((k, child) -> {
            if (k.startsWith(p.getName() + "[")) {
              any.add(holds(plus(at, k), child, v));
            }
          });
          all.add(ProfileInvariants.or(any));
        }
      }
      return ProfileInvariants.and(all);
    }

    /**
     * The condition that primitive {@code item} at {@code at} is written with {@code value}: decided here for a
     * constant of a text type (as the engine writes it, trimmed: then whether the item is written at all), else by
     * the row. A list the row splits into repetitions is not compiled ({@link NotCompiled}).
     */
    private static RowCheck.Pred equalsWritten(List<String> at, Written item, PrimitiveType<?> value) {
      if (item.children.isEmpty() && item.rules.size() == 1 && item.rules.get(0).expression() != null) {
        try {
          if (Expr.isList(Expr.parse(item.rules.get(0).expression()))) {
            throw new NotCompiled();
          }
        } catch (Expr.BadExpression e) {
          throw new NotCompiled();
        }
      }
      if (!value.hasValue()) {
        return new RowCheck.Present(at);
      }
      if (item.children.isEmpty() && item.rules.size() == 1 && item.rules.get(0).constant() != null
          && TEXT_TYPES.contains(value.fhirType())) {
        return item.rules.get(0).constant().strip().equals(value.asStringValue()) ? new RowCheck.Present(at)
            : new RowCheck.Const(false);
      }
      return new RowCheck.Equals(at, value.asStringValue());
    }

    /** Primitive types whose value the engine writes as the constant's text, trimmed. */
    private static final Set<String> TEXT_TYPES = Set.of("string", "code", "uri", "url", "canonical", "id", "oid",
        "uuid", "markdown");

    /**
     * The row check of required element {@code e} at {@code childPath}, below the instance at {@code keys}, met by any
     * of {@code written}: a minimum, or for a choice element's type slice (value[x]:valueQuantity, min 1) a required
     * slice, as the validator reports it.
     */
    private RowCheck missing(ElementDefinition e, String childPath, List<String> keys, List<List<String>> written) {
      return e.hasSliceName() ? new RowCheck(RowCheck.Kind.MISSING, keys, written, List.of(), SLICE_MISSING,
          sliceMissing(e.getId(), profileUrl))
          : new RowCheck(RowCheck.Kind.MISSING, keys, written, List.of(), "Validation_VAL_Profile_Minimum", childPath
              + ": minimum required = " + e.getMin() + ", but only found 0 (from " + profileUrl + ")");
    }

    /** The row check of an extension's required extension {@code url} (slice {@code id} of its definition). */
    private static RowCheck requiredSlice(List<String> keys, String url, String id, StructureDefinition definition) {
      return new RowCheck(RowCheck.Kind.MISSING, keys, List.of(List.of("extension[" + url + "]")), List.of(),
          SLICE_MISSING, sliceMissing(id, canonical(definition)));
    }

    /**
     * The codes a leaf can write (its constant, default, code map's values, the literals of its expression) against a
     * required binding of the profile on that element, or on the Coding or CodeableConcept it is the code of.
     */
    void checkBinding(ElementDefinition e, String elementPath, Written child, List<String> keys) {
      if (!e.hasBinding() || e.getBinding().getStrength() != Enumerations.BindingStrength.REQUIRED
          || !e.getBinding().hasValueSet()) {
        return;
      }
      // The code elements, by their keys below the bound element: itself (a code), a Coding's code, or the code of
      // each coding of a CodeableConcept.
      Map<List<String>, Written> codeElements = new LinkedHashMap<>();
      String messageId;
      if (child.children.isEmpty()) {
        codeElements.put(List.of(), child);
        messageId = "Terminology_TX_NoValid_16";
      } else if (child.children.keySet().stream().anyMatch(k -> k.startsWith("coding["))) {
        child.children.forEach((k, coding) -> {
          if (k.startsWith("coding[") && coding.children.containsKey("code[0]")) {
            codeElements.put(List.of(k, "code[0]"), coding.children.get("code[0]"));
          }
        });
        messageId = "Terminology_TX_NoValid_1_CC";
      } else {
        if (child.children.containsKey("code[0]")) {
          codeElements.put(List.of("code[0]"), child.children.get("code[0]"));
        }
        messageId = "Terminology_TX_NoValid_12";
      }
      if (codeElements.isEmpty()) {
        return;
      }
      Set<String> codes = valueSetCodes.apply(e.getBinding().getValueSet());
      if (codes == null) {
        return; // not expandable here: left to a run's validation
      }
      boolean rowCheck = false;
      for (Written code : codeElements.values()) {
        for (ValueRule r : code.rules) {
          List<String> values = valuesWritten(r);
          if (r.expression() != null && r.codeMap().isEmpty()) {
            values.addAll(literalsWritten(r.expression()));
          }
          // A value as read (no code map, or kept when unmapped), or computed by an expression: only the row tells.
          rowCheck |= copiesFromRow(r);
          for (String v : values.stream().distinct().toList()) {
            if (!codes.contains(v)) {
              rowCheck = true; // a row check too, for a profile implied by the row's code
              findings.add(new Finding(true, r.location(), "mapping " + mapping.name() + " writes '" + v + "' to "
                  + elementPath + ", which " + profile + " binds to " + e.getBinding().getValueSet() + " (required)"
                  + (codes.size() <= 12 ? ", whose codes are " + String.join(", ", codes)
                      : ", which does not hold it (" + codes.size() + " codes)")));
            }
          }
        }
      }
      if (rowCheck) {
        String valueSet = e.getBinding().getValueSet();
        rowChecks.add(new RowCheck(RowCheck.Kind.NOT_IN_VALUE_SET, keys, List.copyOf(codeElements.keySet()),
            List.copyOf(codes), messageId, switch (messageId) {
              case "Terminology_TX_NoValid_16" -> "The value provided was not found in the value set " + valueSet
                  + ", and a code is required from this value set (" + profile + ")";
              case "Terminology_TX_NoValid_12" -> "The Coding provided was not found in the value set " + valueSet
                  + ", and a code is required from this value set (" + profile + ")";
              default -> "None of the codings provided are in the value set " + valueSet + ", and a coding from this"
                  + " value set is required (" + profile + ")";
            }));
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
        Expr.columns(Expr.parse(rule.expression()), columns);
      } catch (Expr.BadExpression e) {
        columns.add(""); // the compiler reports it; unknown columns
      }
    }
    return columns;
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

  /**
   * The resource type a rule of a reference writes: the type of its {@code ref()} or of its constant
   * ({@code Type/id}); null when the row decides it.
   */
  private static String referenceType(ValueRule rule) {
    String text = null;
    if (rule.constant() != null) {
      text = rule.constant().strip();
    } else if (rule.expression() != null) {
      try {
        if (Expr.parse(rule.expression()) instanceof Expr.Call c && c.function().equals("ref")
            && c.args().get(0) instanceof Expr.Literal l) {
          return l.text();
        }
      } catch (Expr.BadExpression e) {
        return null; // the compiler reports it
      }
    }
    return text != null && text.matches("[A-Z][A-Za-z]+/[^/]+") ? text.substring(0, text.indexOf('/')) : null;
  }

  /** What a rule's value comes from, for a message: its column or its expression. */
  private static String from(ValueRule rule) {
    return rule.column() != null ? "column " + rule.column() : "expression " + rule.expression();
  }
}
