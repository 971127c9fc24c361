package org.fhirbeam.transforms;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.config.ValueRule;

/**
 * A compiled mapping as DuckDB SQL: one query turns each source row into one NDJSON line, either the resource as
 * the JSON text HAPI would write or a reject record saying why not. It reads a relation of text columns (the
 * source rows). Evaluating the mapping inside DuckDB keeps per-row work out of the JVM and out of Beam.
 *
 * <p>The queries are layered: {@code inputs} trims every column a rule reads (empty means missing);
 * {@code vals} computes each rule's canonical FHIR text and the first failure of the row; the outer query
 * assembles the JSON, omitting empty elements.
 */
public final class SqlMapping implements Serializable {
  private static final long serialVersionUID = 1L;

  /** Whitespace stripped from both ends of every input value. */
  static final String WHITESPACE = " \t\r\n";
  private static final int REQUIRED = 0;
  private static final int CODE_MAP = 1;
  private static final int TYPE = 2;
  private static final int RANGE = 3;
  private static final int CHOICE = 4;
  private static final int KINDS = 5;

  /** Why a row was rejected: the element, the rule and a reason that does not repeat the value. */
  public record Failure(String element, String rule, String reason) implements Serializable {}

  private final CompiledMapping mapping;
  /** Source column to the alias of its trimmed value. */
  private final Map<String, String> inputs = new LinkedHashMap<>();
  /** Each leaf whose input is an expression (leaves compare by identity), to the alias of its value. */
  private final Map<CompiledMapping.Leaf, String> expressions = new LinkedHashMap<>();
  /** The presence flag of each composite item with rules on the row; built on first use. */
  private transient Map<CompiledMapping.Item, Flag> flags;

  /** A presence flag: its column, and the SQL that computes it (any value from the row under the item). */
  private record Flag(String column, String sql) {}

  public SqlMapping(CompiledMapping mapping) {
    this.mapping = mapping;
    List<String> columns = new ArrayList<>();
    List<CompiledMapping.Leaf> all = allLeaves();
    for (int k = 0; k < all.size(); k++) {
      CompiledMapping.Leaf leaf = all.get(k);
      if (leaf.input != null) {
        Expr.columns(leaf.input, columns);
        if (!(leaf.input instanceof Expr.Column)) {
          expressions.put(leaf, "#e" + k);
        }
      }
    }
    for (int i = 0; i < columns.size(); i++) {
      inputs.put(columns.get(i), "i" + i);
    }
  }

  public CompiledMapping mapping() {
    return mapping;
  }

  /** The source columns the mapping reads. */
  public List<String> columns() {
    List<String> out = new ArrayList<>(inputs.keySet());
    for (String c : mapping.ruleColumns()) {
      if (!out.contains(c)) {
        out.add(c);
      }
    }
    return List.copyOf(out);
  }

  /**
   * Where the rows of one query come from, for the reject records.
   *
   * @param skippedLines a table with one row per line the reader left out, {@code "#from"} (the row number from
   *     which on rows sit further down) and {@code "#lines"} (how many lines further, counting this one), or
   *     null when no line was left out
   * @param keyColumns columns whose values identify the row in its table (a database source's key), written as
   *     the reject's {@code key}; empty when the position is enough
   */
  public record Origin(String runId, String source, String file, String positionField, long firstPosition,
      List<String> rowColumns, String skippedLines, List<String> keyColumns, Integer partition) {
    public Origin {
      rowColumns = List.copyOf(rowColumns);
      keyColumns = List.copyOf(keyColumns);
    }

    /** An origin in a file or table: rows are identified by their position, and their key when there is one. */
    public Origin(String runId, String source, String file, String positionField, long firstPosition,
        List<String> rowColumns, String skippedLines, List<String> keyColumns) {
      this(runId, source, file, positionField, firstPosition, rowColumns, skippedLines, keyColumns, null);
    }

    /** An origin whose rows are identified by their position alone. */
    public Origin(String runId, String source, String file, String positionField, long firstPosition,
        List<String> rowColumns, String skippedLines) {
      this(runId, source, file, positionField, firstPosition, rowColumns, skippedLines, List.of(), null);
    }

    /**
     * Records of one partition of a topic: each row's offset is its {@link #OFFSET} column, and its reject names the
     * topic, the partition and the offset.
     */
    public static Origin ofRecords(String runId, String source, String topic, int partition,
        List<String> rowColumns) {
      return new Origin(runId, source, topic, "offset", 0, rowColumns, null, List.of(), partition);
    }

    /** The reject record's fields that say where the row came from, as SQL text that builds them. */
    String placeJson(String position) {
      if (partition != null) {
        return "',\"topic\":' || to_json(" + lit(file) + ") || ',\"partition\":" + partition + ",\"offset\":' || "
            + position;
      }
      return "',\"file\":' || to_json(" + lit(file) + ") || '," + jsonString(positionField) + ":' || " + position;
    }
  }

  /** The column that holds a stream record's offset among the rows of an {@link Origin#ofRecords} origin. */
  public static final String OFFSET = "#offset";

  /** Values of the {@code kind} column of {@link #outputQuery}. */
  public static final String RESOURCE = "resource";
  public static final String REJECT = "reject";
  /**
   * The {@code kind} of an id key line: DuckDB's hash of the resource's id, a tab, and its row's position (see
   * {@link #outputQuery}).
   */
  public static final String KEY = "key";

  /**
   * A query over {@code source} (text columns) with two columns: {@code kind} ({@link #RESOURCE} or
   * {@link #REJECT}) and {@code line}, the NDJSON line: the resource's JSON, or a reject record with the run id,
   * source, file, position ({@code line} or {@code row}), stage, mapping, element, rule, reason and the original
   * row. Every input row yields exactly one line, in source order.
   */
  public String outputQuery(String source, Origin origin) {
    return outputQuery(source, origin, false);
  }

  /**
   * {@link #outputQuery(String, Origin)}, and with {@code idKeys} one more line of kind {@link #KEY} for each
   * resource, in the same order as the resources: DuckDB's hash of its id, a tab and its row's position as its reject
   * would name it, for finding ids that resources of other tasks share.
   */
  public String outputQuery(String source, Origin origin, boolean idKeys) {
    String position = origin.partition() != null ? q(OFFSET) : "(\"#pos\" + " + (origin.firstPosition() - 1)
        + (origin.skippedLines() == null ? "" : " + coalesce(\"#lines\", 0)") + ")";
    String reject = "'{\"run_id\":' || to_json(" + lit(origin.runId()) + ") || ',\"source\":' || to_json("
        + lit(origin.source()) + ") || " + origin.placeJson(position)
        + (origin.keyColumns().isEmpty() ? "" : " || ',\"key\":' || " + rowJson(origin.keyColumns()))
        + " || ',\"stage\":' || " + stageJson() + " || ',\"mapping\":' || to_json(" + lit(mapping.name())
        + ") || ',' || "
        + failureJson() + resourceIdJson() + " || ',\"row\":' || " + rowJson(origin.rowColumns()) + " || '}'";
    // The mapping runs in parallel; the row positions are numbered afterwards, since DuckDB computes a window in
    // one thread and would otherwise evaluate the whole mapping in that thread too.
    String mapped = detailQuery(source);
    String numbered = "(SELECT *, row_number() OVER () AS \"#pos\" FROM (" + mapped + "))";
    if (origin.skippedLines() != null) {
      // The last left-out line at or before each row tells how far down the row sits (a sort-merge join).
      numbered = numbered + " AS t ASOF LEFT JOIN " + q(origin.skippedLines()) + " AS s ON t.\"#pos\" >= s.\"#from\"";
    }
    if (!idKeys) {
      return "SELECT CASE WHEN \"#fail\" IS NULL THEN '" + RESOURCE + "' ELSE '" + REJECT + "' END AS kind,"
          + " CASE WHEN \"#fail\" IS NULL THEN \"#json\" ELSE " + reject + " END AS line FROM " + numbered;
    }
    // A row joined to two constants is read and mapped once; a list of two lines per row, unnested, was many times
    // slower (docs/BENCHMARKS.md).
    return "SELECT CASE WHEN \"#fail\" IS NOT NULL THEN '" + REJECT + "' WHEN \"#k\" = 0 THEN '" + RESOURCE
        + "' ELSE '" + KEY + "' END AS kind, CASE WHEN \"#fail\" IS NOT NULL THEN " + reject
        + " WHEN \"#k\" = 0 THEN \"#json\" ELSE hash(\"#id\") || chr(9) || " + position + " END AS line FROM "
        + numbered + " CROSS JOIN (VALUES (0), (1)) AS \"#keys\"(\"#k\") WHERE \"#k\" = 0 OR \"#fail\" IS NULL";
  }

  /** A check the mapping query counts: its name and element (null for a rule), as {@code quality.checks} has them. */
  public record Check(String check, String element) implements Serializable {}

  /**
   * The checks counted while mapping, over every row read: every {@code warn} SQL rule (its name; failed: the
   * predicate is not true; total: the rows), {@code valid_code} of each element with a declared code map (failed:
   * a present input value that is not in the map, so the default was written or, without one, the row was
   * rejected; total: present input values), and {@code in_range} of each number element with a range (failed: a
   * valid number outside it; total: valid numbers and defaults).
   */
  public List<Check> checks() {
    List<Check> out = new ArrayList<>();
    for (org.fhirbeam.config.QualityRule r : mapping.sqlRules()) {
      if (r.severity() == org.fhirbeam.config.QualityRule.Severity.WARN) {
        out.add(new Check(r.name(), null));
      }
    }
    CompiledMapping.Leaf[] leaves = mapping.leaves();
    for (CompiledMapping.Leaf leaf : leaves) {
      if (leaf.declaredMap && leaf.input != null) {
        out.add(new Check("valid_code", leaf.path));
      }
    }
    for (CompiledMapping.Leaf leaf : leaves) {
      if ((leaf.rangeMin != null || leaf.rangeMax != null) && leaf.input != null) {
        out.add(new Check("in_range", leaf.path));
      }
    }
    return out;
  }

  /** For each of {@link #checks}, the SQL conditions of a failure and of a counted row. */
  private List<String[]> checkConditions() {
    List<String[]> out = new ArrayList<>();
    for (org.fhirbeam.config.QualityRule r : mapping.sqlRules()) {
      if (r.severity() == org.fhirbeam.config.QualityRule.Severity.WARN) {
        out.add(new String[] {"NOT coalesce((" + r.sql() + "), false)", "true"});
      }
    }
    CompiledMapping.Leaf[] leaves = mapping.leaves();
    for (int k = 0; k < leaves.length; k++) {
      if (leaves[k].declaredMap && leaves[k].input != null) {
        String in = input(leaves[k]);
        out.add(new String[] {in + " IS NOT NULL AND " + q("#t" + k) + " IS NULL", in + " IS NOT NULL"});
      }
    }
    for (int k = 0; k < leaves.length; k++) {
      CompiledMapping.Leaf leaf = leaves[k];
      if ((leaf.rangeMin != null || leaf.rangeMax != null) && leaf.input != null) {
        String v = "TRY_CAST(" + q("#v" + k) + " AS DOUBLE)";
        List<String> outside = new ArrayList<>();
        if (leaf.rangeMin != null) {
          outside.add(v + " < " + leaf.rangeMin.toPlainString() + "::DOUBLE");
        }
        if (leaf.rangeMax != null) {
          outside.add(v + " > " + leaf.rangeMax.toPlainString() + "::DOUBLE");
        }
        out.add(new String[] {"(" + String.join(" OR ", outside) + ")", q("#v" + k) + " IS NOT NULL"});
      }
    }
    return out;
  }

  /**
   * The sums of {@link #checks} over the rows of {@link #detailQuery}: for each check, its failed count and its
   * total, in order, as SQL aggregates (each NULL over no rows). The mapping query's rows are not kept anywhere to
   * be counted afterwards, so the caller adds these to a query that scans the task's rows anyway (its row count).
   * They count every row read, not only those that become resources: that needs no row's failure, whose date
   * and pattern checks would cost five times as much.
   */
  public List<String> checkSums() {
    List<String> out = new ArrayList<>();
    for (String[] c : checkConditions()) {
      for (String condition : c) {
        out.add("sum(CASE WHEN " + condition + " THEN 1 ELSE 0 END)");
      }
    }
    return out;
  }

  /**
   * One element rule as previews show it: the boolean query column telling whether the rule wrote its element
   * in the row's resource, its path and its rule.
   */
  public record ElementRule(String column, String path, String rule) implements Serializable {}

  /** The element rules in mapping order (extension urls left out), for {@link #detailQuery}. */
  public List<ElementRule> elementRules() {
    List<ElementRule> out = new ArrayList<>();
    CompiledMapping.Leaf[] leaves = mapping.leaves();
    for (int k = 0; k < leaves.length; k++) {
      CompiledMapping.Leaf leaf = leaves[k];
      if (leaf.input == null && leaf.path.matches(".*extension\\[[^\\]]*\\]\\.url")) { // the compiler's url
        continue;
      }
      String rule = leaf.input == null ? "value" : leaf.inputText();
      if (!leaf.codeMap.isEmpty()) {
        rule += " via code map" + (!leaf.declaredMap ? "" : switch (leaf.unmapped) {
          case KEEP -> " (others kept)";
          case OMIT -> " (others left out)";
          default -> "";
        });
      }
      if (leaf.defaultValue != null) {
        rule += ", default '" + leaf.defaultValue + "'";
      }
      out.add(new ElementRule("#s" + k, leaf.path, rule));
    }
    return out;
  }

  /**
   * A query over {@code source} with everything known about each row, which {@link #outputQuery} builds on and
   * previews show: the element values ({@link ElementRule#column}), the resource JSON in {@code "#json"} (NULL
   * for a reject) and the failure code in {@code "#fail"} (see {@link #failure}).
   */
  public String detailQuery(String source) {
    StringBuilder written = new StringBuilder();
    writtenWhen(mapping.root(), "true", written);
    return "SELECT *, CASE WHEN \"#fail\" IS NULL THEN " + resourceJson() + " END AS \"#json\"" + written
        + " FROM (" + rowCheckQuery(rulesQuery(choiceQuery(presenceQuery(valuesQuery(source))))) + ")";
  }

  /**
   * Rejects rows whose resource would fail one of the mapping's {@link CompiledMapping#rowChecks} (the first one),
   * unless the mapping or a rule rejected them already. Without such checks, the query is unchanged.
   */
  private String rowCheckQuery(String inner) {
    List<String> whens = new ArrayList<>();
    List<RowCheck> checks = mapping.rowChecks();
    for (int c = 0; c < checks.size(); c++) {
      String fails = failsWhen(checks.get(c));
      if (fails != null) {
        whens.add("WHEN " + fails + " THEN " + (checkBase() + c));
      }
    }
    if (whens.isEmpty()) {
      return inner;
    }
    return "SELECT * REPLACE (coalesce(\"#fail\", CASE " + String.join(" ", whens) + " END) AS \"#fail\") FROM ("
        + inner + ")";
  }

  /** The SQL condition under which a row fails {@code check}; null when no row can (its element is never written). */
  private String failsWhen(RowCheck check) {
    String fails = failsAlways(check);
    return fails == null || check.guard() == null ? fails : sql(check.guard()) + " AND " + fails;
  }

  /** {@link #failsWhen} without the check's guard. */
  private String failsAlways(RowCheck check) {
    Instance at = instance(null, check.at());
    if (at == null) {
      return null;
    }
    List<String> present = new ArrayList<>();
    List<String> inValueSet = new ArrayList<>();
    for (List<String> keys : check.elements()) {
      Instance e = instance(at, keys);
      if (e == null) {
        continue;
      }
      present.add(e.present());
      if (check.kind() == RowCheck.Kind.NOT_IN_VALUE_SET) {
        CompiledMapping.Leaf leaf = e.item().leaf < 0 ? null : mapping.leaves()[e.item().leaf];
        if (leaf == null || leaf.list) {
          return null; // not a single code: left to the validator in full mode
        }
        inValueSet.add("(" + e.present() + " AND " + (leaf.constant != null
            ? String.valueOf(check.codes().contains(leaf.constant))
            : q("#v" + e.item().leaf) + " IN (" + lits(check.codes()) + ")") + ")");
      }
    }
    String any = present.isEmpty() ? "false" : "(" + String.join(" OR ", present) + ")";
    return switch (check.kind()) {
      case INVARIANT -> "(" + at.present() + ") AND NOT coalesce(" + sql(check.condition()) + ", false)";
      case MISSING -> "(" + at.present() + ") AND NOT " + any;
      case PRESENT -> present.isEmpty() ? null : "(" + at.present() + ") AND " + any;
      case NOT_IN_VALUE_SET -> present.isEmpty() ? null
          : any + " AND NOT (" + String.join(" OR ", inValueSet) + ")";
    };
  }

  /** A condition on the resource's elements as SQL over the row's values. */
  private String sql(RowCheck.Pred pred) {
    if (pred instanceof RowCheck.Const c) {
      return String.valueOf(c.value());
    }
    if (pred instanceof RowCheck.Present p) {
      Instance i = instance(null, p.keys());
      return i == null ? "false" : "(" + i.present() + ")";
    }
    if (pred instanceof RowCheck.Equals e) {
      Instance i = instance(null, e.keys());
      if (i == null || i.item().leaf < 0) {
        return "false";
      }
      CompiledMapping.Leaf leaf = mapping.leaves()[i.item().leaf];
      return leaf.constant != null ? "(" + i.present() + " AND " + leaf.constant.equals(e.value()) + ")"
          : "coalesce(" + q("#v" + i.item().leaf) + " = " + lit(e.value()) + ", false)";
    }
    if (pred instanceof RowCheck.StartsWith st) {
      String v = leafValue(st.keys());
      return v == null ? "false" : "coalesce(starts_with(" + v + ", " + lit(st.prefix()) + "), false)";
    }
    if (pred instanceof RowCheck.Ucum u) {
      String v = leafValue(u.keys());
      return v == null ? "false" : "coalesce(" + UcumUnits.FUNCTION + "(" + v + "), false)";
    }
    if (pred instanceof RowCheck.Length l) {
      String v = leafValue(l.keys());
      return v == null ? "false" : "coalesce(length(" + v + ") " + l.op() + " " + l.n() + ", false)";
    }
    if (pred instanceof RowCheck.CompareDates d) {
      String a = leafValue(d.left());
      String b = leafValue(d.right());
      if (a == null || b == null) {
        return "false";
      }
      // Points in time with their offsets compare as instants; otherwise the texts compare at the precision both
      // have (YYYY, YYYY-MM, YYYY-MM-DD), and agreeing that far with one more precise is undecided (not true).
      String common = "least(length(" + a + "), length(" + b + "), 10)";
      return "coalesce(CASE WHEN length(" + a + ") > 10 AND length(" + b + ") > 10 THEN TRY_CAST(" + a
          + " AS TIMESTAMPTZ) " + d.op() + " TRY_CAST(" + b + " AS TIMESTAMPTZ) WHEN left(" + a + ", " + common
          + ") <> left(" + b + ", " + common + ") OR length(" + a + ") = length(" + b + ") THEN left(" + a + ", "
          + common + ") " + d.op() + " left(" + b + ", " + common + ") END, false)";
    }
    if (pred instanceof RowCheck.Not n) {
      return "(NOT " + sql(n.pred()) + ")";
    }
    if (pred instanceof RowCheck.And a) {
      return "(" + String.join(" AND ", a.preds().stream().map(this::sql).toList()) + ")";
    }
    if (pred instanceof RowCheck.Or o) {
      return "(" + String.join(" OR ", o.preds().stream().map(this::sql).toList()) + ")";
    }
    RowCheck.Count c = (RowCheck.Count) pred;
    String sum = c.preds().isEmpty() ? "0" : String.join(" + ", c.preds().stream()
        .map(p -> "CAST(" + sql(p) + " AS INTEGER)").toList());
    return "((" + sum + ") " + c.op() + " " + c.n() + ")";
  }

  /** The SQL of a primitive element's value (NULL where it is not written); null when the mapping never writes it. */
  private String leafValue(List<String> keys) {
    Instance i = instance(null, keys);
    if (i == null || i.item().leaf < 0) {
      return null;
    }
    CompiledMapping.Leaf leaf = mapping.leaves()[i.item().leaf];
    return leaf.constant == null ? q("#v" + i.item().leaf)
        : "CASE WHEN " + i.present() + " THEN " + lit(leaf.constant) + " END";
  }

  /**
   * An element instance as the query sees it: SQL telling whether the row's resource has it, and SQL giving its
   * location as the validator names it ({@code Patient.address[0].extension[1]}: an index counts the items before it
   * that the row has).
   */
  private record Instance(CompiledMapping.Item item, String present, String location) {}

  /** The instance at {@code keys} (see {@link RowCheck}) below {@code from}, or the resource's when null. */
  private Instance instance(Instance from, List<String> keys) {
    Instance at = from != null ? from : new Instance(null, "true", lit(mapping.resourceType()));
    List<CompiledMapping.Found> path = mapping.find(at.item(), keys);
    if (path == null) {
      return null;
    }
    for (CompiledMapping.Found found : path) {
      CompiledMapping.Element element = found.element();
      String location = at.location() + " || " + lit("." + element.located);
      if (element.repeating) {
        int always = 0;
        List<String> sometimes = new ArrayList<>();
        for (int i = 0; i < found.index(); i++) {
          String p = present(element.items[i]);
          if (p == null) {
            always++;
          } else {
            sometimes.add("CAST(" + p + " AS INTEGER)");
          }
        }
        location += sometimes.isEmpty() ? " || " + lit("[" + always + "]")
            : " || '[' || (" + always + " + " + String.join(" + ", sometimes) + ") || ']'";
      }
      String p = present(found.item());
      at = new Instance(found.item(), p == null ? at.present() : p, location);
    }
    return at;
  }

  /**
   * Rejects rows that break a {@code reject} SQL rule (the first one, in file order), unless the mapping rejected
   * them already. The predicates read the source row's columns as they are read (text; not trimmed).
   */
  private String rulesQuery(String inner) {
    List<String> whens = new ArrayList<>();
    List<org.fhirbeam.config.QualityRule> rules = mapping.sqlRules();
    for (int r = 0; r < rules.size(); r++) {
      if (rules.get(r).severity() == org.fhirbeam.config.QualityRule.Severity.REJECT) {
        whens.add("WHEN NOT coalesce((" + rules.get(r).sql() + "), false) THEN " + (ruleBase() + r));
      }
    }
    if (whens.isEmpty()) {
      return inner;
    }
    return "SELECT * REPLACE (coalesce(\"#fail\", CASE " + String.join(" ", whens) + " END) AS \"#fail\") FROM ("
        + inner + ")";
  }

  /** The failure code of SQL rule 0; rule r fails with {@code ruleBase() + r}. */
  private int ruleBase() {
    return (mapping.leaves().length + 1) * KINDS;
  }

  /**
   * For a row that a row check rejected, the id its resource would have had, as validation's rejects name it:
   * {@code ,"resource_id":"..."}; nothing for other rejects.
   */
  private String resourceIdJson() {
    return mapping.rowChecks().isEmpty() ? ""
        : " || CASE WHEN \"#fail\" >= " + checkBase() + " THEN ',\"resource_id\":' || to_json(\"#id\") ELSE '' END";
  }

  /** The failure code of row check 0; check c fails with {@code checkBase() + c}. */
  private int checkBase() {
    return ruleBase() + mapping.sqlRules().size();
  }

  /** The stage a failure code belongs to: {@code validation} for a row check, {@code quality} for a rule, else {@code mapping}. */
  public String stage(int code) {
    return code >= checkBase() ? "validation" : code >= ruleBase() ? "quality" : "mapping";
  }

  /** {@link #stage} of the row's failure as a JSON string. */
  private String stageJson() {
    return "CASE WHEN \"#fail\" >= " + checkBase() + " THEN '\"validation\"' WHEN \"#fail\" >= " + ruleBase()
        + " THEN '\"quality\"' ELSE '\"mapping\"' END";
  }

  /**
   * Rejects rows in which two types of one choice element ({@code valueQuantity} and {@code valueString}) both
   * have a value: the failure names the later one. Without such rules, the query is unchanged.
   */
  private String choiceQuery(String presence) {
    List<String> whens = new ArrayList<>();
    choiceConflicts(mapping.root(), "true", whens);
    if (whens.isEmpty()) {
      return presence;
    }
    return "SELECT * REPLACE (coalesce(\"#fail\", CASE " + String.join(" ", whens) + " END) AS \"#fail\") FROM ("
        + presence + ")";
  }

  /** {@code guard}: when the enclosing object is written, which is when a constant-only alternative is. */
  private void choiceConflicts(CompiledMapping.Element[] elements, String guard, List<String> whens) {
    // Alternatives of one choice element share its position in the parent's definition.
    Map<Integer, List<CompiledMapping.Element>> byOrder = new LinkedHashMap<>();
    for (CompiledMapping.Element e : elements) {
      byOrder.computeIfAbsent(e.order, k -> new ArrayList<>()).add(e);
      for (CompiledMapping.Item item : e.items) {
        if (item.leaf < 0) {
          choiceConflicts(item.children, guardWithin(item, guard), whens);
        }
      }
    }
    for (List<CompiledMapping.Element> alternatives : byOrder.values()) {
      for (int later = 1; later < alternatives.size(); later++) {
        CompiledMapping.Item item = alternatives.get(later).items[0];
        List<String> earlier = new ArrayList<>();
        for (int k = 0; k < later; k++) {
          String p = present(alternatives.get(k).items[0]);
          earlier.add(p == null ? guard : p);
        }
        String self = present(item);
        whens.add("WHEN " + (self == null ? guard : self) + " AND (" + String.join(" OR ", earlier) + ") THEN "
            + ((firstLeaf(item) + 1) * KINDS + CHOICE));
      }
    }
  }

  private static int firstLeaf(CompiledMapping.Item item) {
    if (item.leaf >= 0) {
      return item.leaf;
    }
    for (CompiledMapping.Element e : item.children) {
      for (CompiledMapping.Item i : e.items) {
        int l = firstLeaf(i);
        if (l >= 0) {
          return l;
        }
      }
    }
    return -1;
  }

  /** For every leaf, whether it is written: its value is there, or (a constant) its enclosing object is. */
  private void writtenWhen(CompiledMapping.Element[] elements, String guard, StringBuilder out) {
    for (CompiledMapping.Element e : elements) {
      for (CompiledMapping.Item item : e.items) {
        if (item.leaf >= 0) {
          String cond = mapping.leaves()[item.leaf].constant != null ? guard : q("#v" + item.leaf) + " IS NOT NULL";
          out.append(", ").append(cond).append(" AS ").append(q("#s" + item.leaf));
        } else {
          writtenWhen(item.children, guardWithin(item, guard), out);
        }
      }
    }
  }

  /**
   * Adds one boolean column per composite item that has rules on the row: whether any of them has a value.
   * Computed once per row, so assembling the JSON tests a flag instead of repeating the check at every level
   * (which made large mappings, such as Synthea's Patient, an order of magnitude slower).
   */
  private String presenceQuery(String values) {
    StringBuilder sb = new StringBuilder("SELECT *");
    for (Flag f : presenceFlags().values()) {
      sb.append(", (").append(f.sql()).append(") AS ").append(q(f.column()));
    }
    return sb.append(" FROM (").append(values).append(")").toString();
  }

  /** The flag of every composite item with rules on the row, numbered in tree order. */
  private Map<CompiledMapping.Item, Flag> presenceFlags() {
    if (flags == null) {
      Map<CompiledMapping.Item, Flag> out = new LinkedHashMap<>(); // items compare by identity
      collectComposites(mapping.root(), out);
      flags = out;
    }
    return flags;
  }

  /** When the parts of a composite item are written: its flag, or (made of constants only) its parent's guard. */
  private String guardWithin(CompiledMapping.Item composite, String parentGuard) {
    Flag flag = presenceFlags().get(composite);
    return flag == null ? parentGuard : q(flag.column());
  }

  private void collectComposites(CompiledMapping.Element[] elements, Map<CompiledMapping.Item, Flag> out) {
    for (CompiledMapping.Element e : elements) {
      for (CompiledMapping.Item item : e.items) {
        if (item.leaf < 0) {
          List<String> fromRow = new ArrayList<>();
          collectRowValues(item, fromRow);
          if (!fromRow.isEmpty()) {
            out.put(item, new Flag("#p" + out.size(), String.join(" OR ", fromRow)));
          }
          collectComposites(item.children, out);
        }
      }
    }
  }

  /** The element, rule and reason of the row's failure as JSON members. */
  private String failureJson() {
    StringBuilder sb = new StringBuilder("CASE \"#fail\"");
    List<CompiledMapping.Leaf> leaves = allLeaves();
    for (int index = 0; index < leaves.size(); index++) {
      for (int kind = 0; kind < KINDS; kind++) {
        Failure f = failure(index * KINDS + kind);
        sb.append(" WHEN ").append(index * KINDS + kind).append(" THEN '\"element\":' || to_json(")
            .append(lit(f.element())).append(") || ',\"rule\":' || to_json(").append(lit(f.rule()))
            .append(") || ',\"reason\":' || to_json(").append(lit(f.reason())).append(")");
      }
    }
    for (int r = 0; r < mapping.sqlRules().size(); r++) {
      Failure f = failure(ruleBase() + r);
      sb.append(" WHEN ").append(ruleBase() + r).append(" THEN '\"element\":' || to_json(")
          .append(lit(f.element())).append(") || ',\"rule\":' || to_json(").append(lit(f.rule()))
          .append(") || ',\"reason\":' || to_json(").append(lit(f.reason())).append(")");
    }
    List<RowCheck> checks = mapping.rowChecks();
    for (int c = 0; c < checks.size(); c++) {
      Instance at = instance(null, checks.get(c).at());
      if (at != null) {
        sb.append(" WHEN ").append(checkBase() + c).append(" THEN '\"element\":' || to_json(")
            .append(at.location()).append(") || ',\"rule\":' || to_json(").append(lit(checks.get(c).messageId()))
            .append(") || ',\"reason\":' || to_json(").append(lit(checks.get(c).message())).append(")");
      }
    }
    return sb.append(" END").toString();
  }

  private static String rowJson(List<String> columns) {
    if (columns.isEmpty()) {
      return "'{}'";
    }
    List<String> fields = new ArrayList<>();
    for (String c : columns) {
      fields.add(q(c) + " := CAST(" + q(c) + " AS VARCHAR)");
    }
    return "to_json(struct_pack(" + String.join(", ", fields) + "))";
  }

  /**
   * What a failure code means. A row check's element is named by the mapping's path to it
   * ({@code Patient.address[0].extension[http://...]}); its reject record names it as the validator does.
   */
  public Failure failure(int code) {
    if (code >= checkBase()) {
      RowCheck check = mapping.rowChecks().get(code - checkBase());
      return new Failure(String.join(".", java.util.stream.Stream.concat(java.util.stream.Stream.of(
          mapping.resourceType()), check.at().stream()).toList()), check.messageId(), check.message());
    }
    if (code >= ruleBase()) {
      org.fhirbeam.config.QualityRule rule = mapping.sqlRules().get(code - ruleBase());
      return new Failure(mapping.resourceType(), rule.name(), "the row does not meet the rule's SQL condition: "
          + rule.sql());
    }
    int index = code / KINDS;
    int kind = code % KINDS;
    CompiledMapping.Leaf leaf = index == 0 ? mapping.id() : mapping.leaves()[index - 1];
    String element = mapping.resourceType() + "." + leaf.path;
    return switch (kind) {
      case REQUIRED -> index == 0
          ? new Failure(element, "required", "id " + leaf.inputText() + " is empty")
          : new Failure(element, "required", "required " + leaf.inputText() + " is empty");
      // Only 'reject' and a kept value outside a required value set make this failure.
      case CODE_MAP -> new Failure(element, "code-map", "value of " + leaf.inputText()
          + (leaf.unmapped == ValueRule.Unmapped.KEEP
              ? " is neither in the rule's code map nor a code of the element's required value set"
                  + (leaf.boundCodes == null ? "" : " (" + MappingCompiler.codesText(leaf.boundCodes) + ")")
              : leaf.defaultValue != null ? " is not in the rule's code map, and the rule has 'unmapped: reject'"
              : " is not in the rule's code map (or the element's required value set) and the rule has no default"));
      case RANGE -> new Failure(element, "integer", leaf.kind.rangeReason());
      case CHOICE -> new Failure(element, "choice", "another type of this choice element also has a value in the"
          + " row; FHIR allows one (make the rules' conditions exclusive)");
      default -> new Failure(element, leaf.kind.rule(), typeReason(leaf));
    };
  }

  private static String typeReason(CompiledMapping.Leaf leaf) {
    return switch (leaf.kind) {
      case DATE -> PrimitiveKind.dateReason(leaf.formatsText());
      case DATE_TIME -> leaf.datePatterns.isEmpty() ? PrimitiveKind.DATE_TIME_REASON
          : PrimitiveKind.dateTimeReason(leaf.formatsText());
      case INSTANT -> leaf.datePatterns.isEmpty() ? PrimitiveKind.INSTANT_REASON
          : PrimitiveKind.dateTimeReason(leaf.formatsText());
      case BOOLEAN -> PrimitiveKind.BOOLEAN_REASON;
      case INTEGER, POSITIVE_INT, UNSIGNED_INT -> PrimitiveKind.INTEGER_REASON;
      case DECIMAL -> PrimitiveKind.DECIMAL_REASON;
      case ID -> PrimitiveKind.ID_REASON;
      case CODE -> PrimitiveKind.CODE_REASON;
      case TIME -> PrimitiveKind.TIME_REASON;
      default -> "value is not valid";
    };
  }

  private List<CompiledMapping.Leaf> allLeaves() {
    List<CompiledMapping.Leaf> all = new ArrayList<>();
    all.add(mapping.id());
    all.addAll(List.of(mapping.leaves()));
    return all;
  }

  private String valuesQuery(String source) {
    StringBuilder in = new StringBuilder("SELECT *");
    for (Map.Entry<String, String> e : inputs.entrySet()) {
      in.append(", ").append(clean("CAST(" + q(e.getKey()) + " AS VARCHAR)")).append(" AS ").append(q("#" + e.getValue()));
    }
    in.append(" FROM (").append(source).append(")");
    if (!expressions.isEmpty()) {
      StringBuilder ex = new StringBuilder("SELECT *");
      for (Map.Entry<CompiledMapping.Leaf, String> e : expressions.entrySet()) {
        String sql = Expr.sql(e.getKey().input, c -> q("#" + inputs.get(c)));
        ex.append(", ").append(sql).append(" AS ").append(q(e.getValue()));
      }
      in = ex.append(" FROM (").append(in).append(")");
    }

    // Each rule's input converted once: its canonical text, or NULL when missing or invalid.
    CompiledMapping.Leaf[] leaves = mapping.leaves();
    StringBuilder typed = new StringBuilder("SELECT *");
    for (int k = 0; k < leaves.length; k++) {
      if (leaves[k].constant == null) {
        String input = input(leaves[k]);
        typed.append(", ").append(leaves[k].codeMap.isEmpty() ? typed(leaves[k], input) : mapped(leaves[k], input))
            .append(" AS ").append(q("#t" + k));
        if (keepsUnmapped(leaves[k])) {
          typed.append(", ").append(kept(leaves[k], input)).append(" AS ").append(q("#k" + k));
        }
      }
    }
    typed.append(" FROM (").append(in).append(")");

    StringBuilder vals = new StringBuilder("SELECT *, ");
    CompiledMapping.Leaf id = mapping.id();
    vals.append(input(id)).append(" AS \"#id\"");
    List<String> failures = new ArrayList<>();
    failures.add("CASE WHEN " + input(id) + " IS NULL THEN " + REQUIRED + " WHEN NOT regexp_full_match("
        + input(id) + ", " + lit(PrimitiveFormats.ID) + ") THEN " + TYPE + " END");
    for (int k = 0; k < leaves.length; k++) {
      vals.append(", ").append(value(leaves[k], k)).append(" AS ").append(q("#v" + k));
      String f = failure(leaves[k], k, (k + 1) * KINDS);
      if (f != null) {
        failures.add(f);
      }
    }
    vals.append(", coalesce(").append(String.join(", ", failures)).append(") AS \"#fail\"");
    vals.append(" FROM (").append(typed).append(")");
    return vals.toString();
  }

  /**
   * {@code text} (SQL) with {@link #WHITESPACE} stripped from both ends, NULL when nothing is left. DuckDB's
   * {@code trim} with a set of characters costs about 85 ns a value (0.42 s of a 2.8 s mapping query for the 5
   * columns of 1M patient rows), while most values need no trimming, which two byte tests show: a first byte
   * above every whitespace character (a binary comparison with '!') and no whitespace character last. Only the
   * other values are trimmed: 0.08 s for the same columns. {@code text} is repeated, so it should be a column
   * or a lambda's parameter, not a computation. Public for the benchmark's DuckDB-only baseline, which applies
   * the same rule.
   */
  public static String clean(String text) {
    StringBuilder endsInSpace = new StringBuilder();
    for (char c : WHITESPACE.toCharArray()) {
      if (c >= '!') {
        throw new IllegalStateException("whitespace must sort before '!'");
      }
      endsInSpace.append(endsInSpace.length() == 0 ? "" : " OR ").append("ends_with(").append(text).append(", chr(")
          .append((int) c).append("))");
    }
    return "CASE WHEN " + text + " >= '!' AND NOT (" + endsInSpace + ") THEN " + text + " ELSE " + trimmed(text)
        + " END";
  }

  /** {@code text} (SQL) trimmed of {@link #WHITESPACE} by DuckDB, NULL when nothing is left; see {@link #clean}. */
  static String trimmed(String text) {
    return "nullif(trim(" + text + ", " + lit(WHITESPACE) + "), '')";
  }

  private String input(CompiledMapping.Leaf leaf) {
    if (leaf.input instanceof Expr.Column c) {
      return q("#" + inputs.get(c.name()));
    }
    return q(expressions.get(leaf));
  }

  /** The rule's canonical FHIR text, or NULL when the element is omitted (or the row is rejected). */
  private String value(CompiledMapping.Leaf leaf, int k) {
    if (leaf.constant != null) {
      return lit(leaf.constant);
    }
    String dflt = leaf.defaultValue == null ? "NULL" : lit(leaf.defaultValue);
    String converted = q("#t" + k);
    if (keepsUnmapped(leaf)) {
      converted = "coalesce(" + converted + ", " + q("#k" + k) + ")";
    } else if (!leaf.codeMap.isEmpty() && leaf.unmapped == ValueRule.Unmapped.DEFAULT) {
      converted = "coalesce(" + converted + ", " + dflt + ")";
    }
    return "CASE WHEN " + input(leaf) + " IS NULL THEN " + dflt + " ELSE " + converted + " END";
  }

  /** Whether a present input outside the rule's code map is written as it is. */
  private static boolean keepsUnmapped(CompiledMapping.Leaf leaf) {
    return !leaf.codeMap.isEmpty() && leaf.unmapped == ValueRule.Unmapped.KEEP;
  }

  /**
   * The canonical text of an input kept as it is (outside the code map), NULL when the element cannot hold it: not
   * of its type, or not a code of its required binding.
   */
  private static String kept(CompiledMapping.Leaf leaf, String in) {
    return leaf.boundCodes == null ? typed(leaf, in)
        : "CASE WHEN " + in + " IN (" + lits(leaf.boundCodes) + ") THEN " + in + " END";
  }

  private String mapped(CompiledMapping.Leaf leaf, String in) {
    StringBuilder sb = new StringBuilder("CASE ").append(leaf.ignoreCase ? "lower(" + in + ")" : in);
    for (Map.Entry<String, String> e : leaf.codeMap.entrySet()) {
      sb.append(" WHEN ").append(lit(e.getKey())).append(" THEN ").append(lit(e.getValue()));
    }
    return sb.append(" END").toString();
  }

  /** The canonical text of a valid input, NULL for an invalid one. */
  private static String typed(CompiledMapping.Leaf leaf, String in) {
    if (leaf.list) {
      return in;
    }
    return switch (leaf.kind) {
      case DATE -> {
        List<String> tries = new ArrayList<>();
        for (PrimitiveKind.DatePattern p : leaf.datePatterns) {
          tries.add("CASE WHEN regexp_full_match(" + in + ", " + lit(p.regex()) + ") THEN strftime(try_strptime("
              + in + ", " + lit(p.strptime()) + "), " + lit(p.datePrecision()) + ") END");
        }
        yield tries.size() == 1 ? tries.get(0) : "coalesce(" + String.join(", ", tries) + ")";
      }
      case BOOLEAN -> "CASE WHEN lower(" + in + ") IN (" + lits(PrimitiveKind.TRUE_WORDS) + ") THEN 'true' WHEN lower("
          + in + ") IN (" + lits(PrimitiveKind.FALSE_WORDS) + ") THEN 'false' END";
      case INTEGER, POSITIVE_INT, UNSIGNED_INT -> "CASE WHEN regexp_full_match(" + in + ", "
          + lit(PrimitiveFormats.INTEGER) + ") THEN list_transform([TRY_CAST(" + in + " AS INTEGER)], lambda n:"
          + " CASE WHEN n >= " + leaf.kind.lowest() + " THEN CAST(n AS VARCHAR) END)[1] END";
      case DECIMAL -> matching(in, PrimitiveFormats.DECIMAL);
      case DATE_TIME -> leaf.datePatterns.isEmpty() ? matching(in, PrimitiveFormats.DATE_TIME)
          : dateTimes(leaf, in, PrimitiveFormats.DATE_TIME);
      case INSTANT -> leaf.datePatterns.isEmpty() ? matching(in, PrimitiveFormats.INSTANT)
          : dateTimes(leaf, in, PrimitiveFormats.INSTANT);
      case TIME -> matching(in, PrimitiveFormats.TIME);
      case ID -> matching(in, PrimitiveFormats.ID);
      case CODE -> matching(in, PrimitiveFormats.CODE);
      default -> in;
    };
  }

  /**
   * Date-times read with input patterns: a date alone stays a date; a time is read in its offset, or in the
   * rule's time zone when the pattern has none, and written in the rule's zone (UTC by default) with its offset,
   * {@code Z} for UTC. The session's time zone is never involved.
   */
  private static String dateTimes(CompiledMapping.Leaf leaf, String in, String outputRegex) {
    String zone = lit(leaf.timezone == null ? "UTC" : leaf.timezone);
    List<String> tries = new ArrayList<>();
    for (PrimitiveKind.DatePattern p : leaf.datePatterns) {
      // DuckDB's %z reads +hh:mm but not Z.
      String text0 = p.hasOffset() ? "regexp_replace(" + in + ", 'Z$', '+00:00')" : in;
      String parsed = "try_strptime(" + text0 + ", " + lit(p.strptime()) + ")";
      String text;
      if (!p.hasTime()) {
        text = "strftime(" + parsed + ", " + lit(p.datePrecision()) + ")";
      } else {
        String instant = p.hasOffset() ? parsed : "timezone(" + zone + ", " + parsed + ")";
        // t: the instant; l: its local time in the zone; m: the zone's offset there, in minutes (each computed once).
        text = "list_transform([" + instant + "], lambda t: list_transform([timezone(" + zone + ", t)], lambda l:"
            + " list_transform([datediff('minute', timezone('UTC', t), l)], lambda m: strftime(l, "
            + lit(p.hasFraction() ? "%Y-%m-%dT%H:%M:%S.%g" : "%Y-%m-%dT%H:%M:%S") + ") || CASE WHEN m = 0 THEN 'Z'"
            + " ELSE CASE WHEN m < 0 THEN '-' ELSE '+' END || lpad(CAST(abs(m) // 60 AS VARCHAR), 2, '0') || ':'"
            + " || lpad(CAST(abs(m) % 60 AS VARCHAR), 2, '0') END)[1])[1])[1]";
      }
      tries.add("CASE WHEN regexp_full_match(" + in + ", " + lit(p.regex()) + ") THEN " + text + " END");
    }
    String any = tries.size() == 1 ? tries.get(0) : "coalesce(" + String.join(", ", tries) + ")";
    // A time moved into another zone can leave FHIR's range (year 0000, year 10000): then it is no value.
    return "list_transform([" + any + "], lambda r: CASE WHEN regexp_full_match(r, " + lit(outputRegex)
        + ") THEN r END)[1]";
  }

  private static String matching(String in, String regex) {
    return "CASE WHEN regexp_full_match(" + in + ", " + lit(regex) + ") THEN " + in + " END";
  }

  /** The failure code of a rule for this row, NULL when it succeeds; null when the rule cannot fail. */
  private String failure(CompiledMapping.Leaf leaf, int k, int base) {
    if (leaf.constant != null) {
      return null;
    }
    String in = input(leaf);
    String converted = q("#t" + k);
    List<String> whens = new ArrayList<>();
    if (leaf.required && leaf.defaultValue == null) {
      whens.add("WHEN " + in + " IS NULL THEN " + (base + REQUIRED));
    }
    if (!leaf.codeMap.isEmpty()) {
      if (leaf.unmapped == ValueRule.Unmapped.REJECT) {
        whens.add("WHEN " + in + " IS NOT NULL AND " + converted + " IS NULL THEN " + (base + CODE_MAP));
      } else if (leaf.unmapped == ValueRule.Unmapped.KEEP && (leaf.boundCodes != null
          || !"value".equals(leaf.kind.rule()))) {
        whens.add("WHEN " + in + " IS NOT NULL AND " + converted + " IS NULL AND " + q("#k" + k) + " IS NULL THEN "
            + (base + (leaf.boundCodes != null ? CODE_MAP : TYPE)));
      }
    } else if (leaf.kind.isInteger()) {
      whens.add("WHEN " + in + " IS NOT NULL AND NOT regexp_full_match(" + in + ", "
          + lit(PrimitiveFormats.INTEGER) + ") THEN " + (base + TYPE));
      whens.add("WHEN " + in + " IS NOT NULL AND " + converted + " IS NULL THEN " + (base + RANGE));
    } else if (!"value".equals(leaf.kind.rule())) {
      whens.add("WHEN " + in + " IS NOT NULL AND " + converted + " IS NULL THEN " + (base + TYPE));
    }
    return whens.isEmpty() ? null : "CASE " + String.join(" ", whens) + " END";
  }

  /**
   * The resource's JSON text, in HAPI's element order, with absent elements left out. It is one flat
   * {@code concat} of pieces, each guarded by when it is written, instead of nested concatenations (which copied
   * every object once per level it is nested in: several times slower for Synthea's Patient). The comma before a
   * member or array item is written when an earlier sibling is present.
   */
  private String resourceJson() {
    List<Piece> pieces = new ArrayList<>();
    pieces.add(new Piece(null, "{\"resourceType\":" + jsonString(mapping.resourceType()) + ",\"id\":", null));
    pieces.add(new Piece(null, null, "to_json(\"#id\")"));
    Siblings top = new Siblings();
    top.always = true; // the id is always there
    members(mapping.root(), null, top, pieces);
    pieces.add(new Piece(null, "}", null));
    List<String> args = new ArrayList<>();
    for (Piece p : merge(pieces)) {
      String expr = p.text() != null ? lit(p.text()) : p.sql();
      args.add(p.guard() == null ? expr : "CASE WHEN " + p.guard() + " THEN " + expr + " END");
    }
    return "concat(" + String.join(", ", args) + ")";
  }

  /** A piece of JSON: constant text or a SQL expression (NULL when absent), written when the guard holds. */
  private record Piece(String guard, String text, String sql) {}

  /** Adjacent constant pieces with the same guard become one. */
  private static List<Piece> merge(List<Piece> pieces) {
    List<Piece> out = new ArrayList<>();
    for (Piece p : pieces) {
      Piece last = out.isEmpty() ? null : out.get(out.size() - 1);
      if (last != null && last.text() != null && p.text() != null && java.util.Objects.equals(last.guard(), p.guard())) {
        out.set(out.size() - 1, new Piece(p.guard(), last.text() + p.text(), null));
      } else {
        out.add(p);
      }
    }
    return out;
  }

  /** What is known about the earlier members of an object (or items of an array): when any is present. */
  private static final class Siblings {
    boolean always;
    final List<String> conditions = new ArrayList<>();

    /** The separator before the next member: constant text, or null when it depends on the row. */
    String constantSeparator() {
      return always ? "," : conditions.isEmpty() ? "" : null;
    }

    String separatorSql() {
      return "CASE WHEN " + String.join(" OR ", conditions) + " THEN ',' ELSE '' END";
    }

    void add(String presence) {
      if (presence == null) {
        always = true;
      } else {
        conditions.add(presence);
      }
    }
  }

  /** Constant text after the separator as a piece (or two: the separator depends on the row). */
  private static void constantAfter(Siblings earlier, String guard, String text, List<Piece> out) {
    String sep = earlier.constantSeparator();
    if (sep != null) {
      out.add(new Piece(guard, sep + text, null));
    } else {
      out.add(new Piece(guard, null, earlier.separatorSql() + " || " + lit(text)));
    }
  }

  /**
   * The members of an object. {@code guard} is when the enclosing object is written (null: always); a value
   * from the row implies it, since an object is written when any value inside it is there.
   */
  private void members(CompiledMapping.Element[] elements, String guard, Siblings earlier, List<Piece> out) {
    for (CompiledMapping.Element e : elements) {
      String key = jsonString(e.name) + ":";
      if (e.repeating) {
        // The items first, so the array's guard can be taken from their presence.
        Siblings items = new Siblings();
        List<Piece> inner = new ArrayList<>();
        for (CompiledMapping.Item item : e.items) {
          item(item, "", guard, items, inner);
        }
        String g = items.always ? guard : "(" + String.join(" OR ", items.conditions) + ")";
        constantAfter(earlier, g, key + "[", out);
        out.addAll(inner);
        out.add(new Piece(g, "]", null));
        earlier.add(items.always ? null : g);
      } else {
        item(e.items[0], key, guard, earlier, out);
      }
    }
  }

  /** One value or object, after the separator and {@code prefix}; records its presence in {@code earlier}. */
  private void item(CompiledMapping.Item item, String prefix, String guard, Siblings earlier, List<Piece> out) {
    if (item.leaf < 0) {
      String g = guardWithin(item, guard);
      constantAfter(earlier, g, prefix + "{", out);
      members(item.children, g, new Siblings(), out);
      out.add(new Piece(g, "}", null));
      earlier.add(present(item));
      return;
    }
    CompiledMapping.Leaf leaf = mapping.leaves()[item.leaf];
    boolean raw = leaf.kind.isJsonNumber() || leaf.kind == PrimitiveKind.BOOLEAN;
    if (leaf.constant != null && (raw || isPlainText(leaf.constant))) {
      constantAfter(earlier, guard, prefix + (raw ? leaf.constant : "\"" + leaf.constant + "\""), out);
      earlier.add(present(item));
      return;
    }
    String v = q("#v" + item.leaf);
    String json = leaf.list
        // The pieces of a split() value, each a repetition of the element.
        ? "array_to_string(list_transform(" + v + ", lambda p: to_json(p)), ',')"
        : raw ? v : "to_json(" + v + ")";
    String sep = earlier.constantSeparator();
    String text = sep != null ? lit(sep + prefix) + " || " + json
        : earlier.separatorSql() + " || " + lit(prefix) + " || " + json;
    // A value from the row is NULL when absent, and so is the concatenation; a constant needs the guard.
    out.add(new Piece(leaf.constant != null ? guard : null, null, text));
    earlier.add(present(item));
  }

  /** Whether a JSON string of this text is the text in quotes (no character is escaped). */
  private static boolean isPlainText(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f || c == '\u2028' || c == '\u2029') {
        return false;
      }
    }
    return true;
  }

  /**
   * When an item is written, as SQL, or null for always. A value is written when present. A composite with rules
   * on the row exists only when one of them has a value (a name whose family and given are empty is not
   * written, even with a constant {@code use}); a composite made of constants only (a {@code meta.profile}, the
   * {@code type} of an identifier) is always written where its parent is.
   */
  private String present(CompiledMapping.Item item) {
    if (item.leaf >= 0) {
      return mapping.leaves()[item.leaf].constant != null ? null : q("#v" + item.leaf) + " IS NOT NULL";
    }
    Flag flag = presenceFlags().get(item);
    return flag == null ? null : q(flag.column());
  }

  private void collectRowValues(CompiledMapping.Item item, List<String> out) {
    for (CompiledMapping.Element child : item.children) {
      for (CompiledMapping.Item i : child.items) {
        if (i.leaf >= 0) {
          if (mapping.leaves()[i.leaf].constant == null) {
            out.add(q("#v" + i.leaf) + " IS NOT NULL");
          }
        } else {
          collectRowValues(i, out);
        }
      }
    }
  }

  private static String jsonString(String s) {
    // Element names and resource types are plain ASCII identifiers: no escaping is ever needed.
    return "\"" + s + "\"";
  }

  static String q(String identifier) {
    return "\"" + identifier.replace("\"", "\"\"") + "\"";
  }

  static String lit(String s) {
    return "'" + s.replace("'", "''") + "'";
  }

  private static String lits(List<String> values) {
    List<String> out = new ArrayList<>();
    for (String v : values) {
      out.add(lit(v));
    }
    return String.join(", ", out);
  }
}
