package org.fhirbeam.config;

import java.util.Map;

/**
 * Replaces {@code ${VAR}} and {@code ${VAR:-default}} in configuration values; {@code $$} stands for a literal
 * dollar sign. Variables come from an explicit map (the process environment plus built-ins), so tests can
 * supply their own.
 */
public final class Interpolator {
  private final Map<String, String> variables;

  public Interpolator(Map<String, String> variables) {
    this.variables = Map.copyOf(variables);
  }

  /** Returns the interpolated text, or throws {@link IllegalArgumentException} naming the missing variable. */
  public String apply(String text) {
    if (text.indexOf('$') < 0) {
      return text;
    }
    StringBuilder out = new StringBuilder(text.length());
    int i = 0;
    while (i < text.length()) {
      char c = text.charAt(i);
      if (c == '$' && i + 1 < text.length() && text.charAt(i + 1) == '$') {
        out.append('$');
        i += 2;
      } else if (c == '$' && i + 1 < text.length() && text.charAt(i + 1) == '{') {
        int end = text.indexOf('}', i + 2);
        if (end < 0) {
          throw new IllegalArgumentException("unclosed ${ in value");
        }
        String expr = text.substring(i + 2, end);
        int sep = expr.indexOf(":-");
        String name = sep < 0 ? expr : expr.substring(0, sep);
        if (!name.matches("[A-Za-z_][A-Za-z0-9_]*")) {
          throw new IllegalArgumentException("'${" + expr + "}' is not a valid variable reference");
        }
        String value = variables.get(name);
        if (value == null || (sep >= 0 && value.isEmpty())) {
          if (sep < 0) {
            throw new IllegalArgumentException(
                "environment variable " + name + " is not set (write ${" + name + ":-default} to give a default)");
          }
          value = expr.substring(sep + 2);
        }
        out.append(value);
        i = end + 1;
      } else {
        out.append(c);
        i++;
      }
    }
    return out.toString();
  }
}
