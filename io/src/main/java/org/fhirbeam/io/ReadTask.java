package org.fhirbeam.io;

import java.io.Serializable;
import org.fhirbeam.data.RowBatch;

/**
 * One unit of parallel reading: a DuckDB query over one file whose rows come back in file order, every value
 * as text.
 *
 * @param source the source's name
 * @param file the file read (absolute path)
 * @param sql the query DuckDB runs
 * @param locationKind how row positions are counted in this file
 * @param firstLocation the position of the first row (2 for a CSV file with a header line)
 */
public record ReadTask(String source, String file, String sql, RowBatch.LocationKind locationKind,
    long firstLocation) implements Serializable {}
