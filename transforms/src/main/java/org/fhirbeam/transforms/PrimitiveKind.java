package org.fhirbeam.transforms;

import java.math.BigDecimal;
import java.time.LocalDate;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.format.ResolverStyle;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * How a FHIR primitive type is checked and written: as a JSON string, number or boolean. Values arrive trimmed
 * and non-empty; {@link #convert} returns the canonical FHIR text or throws {@link BadValue} with a reason that
 * does not repeat the value.
 */
enum PrimitiveKind {
  STRING, CODE, ID, DATE, DATE_TIME, BOOLEAN, INTEGER, DECIMAL, OTHER;

  static final Pattern ID_PATTERN = Pattern.compile("[A-Za-z0-9\\-.]{1,64}");
  private static final Pattern DECIMAL_PATTERN =
      Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
  private static final Pattern INTEGER_PATTERN = Pattern.compile("[0]|[-+]?[1-9][0-9]*");
  private static final Pattern CODE_PATTERN = Pattern.compile("[^\\s]+( [^\\s]+)*");
  private static final Pattern DATE_TIME_PATTERN = Pattern.compile(
      "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
          + "(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?");

  /** A value that cannot be written as the target type. */
  static final class BadValue extends Exception {
    private static final long serialVersionUID = 1L;
    final String rule;

    BadValue(String rule, String reason) {
      super(reason, null, false, false);
      this.rule = rule;
    }
  }

  static PrimitiveKind of(String fhirType, String fhirTypeName) {
    return switch (fhirType) {
      case "string", "markdown" -> STRING;
      case "code" -> CODE;
      case "id" -> ID;
      case "date" -> DATE;
      case "dateTime", "instant" -> DATE_TIME;
      case "boolean" -> BOOLEAN;
      case "integer", "positiveInt", "unsignedInt" -> INTEGER;
      case "decimal" -> DECIMAL;
      default -> OTHER;
    };
  }

  boolean isJsonNumber() {
    return this == INTEGER || this == DECIMAL;
  }

  /** Compiled date input patterns; the default accepts ISO dates only. */
  static DateTimeFormatter[] dateFormats(List<String> patterns) {
    if (patterns.isEmpty()) {
      return new DateTimeFormatter[] {DateTimeFormatter.ISO_LOCAL_DATE};
    }
    DateTimeFormatter[] out = new DateTimeFormatter[patterns.size()];
    for (int i = 0; i < out.length; i++) {
      // 'uuuu' so that strict resolution accepts plain years.
      out[i] = DateTimeFormatter.ofPattern(patterns.get(i).replace("yyyy", "uuuu"), Locale.ROOT)
          .withResolverStyle(ResolverStyle.STRICT);
    }
    return out;
  }

  String convert(String value, DateTimeFormatter[] dateFormats, String formatsText) throws BadValue {
    switch (this) {
      case DATE -> {
        for (DateTimeFormatter f : dateFormats) {
          try {
            return LocalDate.parse(value, f).format(DateTimeFormatter.ISO_LOCAL_DATE);
          } catch (DateTimeParseException e) {
            // try the next pattern
          }
        }
        throw new BadValue("date", "value is not a date in the expected format (" + formatsText + ")");
      }
      case DATE_TIME -> {
        if (!DATE_TIME_PATTERN.matcher(value).matches()) {
          throw new BadValue("dateTime", "value is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or"
              + " YYYY-MM-DDThh:mm:ss+zz:zz)");
        }
        return value;
      }
      case BOOLEAN -> {
        return switch (value.toLowerCase(Locale.ROOT)) {
          case "true", "1", "yes", "y" -> "true";
          case "false", "0", "no", "n" -> "false";
          default -> throw new BadValue("boolean", "value is not a boolean (true/false, yes/no, 1/0)");
        };
      }
      case INTEGER -> {
        if (!INTEGER_PATTERN.matcher(value).matches()) {
          throw new BadValue("integer", "value is not a whole number");
        }
        try {
          return Integer.toString(Integer.parseInt(value));
        } catch (NumberFormatException e) {
          throw new BadValue("integer", "value is outside the 32-bit range of FHIR integers");
        }
      }
      case DECIMAL -> {
        if (!DECIMAL_PATTERN.matcher(value).matches()) {
          throw new BadValue("decimal", "value is not a decimal number");
        }
        new BigDecimal(value);
        return value;
      }
      case ID -> {
        if (!ID_PATTERN.matcher(value).matches()) {
          throw new BadValue("id", "value is not a FHIR id (1-64 letters, digits, '-' or '.')");
        }
        return value;
      }
      case CODE -> {
        if (!CODE_PATTERN.matcher(value).matches()) {
          throw new BadValue("code", "value is not a FHIR code (no leading, trailing or repeated spaces)");
        }
        return value;
      }
      default -> {
        return value;
      }
    }
  }
}
