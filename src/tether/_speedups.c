/* tether._speedups: the steps of a call that cost more in Python than the work they do.
 *
 * Optional: setup.py builds it where a C compiler and Python's headers are present, and
 * tether runs the same protocol without it (TETHER_SPEEDUPS=0 turns it off). Written by
 * hand because no library offers these: a socket read that polls before it sleeps, socket
 * calls that keep the GIL when they need not wait, and a msgpack decoder for one shape of
 * request (numbers and lists of numbers) twice as fast as msgspec's general one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static long long
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The socket's descriptor, or -1 with OSError set (EBADF for a closed socket, whose
 * fileno() is -1, as its own methods would raise). */
static int
socket_fd(PyObject *sock)
{
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0 && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return fd;
}

/* The arguments every socket call here starts with: `sock` and a buffer, after checking
 * their count against `usage` ("name() takes N arguments (...)"). 0 with an exception set
 * on failure; on success the caller releases `view`. */
static int
socket_and_buffer(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                  const char *usage, const char *name, int writable, int *fd, Py_buffer *view)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s, %zd given", usage, nargs);
        return 0;
    }
    *fd = socket_fd(args[0]);
    if (*fd < 0) {
        return 0;
    }
    if (PyObject_GetBuffer(args[1], view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        if (writable) {
            PyErr_Format(PyExc_TypeError,
                         "%s() argument 'buffer' must be a writable bytes-like object, not "
                         "%.100s",
                         name, Py_TYPE(args[1])->tp_name);
        }
        return 0;
    }
    return 1;
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
    int fd;
    Py_buffer view;
    if (!socket_and_buffer(args, nargs, 3,
                           "spin_recv_into() takes 3 arguments (sock, buffer, budget_ns)",
                           "spin_recv_into", 1, &fd, &view)) {
        return NULL;
    }
    long long budget = PyLong_AsLongLong(args[2]);
    if (budget == -1 && PyErr_Occurred()) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (budget > 3600LL * 1000000000LL) {
        budget = 3600LL * 1000000000LL; /* an hour: the sum below cannot overflow */
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

PyDoc_STRVAR(sendall_doc,
"sendall(sock, data, /) -> None\n\n"
"socket.sendall() for a blocking socket, which first tries to send without releasing the\n"
"GIL: a small frame goes into the socket's buffer at once, and a thread that gave the GIL\n"
"up for it would have to win it back from the threads waiting for it (with many calling\n"
"threads, most of a call's cost). Whatever does not fit is sent as sendall() would, the\n"
"GIL released.");

static PyObject *
sendall(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    Py_buffer view;
    if (!socket_and_buffer(args, nargs, 2, "sendall() takes 2 arguments (sock, data)",
                           "sendall", 0, &fd, &view)) {
        return NULL;
    }
    const char *p = view.buf;
    Py_ssize_t left = view.len;
    int error = 0;
    while (left > 0) {
        ssize_t n = send(fd, p, (size_t)left, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            Py_BEGIN_ALLOW_THREADS
            n = send(fd, p, (size_t)left, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* A non-blocking descriptor after all: wait as a blocking one would. */
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                n = poll(&pfd, 1, -1) < 0 ? -1 : 0;
            }
            Py_END_ALLOW_THREADS
        }
        if (n >= 0) {
            p += n;
            left -= n;
            continue;
        }
        if (errno != EINTR) {
            error = errno;
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    PyBuffer_Release(&view);
    if (error) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(recv_into_doc,
"recv_into(sock, buffer, /) -> int\n\n"
"socket.recv_into() for a blocking socket, which first looks without releasing the GIL:\n"
"bytes already waiting (the next of several answers, say) are taken at once, and only a\n"
"read that has to wait gives the GIL up. Returns the number of bytes read (0: the peer\n"
"closed).");

static PyObject *
recv_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    Py_buffer view;
    if (!socket_and_buffer(args, nargs, 2, "recv_into() takes 2 arguments (sock, buffer)",
                           "recv_into", 1, &fd, &view)) {
        return NULL;
    }
    ssize_t got;
    for (;;) {
        got = recv(fd, view.buf, (size_t)view.len, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            Py_BEGIN_ALLOW_THREADS
            got = recv(fd, view.buf, (size_t)view.len, 0);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* A non-blocking descriptor after all: wait as a blocking one would. */
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, -1) >= 0) {
                    errno = EINTR;  /* nothing read yet: go round again */
                }
            }
            Py_END_ALLOW_THREADS
        }
        if (got >= 0 || errno != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    PyBuffer_Release(&view);
    if (got < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(got);
}

/* msgpack numbers, read big-endian from p (the caller checked the bytes are there). */
static inline uint64_t
be64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static inline uint32_t
be32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static inline uint16_t
be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* One msgpack number at *pos as a double, as msgspec decodes it for `float` (floats, and
 * integers converted); 0 for anything else (a bool, a string, too few bytes...). */
static int
read_number(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, double *out)
{
    Py_ssize_t i = *pos;
    if (i >= len) {
        return 0;
    }
    unsigned char tag = buf[i];
    Py_ssize_t size;
    if (tag <= 0x7f) {
        *out = (double)tag;
        size = 1;
    }
    else if (tag >= 0xe0) {
        *out = (double)(int8_t)tag;
        size = 1;
    }
    else {
        static const signed char sizes[] = {
            /* 0xca float32 */ 5, /* 0xcb float64 */ 9,
            /* 0xcc..0xcf uint8..64 */ 2, 3, 5, 9,
            /* 0xd0..0xd3 int8..64 */ 2, 3, 5, 9,
        };
        if (tag < 0xca || tag > 0xd3) {
            return 0;
        }
        size = sizes[tag - 0xca];
        if (len - i < size) {
            return 0;
        }
        const unsigned char *p = buf + i + 1;
        switch (tag) {
        case 0xca: {
            uint32_t bits = be32(p);
            float f;
            memcpy(&f, &bits, 4);
            *out = (double)f;
            break;
        }
        case 0xcb: {
            uint64_t bits = be64(p);
            memcpy(out, &bits, 8);
            break;
        }
        case 0xcc: *out = (double)p[0]; break;
        case 0xcd: *out = (double)be16(p); break;
        case 0xce: *out = (double)be32(p); break;
        case 0xcf: *out = (double)be64(p); break;
        case 0xd0: *out = (double)(int8_t)p[0]; break;
        case 0xd1: *out = (double)(int16_t)be16(p); break;
        case 0xd2: *out = (double)(int32_t)be32(p); break;
        default: *out = (double)(int64_t)be64(p); break;
        }
    }
    *pos = i + size;
    return 1;
}

/* A msgpack array header at *pos: its length, or -1 if there is none. */
static Py_ssize_t
read_array_header(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos)
{
    Py_ssize_t i = *pos;
    if (i >= len) {
        return -1;
    }
    unsigned char tag = buf[i];
    if (tag >= 0x90 && tag <= 0x9f) {
        *pos = i + 1;
        return tag & 0x0f;
    }
    if (tag == 0xdc && len - i >= 3) {
        *pos = i + 3;
        return be16(buf + i + 1);
    }
    if (tag == 0xdd && len - i >= 5) {
        *pos = i + 5;
        return (Py_ssize_t)be32(buf + i + 1);
    }
    return -1;
}

/* A msgpack unsigned integer at *pos (0 if there is none: another type, too few bytes). */
static int
read_uint(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, uint64_t *out)
{
    Py_ssize_t i = *pos;
    if (i >= len) {
        return 0;
    }
    unsigned char tag = buf[i];
    if (tag <= 0x7f) {
        *out = tag;
        *pos = i + 1;
        return 1;
    }
    static const signed char sizes[] = {2, 3, 5, 9}; /* 0xcc..0xcf: uint8..64 */
    if (tag < 0xcc || tag > 0xcf || len - i < sizes[tag - 0xcc]) {
        return 0;
    }
    const unsigned char *p = buf + i + 1;
    switch (tag) {
    case 0xcc: *out = p[0]; break;
    case 0xcd: *out = be16(p); break;
    case 0xce: *out = be32(p); break;
    default: *out = be64(p); break;
    }
    *pos = i + sizes[tag - 0xcc];
    return 1;
}

PyDoc_STRVAR(request_head_doc,
"request_head(payload, /) -> tuple[int, int, str, int] | None\n\n"
"A REQUEST message's call id, object id and method name, and the offset its arguments\n"
"start at, read without decoding the arguments (msgspec reads all of them to find where\n"
"they end: ~0.4 ms for 100,000 floats). None if the payload does not start as a request\n"
"with non-negative ids and a UTF-8 method name; the caller then decodes it whole.");

static PyObject *
request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "request_head() takes 1 argument (payload)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t len = view.len, pos = 2, size = -1;
    uint64_t cid, oid;
    PyObject *result = NULL;
    /* An array of 5 starting with kind 0 (REQUEST), then the ids and the name. */
    if (len < 2 || buf[0] != 0x95 || buf[1] != 0x00 || !read_uint(buf, len, &pos, &cid) ||
        !read_uint(buf, len, &pos, &oid) || pos >= len) {
        goto done;
    }
    unsigned char tag = buf[pos];
    if (tag >= 0xa0 && tag <= 0xbf) {
        size = tag & 0x1f;
        pos += 1;
    }
    else if (tag == 0xd9 && len - pos >= 2) {
        size = buf[pos + 1];
        pos += 2;
    }
    else if (tag == 0xda && len - pos >= 3) {
        size = be16(buf + pos + 1);
        pos += 3;
    }
    else if (tag == 0xdb && len - pos >= 5) {
        size = (Py_ssize_t)be32(buf + pos + 1);
        pos += 5;
    }
    if (size < 0 || size > len - pos) {
        goto done;
    }
    PyObject *method = PyUnicode_DecodeUTF8((const char *)buf + pos, size, NULL);
    if (method == NULL) {
        PyErr_Clear(); /* not UTF-8: msgspec words the complaint */
        goto done;
    }
    result = Py_BuildValue("(KKNn)", (unsigned long long)cid, (unsigned long long)oid, method,
                           pos + size);
done:
    PyBuffer_Release(&view);
    if (result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

PyDoc_STRVAR(decode_float_args_doc,
"decode_float_args(data, kinds, /) -> tuple | None\n\n"
"A request's msgpack arguments, `data`, decoded for parameters hinted `float` (False in\n"
"`kinds`) or `list[float]` (True), as msgspec would decode them into those types; None\n"
"for anything else (another kind of value, another count, trailing bytes), which the\n"
"caller leaves to msgspec, whose errors name the problem. Made by hand because msgspec\n"
"takes twice the time for a long list of floats (~14 against ~7 ns a number here).");

static PyObject *
decode_float_args(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "decode_float_args() takes 2 arguments (data, kinds: tuple)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t len = view.len, pos = 0;
    PyObject *kinds = args[1];
    Py_ssize_t count = PyTuple_GET_SIZE(kinds);
    PyObject *result = NULL;
    if (read_array_header(buf, len, &pos) != count) {
        goto fallback;
    }
    result = PyTuple_New(count);
    if (result == NULL) {
        goto error;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        double number;
        PyObject *item;
        if (PyTuple_GET_ITEM(kinds, k) == Py_True) {
            Py_ssize_t n = read_array_header(buf, len, &pos);
            /* Each number takes a byte at least: a longer count is a malformed frame. */
            if (n < 0 || n > len - pos) {
                goto fallback;
            }
            item = PyList_New(n);
            if (item == NULL) {
                goto error;
            }
            PyTuple_SET_ITEM(result, k, item);
            for (Py_ssize_t j = 0; j < n; j++) {
                if (!read_number(buf, len, &pos, &number)) {
                    goto fallback;
                }
                PyObject *f = PyFloat_FromDouble(number);
                if (f == NULL) {
                    goto error;
                }
                PyList_SET_ITEM(item, j, f);
            }
        }
        else {
            if (!read_number(buf, len, &pos, &number)) {
                goto fallback;
            }
            item = PyFloat_FromDouble(number);
            if (item == NULL) {
                goto error;
            }
            PyTuple_SET_ITEM(result, k, item);
        }
    }
    if (pos != len) {
        goto fallback;
    }
    PyBuffer_Release(&view);
    return result;
fallback:
    /* A list left part-filled holds NULLs, which list_dealloc skips. */
    Py_XDECREF(result);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
error:
    Py_XDECREF(result);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"request_head", (PyCFunction)(void (*)(void))request_head, METH_FASTCALL,
     request_head_doc},
    {"decode_float_args", (PyCFunction)(void (*)(void))decode_float_args, METH_FASTCALL,
     decode_float_args_doc},
    {"sendall", (PyCFunction)(void (*)(void))sendall, METH_FASTCALL, sendall_doc},
    {"recv_into", (PyCFunction)(void (*)(void))recv_into, METH_FASTCALL, recv_into_doc},
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
