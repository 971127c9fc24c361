/**
 * Assembles the job graph from configuration, picks the runner, runs it and commits its results (files, DuckDB
 * load), and is the command line and the library entry point.
 */
package org.fhirbeam.pipeline;
