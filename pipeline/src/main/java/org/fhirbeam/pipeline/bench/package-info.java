/** The benchmark command: deterministic synthetic data, cases run as separate measured processes, a DuckDB baseline. */
package org.fhirbeam.pipeline.bench;
