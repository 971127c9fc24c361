/**
 * Sources read through DuckDB in batches, and sinks: FHIR NDJSON file sets committed locally or to object storage
 * (through Beam's file systems), and DuckDB tables.
 */
package org.fhirbeam.io;
