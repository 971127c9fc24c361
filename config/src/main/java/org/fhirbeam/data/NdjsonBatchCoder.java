package org.fhirbeam.data;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.util.VarInt;

/** Coder for {@link NdjsonBatch}: destination, line count, then the bytes as they are. */
public final class NdjsonBatchCoder extends AtomicCoder<NdjsonBatch> {
  private static final NdjsonBatchCoder INSTANCE = new NdjsonBatchCoder();

  public static NdjsonBatchCoder of() {
    return INSTANCE;
  }

  private NdjsonBatchCoder() {}

  @Override
  public void encode(NdjsonBatch b, OutputStream out) throws IOException {
    RowBatchCoder.writeString(b.destination(), out);
    VarInt.encode(b.lineCount(), out);
    VarInt.encode(b.utf8().length, out);
    out.write(b.utf8());
  }

  @Override
  public NdjsonBatch decode(InputStream in) throws IOException {
    String destination = RowBatchCoder.readString(in);
    int lines = VarInt.decodeInt(in);
    byte[] bytes = new byte[VarInt.decodeInt(in)];
    new DataInputStream(in).readFully(bytes);
    return new NdjsonBatch(destination, lines, bytes);
  }

  @Override
  public void verifyDeterministic() {}
}
