package org.fhirbeam.transforms;

import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;

/**
 * Reject records of resources that a stage after the mapping (FHIRPath rules, validation) takes out of a part:
 * one layout for every such stage, the same fields as the mapping's rejects with the resource in place of the row.
 * A record is {@link #start}, the stage's own fields, then {@link #end}.
 */
public final class ResourceRejects {
  private ResourceRejects() {}

  /** Opens the record and writes the fields every reject has, then the resource's id. */
  public static void start(JsonGenerator g, String runId, String source, String stage, String mapping,
      String element, String rule, String reason, String resourceId) throws IOException {
    g.writeStartObject();
    g.writeStringField("run_id", runId);
    g.writeStringField("source", source);
    g.writeStringField("stage", stage);
    g.writeStringField("mapping", mapping);
    g.writeStringField("element", element);
    g.writeStringField("rule", rule);
    g.writeStringField("reason", reason);
    g.writeStringField("resource_id", resourceId);
  }

  /** Writes the resource as it was in the part (its JSON text, unchanged) and closes the record. */
  public static void end(JsonGenerator g, String resourceJson) throws IOException {
    g.writeFieldName("resource");
    g.writeRawValue(resourceJson);
    g.writeEndObject();
  }
}
