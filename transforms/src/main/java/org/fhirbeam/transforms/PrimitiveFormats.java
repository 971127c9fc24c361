package org.fhirbeam.transforms;

import java.util.regex.Pattern;

/**
 * FHIR's regexes of primitive values, as Java and DuckDB both read them: the mapping's constants and rows
 * ({@code PrimitiveKind}) and {@code fhirbeam validate}'s compiled checks use the same.
 */
public final class PrimitiveFormats {
  private PrimitiveFormats() {}

  public static final String ID = "[A-Za-z0-9\\-.]{1,64}";
  public static final String DECIMAL = "-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?";
  public static final String INTEGER = "[0]|[-+]?[1-9][0-9]*";
  public static final String CODE = "[^\\s]+( [^\\s]+)*";
  // FHIR's dates and times, narrowed to real ones: FHIR's regexes allow day 31 of every month and the leap second 60
  // (which java.time and DuckDB do not have either). The calendar is in the regex, so checking a row costs no more.
  private static final String YEAR = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
  /** Years divisible by 4, but not by 100 unless by 400 (year 0000 is no FHIR year). */
  private static final String LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)";
  /** A month and one of its days; February 29 apart. */
  private static final String MONTH_DAY = "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
      + "|02-(0[1-9]|1[0-9]|2[0-8]))";
  private static final String DAY = "(" + YEAR + "-" + MONTH_DAY + "|" + LEAP_YEAR + "-02-29)";
  public static final String TIME = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?";
  private static final String OFFSET = "(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";
  public static final String DATE_TIME = YEAR + "(-(0[1-9]|1[0-2]))?|" + DAY + "(T" + TIME + OFFSET + ")?";
  /** A date: a year, a year and month, or a real day. */
  public static final String DATE = YEAR + "(-(0[1-9]|1[0-2]))?|" + DAY;
  public static final String INSTANT = DAY + "T" + TIME + OFFSET;

  // The same formats compiled, for the checks made in Java (DuckDB takes the texts above).
  public static final Pattern ID_PATTERN = Pattern.compile(ID);
  public static final Pattern DECIMAL_PATTERN = Pattern.compile(DECIMAL);
  public static final Pattern INTEGER_PATTERN = Pattern.compile(INTEGER);
  public static final Pattern CODE_PATTERN = Pattern.compile(CODE);
  public static final Pattern TIME_PATTERN = Pattern.compile(TIME);
  public static final Pattern DATE_TIME_PATTERN = Pattern.compile(DATE_TIME);
  public static final Pattern DATE_PATTERN = Pattern.compile(DATE);
  public static final Pattern INSTANT_PATTERN = Pattern.compile(INSTANT);
}
