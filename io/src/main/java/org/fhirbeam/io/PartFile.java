package org.fhirbeam.io;

import java.io.Serializable;

/**
 * An NDJSON file written by one worker, not yet part of the output.
 *
 * @param target where it goes, relative to the output root, e.g. {@code fhir/Patient-1b2c3d4e-0.ndjson}
 * @param path where the worker wrote it
 * @param lines how many lines it holds
 */
public record PartFile(String target, String path, long lines) implements Serializable {}
