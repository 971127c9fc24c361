/** Assembles the job graph from configuration, picks the runner, and is the command line. */
package org.fhirbeam.pipeline;
