package org.fhirbeam.transforms;

import java.util.List;
import java.util.Locale;

/**
 * How a FHIR primitive type is checked and written: as a JSON string, number or boolean. Row values are checked
 * by DuckDB with the same regexes ({@link SqlMapping}); {@link #convert} checks the values written in a mapping
 * and returns their canonical FHIR text, or throws {@link BadValue} with a reason that does not repeat the value.
 */
enum PrimitiveKind {
  STRING, CODE, ID, DATE, DATE_TIME, INSTANT, TIME, BOOLEAN, INTEGER, POSITIVE_INT, UNSIGNED_INT, DECIMAL, OTHER;

  static final List<String> TRUE_WORDS = List.of("true", "1", "yes", "y");
  static final List<String> FALSE_WORDS = List.of("false", "0", "no", "n");

  static final String BOOLEAN_REASON = "value is not a boolean (true/false, yes/no, 1/0)";
  static final String DATE_TIME_REASON =
      "value is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz) of a real day and time";
  static final String INSTANT_REASON =
      "value is not a FHIR instant (YYYY-MM-DDThh:mm:ss with an offset such as Z or +01:00) of a real day and time";
  static final String TIME_REASON = "value is not a FHIR time (hh:mm:ss, hours 00 to 23)";
  static final String INTEGER_REASON = "value is not a whole number";
  static final String INTEGER_RANGE_REASON = "value is outside the 32-bit range of FHIR integers";
  static final String DECIMAL_REASON = "value is not a decimal number";
  static final String ID_REASON = "value is not a FHIR id (1-64 letters, digits, '-' or '.')";
  static final String CODE_REASON = "value is not a FHIR code (no leading, trailing or repeated spaces)";

  static String dateReason(String formatsText) {
    return "value is not a date in the expected format (" + formatsText + ")";
  }

  /** The rule name reported when a value is not of this type. */
  String rule() {
    return switch (this) {
      case DATE -> "date";
      case DATE_TIME -> "dateTime";
      case INSTANT -> "instant";
      case TIME -> "time";
      case BOOLEAN -> "boolean";
      case INTEGER, POSITIVE_INT, UNSIGNED_INT -> "integer";
      case DECIMAL -> "decimal";
      case ID -> "id";
      case CODE -> "code";
      default -> "value";
    };
  }

  /** A value that cannot be written as the target type. */
  static final class BadValue extends Exception {
    private static final long serialVersionUID = 1L;
    final String rule;

    BadValue(String rule, String reason) {
      super(reason, null, false, false);
      this.rule = rule;
    }
  }

  static PrimitiveKind of(String fhirType) {
    return switch (fhirType) {
      case "string", "markdown" -> STRING;
      case "code" -> CODE;
      case "id" -> ID;
      case "date" -> DATE;
      case "dateTime" -> DATE_TIME;
      case "instant" -> INSTANT;
      case "time" -> TIME;
      case "boolean" -> BOOLEAN;
      case "integer" -> INTEGER;
      case "positiveInt" -> POSITIVE_INT;
      case "unsignedInt" -> UNSIGNED_INT;
      case "decimal" -> DECIMAL;
      default -> OTHER;
    };
  }

  boolean isJsonNumber() {
    return isInteger() || this == DECIMAL;
  }

  /** integer, positiveInt and unsignedInt: whole numbers, each with its lowest value. */
  boolean isInteger() {
    return this == INTEGER || this == POSITIVE_INT || this == UNSIGNED_INT;
  }

  /** The lowest value of an integer type. */
  long lowest() {
    return this == POSITIVE_INT ? 1 : this == UNSIGNED_INT ? 0 : Integer.MIN_VALUE;
  }

  /** Why a whole number is out of this type's range. */
  String rangeReason() {
    return switch (this) {
      case POSITIVE_INT -> "value is outside the range of FHIR positiveInt (1 to 2147483647)";
      case UNSIGNED_INT -> "value is outside the range of FHIR unsignedInt (0 to 2147483647)";
      default -> INTEGER_RANGE_REASON;
    };
  }

  /**
   * A date or date-time input pattern as DuckDB reads it: a regex the text must match, then a strptime format;
   * whether it has a time of day, an offset ({@code X}) and a fraction of seconds ({@code SSS}).
   */
  record DatePattern(String javaPattern, String regex, String strptime, boolean hasTime, boolean hasOffset,
      boolean hasFraction, boolean hasMonth, boolean hasDay) implements java.io.Serializable {

    /** The strftime format of the date part, at the precision the pattern reads: year, month or day. */
    String datePrecision() {
      return hasDay ? "%Y-%m-%d" : hasMonth ? "%Y-%m" : "%Y";
    }
  }

  static String dateTimeReason(String formatsText) {
    return "value is not a date/time in the expected format (" + formatsText + ")";
  }

  private static String regexLiteral(char c) {
    return "\\.^$|?*+()[]{}".indexOf(c) >= 0 ? "\\" + c : String.valueOf(c);
  }

  /** The default input pattern of date elements. */
  static final String ISO_DATE = "yyyy-MM-dd";

  /**
   * Translates a pattern ({@code yyyy}, {@code MM}, {@code M}, {@code dd}, {@code d}; for date-times also
   * {@code HH}, {@code H}, the 12-hour {@code hh}, {@code h} with the marker {@code a}, {@code mm}, {@code ss},
   * {@code SSS} and the offset {@code X}; literal separators or quoted text) into a strict regex and a strptime
   * format.
   */
  static DatePattern datePattern(String pattern) {
    StringBuilder regex = new StringBuilder();
    StringBuilder strptime = new StringBuilder();
    boolean time = false;
    boolean offset = false;
    boolean fraction = false;
    boolean twelveHour = false;
    boolean marker = false;
    boolean year = false;
    boolean month = false;
    boolean day = false;
    int i = 0;
    while (i < pattern.length()) {
      char c = pattern.charAt(i);
      int run = 1;
      while (i + run < pattern.length() && pattern.charAt(i + run) == c) {
        run++;
      }
      if (c == 'y' || c == 'u') {
        if (run != 4) {
          throw new IllegalArgumentException("'" + pattern + "': write years as yyyy");
        }
        regex.append("(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"); // FHIR has no year 0000
        strptime.append("%Y");
        year = true;
      } else if (c == 'M' || c == 'd') {
        if (run > 2) {
          throw new IllegalArgumentException("'" + pattern + "': " + c + " appears more than twice (month names are"
              + " not supported)");
        }
        regex.append(run == 2 ? "[0-9]{2}" : "[0-9]{1,2}");
        strptime.append(c == 'M' ? "%m" : "%d");
        month |= c == 'M';
        day |= c == 'd';
      } else if (c == 'H' && run <= 2) {
        regex.append(run == 2 ? "([01][0-9]|2[0-3])" : "([01]?[0-9]|2[0-3])");
        strptime.append("%H");
        time = true;
      } else if (c == 'h' && run <= 2) {
        regex.append(run == 2 ? "(0[1-9]|1[0-2])" : "(0?[1-9]|1[0-2])");
        strptime.append("%I");
        time = true;
        twelveHour = true;
      } else if (c == 'a' && run == 1) {
        regex.append("[AaPp][Mm]");
        strptime.append("%p");
        marker = true;
      } else if ((c == 'm' || c == 's') && run == 2) {
        regex.append("[0-5][0-9]");
        strptime.append(c == 'm' ? "%M" : "%S");
      } else if (c == 'S' && run == 3) {
        regex.append("[0-9]{3}");
        strptime.append("%g");
        fraction = true;
      } else if (c == 'X' && run <= 3) {
        regex.append("(Z|[+-]((0[0-9]|1[0-3])(:?[0-5][0-9])?|14(:?00)?))"); // FHIR's offsets: -14:00 to +14:00
        strptime.append("%z");
        offset = true;
      } else if (Character.isLetter(c)) {
        throw new IllegalArgumentException("'" + pattern + "': pattern letter '" + c + "' (" + run + " times) is not"
            + " supported (use yyyy, MM, M, dd, d; HH, H, hh, h, a, mm, ss, SSS, X; and separators)");
      } else if (c == '\'') {
        int close = pattern.indexOf('\'', i + 1);
        if (close < 0) {
          throw new IllegalArgumentException("'" + pattern + "': unclosed quote");
        }
        for (char l : pattern.substring(i + 1, close).toCharArray()) {
          regex.append(regexLiteral(l));
          strptime.append(l == '%' ? "%%" : String.valueOf(l));
        }
        i = close + 1;
        continue;
      } else {
        for (int k = 0; k < run; k++) {
          regex.append(regexLiteral(c));
          strptime.append(c == '%' ? "%%" : String.valueOf(c));
        }
      }
      i += run;
    }
    if (!year || (day && !month) || (time && !day)) {
      throw new IllegalArgumentException("'" + pattern + "': a pattern reads the year (yyyy), then optionally the"
          + " month (MM), the day (dd) and a time: nothing may be left out in between");
    }
    if (twelveHour != marker) {
      throw new IllegalArgumentException("'" + pattern + "': a 12-hour clock (hh) needs its AM/PM marker (a),"
          + " and the other way round");
    }
    if (!time && (offset || fraction || strptime.indexOf("%M") >= 0 || strptime.indexOf("%S") >= 0)) {
      throw new IllegalArgumentException("'" + pattern + "': minutes, seconds and offsets need hours (HH)");
    }
    return new DatePattern(pattern, regex.toString(), strptime.toString(), time, offset, fraction, month, day);
  }

  /** Checks a value written in a mapping (constant, default, code map target) and returns its FHIR text. */
  String convert(String value) throws BadValue {
    switch (this) {
      case DATE -> {
        // FHIR dates: YYYY, YYYY-MM or YYYY-MM-DD (a dateTime without time), each a real year, month or day.
        if (!PrimitiveFormats.DATE_TIME_PATTERN.matcher(value).matches() || value.contains("T")) {
          throw new BadValue("date", dateReason("yyyy-MM-dd, yyyy-MM or yyyy"));
        }
        return value;
      }
      case DATE_TIME -> {
        if (!PrimitiveFormats.DATE_TIME_PATTERN.matcher(value).matches()) {
          throw new BadValue("dateTime", DATE_TIME_REASON);
        }
        return value;
      }
      case INSTANT -> {
        if (!PrimitiveFormats.INSTANT_PATTERN.matcher(value).matches()) {
          throw new BadValue("instant", INSTANT_REASON);
        }
        return value;
      }
      case TIME -> {
        if (!PrimitiveFormats.TIME_PATTERN.matcher(value).matches()) {
          throw new BadValue("time", TIME_REASON);
        }
        return value;
      }
      case BOOLEAN -> {
        String lower = value.toLowerCase(Locale.ROOT);
        if (TRUE_WORDS.contains(lower)) {
          return "true";
        }
        if (FALSE_WORDS.contains(lower)) {
          return "false";
        }
        throw new BadValue("boolean", BOOLEAN_REASON);
      }
      case INTEGER, POSITIVE_INT, UNSIGNED_INT -> {
        if (!PrimitiveFormats.INTEGER_PATTERN.matcher(value).matches()) {
          throw new BadValue("integer", INTEGER_REASON);
        }
        try {
          int v = Integer.parseInt(value);
          if (v < lowest()) {
            throw new BadValue("integer", rangeReason());
          }
          return Integer.toString(v);
        } catch (NumberFormatException e) {
          throw new BadValue("integer", rangeReason());
        }
      }
      case DECIMAL -> {
        if (!PrimitiveFormats.DECIMAL_PATTERN.matcher(value).matches()) {
          throw new BadValue("decimal", DECIMAL_REASON);
        }
        return value;
      }
      case ID -> {
        if (!PrimitiveFormats.ID_PATTERN.matcher(value).matches()) {
          throw new BadValue("id", ID_REASON);
        }
        return value;
      }
      case CODE -> {
        if (!PrimitiveFormats.CODE_PATTERN.matcher(value).matches()) {
          throw new BadValue("code", CODE_REASON);
        }
        return value;
      }
      default -> {
        return value;
      }
    }
  }
}
