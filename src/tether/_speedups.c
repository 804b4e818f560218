/* tether._speedups: the steps of a call that cost more in Python than the work they do.
 *
 * Optional: setup.py builds it where a C compiler and Python's headers are present, and
 * tether runs the same protocol without it (TETHER_SPEEDUPS=0 turns it off). Written by
 * hand because no library offers a socket read that polls before it sleeps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/socket.h>
#include <time.h>

static long long
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

PyDoc_STRVAR(spin_recv_into_doc,
"spin_recv_into(sock, buffer, budget_ns, /) -> int\n\n"
"Read what the socket `sock` (or a file descriptor) holds into `buffer`, polling for up\n"
"to `budget_ns` while it holds nothing. Returns the number of bytes read (0: the peer\n"
"closed), or -1 if nothing came in time; the caller then sleeps in a blocking read, which\n"
"also runs signal handlers (a signal waits at most the budget). The poll itself is the\n"
"read: when bytes arrive, one system call both sees and takes them, and the GIL stays\n"
"released for the whole poll.");

static PyObject *
spin_recv_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "spin_recv_into() takes 3 arguments (sock, buffer, budget_ns), %zd given",
                     nargs);
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            /* A closed socket's fileno() is -1: fail as its recv_into() would. */
            PyErr_Clear();
            errno = EBADF;
            PyErr_SetFromErrno(PyExc_OSError);
        }
        return NULL;
    }
    long long budget = PyLong_AsLongLong(args[2]);
    if (budget == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "spin_recv_into() argument 'buffer' must be a writable bytes-like "
                     "object, not %.100s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    ssize_t got;
    int error = 0;
    Py_BEGIN_ALLOW_THREADS
    long long end = monotonic_ns() + budget;
    for (;;) {
        got = recv(fd, view.buf, (size_t)view.len, MSG_DONTWAIT);
        if (got >= 0) {
            break;
        }
        if (errno == EINTR) {
            break;  /* -1: the blocking read that follows runs the signal handlers */
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            error = errno;
            break;
        }
        if (monotonic_ns() >= end) {
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (error) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(got < 0 ? -1 : got);
}

static PyMethodDef speedups_methods[] = {
    {"spin_recv_into", (PyCFunction)(void (*)(void))spin_recv_into, METH_FASTCALL,
     spin_recv_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tether._speedups",
    .m_doc = "C versions of tether's costliest per-call steps (optional).",
    .m_size = 0,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
