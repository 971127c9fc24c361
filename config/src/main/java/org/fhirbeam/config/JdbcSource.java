package org.fhirbeam.config;

import java.io.Serializable;

/**
 * A database table or query as a source, read over JDBC. The password never appears in the configuration: it
 * comes from an environment variable or a file, read where the connection is made.
 *
 * @param url the JDBC URL, e.g. {@code jdbc:postgresql://db.example:5432/clinic} (credentials do not belong here)
 * @param user the user name; null for none
 * @param passwordEnv the environment variable holding the password; null for none
 * @param passwordFile a file whose first line is the password; null for none
 * @param table a table or view (optionally schema-qualified); null when {@code query} is given
 * @param query a SELECT statement; null when {@code table} is given
 * @param partitionColumn a numeric column whose range is split into {@code partitions} parallel reads; null reads
 *     in one task
 * @param partitions how many key ranges to read in parallel (rows whose key is null form one more task)
 * @param key the columns that identify a row, named with their values in the row's reject records (default: the
 *     partition column; empty for none)
 */
public record JdbcSource(String url, String user, String passwordEnv, String passwordFile, String table,
    String query, String partitionColumn, int partitions, java.util.List<String> key) implements Serializable {

  public JdbcSource {
    key = java.util.List.copyOf(key);
  }

  /** The password, from the environment or the file; null when neither is configured. */
  public String password(java.util.Map<String, String> env) {
    if (passwordEnv != null) {
      String p = env.get(passwordEnv);
      if (p == null) {
        throw new InputException("the environment variable " + passwordEnv + " (password_env) is not set");
      }
      return p;
    }
    if (passwordFile != null) {
      try {
        return java.nio.file.Files.readAllLines(java.nio.file.Path.of(passwordFile)).stream().findFirst().orElse("");
      } catch (java.io.IOException e) {
        throw new InputException("cannot read the password file " + passwordFile + " (password_file)", e);
      }
    }
    return null;
  }

  /** The rows this source reads, as one SELECT. */
  public String select() {
    return query != null ? query.strip().replaceAll(";\\s*$", "") : "SELECT * FROM " + table;
  }

  /** What rejects and summaries call this source: the URL without parameters, and the table or "query". */
  public String describe() {
    int q = url.indexOf('?');
    return (q < 0 ? url : url.substring(0, q)) + " " + (table != null ? table : "(query)");
  }
}
