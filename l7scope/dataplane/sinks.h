/* sinks.h: what _sinksmodule.c and sinks_sampling.c share. */
#ifndef L7SCOPE_SINKS_H
#define L7SCOPE_SINKS_H

#include <Python.h>
#include <stdint.h>

#define STATUS_NONE INT64_MIN /* a status or grpc-status of None */

/* ``v`` as a 64-bit int into ``out`` (None as STATUS_NONE where ``none_ok``): 0, or 1 when it
 * is not an int of 64 bits (no exception left set) */
int sinks_read_int(PyObject *v, int64_t *out, int none_ok);

/* candidates(batch, fields, floor, http) -> [records]: sinks_sampling.c */
PyObject *sinks_candidates(PyObject *module, PyObject *args);

#endif
