package org.fhirbeam.data;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.util.VarInt;

/** Compact coder for {@link RowBatch}: lengths as var-ints, values as UTF-8, null as length zero. */
public final class RowBatchCoder extends AtomicCoder<RowBatch> {
  private static final RowBatchCoder INSTANCE = new RowBatchCoder();

  public static RowBatchCoder of() {
    return INSTANCE;
  }

  private RowBatchCoder() {}

  @Override
  public void encode(RowBatch b, OutputStream out) throws IOException {
    writeString(b.source(), out);
    writeString(b.file(), out);
    VarInt.encode(b.locationKind().ordinal(), out);
    VarInt.encode(b.firstLocation(), out);
    VarInt.encode(b.columnCount(), out);
    for (int c = 0; c < b.columnCount(); c++) {
      writeString(b.column(c), out);
    }
    VarInt.encode(b.size(), out);
    for (String[] row : b.rawRows()) {
      for (String v : row) {
        writeString(v, out);
      }
    }
  }

  @Override
  public RowBatch decode(InputStream in) throws IOException {
    String source = readString(in);
    String file = readString(in);
    int kind = VarInt.decodeInt(in);
    if (kind < 0 || kind >= RowBatch.LocationKind.values().length) {
      throw new CoderException("bad location kind " + kind);
    }
    long first = VarInt.decodeLong(in);
    String[] columns = new String[VarInt.decodeInt(in)];
    for (int c = 0; c < columns.length; c++) {
      columns[c] = readString(in);
    }
    String[][] rows = new String[VarInt.decodeInt(in)][];
    for (int r = 0; r < rows.length; r++) {
      String[] row = new String[columns.length];
      for (int c = 0; c < row.length; c++) {
        row[c] = readString(in);
      }
      rows[r] = row;
    }
    return new RowBatch(source, file, RowBatch.LocationKind.values()[kind], first, columns, rows);
  }

  @Override
  public void verifyDeterministic() {}

  static void writeString(String s, OutputStream out) throws IOException {
    if (s == null) {
      VarInt.encode(0, out);
      return;
    }
    byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
    VarInt.encode(bytes.length + 1, out);
    out.write(bytes);
  }

  static String readString(InputStream in) throws IOException {
    int len = VarInt.decodeInt(in);
    if (len == 0) {
      return null;
    }
    byte[] bytes = new byte[len - 1];
    new DataInputStream(in).readFully(bytes);
    return new String(bytes, StandardCharsets.UTF_8);
  }
}
