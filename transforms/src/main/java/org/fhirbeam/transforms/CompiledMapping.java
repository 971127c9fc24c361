package org.fhirbeam.transforms;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.ValueRule;
import org.fhirbeam.io.ElementPath;

/**
 * A mapping checked against the FHIR R4 definitions and turned into a plan: value rules (leaves) and an element
 * tree in FHIR order, so that building a resource needs no path parsing, reflection or HAPI objects per row.
 * It is an immutable, serializable value, built once on the driver and shipped to workers.
 */
public final class CompiledMapping implements Serializable {
  private static final long serialVersionUID = 1L;

  /**
   * A column of the flat views of the output: one per mapped element. {@code fhirType} is the element's FHIR
   * primitive as rules name it ({@code date}, {@code dateTime}, {@code instant}, {@code decimal}, ... or
   * {@code value}), so quality checks can find the dates.
   */
  public record FlatColumn(String name, String path, String jsonPath, String sqlType, boolean topLevel,
      String fhirType) implements Serializable {

    /** Whether the element holds a date or a point in time. */
    public boolean temporal() {
      return fhirType.equals("date") || fhirType.equals("dateTime") || fhirType.equals("instant");
    }
  }

  /**
   * A mapped element that holds one value per resource (no {@code split()} list), for the quality figures: its path
   * as the mapping names it, where it sits in the JSON, its flat column ({@code null} inside an extension), and
   * whether it is the {@code reference} of a Reference.
   */
  public record ValueElement(String path, ElementPath location, String column, boolean reference)
      implements Serializable {}

  private final String name;
  private final String source;
  private final String resourceType;
  private final Leaf id;
  private final Leaf[] leaves;
  private final Element[] root;
  private final List<FlatColumn> flatColumns;
  private final List<ValueElement> valueElements;
  private final List<org.fhirbeam.config.QualityRule> rules;
  /** The source columns the SQL rules may read (so files lacking one still give it, as NULL). */
  private final List<String> ruleColumns;
  /** The checks of the claimed profiles that depend on the row, evaluated by the mapping's query; empty unless set. */
  private final List<RowCheck> rowChecks;
  /** The profiles' invariants checked on the built resources with HAPI's FHIRPath engine; empty unless set. */
  private final List<FhirPathCheck> fhirPathChecks;

  CompiledMapping(String name, String source, String resourceType, Leaf id, Leaf[] leaves, Element[] root,
      List<FlatColumn> flatColumns, List<ValueElement> valueElements, List<org.fhirbeam.config.QualityRule> rules,
      List<String> ruleColumns) {
    this(name, source, resourceType, id, leaves, root, flatColumns, valueElements, rules, ruleColumns, List.of(),
        List.of());
  }

  private CompiledMapping(String name, String source, String resourceType, Leaf id, Leaf[] leaves, Element[] root,
      List<FlatColumn> flatColumns, List<ValueElement> valueElements, List<org.fhirbeam.config.QualityRule> rules,
      List<String> ruleColumns, List<RowCheck> rowChecks, List<FhirPathCheck> fhirPathChecks) {
    this.rowChecks = List.copyOf(rowChecks);
    this.fhirPathChecks = List.copyOf(fhirPathChecks);
    this.rules = List.copyOf(rules);
    this.ruleColumns = List.copyOf(ruleColumns);
    this.name = name;
    this.source = source;
    this.resourceType = resourceType;
    this.id = id;
    this.leaves = leaves;
    this.root = root;
    this.flatColumns = List.copyOf(flatColumns);
    this.valueElements = List.copyOf(valueElements);
  }

  public String name() {
    return name;
  }

  public String source() {
    return source;
  }

  public String resourceType() {
    return resourceType;
  }

  /** One column per mapped element, in mapping order, for the flat tables of the output. */
  public List<FlatColumn> flatColumns() {
    return flatColumns;
  }

  /** Every mapped element with one value per resource, in mapping order: the flat columns' and those in extensions. */
  public List<ValueElement> valueElements() {
    return valueElements;
  }

  /** The mapping's data-quality rules, SQL and FHIRPath, in file order. */
  public List<org.fhirbeam.config.QualityRule> rules() {
    return rules;
  }

  /** The FHIRPath rules, which run on the built resources after the mapping. */
  public List<org.fhirbeam.config.QualityRule> fhirPathRules() {
    return rules.stream().filter(r -> !r.isSql()).toList();
  }

  /** The SQL rules, which run inside the mapping's query. */
  public List<org.fhirbeam.config.QualityRule> sqlRules() {
    return rules.stream().filter(org.fhirbeam.config.QualityRule::isSql).toList();
  }

  List<String> ruleColumns() {
    return ruleColumns;
  }

  /**
   * The profiles' checks that depend on the row ({@link ProfileConformance}), which the mapping's query evaluates
   * (validation mode {@code compiled}): a row failing one is a reject of stage {@code validation}.
   */
  public List<RowCheck> rowChecks() {
    return rowChecks;
  }

  /**
   * The profiles' invariants that are not SQL, checked on each built resource with HAPI's FHIRPath engine
   * (validation mode {@code compiled}).
   */
  public List<FhirPathCheck> fhirPathChecks() {
    return fhirPathChecks;
  }

  /** This mapping with {@code checks} as its {@link #rowChecks} and {@code fhirPath} as its {@link #fhirPathChecks}. */
  public CompiledMapping withChecks(List<RowCheck> checks, List<FhirPathCheck> fhirPath) {
    return new CompiledMapping(name, source, resourceType, id, leaves, root, flatColumns, valueElements, rules,
        ruleColumns, checks, fhirPath);
  }

  Leaf id() {
    return id;
  }

  /**
   * The source column the id is taken from unchanged (trimmed), or null when the id rule is an expression, a
   * constant, or maps or defaults the value: then no column of the row holds the id as written.
   */
  public String idColumn() {
    return id.input instanceof Expr.Column c && id.codeMap.isEmpty() && id.defaultValue == null ? c.name() : null;
  }

  Leaf[] leaves() {
    return leaves;
  }

  Element[] root() {
    return root;
  }

  /** One value rule, bound to a FHIR primitive; DuckDB evaluates it (see {@link SqlMapping}). */
  static final class Leaf implements Serializable {
    private static final long serialVersionUID = 1L;

    final String path;
    /** Where the value comes from: a column or an expression; null for a constant. */
    final Expr input;
    /** The canonical FHIR text of the constant, or null when the value comes from the row. */
    final String constant;
    /** Source code (lower-cased when {@link #ignoreCase}) to canonical target text; empty when values pass as they are. */
    final Map<String, String> codeMap;
    final boolean ignoreCase;
    final String defaultValue;
    final PrimitiveKind kind;
    final List<PrimitiveKind.DatePattern> datePatterns;
    final boolean required;
    /** The IANA zone of date-time inputs without an offset and of the written dateTime; null for UTC. */
    final String timezone;
    /** Whether the input is a list (split()) whose pieces become repetitions. */
    final boolean list;
    /** Whether {@link #codeMap} is the rule's own ({@code map}/{@code map_file}), not a required binding's codes. */
    final boolean declaredMap;
    /** The plausible range of a number element (a warn check); null bounds are open. */
    final java.math.BigDecimal rangeMin;
    final java.math.BigDecimal rangeMax;

    /** What a present input that is not in {@link #codeMap} becomes. */
    final ValueRule.Unmapped unmapped;
    /**
     * For a value kept unmapped ({@link ValueRule.Unmapped#KEEP}): the codes of the element's required binding, one
     * of which it must be; null when the element has no required binding.
     */
    final List<String> boundCodes;

    Leaf(String path, Expr input, String constant, Map<String, String> codeMap, boolean ignoreCase,
        String defaultValue, PrimitiveKind kind, List<PrimitiveKind.DatePattern> datePatterns, String timezone,
        boolean required, boolean declaredMap, java.math.BigDecimal rangeMin, java.math.BigDecimal rangeMax,
        ValueRule.Unmapped unmapped, List<String> boundCodes) {
      this.unmapped = unmapped;
      this.boundCodes = boundCodes == null ? null : List.copyOf(boundCodes);
      this.declaredMap = declaredMap;
      this.rangeMin = rangeMin;
      this.rangeMax = rangeMax;
      this.path = path;
      this.input = input;
      this.constant = constant;
      this.codeMap = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(codeMap));
      this.ignoreCase = ignoreCase;
      this.defaultValue = defaultValue;
      this.kind = kind;
      this.datePatterns = List.copyOf(datePatterns);
      this.required = required;
      this.timezone = timezone;
      this.list = input != null && Expr.isList(input);
    }

    /** The input as reasons name it: {@code column 'X'} or {@code expression 'lower(X)'}. */
    String inputText() {
      if (input == null) {
        return "constant";
      }
      return input instanceof Expr.Column c ? "column '" + c.name() + "'" : "expression '" + Expr.text(input) + "'";
    }

    String formatsText() {
      List<String> names = new java.util.ArrayList<>();
      for (PrimitiveKind.DatePattern p : datePatterns) {
        names.add(p.javaPattern());
      }
      return String.join(" or ", names);
    }
  }

  /**
   * The element instances along {@code keys}, a path of the mapping with one key per level ({@code identifier[0]},
   * {@code extension[http://...]}, see {@link RowCheck}), below {@code from} (null for the resource): for each key,
   * its element and the position of its item; null when the mapping never writes one of them.
   */
  List<Found> find(Item from, List<String> keys) {
    List<Found> out = new java.util.ArrayList<>();
    Item at = from;
    for (String key : keys) {
      if (at != null && at.leaf >= 0) {
        return null; // a primitive has no elements
      }
      String name = key.substring(0, key.indexOf('['));
      String index = key.substring(key.indexOf('[') + 1, key.length() - 1);
      Found found = null;
      for (Element e : at == null ? root : at.children) {
        int j = e.name.equals(name) ? List.of(e.keys).indexOf(index) : -1;
        if (j >= 0) {
          found = new Found(e, j);
        }
      }
      if (found == null) {
        return null;
      }
      out.add(found);
      at = found.item();
    }
    return out;
  }

  /** An element instance: its element, and the position of its item among the element's. */
  record Found(Element element, int index) {
    Item item() {
      return element.items[index];
    }
  }

  /** A named element of a composite, with its repetitions in index order. */
  static final class Element implements Serializable {
    private static final long serialVersionUID = 1L;

    final String name;
    /** The element's position in its parent's definition: the alternatives of a choice element share it. */
    final int order;
    final boolean repeating;
    final Item[] items;
    /**
     * What the mapping's paths call each item: its index as written ({@code identifier[2]} is "2", though it is the
     * second item when there is no [1]), or an extension's url.
     */
    final String[] keys;
    /** How the validator names the element in locations: its name, or {@code value.ofType(Quantity)} for a choice. */
    final String located;

    Element(String name, int order, boolean repeating, Item[] items, String[] keys, String located) {
      this.located = located;
      this.name = name;
      this.order = order;
      this.repeating = repeating;
      this.items = items;
      this.keys = keys;
    }
  }

  /** One repetition: a primitive (a leaf) or a composite with child elements. */
  static final class Item implements Serializable {
    private static final long serialVersionUID = 1L;

    final int leaf;
    final Element[] children;

    Item(int leaf, Element[] children) {
      this.leaf = leaf;
      this.children = children;
    }
  }
}
