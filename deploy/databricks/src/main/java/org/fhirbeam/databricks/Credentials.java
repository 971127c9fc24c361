package org.fhirbeam.databricks;

import com.databricks.sdk.core.DatabricksConfig;
import java.util.Map;
import org.fhirbeam.config.InputException;

/**
 * The workspace and how {@code submit} signs in to it, from the environment only (never from options, which end up
 * in shell histories and process lists): {@code DATABRICKS_HOST}, and either a personal access token
 * ({@code DATABRICKS_TOKEN}) or a service principal's OAuth client ({@code DATABRICKS_CLIENT_ID},
 * {@code DATABRICKS_CLIENT_SECRET}, machine-to-machine). No secret is ever part of what this prints.
 */
record Credentials(String host, String token, String clientId, String clientSecret) {

  /** The credentials of {@code env}; a dry run needs none (the host is then shown as the variable's name). */
  static Credentials from(Map<String, String> env, boolean dryRun) {
    String host = blankToNull(env.get("DATABRICKS_HOST"));
    String token = blankToNull(env.get("DATABRICKS_TOKEN"));
    String clientId = blankToNull(env.get("DATABRICKS_CLIENT_ID"));
    String clientSecret = blankToNull(env.get("DATABRICKS_CLIENT_SECRET"));
    if (host != null && !host.contains("://")) {
      host = "https://" + host;
    }
    if (host != null && host.endsWith("/")) {
      host = host.substring(0, host.length() - 1);
    }
    if (token != null && (clientId != null || clientSecret != null)) {
      throw new InputException("both DATABRICKS_TOKEN and DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET are set:"
          + " unset the kind of credentials this submit should not use");
    }
    if ((clientId == null) != (clientSecret == null)) {
      throw new InputException((clientId == null ? "DATABRICKS_CLIENT_SECRET is set without DATABRICKS_CLIENT_ID"
          : "DATABRICKS_CLIENT_ID is set without DATABRICKS_CLIENT_SECRET") + ": OAuth for a service principal needs"
          + " both");
    }
    if (dryRun) {
      return new Credentials(host != null ? host : "https://$DATABRICKS_HOST", token, clientId, clientSecret);
    }
    if (host == null) {
      throw new InputException("DATABRICKS_HOST is not set: the workspace's URL (https://<workspace>.cloud.databricks"
          + ".com)");
    }
    if (token == null && clientId == null) {
      throw new InputException("no credentials: set DATABRICKS_TOKEN (a personal access token) or"
          + " DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (a service principal's OAuth secret)");
    }
    return new Credentials(host, token, clientId, clientSecret);
  }

  /** How it signs in, without the secret. */
  String describe() {
    if (clientId != null) {
      return "OAuth machine-to-machine as service principal " + clientId;
    }
    return token != null ? "personal access token" : "no credentials";
  }

  /** The Authorization header as a dry run shows it. */
  String redactedHeader() {
    if (clientId != null) {
      return "Bearer <an OAuth token for " + clientId + " from " + host + "/oidc/v1/token, not shown>";
    }
    return token != null ? "Bearer <DATABRICKS_TOKEN, not shown>" : "Bearer <DATABRICKS_TOKEN or an OAuth token>";
  }

  /** The SDK's configuration, with the one kind of credentials given. */
  DatabricksConfig config() {
    DatabricksConfig config = new DatabricksConfig().setHost(host);
    if (clientId != null) {
      return config.setAuthType("oauth-m2m").setClientId(clientId).setClientSecret(clientSecret);
    }
    return config.setAuthType("pat").setToken(token);
  }

  /** Never shows the secrets, should a record be printed. */
  @Override
  public String toString() {
    return "Credentials[" + host + ", " + describe() + "]";
  }

  private static String blankToNull(String s) {
    return s == null || s.isBlank() ? null : s.trim();
  }
}
