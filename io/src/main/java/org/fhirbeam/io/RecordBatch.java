package org.fhirbeam.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import org.apache.beam.sdk.coders.CustomCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.coders.VarLongCoder;

/**
 * The records one poll read from one partition of a topic, in offset order: the element a streaming source gives,
 * so that a runner handles a poll's records at once instead of one by one.
 *
 * @param source the name of the source that read them
 * @param topic the topic
 * @param partition the partition
 * @param from the reader's position in the partition before these records: the offset it asked for next
 * @param next its position after them: where the next batch of the partition starts (beyond the last record's offset
 *     when the log holds records no consumer sees, such as transaction markers)
 * @param pollMillis when the poll returned (the processing time the batch's window is chosen by)
 * @param offsets each record's offset
 * @param timestamps each record's Kafka timestamp (milliseconds; when it was produced, unless the topic says
 *     otherwise)
 * @param values each record's value as text (UTF-8); null for a record without one
 */
public record RecordBatch(String source, String topic, int partition, long from, long next, long pollMillis,
    long[] offsets, long[] timestamps, String[] values) implements Serializable {

  public RecordBatch {
    if (offsets.length != timestamps.length || offsets.length != values.length) {
      throw new IllegalArgumentException("a batch has an offset, a timestamp and a value for each record");
    }
  }

  /** How many records the batch holds. */
  public int size() {
    return offsets.length;
  }

  /** The partition as batches are grouped by: {@code source/topic/partition} (topic names hold no '/'). */
  public String partitionKey() {
    return source + "/" + topic + "/" + partition;
  }

  /** A coder of batches: their fields one after another, no Java serialization. */
  public static final CustomCoder<RecordBatch> CODER = new CustomCoder<>() {
    private static final long serialVersionUID = 1L;

    @Override
    public void encode(RecordBatch b, OutputStream out) throws IOException {
      StringUtf8Coder.of().encode(b.source, out);
      StringUtf8Coder.of().encode(b.topic, out);
      VarIntCoder.of().encode(b.partition, out);
      VarLongCoder.of().encode(b.from, out);
      VarLongCoder.of().encode(b.next, out);
      VarLongCoder.of().encode(b.pollMillis, out);
      VarIntCoder.of().encode(b.size(), out);
      for (int i = 0; i < b.size(); i++) {
        VarLongCoder.of().encode(b.offsets[i], out);
        VarLongCoder.of().encode(b.timestamps[i], out);
        if (b.values[i] == null) {
          out.write(0);
        } else {
          out.write(1);
          StringUtf8Coder.of().encode(b.values[i], out);
        }
      }
    }

    @Override
    public RecordBatch decode(InputStream in) throws IOException {
      String source = StringUtf8Coder.of().decode(in);
      String topic = StringUtf8Coder.of().decode(in);
      int partition = VarIntCoder.of().decode(in);
      long from = VarLongCoder.of().decode(in);
      long next = VarLongCoder.of().decode(in);
      long poll = VarLongCoder.of().decode(in);
      int n = VarIntCoder.of().decode(in);
      long[] offsets = new long[n];
      long[] timestamps = new long[n];
      String[] values = new String[n];
      for (int i = 0; i < n; i++) {
        offsets[i] = VarLongCoder.of().decode(in);
        timestamps[i] = VarLongCoder.of().decode(in);
        int present = in.read();
        if (present < 0) {
          throw new java.io.EOFException("a record batch ends early");
        }
        values[i] = present == 0 ? null : StringUtf8Coder.of().decode(in);
      }
      return new RecordBatch(source, topic, partition, from, next, poll, offsets, timestamps, values);
    }

    @Override
    public void verifyDeterministic() {}
  };
}
