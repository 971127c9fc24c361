package org.fhirbeam.config;

import java.io.Serializable;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Kafka topics as a streaming source: each record's value is one row.
 *
 * @param bootstrapServers the brokers to connect to first ({@code host:port,...})
 * @param topics the topics read, all with the same kind of record
 * @param format how a record's value is read: a JSON object, or a CSV line
 * @param columns the row's columns: for JSON the object's top-level keys to take (a missing key is an empty value),
 *     for CSV the fields of the line in order (a declared header: the records carry none)
 * @param start where a partition the job has no committed position in begins: its earliest or its latest record. A
 *     partition the job has committed windows of always resumes after the last of them.
 * @param groupId the consumer group the job reads in (its position lives with the job's outputs, not in the group)
 * @param consumer further consumer settings, as Kafka names them
 * @param consumerEnv consumer settings whose values come from environment variables (secrets such as
 *     {@code sasl.jaas.config}): setting name to variable name
 */
public record KafkaSource(String bootstrapServers, List<String> topics, Format format, List<String> columns,
    Start start, String groupId, Map<String, String> consumer, Map<String, String> consumerEnv)
    implements Serializable {

  /** How a record's value is read. */
  public enum Format { JSON, CSV }

  /** Where a partition without a committed position begins. */
  public enum Start { EARLIEST, LATEST }

  public KafkaSource {
    topics = List.copyOf(topics);
    columns = List.copyOf(columns);
    consumer = Collections.unmodifiableMap(new LinkedHashMap<>(consumer));
    consumerEnv = Collections.unmodifiableMap(new LinkedHashMap<>(consumerEnv));
  }

  /** The consumer settings, those from the environment resolved; a variable that is not set is an error. */
  public Map<String, Object> consumerSettings(Map<String, String> env) {
    Map<String, Object> out = new LinkedHashMap<>(consumer);
    consumerEnv.forEach((setting, variable) -> {
      String value = env.get(variable);
      if (value == null) {
        throw new InputException("the environment variable " + variable + " (consumer_env." + setting
            + ") is not set");
      }
      out.put(setting, value);
    });
    return out;
  }
}
