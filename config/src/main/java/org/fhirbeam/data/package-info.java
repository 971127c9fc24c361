/** Small immutable values passed between pipeline stages, with compact coders: row batches in, NDJSON batches out. */
package org.fhirbeam.data;
