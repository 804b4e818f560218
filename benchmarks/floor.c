/* The physical floor: a C client and a C server (forked) doing the add ping-pong over a
 * Unix socketpair with the same struct-packed frames as the raw Python floor.
 * Usage: floor N  -> prints {"samples_us": [...]} (N timed calls after 2000 warm-up calls). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int readn(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

static double get_double_be(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static void put_double_be(unsigned char *p, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    for (int i = 7; i >= 0; i--) { p[i] = (unsigned char)(v & 0xff); v >>= 8; }
}

static void server(int fd) {
    unsigned char req[21], ans[12] = {0, 0, 0, 8};
    while (readn(fd, req, 21) == 0) {
        put_double_be(ans + 4, get_double_be(req + 5) + get_double_be(req + 13));
        if (write(fd, ans, 12) != 12) return;
    }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) { close(sv[0]); server(sv[1]); _exit(0); }
    close(sv[1]);
    unsigned char req[21] = {0, 0, 0, 16, 0}, ans[12];
    put_double_be(req + 5, 1.0);
    put_double_be(req + 13, 2.0);
    double *out = malloc(sizeof(double) * (size_t)n);
    for (long i = -2000; i < n; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (write(sv[0], req, 21) != 21 || readn(sv[0], ans, 12) != 0) return 2;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (get_double_be(ans + 4) != 3.0) return 3;
        if (i >= 0) out[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
    }
    close(sv[0]);
    waitpid(pid, NULL, 0);
    printf("{\"samples_us\": [");
    for (long i = 0; i < n; i++) printf(i ? ",%.3f" : "%.3f", out[i]);
    printf("]}\n");
    return 0;
}
