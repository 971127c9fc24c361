/** Small immutable values passed between pipeline stages, with compact coders, and the names of their counters. */
package org.fhirbeam.data;
