package org.fhirbeam.io;

import java.io.Serializable;

/**
 * The records of one partition that one window mapped: where they begin and end in the partition, and their times.
 * A window's commit records its ranges as the job's position, so that a restart resumes after the last committed one.
 *
 * @param source the source that read them
 * @param topic the topic
 * @param partition the partition
 * @param from the position before the first record (where the previous window of the partition ended)
 * @param next the position after the last (where the next window starts)
 * @param records how many records
 * @param firstPollMillis when the first of them was read
 * @param minTimestamp the earliest Kafka timestamp among them
 * @param maxTimestamp the latest
 * @param task the id of the task that mapped them, which the names of the parts it wrote hold
 *     ({@link PartFile#madeBy}); a window's ranges merged into one per partition have none
 */
public record StreamRange(String source, String topic, int partition, long from, long next, long records,
    long firstPollMillis, long minTimestamp, long maxTimestamp, String task) implements Serializable {

  /** {@code source/topic/partition}, as {@link RecordBatch#partitionKey}. */
  public String partitionKey() {
    return source + "/" + topic + "/" + partition;
  }
}
