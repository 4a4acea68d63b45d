#include "cmpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

// The MPICH ABI, which MPICH 3.1, Intel MPI 5.0, Cray MPT 7.0, MVAPICH2 2.0 and their later
// releases share (https://www.mpich.org/abi/): handles are ints with the values of MPICH's mpi.h.
typedef int MPI_Comm;
typedef int MPI_Datatype;
typedef int MPI_Op;
typedef int MPI_Errhandler;

static const MPI_Comm mpi_comm_world = 0x44000000;
static const MPI_Datatype mpi_float = 0x4c00040a;
static const MPI_Datatype mpi_double = 0x4c00080b;
static const MPI_Op mpi_sum = 0x58000003;
static const MPI_Errhandler mpi_errors_return = 0x54000001;
static void *const mpi_in_place = (void *)-1;
enum { mpi_thread_funneled = 1, mpi_max_error_string = 512 };

static struct {
    int (*init_thread)(int *, char ***, int, int *);
    int (*comm_rank)(MPI_Comm, int *);
    int (*comm_size)(MPI_Comm, int *);
    int (*comm_set_errhandler)(MPI_Comm, MPI_Errhandler);
    int (*allreduce)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm);
    int (*barrier)(MPI_Comm);
    int (*abort)(MPI_Comm, int);
    int (*finalize)(void);
    int (*error_string)(int, char *, int *);
} mpi;

static int initialized = 0;
static int finalized = 0;

static int fail(char *message, size_t capacity, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, capacity, format, arguments);
    va_end(arguments);
    return -1;
}

static int fail_with_code(char *message, size_t capacity, const char *call, int code) {
    char text[mpi_max_error_string] = "";
    int length = 0;
    if (mpi.error_string == NULL || mpi.error_string(code, text, &length) != 0) {
        snprintf(text, sizeof text, "error code %d", code);
    }
    return fail(message, capacity, "%s failed: %s", call, text);
}

static int load(char *message, size_t capacity) {
    // MPICH's own library name first, then libmpi, the name the ABI fixes for the others.
    static const char *const names[] = {"libmpich.so.12", "libmpi.so.12"};
    void *library = NULL;
    const char *reason = "";
    for (size_t index = 0; index < sizeof names / sizeof names[0] && library == NULL; index++) {
        library = dlopen(names[index], RTLD_NOW | RTLD_GLOBAL);
        if (library == NULL && index == 0) {
            reason = dlerror();
        }
    }
    if (library == NULL) {
        return fail(message, capacity,
                    "cannot load MPI (%s); install MPICH, on Debian 'apt-get install mpich', "
                    "and start the run with mpiexec",
                    reason);
    }

    struct {
        void **slot;
        const char *name;
    } symbols[] = {
        {(void **)&mpi.init_thread, "MPI_Init_thread"},
        {(void **)&mpi.comm_rank, "MPI_Comm_rank"},
        {(void **)&mpi.comm_size, "MPI_Comm_size"},
        {(void **)&mpi.comm_set_errhandler, "MPI_Comm_set_errhandler"},
        {(void **)&mpi.allreduce, "MPI_Allreduce"},
        {(void **)&mpi.barrier, "MPI_Barrier"},
        {(void **)&mpi.abort, "MPI_Abort"},
        {(void **)&mpi.finalize, "MPI_Finalize"},
        {(void **)&mpi.error_string, "MPI_Error_string"},
    };
    for (size_t index = 0; index < sizeof symbols / sizeof symbols[0]; index++) {
        *symbols[index].slot = dlsym(library, symbols[index].name);
        if (*symbols[index].slot == NULL) {
            return fail(message, capacity, "the MPI library has no %s; it is not an MPICH-compatible MPI",
                        symbols[index].name);
        }
    }
    return 0;
}

int cmpi_initialize(int *rank, int *size, char *message, size_t capacity) {
    if (initialized) {
        return fail(message, capacity, "MPI is already initialized; create one group per process");
    }
    if (finalized) {
        return fail(message, capacity, "MPI was shut down in this process, and MPI cannot start twice");
    }
    if (load(message, capacity) != 0) {
        return -1;
    }
    int provided = 0;
    int code = mpi.init_thread(NULL, NULL, mpi_thread_funneled, &provided);
    if (code != 0) {
        return fail_with_code(message, capacity, "MPI_Init_thread", code);
    }
    initialized = 1;

    // Errors come back as codes with a message, instead of ending the process inside MPI.
    if ((code = mpi.comm_set_errhandler(mpi_comm_world, mpi_errors_return)) != 0 ||
        (code = mpi.comm_rank(mpi_comm_world, rank)) != 0 ||
        (code = mpi.comm_size(mpi_comm_world, size)) != 0) {
        return fail_with_code(message, capacity, "MPI setup", code);
    }
    if (provided < mpi_thread_funneled) {
        return fail(message, capacity, "the MPI library supports only one thread per process; "
                                       "training needs MPI_THREAD_FUNNELED");
    }
    return 0;
}

int cmpi_is_initialized(void) {
    return initialized;
}

// MPI counts are ints, so a larger buffer is summed in pieces.
static int sum(void *values, size_t count, size_t element_size, MPI_Datatype type, char *message,
               size_t capacity) {
    if (!initialized) {
        return fail(message, capacity, "MPI is not initialized");
    }
    char *start = values;
    while (count > 0) {
        int piece = count > INT_MAX ? INT_MAX : (int)count;
        int code = mpi.allreduce(mpi_in_place, start, piece, type, mpi_sum, mpi_comm_world);
        if (code != 0) {
            return fail_with_code(message, capacity, "MPI_Allreduce", code);
        }
        start += (size_t)piece * element_size;
        count -= (size_t)piece;
    }
    return 0;
}

int cmpi_sum_floats(float *values, size_t count, char *message, size_t capacity) {
    return sum(values, count, sizeof(float), mpi_float, message, capacity);
}

int cmpi_sum_doubles(double *values, size_t count, char *message, size_t capacity) {
    return sum(values, count, sizeof(double), mpi_double, message, capacity);
}

void cmpi_abort(int code) {
    if (initialized) {
        mpi.abort(mpi_comm_world, code);
    }
}

int cmpi_finalize(char *message, size_t capacity) {
    if (!initialized) {
        return 0;
    }
    initialized = 0;
    finalized = 1;
    int code = mpi.barrier(mpi_comm_world);
    if (code != 0) {
        return fail_with_code(message, capacity, "MPI_Barrier", code);
    }
    if ((code = mpi.finalize()) != 0) {
        return fail_with_code(message, capacity, "MPI_Finalize", code);
    }
    return 0;
}
