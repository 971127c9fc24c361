/**
 * The benchmark command: deterministic synthetic data, cases run as separate measured processes, a DuckDB baseline,
 * and the servers its cluster case runs on (a standalone Spark cluster, the S3 test server), which the tests share.
 */
package org.fhirbeam.pipeline.bench;
