package org.fhirbeam.transforms;

import ca.uhn.fhir.context.BaseRuntimeChildDefinition;
import ca.uhn.fhir.context.BaseRuntimeElementCompositeDefinition;
import ca.uhn.fhir.context.BaseRuntimeElementDefinition;
import ca.uhn.fhir.context.BaseRuntimeElementDefinition.ChildTypeEnum;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.RuntimeChildChoiceDefinition;
import ca.uhn.fhir.context.RuntimeChildExtension;
import ca.uhn.fhir.context.RuntimeResourceDefinition;
import ca.uhn.fhir.parser.DataFormatException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.ValueRule;
import org.fhirbeam.io.ElementPath;
import org.hl7.fhir.r4.model.EnumFactory;

/**
 * Checks a mapping against HAPI's FHIR R4 definitions and compiles it. Every problem of a mapping (unknown
 * element, single-valued element mapped twice or indexed, a composite mapped as a value, a value the target
 * type cannot hold, a code outside a required binding, a column the source lacks) is collected and reported at
 * once, each with file, line and path.
 */
public final class MappingCompiler {
  private static final Pattern SEGMENT = Pattern.compile("([A-Za-z][A-Za-z0-9]*)(?:\\[([^\\[\\]]+)\\])?");
  /** Elements of the resource that element rules do not set. */
  private static final Set<String> RESERVED = Set.of("id", "text", "contained", "modifierExtension");

  private MappingCompiler() {}

  static FhirContext fhirContext() {
    return FhirContext.forR4Cached();
  }

  /** Loads HAPI's definitions of these resource types (unknown names are left for {@link #compile} to report). */
  public static void loadDefinitions(Collection<String> resourceTypes) {
    for (String type : resourceTypes) {
      try {
        fhirContext().getResourceDefinition(type);
      } catch (DataFormatException e) {
        // reported by compile()
      }
    }
  }

  /**
   * Compiles every mapping, {@code columns} giving the columns of each one's source (null to skip that check);
   * the problems of all mappings are reported together, in one {@link MappingException}.
   */
  public static List<CompiledMapping> compileAll(List<MappingConfig> mappings,
      java.util.function.Function<MappingConfig, Collection<String>> columns) {
    List<CompiledMapping> out = new ArrayList<>();
    List<MappingException> errors = new ArrayList<>();
    for (MappingConfig m : mappings) {
      try {
        out.add(compile(m, columns.apply(m)));
      } catch (MappingException e) {
        errors.add(e);
      }
    }
    if (!errors.isEmpty()) {
      throw MappingException.combine(errors);
    }
    return out;
  }

  /**
   * Compiles {@code mapping}; {@code sourceColumns} lists the columns its source has (null to skip that check).
   */
  public static CompiledMapping compile(MappingConfig mapping, Collection<String> sourceColumns) {
    sourceColumns = withOptionalColumns(sourceColumns, mapping.optionalColumns());
    List<String> problems = new ArrayList<>();
    RuntimeResourceDefinition def;
    try {
      def = fhirContext().getResourceDefinition(mapping.resourceType());
    } catch (DataFormatException e) {
      throw new MappingException(mapping.name(), List.of(mapping.resourceLocation() + ": resource: '"
          + mapping.resourceType() + "' is not a FHIR R4 resource type"));
    }
    if (!def.getName().equals(mapping.resourceType())) {
      throw new MappingException(mapping.name(), List.of(mapping.resourceLocation() + ": resource: '"
          + mapping.resourceType() + "' is not a FHIR R4 resource type (did you mean " + def.getName() + "?)"));
    }

    List<CompiledMapping.Leaf> leaves = new ArrayList<>();
    List<CompiledMapping.FlatColumn> flat = new ArrayList<>();
    List<CompiledMapping.ValueElement> values = new ArrayList<>();
    ValueRule idRule = mapping.id();
    if (idRule.constant() != null || !idRule.codeMap().isEmpty() || idRule.defaultValue() != null
        || !idRule.formats().isEmpty()) {
      problems.add(idRule.location() + ": id: the id rule takes a 'column' or an 'expr' and nothing else");
    }
    CompiledMapping.Leaf id = leaf(idRule, PrimitiveKind.ID, null, false, sourceColumns, mapping, problems);
    MutableItem root = new MutableItem();
    for (ValueRule rule : mapping.elements()) {
      try {
        place(def, root, rule, sourceColumns, mapping, leaves, flat, values, problems);
      } catch (PathProblem p) {
        problems.add(rule.location() + ": " + rule.path() + ": " + p.getMessage());
      }
    }
    List<String> ruleColumns = new ArrayList<>();
    for (org.fhirbeam.config.QualityRule r : mapping.rules()) {
      String where = r.location() + ": rules." + r.name() + ".";
      if (r.isSql()) {
        String problem = QualityRules.checkSql(r.sql(), sourceColumns);
        if (problem != null) {
          problems.add(where + "sql: " + problem);
        } else if (sourceColumns != null) {
          ruleColumns.addAll(QualityRules.columnsNamed(r.sql(), sourceColumns));
        }
      } else {
        String problem = QualityRules.checkFhirPath(r.fhirPath());
        if (problem != null) {
          problems.add(where + "fhirpath: " + problem);
        }
      }
    }
    if (!problems.isEmpty()) {
      throw new MappingException(mapping.name(), problems);
    }
    return new CompiledMapping(mapping.name(), mapping.source(), def.getName(), id,
        leaves.toArray(new CompiledMapping.Leaf[0]), root.freezeChildren(), flat, values, mapping.rules(),
        ruleColumns.stream().distinct().toList());
  }

  /**
   * The source's columns and the mapping's optional columns it lacks, which every file then gives as NULL (see
   * {@code ReadTask.textRows}); null when the source's columns are not known.
   */
  private static Collection<String> withOptionalColumns(Collection<String> sourceColumns, List<String> optional) {
    if (sourceColumns == null || optional.isEmpty()) {
      return sourceColumns;
    }
    Set<String> out = new LinkedHashSet<>(sourceColumns);
    out.addAll(optional);
    return out;
  }

  private static void place(RuntimeResourceDefinition def, MutableItem root, ValueRule rule,
      Collection<String> sourceColumns, MappingConfig mapping, List<CompiledMapping.Leaf> leaves,
      List<CompiledMapping.FlatColumn> flat, List<CompiledMapping.ValueElement> values, List<String> problems)
      throws PathProblem {
    List<String> segments = segments(rule.path());
    List<ElementPath.Step> steps = new ArrayList<>();
    BaseRuntimeElementCompositeDefinition<?> current = def;
    MutableItem item = root;
    StringBuilder normalized = new StringBuilder();
    boolean flatPath = true;
    for (int i = 0; i < segments.size(); i++) {
      Matcher m = SEGMENT.matcher(segments.get(i));
      if (!m.matches()) {
        throw new PathProblem("'" + segments.get(i) + "' is not a path segment (write name, name[index] or"
            + " extension[url])");
      }
      String name = m.group(1);
      String bracket = m.group(2);
      if (i == 0 && RESERVED.contains(name)) {
        throw new PathProblem(name.equals("id") ? "the resource id is set by the mapping's 'id' rule"
            : "element '" + name + "' cannot be set by an element rule");
      }
      BaseRuntimeChildDefinition child = current.getChildByName(name);
      if (child == null) {
        for (BaseRuntimeChildDefinition c : current.getChildren()) {
          if (c instanceof RuntimeChildChoiceDefinition choice && !(c instanceof RuntimeChildExtension)
              && c.getElementName().equals(name)) {
            List<String> options = new ArrayList<>();
            for (String n : choice.getValidChildNames()) {
              options.add(n);
            }
            options.sort(null);
            throw new PathProblem("'" + name + "' is a choice element: name it with its type ("
                + String.join(", ", options) + ")");
          }
        }
        throw new PathProblem("'" + name + "' is not an element of " + current.getName() + " (elements: "
            + String.join(", ", childNames(current)) + ")");
      }
      boolean extension = name.equals("extension");
      boolean repeating = child.getMax() != 1;
      if (extension && (bracket == null || bracket.matches("\\d+"))) {
        throw new PathProblem("extensions are picked by url: write extension[http://...] (or extension[name]"
            + " inside an extension)");
      }
      if (!extension && bracket != null && !bracket.matches("\\d+")) {
        throw new PathProblem("'" + bracket + "' is not an index: only extension[...] takes a url");
      }
      if (!repeating && bracket != null) {
        throw new PathProblem("'" + name + "' is single-valued in " + current.getName() + ", so it takes no index");
      }
      if (current.getName().equals("Extension")) {
        boolean hasValue = item.children.keySet().stream().anyMatch(k -> k.startsWith("value"));
        if ((extension && hasValue) || (name.startsWith("value") && item.children.containsKey("extension"))) {
          throw new PathProblem("an extension has either a value or nested extensions, not both (FHIR rule ext-1)");
        }
      }
      BaseRuntimeElementDefinition<?> elementDef = child.getChildByName(name);
      if (elementDef == null || elementDef.getChildType() == ChildTypeEnum.RESOURCE
          || elementDef.getChildType() == ChildTypeEnum.CONTAINED_RESOURCES
          || elementDef.getChildType() == ChildTypeEnum.CONTAINED_RESOURCE_LIST
          || (elementDef.getChildType() != ChildTypeEnum.PRIMITIVE_DATATYPE
              && elementDef.getChildType() != ChildTypeEnum.PRIMITIVE_XHTML_HL7ORG
              && !(elementDef instanceof BaseRuntimeElementCompositeDefinition<?>))) {
        throw new PathProblem("'" + name + "' holds a whole resource, which an element rule cannot build (map that"
            + " resource with a mapping of its own)");
      }
      int order = current.getChildren().indexOf(child);
      // A choice element's type as the validator names it in locations: value.ofType(Quantity).
      String located = child instanceof RuntimeChildChoiceDefinition && !(child instanceof RuntimeChildExtension)
          ? child.getElementName() + ".ofType(" + elementDef.getName() + ")" : name;
      MutableElement element = item.children.computeIfAbsent(name, n -> new MutableElement(n, order, repeating,
          located));
      int index;
      if (extension) {
        index = element.urls.computeIfAbsent(bracket, u -> element.urls.size());
        normalized.append(i == 0 ? "" : ".").append(name).append("[").append(bracket).append("]");
        flatPath = false;
        steps.add(new ElementPath.Step(name, -1, bracket));
      } else {
        index = bracket == null ? 0 : Integer.parseInt(bracket);
        normalized.append(i == 0 ? "" : ".").append(name).append(repeating ? "[" + index + "]" : "");
        steps.add(new ElementPath.Step(name, repeating ? index : -1, null));
      }
      boolean created = !element.items.containsKey(index);
      MutableItem next = element.items.computeIfAbsent(index, k -> new MutableItem());
      if (extension && created) {
        // The url is part of the extension, written first as HAPI does.
        CompiledMapping.Leaf url = new CompiledMapping.Leaf(normalized + ".url", null, bracket, Map.of(), false,
            null, PrimitiveKind.OTHER, List.of(), null, false, false, null, null, ValueRule.Unmapped.REJECT, null);
        MutableElement urlElement = new MutableElement("url", -1, false, "url");
        MutableItem urlItem = new MutableItem();
        urlItem.leaf = leaves.size();
        leaves.add(url);
        urlElement.items.put(0, urlItem);
        next.children.put("url", urlElement);
      }
      boolean last = i == segments.size() - 1;
      if (elementDef.getChildType() == ChildTypeEnum.PRIMITIVE_DATATYPE
          || elementDef.getChildType() == ChildTypeEnum.PRIMITIVE_XHTML_HL7ORG) {
        if (!last) {
          throw new PathProblem("'" + name + "' is " + article(elementDef.getName()) + ", which has no element '"
              + segments.get(i + 1) + "'");
        }
        if (next.leaf >= 0 || !next.children.isEmpty()) {
          throw new PathProblem("is mapped twice (" + normalized + " already has a rule)");
        }
        PrimitiveKind kind = PrimitiveKind.of(elementDef.getName());
        EnumFactory<?> codes = child.getInstanceConstructorArguments() instanceof EnumFactory<?> f ? f : null;
        CompiledMapping.Leaf leaf = leaf(rule, kind, codes, repeating, sourceColumns, mapping, problems);
        checkUris(rule, elementDef.getName(), name, problems);
        if (leaf != null) {
          next.leaf = leaves.size();
          leaves.add(leaf);
          String path = normalized.toString();
          if (!leaf.list) {
            String column = null;
            if (flatPath) {
              // A date read at year or month precision is no SQL DATE: such columns keep the text.
              boolean partial = leaf.datePatterns.stream().anyMatch(p -> !p.hasDay());
              CompiledMapping.FlatColumn c = new CompiledMapping.FlatColumn(columnName(path), path, "$." + path,
                  partial ? "VARCHAR" : sqlType(kind), i == 0 && !repeating, kind.rule());
              flat.add(c);
              column = c.name();
            }
            values.add(new CompiledMapping.ValueElement(path, new ElementPath(steps), column,
                current.getName().equals("Reference") && name.equals("reference")));
          }
        }
        return;
      }
      if (last) {
        throw new PathProblem("'" + name + "' is " + article(elementDef.getName())
            + ", not a single value: map its elements (" + String.join(", ",
                childNames((BaseRuntimeElementCompositeDefinition<?>) elementDef)) + ")");
      }
      if (next.leaf >= 0) {
        throw new PathProblem("is mapped twice (" + normalized + " already has a rule)");
      }
      current = (BaseRuntimeElementCompositeDefinition<?>) elementDef;
      item = next;
    }
  }

  private static final Pattern ABSOLUTE_URI = Pattern.compile("[A-Za-z][A-Za-z0-9+.-]*:\\S+");

  /**
   * Checks the values a mapping writes into URI elements: no spaces, and for a {@code system} (of a Coding,
   * Identifier or Quantity) an absolute URI such as {@code http://snomed.info/sct} or {@code urn:oid:1.2.3}.
   */
  private static void checkUris(ValueRule rule, String fhirType, String elementName, List<String> problems) {
    if (!fhirType.equals("uri") && !fhirType.equals("url") && !fhirType.equals("canonical")) {
      return;
    }
    Map<String, String> written = new LinkedHashMap<>();
    if (rule.constant() != null) {
      written.put("value", rule.constant().strip());
    }
    if (rule.defaultValue() != null) {
      written.put("default", rule.defaultValue().strip());
    }
    rule.codeMap().forEach((k, v) -> written.put("map." + k, v.strip()));
    written.forEach((key, value) -> {
      String where = rule.location() + ": " + rule.path() + ": " + key + ": '" + value + "' ";
      if (value.chars().anyMatch(Character::isWhitespace)) {
        problems.add(where + "is not a URI (it has spaces)");
      } else if (elementName.equals("system") && !ABSOLUTE_URI.matcher(value).matches()) {
        problems.add(where + "is not an absolute URI: a system is named by one, like http://snomed.info/sct or"
            + " urn:oid:2.16.840.1.113883.6.238");
      }
    });
  }

  /** "a string", "an Extension". */
  private static String article(String typeName) {
    return ("AEIOUaeiou".indexOf(typeName.charAt(0)) >= 0 ? "an " : "a ") + typeName;
  }

  /** Splits a path at the dots outside brackets (urls in extension[...] have dots of their own). */
  static List<String> segments(String path) {
    List<String> out = new ArrayList<>();
    int depth = 0;
    int start = 0;
    for (int i = 0; i < path.length(); i++) {
      char ch = path.charAt(i);
      if (ch == '[') {
        depth++;
      } else if (ch == ']') {
        depth--;
      } else if (ch == '.' && depth == 0) {
        out.add(path.substring(start, i));
        start = i + 1;
      }
    }
    out.add(path.substring(start));
    return out;
  }

  /** Checks and compiles one value rule; problems are collected, and null is returned when there are any. */
  private static CompiledMapping.Leaf leaf(ValueRule rule, PrimitiveKind kind, EnumFactory<?> codes,
      boolean repeating, Collection<String> sourceColumns, MappingConfig mapping, List<String> problems) {
    int before = problems.size();
    String where = rule.location() + ": " + rule.path() + ": ";
    Expr input = null;
    try {
      input = rule.column() != null ? new Expr.Column(rule.column())
          : rule.expression() != null ? Expr.parse(rule.expression()) : null;
    } catch (Expr.BadExpression e) {
      problems.add(where + "expr: " + e.getMessage());
    }
    if (input != null) {
      List<String> found = new ArrayList<>();
      Expr.check(input, sourceColumns, mapping.source(), repeating, found, MappingCompiler::isResourceType);
      for (String f : found) {
        problems.add(where + (rule.column() != null ? "" : "expr: ") + f);
      }
    }
    boolean list = input != null && Expr.isList(input);
    if (list && repeating && (!rule.codeMap().isEmpty() || rule.defaultValue() != null || !rule.formats().isEmpty()
        || (kind != PrimitiveKind.STRING && kind != PrimitiveKind.OTHER))) {
      problems.add(where + "split() makes repetitions of text elements (string, uri, ...) without map, default"
          + " or formats");
    }
    boolean temporal = kind == PrimitiveKind.DATE || kind == PrimitiveKind.DATE_TIME || kind == PrimitiveKind.INSTANT;
    if (!rule.formats().isEmpty() && !temporal) {
      problems.add(where + "'formats' applies to date, dateTime and instant elements only");
    }
    List<PrimitiveKind.DatePattern> datePatterns = new ArrayList<>();
    if (temporal) {
      List<String> formats = rule.formats().isEmpty() && kind == PrimitiveKind.DATE ? List.of(PrimitiveKind.ISO_DATE)
          : rule.formats();
      for (String f : formats) {
        try {
          PrimitiveKind.DatePattern p = PrimitiveKind.datePattern(f);
          if (kind == PrimitiveKind.DATE && p.hasTime()) {
            problems.add(where + "formats: '" + f + "' has a time of day, which a date element cannot hold");
          } else if (p.hasTime() && !p.hasOffset() && rule.timezone() == null) {
            problems.add(where + "formats: '" + f + "' has a time but no offset (X): say which 'timezone' it is in");
          }
          if (kind == PrimitiveKind.INSTANT && !f.contains("ss")) {
            problems.add(where + "formats: '" + f + "': an instant needs a time with seconds (ss)");
          }
          datePatterns.add(p);
        } catch (IllegalArgumentException e) {
          problems.add(where + "formats: " + e.getMessage());
        }
      }
    }
    if (rule.timezone() != null) {
      if (kind == PrimitiveKind.DATE || !temporal || rule.formats().isEmpty()) {
        problems.add(where + "'timezone' applies to dateTime and instant elements with 'formats' only");
      } else if (!rule.timezone().equals("UTC") && !java.time.ZoneId.getAvailableZoneIds().contains(rule.timezone())) {
        problems.add(where + "timezone: '" + rule.timezone() + "' is not an IANA time zone (like Europe/Berlin or UTC)");
      }
    }
    String constant = rule.constant() == null ? null : target(rule.constant(), kind, codes, where + "value: ", problems);
    String defaultValue = rule.defaultValue() == null ? null
        : target(rule.defaultValue(), kind, codes, where + "default: ", problems);
    Map<String, String> codeMap = new LinkedHashMap<>();
    for (Map.Entry<String, String> e : rule.codeMap().entrySet()) {
      codeMap.put(e.getKey(), target(e.getValue(), kind, codes, where + "map." + e.getKey() + ": ", problems));
    }
    if (rule.hasRange() && (!kind.isJsonNumber() || list)) {
      problems.add(where + "'range' applies to decimal and integer elements only");
    }
    if (problems.size() > before) {
      return null;
    }
    if (codes != null && input != null && codeMap.isEmpty()) {
      // A required binding: every value the input may hold must be checked, so values pass through the codes.
      return new CompiledMapping.Leaf(rule.path(), input, null, identityMap(codes), false, defaultValue, kind,
          datePatterns, rule.timezone(), rule.required(), false, rule.rangeMin(), rule.rangeMax(), rule.unmapped(),
          null);
    }
    // A value kept unmapped must still be a code of the required binding, if there is one.
    List<String> boundCodes = codes != null && rule.unmapped() == ValueRule.Unmapped.KEEP
        ? List.copyOf(identityMap(codes).keySet()) : null;
    return new CompiledMapping.Leaf(rule.path(), input, constant, codeMap, rule.ignoreCase(), defaultValue,
        kind, datePatterns, rule.timezone(), rule.required(), !codeMap.isEmpty(), rule.rangeMin(), rule.rangeMax(),
        rule.unmapped(), boundCodes);
  }

  private static boolean isResourceType(String name) {
    return fhirContext().getResourceTypes().contains(name);
  }

  /** The codes of a required binding mapped to themselves, so unbound values become rejects. */
  private static Map<String, String> identityMap(EnumFactory<?> codes) {
    Map<String, String> out = new LinkedHashMap<>();
    Object[] constants = enumConstants(codes);
    for (Object c : constants) {
      String code = codes.toCode(cast(c));
      if (code != null && !code.equals("?")) {
        out.put(code, code);
      }
    }
    return out;
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private static <T extends Enum<?>> T cast(Object o) {
    return (T) o;
  }

  private static Object[] enumConstants(EnumFactory<?> codes) {
    for (java.lang.reflect.Method m : codes.getClass().getMethods()) {
      if (m.getName().equals("fromCode") && m.getReturnType().isEnum()) {
        return m.getReturnType().getEnumConstants();
      }
    }
    return new Object[0];
  }

  /** Checks a value written in the mapping (constant, default, code map target) against the target type. */
  private static String target(String value, PrimitiveKind kind, EnumFactory<?> codes, String where,
      List<String> problems) {
    if (value.isBlank()) {
      problems.add(where + "must not be empty (FHIR has no empty values)");
      return value;
    }
    try {
      String v = kind.convert(value.strip());
      if (codes != null) {
        try {
          codes.fromCode(v);
        } catch (IllegalArgumentException e) {
          problems.add(where + "'" + v + "' is not a code of the element's required value set ("
              + codesText(identityMap(codes).keySet()) + ")");
        }
      }
      return v;
    } catch (PrimitiveKind.BadValue e) {
      problems.add(where + e.getMessage());
      return value;
    }
  }

  /** How many codes of a value set an error message lists. */
  static final int CODES_LISTED = 20;

  /** {@code codes: a, b, c}, or {@code 20 of 26 codes: a, b, ...} when there are more than {@link #CODES_LISTED}. */
  static String codesText(Collection<String> codes) {
    List<String> listed = codes.stream().limit(CODES_LISTED).toList();
    return (codes.size() > CODES_LISTED ? CODES_LISTED + " of " + codes.size() + " codes: " : "codes: ")
        + String.join(", ", listed) + (codes.size() > CODES_LISTED ? ", ..." : "");
  }

  /** The names of a composite's elements; choice elements as {@code value[x]}. */
  private static List<String> childNames(BaseRuntimeElementCompositeDefinition<?> def) {
    List<String> names = new ArrayList<>();
    for (BaseRuntimeChildDefinition c : def.getChildren()) {
      boolean choice = c instanceof RuntimeChildChoiceDefinition && !(c instanceof RuntimeChildExtension);
      names.add(c.getElementName() + (choice ? "[x]" : ""));
    }
    return names;
  }

  /** {@code name[0].given[0]} becomes {@code name_0_given_0}; {@code birthDate} becomes {@code birth_date}. */
  static String columnName(String path) {
    String s = path.replaceAll("\\[(\\d+)\\]", "_$1").replace('.', '_');
    return s.replaceAll("([a-z0-9])([A-Z])", "$1_$2").toLowerCase(Locale.ROOT);
  }

  private static String sqlType(PrimitiveKind kind) {
    return switch (kind) {
      case DATE -> "DATE";
      case BOOLEAN -> "BOOLEAN";
      case INTEGER, POSITIVE_INT, UNSIGNED_INT -> "BIGINT";
      case DECIMAL -> "DOUBLE";
      default -> "VARCHAR";
    };
  }

  private static final class PathProblem extends Exception {
    private static final long serialVersionUID = 1L;

    PathProblem(String message) {
      super(message, null, false, false);
    }
  }

  private static final class MutableItem {
    int leaf = -1;
    final Map<String, MutableElement> children = new LinkedHashMap<>();

    CompiledMapping.Element[] freezeChildren() {
      List<MutableElement> sorted = new ArrayList<>(children.values());
      sorted.sort(Comparator.comparingInt((MutableElement e) -> e.order).thenComparing(e -> e.name));
      CompiledMapping.Element[] out = new CompiledMapping.Element[sorted.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = sorted.get(i).freeze();
      }
      return out;
    }
  }

  private static final class MutableElement {
    final String name;
    final int order;
    final boolean repeating;
    final TreeMap<Integer, MutableItem> items = new TreeMap<>();
    /** For extensions: the url of each item, numbered in order of first appearance. */
    final Map<String, Integer> urls = new LinkedHashMap<>();
    final String located;

    MutableElement(String name, int order, boolean repeating, String located) {
      this.located = located;
      this.name = name;
      this.order = order;
      this.repeating = repeating;
    }

    CompiledMapping.Element freeze() {
      List<CompiledMapping.Item> out = new ArrayList<>();
      List<String> keys = new ArrayList<>();
      for (Map.Entry<Integer, MutableItem> e : items.entrySet()) {
        MutableItem i = e.getValue();
        out.add(new CompiledMapping.Item(i.leaf, i.leaf >= 0 ? null : i.freezeChildren()));
        String url = urls.entrySet().stream().filter(u -> u.getValue().equals(e.getKey())).map(Map.Entry::getKey)
            .findFirst().orElse(null);
        keys.add(url != null ? url : String.valueOf(e.getKey()));
      }
      return new CompiledMapping.Element(name, order, repeating, out.toArray(new CompiledMapping.Item[0]),
          keys.toArray(new String[0]), located);
    }
  }
}
