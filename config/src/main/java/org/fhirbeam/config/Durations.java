package org.fhirbeam.config;

import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Durations as people write them in options and configurations: a number with ms, s, m or h (500ms, 10s, 1.5h). */
public final class Durations {
  private static final Pattern DURATION = Pattern.compile("(\\d+(?:\\.\\d+)?)(ms|s|m|h)");

  private Durations() {}

  /** Parses {@code text}; {@code what} (an option or a key) begins the error for text that is not a duration. */
  public static Duration parse(String what, String text) {
    Matcher m = DURATION.matcher(text.trim());
    if (!m.matches()) {
      throw new InputException(what + " " + text + ": a duration is a number with ms, s, m or h (90s, 30m)");
    }
    double n = Double.parseDouble(m.group(1));
    long millis = (long) (n * switch (m.group(2)) {
      case "ms" -> 1;
      case "s" -> 1_000;
      case "m" -> 60_000;
      default -> 3_600_000;
    });
    return Duration.ofMillis(millis);
  }
}
