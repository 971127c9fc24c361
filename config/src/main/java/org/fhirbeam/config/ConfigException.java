package org.fhirbeam.config;

/**
 * A configuration problem that the user must fix. The message is one line: {@code location: key: problem},
 * where location is {@code file:line} or {@code --set key=value}. It never carries record contents.
 */
public final class ConfigException extends InputException {
  private static final long serialVersionUID = 1L;

  private final String location;
  private final String key;
  private final String problem;

  public ConfigException(String location, String key, String problem) {
    super(format(location, key, problem));
    this.location = location;
    this.key = key;
    this.problem = problem;
  }

  private static String format(String location, String key, String problem) {
    StringBuilder sb = new StringBuilder(location);
    if (key != null && !key.isEmpty()) {
      sb.append(": ").append(key);
    }
    return sb.append(": ").append(problem).toString();
  }

  public String location() {
    return location;
  }

  public String key() {
    return key;
  }

  public String problem() {
    return problem;
  }
}
