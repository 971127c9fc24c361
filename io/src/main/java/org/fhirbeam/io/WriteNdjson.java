package org.fhirbeam.io;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.WriteFilesResult;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.NdjsonBatch;

/**
 * Writes NDJSON batches into one file set per destination, {@code DIR/<destination>-SSSSS-of-NNNNN.ndjson}
 * (the FHIR Bulk Data layout when destinations are resource types). Files appear only when the write
 * finalizes; lines written are counted in {@link Counters#written}.
 */
public final class WriteNdjson extends PTransform<PCollection<NdjsonBatch>, WriteFilesResult<String>> {
  private final String directory;

  private WriteNdjson(String directory) {
    this.directory = directory;
  }

  public static WriteNdjson to(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("directory is required");
    }
    return new WriteNdjson(directory);
  }

  @Override
  public WriteFilesResult<String> expand(PCollection<NdjsonBatch> input) {
    return input.apply("WriteFiles", FileIO.<String, NdjsonBatch>writeDynamic()
        .by(NdjsonBatch::destination)
        .withDestinationCoder(StringUtf8Coder.of())
        .via(new NdjsonSink())
        .to(directory)
        .withNaming(destination -> FileIO.Write.defaultNaming(destination, ".ndjson")));
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("directory", directory));
  }

  static final class NdjsonSink implements FileIO.Sink<NdjsonBatch> {
    private transient OutputStream out;

    @Override
    public void open(WritableByteChannel channel) {
      out = new BufferedOutputStream(Channels.newOutputStream(channel), 1 << 16);
    }

    @Override
    public void write(NdjsonBatch batch) throws IOException {
      out.write(batch.utf8());
      Metrics.counter(Counters.NAMESPACE, Counters.written(batch.destination())).inc(batch.lineCount());
    }

    @Override
    public void flush() throws IOException {
      out.flush();
    }
  }
}
