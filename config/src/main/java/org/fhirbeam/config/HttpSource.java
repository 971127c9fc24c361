package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Map;

/**
 * A REST API as a source: JSON pages fetched before the run, their items become the rows.
 *
 * @param url the first page
 * @param items dotted path to the array of items in a page (e.g. {@code data} or {@code entry}); null when the
 *     page itself is the array
 * @param nextLink dotted path to the next page's URL in a page; a segment {@code name[key=value]} picks the
 *     first element of an array whose {@code key} is {@code value} (a FHIR Bundle: {@code link[relation=next].url});
 *     null when pages are numbered or there is one page
 * @param pageParam the query parameter that numbers pages (1, 2, ... until a page has no items); null when not
 * @param headersEnv request headers whose values come from environment variables (header to variable name), for
 *     example {@code Authorization: API_AUTH}; values never appear in the configuration
 * @param maxRetries how often a request is retried after 429, 5xx or a failed connection, with growing waits
 */
public record HttpSource(String url, String items, String nextLink, String pageParam, Map<String, String> headersEnv,
    int maxRetries) implements Serializable {

  public HttpSource {
    headersEnv = Map.copyOf(headersEnv);
  }
}
