package org.fhirbeam.transforms;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.hl7.fhir.r5.fhirpath.ExpressionNode;
import org.hl7.fhir.r5.model.BooleanType;
import org.hl7.fhir.r5.model.ElementDefinition;
import org.hl7.fhir.r5.model.IntegerType;
import org.hl7.fhir.r5.model.StringType;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * The FHIRPath invariants (constraints of severity error) that apply to the elements a compiled mapping writes, as
 * conditions its query evaluates: those of the resource's definitions (base R4 and the profiles it claims), of each
 * element, and of each element's data type ({@code cpt-2} of a ContactPoint). An invariant is translated when it
 * asks which elements are there and what values they hold: {@code exists()}, {@code empty()}, {@code hasValue()},
 * {@code not()}, {@code where(...)}, {@code count()}, {@code and}, {@code or}, {@code xor}, {@code implies},
 * {@code =} and {@code !=} with a literal, {@code startsWith()}, {@code as} a date type, {@code toString()} and
 * {@code length()} of a primitive, and comparisons of dates. Functions of elements the mapping never writes give
 * nothing, as FHIRPath says, so {@code contained.where(...)} needs no translation. Anything else becomes a
 * {@link FhirPathCheck}, for HAPI's FHIRPath engine on the built resources, and is named, so that
 * {@code check-config} says what is not SQL.
 *
 * <p>{@code ele-1} (an element has a value or children) and {@code ext-1} (an extension has a value or extensions,
 * not both) hold by construction: the mapping writes no empty element and its compiler refuses both in one
 * extension.
 */
public final class ProfileInvariants {
  private ProfileInvariants() {}

  /** Invariants every element has, which compiled mappings meet by construction. */
  private static final java.util.Set<String> BY_CONSTRUCTION = java.util.Set.of("ele-1", "ext-1");

  /**
   * The invariant checks for {@code mapping}, and what is not checked.
   *
   * @param checks a row check per translated invariant that a row can fail
   * @param untranslated one line per invariant that could not be translated: {@code key (expression) at location}
   * @param fhirPathChecks the untranslated invariants, once per path of the elements they apply to, for HAPI's FHIRPath
   *     engine
   * @param neverMet one line per invariant that no resource of the mapping can meet
   */
  public record Result(List<RowCheck> checks, List<String> untranslated, List<FhirPathCheck> fhirPathChecks,
      List<String> neverMet) {}

  /**
   * @param definitions the resource's definitions: its base R4 StructureDefinition and the profiles it claims, with
   *     snapshots
   * @param byUrl a definition by canonical url (a data type's), or null
   * @param parse parses a FHIRPath expression
   */
  public static Result check(CompiledMapping mapping, List<StructureDefinition> definitions,
      Function<String, StructureDefinition> byUrl, Function<String, ExpressionNode> parse) {
    // Each instance's invariants by key: the same one of base R4 and of a profile is checked once.
    Map<List<String>, Map<String, Invariant>> found = new LinkedHashMap<>();
    for (StructureDefinition sd : definitions) {
      Map<String, ElementDefinition> elements = elementsOf(sd);
      collect(mapping, sd, elements, sd.getType(), null, List.of(), mapping.resourceType(), found, byUrl);
    }
    List<RowCheck> checks = new ArrayList<>();
    List<String> untranslated = new ArrayList<>();
    Map<String, FhirPathCheck> fhirPathChecks = new LinkedHashMap<>();
    List<String> neverMet = new ArrayList<>();
    Translator translator = new Translator(mapping);
    found.forEach((keys, invariants) -> invariants.values().forEach(inv -> {
      String where = inv.key + " (" + inv.expression + ") at " + location(mapping, keys);
      RowCheck.Pred condition;
      try {
        condition = translator.bool(translator.evalLazily(parse.apply(inv.expression),
            List.of(translator.instance(keys))));
      } catch (Untranslatable | RuntimeException e) {
        untranslated.add(where);
        FhirPathCheck check = new FhirPathCheck(steps(mapping, keys), inv.expression, inv.messageId,
            "Constraint failed: " + inv.key + ": '" + inv.human + "'");
        fhirPathChecks.putIfAbsent(check.steps() + inv.messageId, check);
        return;
      }
      if (condition instanceof RowCheck.Const c) {
        if (!c.value()) {
          neverMet.add(where);
        }
        return;
      }
      checks.add(new RowCheck(RowCheck.Kind.INVARIANT, keys, List.of(), List.of(), condition, inv.messageId,
          "Constraint failed: " + inv.key + ": '" + inv.human + "'", null));
    }));
    return new Result(checks, untranslated, List.copyOf(fhirPathChecks.values()), neverMet);
  }

  /** The path of the instance at {@code keys}, as {@link FhirPathCheck} names it. */
  private static List<FhirPathCheck.Step> steps(CompiledMapping mapping, List<String> keys) {
    return mapping.find(null, keys).stream().map(f -> new FhirPathCheck.Step(f.element().located,
        f.element().repeating)).toList();
  }

  private record Invariant(String key, String expression, String human, String messageId) {}

  private static Map<String, ElementDefinition> elementsOf(StructureDefinition sd) {
    Map<String, ElementDefinition> elements = new LinkedHashMap<>();
    for (ElementDefinition e : sd.getSnapshot().getElement()) {
      if (!(e.hasId() ? e.getId() : e.getPath()).contains(":")) {
        elements.putIfAbsent(e.getPath(), e);
      }
    }
    return elements;
  }

  /**
   * Collects the invariants of one written instance ({@code item}, null for the resource; {@code keys} from the
   * resource) defined at {@code path} of {@code sd}, then of its written children.
   */
  private static void collect(CompiledMapping mapping, StructureDefinition sd, Map<String, ElementDefinition> elements,
      String path, CompiledMapping.Item item, List<String> keys, String typeName,
      Map<List<String>, Map<String, Invariant>> found, Function<String, StructureDefinition> byUrl) {
    ElementDefinition e = elements.get(path);
    if (e == null) {
      return;
    }
    Map<String, Invariant> here = found.computeIfAbsent(keys, k -> new LinkedHashMap<>());
    add(sd, e, here);
    // A complex data type's own invariants (ContactPoint's cpt-2), which profiles do not copy to their elements.
    StructureDefinition type = item == null || typeName.isEmpty() || Character.isLowerCase(typeName.charAt(0)) ? null
        : byUrl.apply("http://hl7.org/fhir/StructureDefinition/" + typeName);
    if (type != null && type != sd && type.hasSnapshot()) {
      add(type, type.getSnapshot().getElementFirstRep(), here);
    }
    if (item != null && item.leaf >= 0) {
      return;
    }
    for (CompiledMapping.Element child : item == null ? mapping.root() : item.children) {
      if (child.name.equals("extension") || child.name.equals("modifierExtension")) {
        continue; // extensions are checked against their own definitions by the validator
      }
      // The child's definition: in this definition, else in its data type's (elements a profile leaves alone).
      String childPath = path + "." + child.name;
      String choice = choicePath(elements, path, child.name);
      StructureDefinition in = sd;
      Map<String, ElementDefinition> inElements = elements;
      if (!elements.containsKey(childPath) && choice != null) {
        childPath = choice;
      } else if (!elements.containsKey(childPath) && type != null && type != sd) {
        in = type;
        inElements = elementsOf(type);
        childPath = typeName + "." + child.name;
        String typeChoice = choicePath(inElements, typeName, child.name);
        if (!inElements.containsKey(childPath) && typeChoice != null) {
          childPath = typeChoice;
        }
      }
      ElementDefinition childDef = inElements.get(childPath);
      if (childDef == null) {
        continue;
      }
      String childType = childPath.endsWith("[x]")
          ? child.name.substring(childPath.substring(childPath.lastIndexOf('.') + 1).length() - 3)
          : childDef.getType().isEmpty() ? "" : childDef.getType().get(0).getWorkingCode();
      if (!childType.isEmpty() && childPath.endsWith("[x]")) {
        // valueQuantity: the type as FHIR names it (Quantity; string for valueString)
        String t = childType;
        childType = childDef.getType().stream().map(ElementDefinition.TypeRefComponent::getWorkingCode)
            .filter(c -> c.equalsIgnoreCase(t)).findFirst().orElse(t);
      }
      for (int i = 0; i < child.items.length; i++) {
        List<String> childKeys = new ArrayList<>(keys);
        childKeys.add(child.name + "[" + child.keys[i] + "]");
        collect(mapping, in, inElements, childPath, child.items[i], childKeys, childType, found, byUrl);
      }
    }
  }

  private static String choicePath(Map<String, ElementDefinition> elements, String parent, String name) {
    for (String p : elements.keySet()) {
      if (p.startsWith(parent + ".") && p.endsWith("[x]") && p.indexOf('.', parent.length() + 1) < 0) {
        String base = p.substring(parent.length() + 1, p.length() - 3);
        if (name.startsWith(base) && name.length() > base.length()
            && Character.isUpperCase(name.charAt(base.length()))) {
          return p;
        }
      }
    }
    return null;
  }

  private static void add(StructureDefinition sd, ElementDefinition e, Map<String, Invariant> into) {
    for (ElementDefinition.ElementDefinitionConstraintComponent c : e.getConstraint()) {
      if (BY_CONSTRUCTION.contains(c.getKey()) || !c.hasExpression()
          || c.getSeverity() != ElementDefinition.ConstraintSeverity.ERROR) {
        continue;
      }
      String source = c.hasSource() ? c.getSource() : sd.getUrl();
      into.putIfAbsent(c.getKey(), new Invariant(c.getKey(), c.getExpression(), c.getHuman(),
          (source.contains("|") ? source.substring(0, source.indexOf('|')) : source) + "#" + c.getKey()));
    }
  }

  /** The location of an instance as the validator names it, for messages: {@code Patient.telecom[0]}. */
  private static String location(CompiledMapping mapping, List<String> keys) {
    StringBuilder sb = new StringBuilder(mapping.resourceType());
    keys.forEach(k -> sb.append('.').append(k));
    return sb.toString();
  }

  /** An expression this translator does not handle. */
  private static final class Untranslatable extends Exception {
    Untranslatable(String what) {
      super(what, null, false, false);
    }
  }

  /** An element instance in a collection: its keys, its item, and the condition of its being in the collection. */
  private record Inst(List<String> keys, CompiledMapping.Item item, RowCheck.Pred in) {}

  /** A collection of instances, a boolean, a count (how many of some conditions hold) or a literal. */
  private sealed interface Value {}

  private record Coll(List<Inst> items) implements Value {}

  private record Bool(RowCheck.Pred pred) implements Value {}

  private record Counted(List<RowCheck.Pred> preds) implements Value {}

  private record Literal(Object value) implements Value {}

  /** The length of a primitive's text, where it is written ({@code in}). */
  private record Length(Inst leaf) implements Value {}

  /** FHIRPath, as HAPI's engine parses it, over the compiled mapping's elements. */
  private static final class Translator {
    final CompiledMapping mapping;

    Translator(CompiledMapping mapping) {
      this.mapping = mapping;
    }

    Inst instance(List<String> keys) {
      List<CompiledMapping.Found> path = mapping.find(null, keys);
      CompiledMapping.Item item = path.isEmpty() ? null : path.get(path.size() - 1).item();
      return new Inst(keys, item, keys.isEmpty() ? new RowCheck.Const(true) : new RowCheck.Present(keys));
    }

    /** Evaluates {@code node} (with its path continuation and operations) on {@code focus}. */
    Value eval(ExpressionNode node, List<Inst> focus) throws Untranslatable {
      Value value = inner(item(node, focus), node.getInner());
      ExpressionNode last = node;
      ExpressionNode next = node.getOpNext();
      while (next != null) {
        value = last.getOperation() == ExpressionNode.Operation.As ? as(value, next)
            : operate(value, last.getOperation(), itemWithInner(next, focus));
        last = next;
        next = next.getOpNext();
      }
      return value;
    }

    /** {@code x as type}: a primitive of that type as it is, anything of another type nothing. */
    private Value as(Value value, ExpressionNode type) throws Untranslatable {
      if (type.getKind() != ExpressionNode.Kind.Name || type.getInner() != null) {
        throw new Untranslatable("as of no type name");
      }
      Inst leaf = singleLeaf(collection(value));
      if (leaf == null) {
        return new Coll(List.of());
      }
      PrimitiveKind kind = mapping.leaves()[leaf.item().leaf].kind;
      String name = type.getName().replace("System.", "");
      boolean same = switch (name) {
        case "dateTime", "DateTime" -> kind == PrimitiveKind.DATE_TIME;
        case "date", "Date" -> kind == PrimitiveKind.DATE;
        case "instant" -> kind == PrimitiveKind.INSTANT;
        default -> throw new Untranslatable("as " + name);
      };
      return new Coll(same ? List.of(leaf) : List.of());
    }

    /**
     * {@link #eval}, where a left operand that is not translated still gives a result when the right one decides it
     * whatever the left is: {@code x or true}, {@code x and false}, {@code x in (nothing)}.
     */
    Value evalLazily(ExpressionNode node, List<Inst> focus) throws Untranslatable {
      if (node.getOpNext() == null || node.getOpNext().getOpNext() != null) {
        return eval(node, focus);
      }
      Value left;
      try {
        left = inner(item(node, focus), node.getInner());
      } catch (Untranslatable e) {
        Value right = itemWithInner(node.getOpNext(), focus);
        ExpressionNode.Operation op = node.getOperation();
        if ((op == ExpressionNode.Operation.In && right instanceof Coll c && c.items().isEmpty())
            || (op == ExpressionNode.Operation.And && right instanceof Bool b && b.pred().equals(FALSE))) {
          return new Bool(FALSE);
        }
        if (op == ExpressionNode.Operation.Or && right instanceof Bool b && b.pred().equals(TRUE)) {
          return new Bool(TRUE);
        }
        throw e;
      }
      return node.getOperation() == ExpressionNode.Operation.As ? as(left, node.getOpNext())
          : operate(left, node.getOperation(), itemWithInner(node.getOpNext(), focus));
    }

    private Value itemWithInner(ExpressionNode node, List<Inst> focus) throws Untranslatable {
      return inner(item(node, focus), node.getInner());
    }

    /** The path's continuation {@code inner} on {@code value}: elements below elements, or {@code not()} of a boolean. */
    private Value inner(Value value, ExpressionNode inner) throws Untranslatable {
      if (inner == null) {
        return value;
      }
      if (value instanceof Bool b && inner.getKind() == ExpressionNode.Kind.Function
          && inner.getFunction() == ExpressionNode.Function.Not && inner.getOpNext() == null) {
        return inner(new Bool(not(b.pred())), inner.getInner());
      }
      return eval(inner, collection(value));
    }

    private Value item(ExpressionNode node, List<Inst> focus) throws Untranslatable {
      return switch (node.getKind()) {
        case Name -> node.getName().equals("$this") ? new Coll(focus) : children(focus, node.getName());
        case Constant -> constant(node);
        case Group -> evalLazily(node.getGroup(), focus);
        case Function -> function(node, focus);
        default -> throw new Untranslatable(node.toString());
      };
    }

    private Value constant(ExpressionNode node) throws Untranslatable {
      if (node.getConstant() instanceof StringType s) {
        return new Literal(s.getValue());
      }
      if (node.getConstant() instanceof BooleanType b) {
        return new Bool(new RowCheck.Const(b.booleanValue()));
      }
      if (node.getConstant() instanceof IntegerType i) {
        return new Literal(i.getValue());
      }
      if (node.getConstant() instanceof org.hl7.fhir.r5.fhirpath.FHIRPathUtilityClasses.FHIRConstant c
          && (c.getValue().equals("%resource") || c.getValue().equals("%rootResource"))) {
        return new Coll(List.of(instance(List.of()))); // no contained resources: the resource is the root
      }
      throw new Untranslatable("constant " + node.getConstant());
    }

    /** The written children named {@code name} of each instance (a choice element by its base name too). */
    private Coll children(List<Inst> focus, String name) throws Untranslatable {
      if (Character.isUpperCase(name.charAt(0)) && focus.size() == 1 && focus.get(0).keys().isEmpty()) {
        if (name.equals(mapping.resourceType())) {
          return new Coll(focus); // Patient.name from the resource
        }
        return new Coll(List.of());
      }
      List<Inst> out = new ArrayList<>();
      for (Inst i : focus) {
        if (i.item() != null && i.item().leaf >= 0) {
          throw new Untranslatable("element of a primitive: " + name);
        }
        for (CompiledMapping.Element e : i.item() == null ? mapping.root() : i.item().children) {
          boolean matches = e.name.equals(name) || (e.name.startsWith(name) && e.name.length() > name.length()
              && Character.isUpperCase(e.name.charAt(name.length())) && !e.name.equals("extension"));
          if (!matches) {
            continue;
          }
          for (int k = 0; k < e.items.length; k++) {
            List<String> keys = new ArrayList<>(i.keys());
            keys.add(e.name + "[" + e.keys[k] + "]");
            out.add(new Inst(keys, e.items[k], and(List.of(filterOf(i), new RowCheck.Present(keys)))));
          }
        }
      }
      return new Coll(out);
    }

    /** What, besides being written, keeps an instance in its collection ({@code where} conditions). */
    private static RowCheck.Pred filterOf(Inst i) {
      RowCheck.Pred in = i.in();
      if (in instanceof RowCheck.Present) {
        return new RowCheck.Const(true);
      }
      if (in instanceof RowCheck.And a) {
        return and(a.preds().stream().filter(p -> !(p instanceof RowCheck.Present pr && pr.keys().equals(i.keys())))
            .toList());
      }
      return in;
    }

    private Value function(ExpressionNode node, List<Inst> focus) throws Untranslatable {
      List<ExpressionNode> params = node.getParameters();
      switch (node.getFunction()) {
        case Exists:
          return new Bool(or(members(params.isEmpty() ? focus : where(focus, params.get(0)))));
        case Empty:
          return new Bool(not(or(members(focus))));
        case HasValue:
          if (focus.size() > 1) {
            throw new Untranslatable("hasValue() of several elements");
          }
          return new Bool(focus.isEmpty() || focus.get(0).item() == null || focus.get(0).item().leaf < 0
              ? new RowCheck.Const(false) : focus.get(0).in());
        case Not:
          return new Bool(not(bool(new Coll(focus))));
        case Where:
          return new Coll(where(focus, params.get(0)));
        case Count:
          return new Counted(members(focus));
        case ToString: {
          Inst leaf = singleLeaf(focus);
          return leaf == null ? new Coll(List.of()) : new Coll(List.of(leaf)); // a primitive's text, as written
        }
        case Length: {
          Inst leaf = singleLeaf(focus);
          if (leaf == null) {
            return new Coll(List.of());
          }
          return new Length(leaf);
        }
        case StartsWith: {
          Inst leaf = singleLeaf(focus);
          Value prefix = eval(params.get(0), focus);
          if (leaf == null) {
            return new Coll(List.of());
          }
          if (prefix instanceof Literal l && l.value() instanceof String text) {
            return new Bool(and(List.of(filterOf(leaf), new RowCheck.StartsWith(leaf.keys(), text))));
          }
          throw new Untranslatable("startsWith() of no literal");
        }
        default:
          if (focus.isEmpty()) {
            return new Coll(List.of()); // a function of nothing is nothing
          }
          throw new Untranslatable(node.getFunction().toCode() + "()");
      }
    }

    private List<Inst> where(List<Inst> focus, ExpressionNode condition) throws Untranslatable {
      List<Inst> out = new ArrayList<>();
      for (Inst i : focus) {
        RowCheck.Pred holds = bool(eval(condition, List.of(i)));
        out.add(new Inst(i.keys(), i.item(), and(List.of(i.in(), holds))));
      }
      return out;
    }

    /** The one primitive of a collection; null for none; more than one, or a complex one, is not translated. */
    private Inst singleLeaf(List<Inst> items) throws Untranslatable {
      if (items.isEmpty()) {
        return null;
      }
      if (items.size() > 1 || items.get(0).item() == null || items.get(0).item().leaf < 0
          || mapping.leaves()[items.get(0).item().leaf].list) {
        throw new Untranslatable("not one primitive");
      }
      return items.get(0);
    }

    private boolean isTemporal(Inst i) {
      PrimitiveKind kind = mapping.leaves()[i.item().leaf].kind;
      return kind == PrimitiveKind.DATE || kind == PrimitiveKind.DATE_TIME || kind == PrimitiveKind.INSTANT;
    }

    private static List<RowCheck.Pred> members(List<Inst> items) {
      return items.stream().map(Inst::in).toList();
    }

    private Value operate(Value left, ExpressionNode.Operation op, Value right) throws Untranslatable {
      switch (op) {
        case And:
          return new Bool(and(List.of(bool(left), bool(right))));
        case Or:
          return new Bool(or(List.of(bool(left), bool(right))));
        case Xor: {
          RowCheck.Pred l = bool(left);
          RowCheck.Pred r = bool(right);
          return new Bool(or(List.of(and(List.of(l, not(r))), and(List.of(not(l), r)))));
        }
        case Implies:
          return new Bool(or(List.of(not(bool(left)), bool(right))));
        case Union:
          if (left instanceof Coll l && right instanceof Coll r) {
            List<Inst> all = new ArrayList<>(l.items());
            all.addAll(r.items());
            return new Coll(all);
          }
          break;
        case Plus:
          if (left instanceof Counted l && right instanceof Counted r) {
            List<RowCheck.Pred> all = new ArrayList<>(l.preds());
            all.addAll(r.preds());
            return new Counted(all);
          }
          break;
        case Equals:
        case NotEquals:
          if (left instanceof Coll l && right instanceof Literal r && r.value() instanceof String text) {
            if (l.items().isEmpty()) {
              return new Bool(new RowCheck.Const(false)); // empty = 'x' is empty: not true
            }
            if (l.items().size() == 1 && l.items().get(0).item().leaf >= 0
                && !mapping.leaves()[l.items().get(0).item().leaf].list) {
              Inst i = l.items().get(0);
              RowCheck.Pred equal = and(List.of(filterOf(i), new RowCheck.Equals(i.keys(), text)));
              return new Bool(op == ExpressionNode.Operation.Equals ? equal : and(List.of(i.in(), not(equal))));
            }
          }
          break;
        case Greater:
        case GreaterOrEqual:
        case LessThan:
        case LessOrEqual:
          if (left instanceof Counted l && right instanceof Literal r && r.value() instanceof Integer n) {
            return new Bool(new RowCheck.Count(l.preds(), op.toCode(), n));
          }
          if (left instanceof Length l && right instanceof Literal r && r.value() instanceof Integer n) {
            return new Bool(and(List.of(filterOf(l.leaf()), new RowCheck.Length(l.leaf().keys(), op.toCode(), n))));
          }
          if (left instanceof Coll l && right instanceof Coll r) {
            Inst a = singleLeaf(l.items());
            Inst b = singleLeaf(r.items());
            if (a == null || b == null) {
              return new Bool(FALSE); // a comparison with nothing is empty
            }
            if (isTemporal(a) && isTemporal(b)) {
              return new Bool(and(List.of(filterOf(a), filterOf(b),
                  new RowCheck.CompareDates(a.keys(), op.toCode(), b.keys()))));
            }
          }
          break;
        default:
          break;
      }
      throw new Untranslatable("operation " + op.toCode());
    }

    /** A value in a boolean context: a collection is true when it has an element (FHIRPath's singleton rule). */
    RowCheck.Pred bool(Value v) throws Untranslatable {
      if (v instanceof Bool b) {
        return b.pred();
      }
      if (v instanceof Coll c) {
        return or(members(c.items()));
      }
      throw new Untranslatable("not a boolean");
    }

    private static List<Inst> collection(Value v) throws Untranslatable {
      if (v instanceof Coll c) {
        return c.items();
      }
      throw new Untranslatable("a path below a value that is not an element");
    }
  }

  private static final RowCheck.Pred TRUE = new RowCheck.Const(true);
  private static final RowCheck.Pred FALSE = new RowCheck.Const(false);

  static RowCheck.Pred not(RowCheck.Pred p) {
    if (p instanceof RowCheck.Const c) {
      return new RowCheck.Const(!c.value());
    }
    return p instanceof RowCheck.Not n ? n.pred() : new RowCheck.Not(p);
  }

  static RowCheck.Pred and(List<RowCheck.Pred> preds) {
    List<RowCheck.Pred> out = new ArrayList<>();
    for (RowCheck.Pred p : preds) {
      if (p instanceof RowCheck.Const c) {
        if (!c.value()) {
          return c;
        }
      } else if (p instanceof RowCheck.And a) {
        out.addAll(a.preds());
      } else {
        out.add(p);
      }
    }
    return out.isEmpty() ? new RowCheck.Const(true) : out.size() == 1 ? out.get(0) : new RowCheck.And(out);
  }

  static RowCheck.Pred or(List<RowCheck.Pred> preds) {
    List<RowCheck.Pred> out = new ArrayList<>();
    for (RowCheck.Pred p : preds) {
      if (p instanceof RowCheck.Const c) {
        if (c.value()) {
          return c;
        }
      } else if (p instanceof RowCheck.Or o) {
        out.addAll(o.preds());
      } else {
        out.add(p);
      }
    }
    return out.isEmpty() ? new RowCheck.Const(false) : out.size() == 1 ? out.get(0) : new RowCheck.Or(out);
  }
}
