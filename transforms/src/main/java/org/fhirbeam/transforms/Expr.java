package org.fhirbeam.transforms;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The expression language of mapping rules: column references, constants and function calls, for example
 * {@code join(' ', PREFIX, FIRST)}, {@code if(eq(TYPE, 'numeric'), VALUE)} or {@code uuid('condition', PATIENT,
 * START, CODE)}. An expression is parsed and checked once, when the mapping is compiled, and evaluated by DuckDB
 * as SQL ({@link #sql}); no row ever goes through this class.
 *
 * <p>Values are text or missing (SQL NULL); a value that is empty after trimming counts as missing. Conditions
 * ({@code eq}, {@code empty}, {@code and}, ...) are only allowed where a condition is expected.
 */
public sealed interface Expr extends Serializable {

  /** A source column, by name. */
  record Column(String name) implements Expr {}

  /** A text constant. */
  record Literal(String text) implements Expr {}

  /** A function applied to arguments. */
  record Call(String function, List<Expr> args) implements Expr {
    public Call {
      args = List.copyOf(args);
    }
  }

  /** What a function returns. */
  enum Returns { VALUE, CONDITION, LIST }

  /** A function of the language: its arity, result, and which arguments must be constants or conditions. */
  record Fn(String name, int minArgs, int maxArgs, Returns returns, String signature, String help) {}

  /** Every function, in the order the documentation lists them. */
  List<Fn> FUNCTIONS = List.of(
      new Fn("lower", 1, 1, Returns.VALUE, "lower(x)", "lower case"),
      new Fn("upper", 1, 1, Returns.VALUE, "upper(x)", "upper case"),
      new Fn("trim", 1, 1, Returns.VALUE, "trim(x)", "strip spaces at both ends"),
      new Fn("concat", 1, 99, Returns.VALUE, "concat(a, b, ...)",
          "the values one after the other; missing when any of them is missing (join skips missing ones)"),
      new Fn("join", 2, 99, Returns.VALUE, "join(separator, a, b, ...)",
          "joins the present values with a constant separator"),
      new Fn("substring", 2, 3, Returns.VALUE, "substring(x, start[, length])",
          "characters from position start (1 = first)"),
      new Fn("regex_replace", 3, 3, Returns.VALUE, "regex_replace(x, pattern, replacement)",
          "replaces every match of a constant regular expression; \\1 in the replacement is group 1"),
      new Fn("part", 3, 3, Returns.VALUE, "part(x, separator, n)",
          "the n-th piece (1 = first) of x split at a constant separator"),
      new Fn("coalesce", 1, 99, Returns.VALUE, "coalesce(a, b, ...)", "the first present value"),
      new Fn("if", 2, 3, Returns.VALUE, "if(condition, then[, else])",
          "then when the condition holds, else (or missing) otherwise"),
      new Fn("uuid", 2, 99, Returns.VALUE, "uuid(namespace, key, ...)",
          "a name-based UUID (version 3) of a constant namespace and the key values: stable across runs and runners"),
      new Fn("ref", 2, 2, Returns.VALUE, "ref(ResourceType, id)", "a reference 'ResourceType/id'"),
      new Fn("split", 2, 2, Returns.LIST, "split(x, separator)",
          "the pieces of x at a constant separator, as repetitions of a repeating element (whole rule only)"),
      new Fn("eq", 2, 2, Returns.CONDITION, "eq(a, b)", "a equals b (both present)"),
      new Fn("ne", 2, 2, Returns.CONDITION, "ne(a, b)", "a and b are present and differ"),
      new Fn("in", 2, 99, Returns.CONDITION, "in(x, 'a', 'b', ...)", "x is one of the constants"),
      new Fn("matches", 2, 2, Returns.CONDITION, "matches(x, pattern)",
          "x matches a constant regular expression entirely"),
      new Fn("present", 1, 1, Returns.CONDITION, "present(x)", "x has a value"),
      new Fn("empty", 1, 1, Returns.CONDITION, "empty(x)", "x is missing"),
      new Fn("and", 2, 99, Returns.CONDITION, "and(c1, c2, ...)", "all conditions hold"),
      new Fn("or", 2, 99, Returns.CONDITION, "or(c1, c2, ...)", "any condition holds"),
      new Fn("not", 1, 1, Returns.CONDITION, "not(c)", "the condition does not hold"));

  /** A mistake in an expression, with what was expected. */
  final class BadExpression extends Exception {
    private static final long serialVersionUID = 1L;

    BadExpression(String message) {
      super(message, null, false, false);
    }
  }

  /** Parses {@code text}; throws {@link BadExpression} naming the position of a syntax error. */
  static Expr parse(String text) throws BadExpression {
    Parser p = new Parser(text);
    Expr e = p.expression();
    p.skipSpaces();
    if (p.pos < text.length()) {
      throw p.error("unexpected '" + text.charAt(p.pos) + "'");
    }
    return e;
  }

  /** The function named {@code name}, or null. */
  static Fn function(String name) {
    for (Fn f : FUNCTIONS) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    return null;
  }

  /**
   * Checks an expression used as a rule's value (or, with {@code listAllowed}, as a whole rule on a repeating
   * element): functions exist with the right number and kind of arguments, columns exist in source
   * {@code sourceName} (when {@code columns} is not null), constant arguments are constants, and regular
   * expressions run in DuckDB; collects every problem in {@code problems}.
   */
  static void check(Expr e, Collection<String> columns, String sourceName, boolean listAllowed,
      List<String> problems, java.util.function.Predicate<String> isResourceType) {
    new Checker(columns, sourceName, problems, isResourceType).check(e, Returns.VALUE, listAllowed);
  }

  /** What one check of an expression needs at every node. */
  record Checker(Collection<String> columns, String sourceName, List<String> problems,
      java.util.function.Predicate<String> isResourceType) {

    void check(Expr e, Returns expected, boolean listAllowed) {
      if (e instanceof Column c) {
        if (columns != null && !columns.contains(c.name())) {
          problems.add("column '" + c.name() + "' is not in source " + sourceName + " (columns: "
              + String.join(", ", columns) + ")");
        }
        if (expected == Returns.CONDITION) {
          problems.add("column '" + c.name() + "' is a value where a condition is expected (write present("
              + c.name() + ") or eq(" + c.name() + ", '...'))");
        }
        return;
      }
      if (e instanceof Literal l) {
        if (expected == Returns.CONDITION) {
          problems.add("constant '" + l.text() + "' is a value where a condition is expected");
        }
        return;
      }
      Call call = (Call) e;
      Fn f = function(call.function());
      if (f == null) {
        List<String> names = new ArrayList<>();
        for (Fn g : FUNCTIONS) {
          names.add(g.name());
        }
        problems.add("unknown function '" + call.function() + "' (functions: " + String.join(", ", names) + ")");
        return;
      }
      int n = call.args().size();
      if (n < f.minArgs() || n > f.maxArgs()) {
        problems.add(call.function() + " takes " + (f.minArgs() == f.maxArgs() ? f.minArgs()
            : f.maxArgs() == 99 ? "at least " + f.minArgs() : f.minArgs() + " to " + f.maxArgs())
            + " arguments: " + f.signature());
        return;
      }
      if (f.returns() == Returns.LIST && !listAllowed) {
        problems.add(f.name() + "() makes repetitions: it must be the whole rule of a repeating element");
      } else if (f.returns() != Returns.LIST && f.returns() != expected) {
        problems.add(f.name() + "() is a " + (f.returns() == Returns.CONDITION ? "condition where a value"
            : "value where a condition") + " is expected");
      }
      for (int i = 0; i < n; i++) {
        Expr a = call.args().get(i);
        boolean isCondition = switch (f.name()) {
          case "and", "or", "not" -> true;
          case "if" -> i == 0;
          default -> false;
        };
        boolean mustBeConstant = switch (f.name()) {
          case "join", "uuid", "ref" -> i == 0;
          case "regex_replace" -> i >= 1;
          case "part" -> i >= 1;
          case "split", "matches" -> i == 1;
          case "in" -> i >= 1;
          default -> false;
        };
        if (mustBeConstant && !(a instanceof Literal)) {
          problems.add("argument " + (i + 1) + " of " + f.name() + "() must be a constant in quotes: " + f.signature());
          continue;
        }
        check(a, isCondition ? Returns.CONDITION : Returns.VALUE, false);
      }
      checkConstants(call, f);
    }

    private void checkConstants(Call call, Fn f) {
      List<Expr> args = call.args();
      if ((f.name().equals("regex_replace") || f.name().equals("matches")) && args.get(1) instanceof Literal l) {
        // Checked by the engine that will run it: Java's accepts patterns DuckDB's RE2 refuses.
        String error = Re2.check(l.text());
        if (error != null) {
          problems.add("'" + l.text() + "' is not a regular expression DuckDB can run (RE2): " + error);
        }
      }
      switch (f.name()) {
        case "regex_replace" -> {
          if (args.get(1) instanceof Literal l && args.get(2) instanceof Literal r) {
            try {
              int groups = Pattern.compile(l.text()).matcher("").groupCount();
              java.util.regex.Matcher m = Pattern.compile("\\\\([0-9])").matcher(r.text());
              while (m.find()) {
                if (Integer.parseInt(m.group(1)) > groups) {
                  problems.add("regex_replace(): the replacement uses group \\" + m.group(1) + ", but the pattern has "
                      + groups + " group(s)");
                }
              }
            } catch (PatternSyntaxException ex) {
              // reported by DuckDB's check
            }
          }
        }
        case "part" -> {
          if (args.get(2) instanceof Literal l && !l.text().matches("[1-9][0-9]{0,5}")) {
            problems.add("part(): the piece number must be a whole number from 1");
          }
          if (args.get(1) instanceof Literal l && l.text().isEmpty()) {
            problems.add("part(): the separator must not be empty");
          }
        }
        case "split" -> {
          if (args.get(1) instanceof Literal l && l.text().isEmpty()) {
            problems.add("split(): the separator must not be empty");
          }
        }
        case "substring" -> {
          for (int i = 1; i < args.size(); i++) {
            if (!(args.get(i) instanceof Literal l) || !l.text().matches("[0-9]{1,6}")
                || (i == 1 && l.text().equals("0"))) {
              problems.add("substring(): start (from 1) and length must be whole numbers");
            }
          }
        }
        case "ref" -> {
          if (args.get(0) instanceof Literal l && !isResourceType.test(l.text())) {
            problems.add("ref(): '" + l.text() + "' is not a FHIR R4 resource type");
          }
        }
        case "uuid" -> {
          if (args.get(0) instanceof Literal l && l.text().isBlank()) {
            problems.add("uuid(): the namespace must not be empty");
          }
        }
        default -> { }
      }
    }
  }

  /** The columns an expression reads, in order of appearance. */
  static void columns(Expr e, Collection<String> out) {
    if (e instanceof Column c) {
      if (!out.contains(c.name())) {
        out.add(c.name());
      }
    } else if (e instanceof Call call) {
      for (Expr a : call.args()) {
        columns(a, out);
      }
    }
  }

  /** Whether the expression is a call of split(). */
  static boolean isList(Expr e) {
    return e instanceof Call c && c.function().equals("split");
  }

  /**
   * The expression as DuckDB SQL: a VARCHAR that is NULL when missing (never empty), or, for split(), a
   * VARCHAR[] of present, trimmed pieces. {@code column} gives the SQL of a column's trimmed value.
   */
  static String sql(Expr e, Function<String, String> column) {
    if (e instanceof Call c && c.function().equals("split")) {
      // Missing when there is no piece: an empty list is no value.
      return "nullif(list_filter(list_transform(string_split(" + value(c.args().get(0), column) + ", "
          + SqlMapping.lit(((Literal) c.args().get(1)).text()) + "), lambda p: " + SqlMapping.clean("p")
          + "), lambda p: p IS NOT NULL), [])";
    }
    // Columns are trimmed already; uuid() text and ref() of a column cannot be blank or have spaces at the ends.
    boolean alreadyClean = e instanceof Column || e instanceof Call c && (c.function().equals("uuid")
        || c.function().equals("ref") && c.args().get(1) instanceof Column);
    return alreadyClean ? value(e, column) : clean(value(e, column));
  }

  private static String value(Expr e, Function<String, String> column) {
    if (e instanceof Column c) {
      return column.apply(c.name());
    }
    if (e instanceof Literal l) {
      return SqlMapping.lit(l.text());
    }
    Call c = (Call) e;
    // Constant arguments as SQL literals (null for the others); check() made sure they are constants where needed.
    List<String> a = new ArrayList<>();
    for (Expr arg : c.args()) {
      a.add(arg instanceof Literal l ? SqlMapping.lit(l.text()) : null);
    }
    Function<Integer, String> v = i -> value(c.args().get(i), column);
    Function<Integer, String> cond = i -> condition(c.args().get(i), column);
    return switch (c.function()) {
      case "lower" -> "lower(" + v.apply(0) + ")";
      case "upper" -> "upper(" + v.apply(0) + ")";
      case "trim" -> clean(v.apply(0));
      case "concat" -> "(" + String.join(" || ", values(c, column, 0)) + ")";
      case "join" -> clean("concat_ws(" + a.get(0) + ", " + joined(c, column, 1) + ")");
      case "substring" -> clean("substring(" + v.apply(0) + ", " + a.get(1)
          + (a.size() > 2 ? ", " + a.get(2) : "") + ")");
      case "regex_replace" -> clean("regexp_replace(" + v.apply(0) + ", " + a.get(1) + ", " + a.get(2) + ", 'g')");
      case "part" -> clean("split_part(" + v.apply(0) + ", " + a.get(1) + ", " + ((Literal) c.args().get(2)).text()
          + ")");
      case "coalesce" -> {
        // A blank constant is no value either.
        List<String> parts = new ArrayList<>();
        for (String v0 : values(c, column, 0)) {
          parts.add(clean(v0));
        }
        yield "coalesce(" + String.join(", ", parts) + ")";
      }
      case "if" -> "CASE WHEN " + cond.apply(0) + " THEN " + v.apply(1) + (c.args().size() > 2 ? " ELSE "
          + v.apply(2) : "") + " END";
      case "uuid" -> uuidSql("to_json(list_value(" + a.get(0) + ", " + joined(c, column, 1) + "))");
      case "ref" -> "(" + SqlMapping.lit(((Literal) c.args().get(0)).text() + "/") + " || " + v.apply(1) + ")";
      default -> throw new IllegalArgumentException("not a value function: " + c.function());
    };
  }

  private static String condition(Expr e, Function<String, String> column) {
    Call c = (Call) e;
    Function<Integer, String> v = i -> value(c.args().get(i), column);
    List<String> conds = new ArrayList<>();
    for (Expr arg : c.args()) {
      conds.add(arg instanceof Call call && function(call.function()).returns() == Returns.CONDITION
          ? condition(arg, column) : null);
    }
    return switch (c.function()) {
      case "eq" -> "(" + v.apply(0) + " = " + v.apply(1) + ")";
      case "ne" -> "(" + v.apply(0) + " <> " + v.apply(1) + ")";
      case "in" -> {
        List<String> options = new ArrayList<>();
        for (int i = 1; i < c.args().size(); i++) {
          options.add(SqlMapping.lit(((Literal) c.args().get(i)).text()));
        }
        yield "(" + v.apply(0) + " IN (" + String.join(", ", options) + "))";
      }
      case "matches" -> "regexp_full_match(" + v.apply(0) + ", " + SqlMapping.lit(((Literal) c.args().get(1)).text())
          + ")";
      case "present" -> "(" + v.apply(0) + " IS NOT NULL)";
      case "empty" -> "(" + v.apply(0) + " IS NULL)";
      case "and" -> "(" + String.join(" AND ", conds) + ")";
      case "or" -> "(" + String.join(" OR ", conds) + ")";
      case "not" -> "(NOT coalesce(" + conds.get(0) + ", false))";
      default -> throw new IllegalArgumentException("not a condition: " + c.function());
    };
  }

  private static String joined(Call c, Function<String, String> column, int from) {
    return String.join(", ", values(c, column, from));
  }

  private static List<String> values(Call c, Function<String, String> column, int from) {
    List<String> parts = new ArrayList<>();
    for (int i = from; i < c.args().size(); i++) {
      parts.add(value(c.args().get(i), column));
    }
    return parts;
  }

  /** Trims a computed text and makes an empty one missing, as for input values. */
  private static String clean(String sql) {
    // A computed text is trimmed as it is: the fast path of SqlMapping.clean repeats its argument six times.
    return SqlMapping.trimmed(sql);
  }

  /**
   * A version 3 (MD5, name-based) UUID of {@code nameSql}, formatted as text. The same as Java's
   * {@code UUID.nameUUIDFromBytes(name.getBytes(UTF_8))}. {@code nameSql} must not be NULL (uuid() passes a JSON
   * array): concat skips a NULL part where || gave NULL.
   */
  static String uuidSql(String nameSql) {
    // The lambda names the hash once. One concat builds the text at once, where each || made a string of its own:
    // 400,000 Synthea-shaped keys 310 -> 255 ms.
    return "list_transform([md5(" + nameSql + ")], lambda h: concat(substr(h, 1, 8), '-', substr(h, 9, 4), '-3',"
        + " substr(h, 14, 3), '-', substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr(h, 17, 1)), 1),"
        + " substr(h, 18, 3), '-', substr(h, 21, 12)))[1]";
  }

  /** Writes an expression back as text, for messages and previews. */
  static String text(Expr e) {
    if (e instanceof Column c) {
      return c.name().matches("[A-Za-z_][A-Za-z0-9_]*") ? c.name() : "\"" + c.name().replace("\"", "\"\"") + "\"";
    }
    if (e instanceof Literal l) {
      return l.text().matches("-?[0-9]+(\\.[0-9]+)?") ? l.text() : "'" + l.text().replace("'", "''") + "'";
    }
    Call call = (Call) e;
    List<String> args = new ArrayList<>();
    for (Expr a : call.args()) {
      args.add(text(a));
    }
    return call.function() + "(" + String.join(", ", args) + ")";
  }

  /** A recursive-descent parser of the expression syntax. */
  final class Parser {
    private final String text;
    private int pos;

    Parser(String text) {
      this.text = text;
    }

    Expr expression() throws BadExpression {
      skipSpaces();
      if (pos >= text.length()) {
        throw error("an expression is expected");
      }
      char ch = text.charAt(pos);
      if (ch == '\'') {
        return new Literal(quoted('\''));
      }
      if (ch == '"') {
        return new Column(quoted('"'));
      }
      if (ch == '-' || Character.isDigit(ch)) {
        int start = pos;
        pos++;
        while (pos < text.length() && (Character.isDigit(text.charAt(pos)) || text.charAt(pos) == '.')) {
          pos++;
        }
        String number = text.substring(start, pos);
        if (!number.matches("-?[0-9]+(\\.[0-9]+)?")) {
          throw error("'" + number + "' is not a number");
        }
        return new Literal(number);
      }
      if (Character.isLetter(ch) || ch == '_') {
        int start = pos;
        while (pos < text.length() && (Character.isLetterOrDigit(text.charAt(pos)) || text.charAt(pos) == '_')) {
          pos++;
        }
        String name = text.substring(start, pos);
        skipSpaces();
        if (pos < text.length() && text.charAt(pos) == '(') {
          pos++;
          List<Expr> args = new ArrayList<>();
          skipSpaces();
          if (pos < text.length() && text.charAt(pos) == ')') {
            pos++;
            return new Call(name.toLowerCase(Locale.ROOT), args);
          }
          while (true) {
            args.add(expression());
            skipSpaces();
            if (pos >= text.length()) {
              throw error("')' is missing");
            }
            char next = text.charAt(pos++);
            if (next == ')') {
              return new Call(name.toLowerCase(Locale.ROOT), args);
            }
            if (next != ',') {
              pos--;
              throw error("',' or ')' expected");
            }
          }
        }
        return new Column(name);
      }
      throw error("unexpected '" + ch + "'");
    }

    private String quoted(char quote) throws BadExpression {
      int start = pos;
      pos++;
      StringBuilder sb = new StringBuilder();
      while (pos < text.length()) {
        char ch = text.charAt(pos++);
        if (ch == quote) {
          if (pos < text.length() && text.charAt(pos) == quote) {
            sb.append(quote);
            pos++;
          } else {
            return sb.toString();
          }
        } else {
          sb.append(ch);
        }
      }
      pos = start;
      throw error("unterminated " + (quote == '\'' ? "text constant" : "quoted column name"));
    }

    void skipSpaces() {
      while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
        pos++;
      }
    }

    BadExpression error(String problem) {
      return new BadExpression(problem + " at character " + (pos + 1) + " of '" + text + "'");
    }
  }
}
