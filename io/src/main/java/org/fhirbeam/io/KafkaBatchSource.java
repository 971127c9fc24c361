package org.fhirbeam.io;

import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Properties;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.KafkaSource;
import org.fhirbeam.data.Counters;
import org.joda.time.Instant;

/**
 * Kafka topics as an unbounded source of {@link RecordBatch}es: each element is what one poll read from one
 * partition, so a runner handles a poll's records at once (the DirectRunner reads an unbounded source ten elements per
 * bundle). Every batch is stamped with the processing time of its poll, and the watermark follows the clock, so fixed
 * windows over the batches are windows of processing time.
 *
 * <p>The reader assigns itself its partitions and seeks them to the positions the job gives
 * ({@link #positions}: where the job's committed windows end, or where it starts), never to a consumer group's
 * offsets: a job's position lives with its outputs, and Kafka offsets committed before the outputs are written would
 * skip records after a crash. Its checkpoints hold the positions after the batches it emitted, so a runner that resumes
 * a reader from one reads nothing twice and skips nothing.
 *
 * <p>A run ends, its last window committed, when the source's bound is reached ({@link Bounds}) or a stop is asked
 * for ({@link StreamStop}, on SIGINT or SIGTERM): the readers then emit nothing more, and once every reader of the
 * source is done they move their watermark to the end of time, together. Not one by one: Beam's Spark runner takes
 * the highest watermark of a source's readers as the source's (Beam issue 19411), so one reader at the end of time
 * would make the records the others read after it late. The readers of a run tell each other they are done in this
 * JVM, which holds all of them on the DirectRunner and on Spark in local mode.
 */
public final class KafkaBatchSource extends UnboundedSource<RecordBatch, KafkaBatchSource.Checkpoint> {
  private static final long serialVersionUID = 1L;
  /** By run and source ({@link #doneKey}), the readers (split numbers) that are done, in this JVM. */
  private static final Map<String, java.util.Set<Integer>> DONE = new java.util.concurrent.ConcurrentHashMap<>();
  /** How long a poll waits for records. */
  private static final Duration POLL = Duration.ofMillis(100);

  /**
   * Where a run stops by itself: after {@code maxRecords} records (0: no bound), at {@code deadlineMillis} (the
   * epoch milliseconds; 0: none), or when it has read to {@code endOffsets} (by {@link #key}; null: never); whichever
   * comes first.
   */
  public record Bounds(long maxRecords, long deadlineMillis, Map<String, Long> endOffsets) implements Serializable {
    public static final Bounds NONE = new Bounds(0, 0, null);

    public Bounds {
      endOffsets = endOffsets == null ? null : Map.copyOf(endOffsets);
    }

    boolean splittable() {
      return maxRecords == 0;
    }
  }

  /**
   * The reader's positions after the batches it emitted, by {@link #key} of partition, and how many records it has
   * emitted (a reader resumed from the checkpoint goes on counting towards {@link Bounds#maxRecords}).
   */
  public record Checkpoint(Map<String, Long> positions, long records) implements UnboundedSource.CheckpointMark,
      Serializable {
    public Checkpoint {
      positions = Map.copyOf(positions);
    }

    @Override
    public void finalizeCheckpoint() {
      // Nothing to acknowledge: the job's position is committed with its outputs.
    }
  }

  private final String name;
  private final KafkaSource kafka;
  private final Map<String, String> settings;
  private final Map<String, Long> positions;
  private final Bounds bounds;
  private final String run;
  /** This reader's number among the source's readers, and how many there are. */
  private final int split;
  private final int splits;

  /**
   * @param name the source's name
   * @param kafka its configuration
   * @param settings its consumer settings, resolved ({@link KafkaSource#consumerSettings})
   * @param positions where each of the partitions read starts, by {@link #key}: every partition of the topics
   * @param bounds where the run stops by itself
   * @param run the run reading it: its readers are done together
   */
  public KafkaBatchSource(String name, KafkaSource kafka, Map<String, String> settings, Map<String, Long> positions,
      Bounds bounds, String run) {
    this(name, kafka, settings, positions, bounds, run, 0, 1);
  }

  private KafkaBatchSource(String name, KafkaSource kafka, Map<String, String> settings, Map<String, Long> positions,
      Bounds bounds, String run, int split, int splits) {
    this.name = name;
    this.kafka = kafka;
    this.settings = Map.copyOf(settings);
    this.positions = new LinkedHashMap<>(positions);
    this.bounds = bounds;
    this.run = run;
    this.split = split;
    this.splits = splits;
  }

  private String doneKey() {
    return run + "/" + name;
  }

  /** {@code topic/partition}, as positions are keyed. */
  public static String key(String topic, int partition) {
    return topic + "/" + partition;
  }

  private static TopicPartition partition(String key) {
    int slash = key.lastIndexOf('/');
    return new TopicPartition(key.substring(0, slash), Integer.parseInt(key.substring(slash + 1)));
  }

  /**
   * The partitions of a source's topics, by {@link #key} in topic and partition order, with the first offset each
   * log still holds and its end offset (where the next record will be written), as the brokers said when asked.
   */
  public record Offsets(Map<String, Long> first, Map<String, Long> end) {
    public Offsets {
      first = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(first));
      end = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(end));
    }
  }

  /**
   * Asks {@code kafka}'s brokers for the {@link Offsets} of its topics' partitions, with one consumer; also checks
   * that the brokers answer and the topics exist.
   */
  public static Offsets offsets(KafkaSource kafka, Map<String, String> settings) {
    try (KafkaConsumer<byte[], byte[]> consumer = consumer(kafka, settings)) {
      List<TopicPartition> partitions = partitionsOf(consumer, kafka);
      Map<TopicPartition, Long> first = consumer.beginningOffsets(partitions, Duration.ofSeconds(30));
      Map<TopicPartition, Long> last = consumer.endOffsets(partitions, Duration.ofSeconds(30));
      Map<String, Long> firstByKey = new LinkedHashMap<>();
      Map<String, Long> endByKey = new LinkedHashMap<>();
      for (TopicPartition tp : partitions) {
        firstByKey.put(key(tp.topic(), tp.partition()), first.get(tp));
        endByKey.put(key(tp.topic(), tp.partition()), last.get(tp));
      }
      return new Offsets(firstByKey, endByKey);
    } catch (org.apache.kafka.common.KafkaException e) {
      throw new InputException("Kafka at " + kafka.bootstrapServers() + ": " + e.getMessage(), e);
    }
  }

  /**
   * Where each partition of {@code kafka}'s topics ({@code offsets}) starts: at {@code committed} (the end of the
   * job's committed windows, by {@link #key}) when it has one, else at its first or end offset as the source's
   * {@code start} says.
   */
  public static Map<String, Long> startPositions(KafkaSource kafka, Offsets offsets, Map<String, Long> committed) {
    Map<String, Long> out = new LinkedHashMap<>();
    offsets.first().forEach((key, first) -> {
      Long at = committed.get(key);
      if (at == null) {
        at = kafka.start() == KafkaSource.Start.EARLIEST ? first : offsets.end().get(key);
      } else if (at < first) {
        TopicPartition tp = partition(key);
        throw new InputException("topic " + tp.topic() + " partition " + tp.partition() + ": the job's committed"
            + " position " + at + " is no longer in the log (it begins at " + first + "): records were deleted"
            + " before the job read them");
      }
      out.put(key, at);
    });
    return out;
  }

  private static List<TopicPartition> partitionsOf(KafkaConsumer<?, ?> consumer, KafkaSource kafka) {
    Map<String, List<PartitionInfo>> topics = consumer.listTopics(Duration.ofSeconds(30));
    List<TopicPartition> out = new ArrayList<>();
    for (String topic : kafka.topics()) {
      List<PartitionInfo> infos = topics.get(topic);
      if (infos == null || infos.isEmpty()) {
        throw new InputException("Kafka at " + kafka.bootstrapServers() + " has no topic " + topic);
      }
      infos.stream().sorted(Comparator.comparingInt(PartitionInfo::partition))
          .forEach(i -> out.add(new TopicPartition(topic, i.partition())));
    }
    return out;
  }

  private static KafkaConsumer<byte[], byte[]> consumer(KafkaSource kafka, Map<String, String> settings) {
    Properties p = new Properties();
    p.putAll(settings);
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
    p.put(ConsumerConfig.GROUP_ID_CONFIG, kafka.groupId());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
    p.putIfAbsent(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10000");
    p.putIfAbsent(ConsumerConfig.FETCH_MIN_BYTES_CONFIG, "65536");
    p.putIfAbsent(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "50");
    p.putIfAbsent(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, String.valueOf(4 << 20));
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  @Override
  public List<KafkaBatchSource> split(int desiredNumSplits, PipelineOptions options) {
    List<String> keys = new ArrayList<>(positions.keySet());
    int splits = bounds.splittable() ? Math.max(1, Math.min(desiredNumSplits, keys.size())) : 1;
    List<KafkaBatchSource> out = new ArrayList<>();
    for (int s = 0; s < splits; s++) {
      Map<String, Long> mine = new LinkedHashMap<>();
      for (int i = s; i < keys.size(); i += splits) {
        mine.put(keys.get(i), positions.get(keys.get(i)));
      }
      out.add(new KafkaBatchSource(name, kafka, settings, mine, bounds, run, s, splits));
    }
    return out;
  }

  @Override
  public UnboundedReader<RecordBatch> createReader(PipelineOptions options, Checkpoint checkpoint) {
    return checkpoint == null ? new Reader(this, positions, 0)
        : new Reader(this, checkpoint.positions(), checkpoint.records());
  }

  @Override
  public Coder<Checkpoint> getCheckpointMarkCoder() {
    return SerializableCoder.of(Checkpoint.class);
  }

  @Override
  public Coder<RecordBatch> getOutputCoder() {
    return RecordBatch.CODER;
  }

  /** Reads its partitions poll by poll; see the class comment. */
  static final class Reader extends UnboundedReader<RecordBatch> {
    private final KafkaBatchSource source;
    /** After the batches emitted: what a checkpoint holds. */
    private final Map<String, Long> emitted;
    /** After the batches polled (emitted or queued). */
    private final Map<TopicPartition, Long> polled = new LinkedHashMap<>();
    private final ArrayDeque<RecordBatch> queue = new ArrayDeque<>();
    private KafkaConsumer<byte[], byte[]> consumer;
    private RecordBatch current;
    private long records;
    private boolean done;

    Reader(KafkaBatchSource source, Map<String, Long> positions, long records) {
      this.source = source;
      this.emitted = new LinkedHashMap<>(positions);
      this.records = records;
    }

    @Override
    public boolean start() throws IOException {
      consumer = consumer(source.kafka, source.settings);
      List<TopicPartition> partitions = new ArrayList<>();
      emitted.keySet().forEach(k -> partitions.add(partition(k)));
      consumer.assign(partitions);
      for (TopicPartition tp : partitions) {
        long at = emitted.get(key(tp.topic(), tp.partition()));
        consumer.seek(tp, at);
        polled.put(tp, at);
      }
      return advance();
    }

    @Override
    public boolean advance() throws IOException {
      if (queue.isEmpty() && !finished()) {
        poll();
      }
      current = queue.poll();
      if (current == null) {
        return false;
      }
      emitted.put(key(current.topic(), current.partition()), current.next());
      records += current.size();
      Metrics.counter(Counters.NAMESPACE, Counters.streamRead(source.name)).inc(current.size());
      return true;
    }

    /** Whether the run's bound is reached (or it was asked to stop): nothing more is read. */
    private boolean finished() {
      if (done) {
        return true;
      }
      Bounds b = source.bounds;
      boolean drained = b.endOffsets() != null && polled.entrySet().stream()
          .allMatch(e -> e.getValue() >= b.endOffsets().getOrDefault(key(e.getKey().topic(), e.getKey().partition()),
              0L));
      done = StreamStop.requested() || drained || (b.maxRecords() > 0 && records + queued() >= b.maxRecords())
          || (b.deadlineMillis() > 0 && System.currentTimeMillis() >= b.deadlineMillis());
      if (done) {
        DONE.computeIfAbsent(source.doneKey(), k -> java.util.concurrent.ConcurrentHashMap.newKeySet())
            .add(source.split);
        Metrics.counter(Counters.NAMESPACE, Counters.streamDone(source.name, source.split, source.splits)).inc();
      }
      return done;
    }

    private long queued() {
      return queue.stream().mapToLong(RecordBatch::size).sum();
    }

    private void poll() {
      ConsumerRecords<byte[], byte[]> got = consumer.poll(POLL);
      long now = System.currentTimeMillis();
      long room = source.bounds.maxRecords() > 0 ? source.bounds.maxRecords() - records : Long.MAX_VALUE;
      for (TopicPartition tp : got.partitions()) {
        List<ConsumerRecord<byte[], byte[]>> list = got.records(tp);
        Long end = source.bounds.endOffsets() == null ? null
            : source.bounds.endOffsets().getOrDefault(key(tp.topic(), tp.partition()), 0L);
        int n = list.size();
        if (end != null) {
          while (n > 0 && list.get(n - 1).offset() >= end) {
            n--;
          }
        }
        n = (int) Math.min(n, room);
        if (n == 0) {
          if (end != null && list.get(0).offset() >= end) {
            polled.put(tp, end); // read to its end: what follows belongs to a later run
          }
          continue;
        }
        long next = n == list.size() && (end == null || consumer.position(tp) <= end) ? consumer.position(tp)
            : list.get(n - 1).offset() + 1;
        long[] offsets = new long[n];
        long[] timestamps = new long[n];
        String[] values = new String[n];
        for (int i = 0; i < n; i++) {
          ConsumerRecord<byte[], byte[]> r = list.get(i);
          offsets[i] = r.offset();
          timestamps[i] = r.timestamp();
          values[i] = r.value() == null ? null : new String(r.value(), StandardCharsets.UTF_8);
        }
        queue.add(new RecordBatch(source.name, tp.topic(), tp.partition(), polled.get(tp), next, now, offsets,
            timestamps, values));
        polled.put(tp, next);
        room -= n;
        if (next != consumer.position(tp)) {
          consumer.seek(tp, next); // a bound cut the batch: the rest is read again only by a later run
        }
      }
      // Partitions that got nothing but moved past records no consumer sees (transaction markers) keep their
      // position: the next batch starts where the last one ended.
      long lag = 0;
      for (TopicPartition tp : polled.keySet()) {
        java.util.OptionalLong behind = consumer.currentLag(tp);
        lag += behind.isPresent() ? behind.getAsLong() : 0;
      }
      Metrics.gauge(Counters.NAMESPACE, Counters.streamLag(source.name)).set(lag + queued());
    }

    @Override
    public RecordBatch getCurrent() {
      if (current == null) {
        throw new NoSuchElementException();
      }
      return current;
    }

    @Override
    public Instant getCurrentTimestamp() {
      return new Instant(getCurrent().pollMillis());
    }

    @Override
    public Instant getWatermark() {
      if (done && queue.isEmpty() && DONE.getOrDefault(source.doneKey(), java.util.Set.of()).size() == source.splits) {
        return BoundedWindow.TIMESTAMP_MAX_VALUE; // every reader of the source is done
      }
      long low = System.currentTimeMillis();
      for (RecordBatch b : queue) {
        low = Math.min(low, b.pollMillis());
      }
      return new Instant(low);
    }

    @Override
    public Checkpoint getCheckpointMark() {
      return new Checkpoint(emitted, records);
    }

    @Override
    public KafkaBatchSource getCurrentSource() {
      return source;
    }

    @Override
    public void close() {
      if (consumer != null) {
        consumer.close(Duration.ofSeconds(5));
      }
    }

    @Override
    public String toString() {
      return "Kafka reader of " + source.name + " " + Arrays.toString(emitted.keySet().toArray());
    }
  }
}
