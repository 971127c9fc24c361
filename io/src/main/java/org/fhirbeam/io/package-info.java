/** Sources read through DuckDB in batches, and sinks: FHIR NDJSON file sets and DuckDB tables. */
package org.fhirbeam.io;
