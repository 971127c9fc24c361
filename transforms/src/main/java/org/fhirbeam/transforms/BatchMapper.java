package org.fhirbeam.transforms;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.io.SerializedString;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import org.fhirbeam.data.NdjsonBatch;
import org.fhirbeam.data.RowBatch;

/**
 * Applies a compiled mapping to a batch of rows: each row becomes one FHIR resource written straight to JSON in
 * the order HAPI writes it, or one reject record. Not thread-safe; one per DoFn instance.
 */
public final class BatchMapper {
  /** The destination name of reject records. */
  public static final String REJECTS = "rejects";

  private static final JsonFactory JSON = new JsonFactory();

  private final CompiledMapping mapping;
  private final String runId;
  private final String[] values;

  /** The resources and rejects of one batch. */
  public record Result(NdjsonBatch resources, NdjsonBatch rejects) {}

  public BatchMapper(CompiledMapping mapping, String runId) {
    this.mapping = mapping;
    this.runId = runId;
    this.values = new String[mapping.leaves().length];
  }

  public Result map(RowBatch batch) {
    int[] columnOf = columnIndexes(batch);
    int idColumn = indexOf(batch, mapping.id().column);
    ByteArrayOutputStream resources = new ByteArrayOutputStream(batch.size() * 256);
    ByteArrayOutputStream rejects = new ByteArrayOutputStream(256);
    int resourceCount = 0;
    int rejectCount = 0;
    try (JsonGenerator out = generator(resources); JsonGenerator rej = generator(rejects)) {
      CompiledMapping.Leaf[] leaves = mapping.leaves();
      for (int r = 0; r < batch.size(); r++) {
        CompiledMapping.Leaf failedLeaf = null;
        PrimitiveKind.BadValue failure = null;
        String id = null;
        try {
          failedLeaf = mapping.id();
          id = mapping.id().evaluate(idColumn < 0 ? null : batch.value(r, idColumn));
          if (id == null) {
            throw new PrimitiveKind.BadValue("required", "id column '" + mapping.id().column + "' is empty");
          }
          for (int i = 0; i < leaves.length; i++) {
            failedLeaf = leaves[i];
            values[i] = leaves[i].evaluate(columnOf[i] < 0 ? null : batch.value(r, columnOf[i]));
          }
        } catch (PrimitiveKind.BadValue e) {
          failure = e;
        }
        if (failure != null) {
          writeReject(rej, batch, r, failedLeaf.path, failure);
          rejectCount++;
          continue;
        }
        out.writeStartObject();
        out.writeStringField("resourceType", mapping.resourceType());
        out.writeStringField("id", id);
        writeElements(out, mapping.root());
        out.writeEndObject();
        resourceCount++;
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (resourceCount > 0) {
      resources.write('\n');
    }
    if (rejectCount > 0) {
      rejects.write('\n');
    }
    return new Result(new NdjsonBatch(mapping.resourceType(), resourceCount, resources.toByteArray()),
        new NdjsonBatch(REJECTS, rejectCount, rejects.toByteArray()));
  }

  private static JsonGenerator generator(ByteArrayOutputStream out) throws IOException {
    JsonGenerator g = JSON.createGenerator(out, JsonEncoding.UTF8);
    g.setRootValueSeparator(new SerializedString("\n"));
    return g;
  }

  private void writeElements(JsonGenerator out, CompiledMapping.Element[] elements) throws IOException {
    for (CompiledMapping.Element e : elements) {
      if (e.repeating) {
        boolean open = false;
        for (CompiledMapping.Item item : e.items) {
          if (present(item)) {
            if (!open) {
              out.writeArrayFieldStart(e.name);
              open = true;
            }
            writeItem(out, item);
          }
        }
        if (open) {
          out.writeEndArray();
        }
      } else if (present(e.items[0])) {
        out.writeFieldName(e.name);
        writeItem(out, e.items[0]);
      }
    }
  }

  private void writeItem(JsonGenerator out, CompiledMapping.Item item) throws IOException {
    if (item.leaf >= 0) {
      String v = values[item.leaf];
      PrimitiveKind kind = mapping.leaves()[item.leaf].kind;
      if (kind == PrimitiveKind.BOOLEAN) {
        out.writeBoolean(v.equals("true"));
      } else if (kind.isJsonNumber()) {
        out.writeNumber(v);
      } else {
        out.writeString(v);
      }
      return;
    }
    out.writeStartObject();
    writeElements(out, item.children);
    out.writeEndObject();
  }

  /** Whether an item is written: a value that is not empty, or a composite holding a value from the row. */
  private boolean present(CompiledMapping.Item item) {
    return item.leaf >= 0 ? values[item.leaf] != null : hasRowData(item);
  }

  /**
   * Whether a composite holds a value that came from the row. Constants alone never make a composite exist (a
   * name with only {@code use} is noise); inside a composite that exists they are written.
   */
  private boolean hasRowData(CompiledMapping.Item item) {
    for (CompiledMapping.Element child : item.children) {
      for (CompiledMapping.Item i : child.items) {
        if (i.leaf >= 0 ? values[i.leaf] != null && mapping.leaves()[i.leaf].constant == null : hasRowData(i)) {
          return true;
        }
      }
    }
    return false;
  }

  private void writeReject(JsonGenerator rej, RowBatch batch, int r, String path, PrimitiveKind.BadValue failure)
      throws IOException {
    rej.writeStartObject();
    rej.writeStringField("run_id", runId);
    rej.writeStringField("source", batch.source());
    rej.writeStringField("file", batch.file());
    rej.writeNumberField(batch.locationKind() == RowBatch.LocationKind.LINE ? "line" : "row", batch.location(r));
    rej.writeStringField("stage", "mapping");
    rej.writeStringField("mapping", mapping.name());
    rej.writeStringField("element", mapping.resourceType() + "." + path);
    rej.writeStringField("rule", failure.rule);
    rej.writeStringField("reason", failure.getMessage());
    rej.writeObjectFieldStart("row");
    for (int c = 0; c < batch.columnCount(); c++) {
      rej.writeStringField(batch.column(c), batch.value(r, c));
    }
    rej.writeEndObject();
    rej.writeEndObject();
  }

  private int[] columnIndexes(RowBatch batch) {
    Map<String, Integer> byName = new HashMap<>();
    for (int c = 0; c < batch.columnCount(); c++) {
      byName.put(batch.column(c), c);
    }
    CompiledMapping.Leaf[] leaves = mapping.leaves();
    int[] out = new int[leaves.length];
    for (int i = 0; i < leaves.length; i++) {
      out[i] = leaves[i].column == null ? -1 : byName.getOrDefault(leaves[i].column, -1);
    }
    return out;
  }

  private static int indexOf(RowBatch batch, String column) {
    for (int c = 0; c < batch.columnCount(); c++) {
      if (batch.column(c).equals(column)) {
        return c;
      }
    }
    return -1;
  }
}
