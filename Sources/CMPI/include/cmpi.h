// A small C layer over MPICH's library, loaded with dlopen when a run asks for MPI, so that
// the package builds and runs on machines without MPI.
//
// MPICH's mpi.h defines MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM as cast macros, which Swift
// cannot import; the functions here take plain C types and use those handles inside.
#ifndef CMPI_H
#define CMPI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads the MPI library and initializes MPI for a process whose MPI calls all come from one
/// thread. Returns 0 and sets `rank` and `size`, or returns -1 and writes a message.
int cmpi_initialize(int *rank, int *size, char *message, size_t capacity);

/// Whether cmpi_initialize succeeded and cmpi_finalize has not been called.
int cmpi_is_initialized(void);

/// Replaces `values` on every rank by their element-wise sum over all ranks. Returns 0, or -1
/// with MPI's message.
int cmpi_sum_floats(float *values, size_t count, char *message, size_t capacity);
int cmpi_sum_doubles(double *values, size_t count, char *message, size_t capacity);

/// Ends every process of the run with `code`, as MPI_Abort does.
void cmpi_abort(int code);

/// Waits for all ranks, then shuts MPI down. Returns 0, or -1 with a message.
int cmpi_finalize(char *message, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
