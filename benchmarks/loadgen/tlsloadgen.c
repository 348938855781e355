/*
 * tlsloadgen: an epoll TLS load generator for `python -m benchmarks tls`.
 *
 * usage: tlsloadgen HOST PORT CONNS SIZE WARMUP_S DURATION_S echo|handshake
 *   echo:      CONNS TLS connections, each sending a SIZE-byte message and
 *              waiting for its echo (ping-pong); counts messages.
 *   handshake: CONNS connection attempts in flight; each does a full TLS
 *              handshake (no session reuse), then closes; counts handshakes.
 * prints one JSON line like loadgen.c. Certificates are not verified here:
 * the server's cost is what is measured, not ours.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_BUCKETS 200000
enum { CONNECTING, HANDSHAKING, RUNNING };

typedef struct {
    int fd, state;
    SSL *ssl;
    size_t received, to_write;
    double started;
} conn_t;

static uint64_t hist[HIST_BUCKETS + 1];
static char *payload, sink[1 << 16];
static size_t size;
static int handshake_mode, ep;
static SSL_CTX *ctx;
static struct sockaddr_in addr;
static uint64_t completed;
static long errors;
static int measuring;
static double stop_at;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* With LOADGEN_HOLD set (the benchmark suites set it), print "measuring"
   when the measured window opens, and after the JSON line keep every
   connection open until stdin closes. The suite reads the server's CPU
   time at those two points, so neither the connects nor the closes of
   10,000 connections land in the window. */
static void announce(void) {
    if (getenv("LOADGEN_HOLD")) { printf("measuring\n"); fflush(stdout); }
}

static void hold(void) {
    char buffer[64];
    fflush(stdout);
    if (getenv("LOADGEN_HOLD")) while (read(0, buffer, sizeof buffer) > 0) {}
}

static void record(double started) {
    double t = now();
    if (!measuring || t >= stop_at) return;
    long us = (long)((t - started) * 1e6);
    hist[us < HIST_BUCKETS ? us : HIST_BUCKETS]++;
    completed++;
}

static double percentile(double p) {
    uint64_t want = (uint64_t)(completed * p), seen = 0;
    for (int i = 0; i <= HIST_BUCKETS; i++) { seen += hist[i]; if (seen > want) return i; }
    return HIST_BUCKETS;
}

static void want(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->ssl = NULL;
    c->state = CONNECTING;
    c->received = c->to_write = 0;
    c->started = now();
    connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void close_conn(conn_t *c) {
    if (c->ssl) { SSL_shutdown(c->ssl); SSL_free(c->ssl); }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static int blocked(conn_t *c, int r) {     /* 1: wait for an event, 0: fatal */
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) { want(c, EPOLLIN); return 1; }
    if (e == SSL_ERROR_WANT_WRITE) { want(c, EPOLLOUT); return 1; }
    return 0;
}

static void drive(conn_t *c) {
    if (c->state == CONNECTING) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_connect_state(c->ssl);
        c->state = HANDSHAKING;
    }
    if (c->state == HANDSHAKING) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            if (!blocked(c, r)) { errors++; close_conn(c); open_conn(c); }
            return;
        }
        if (handshake_mode) {
            record(c->started);
            close_conn(c);
            open_conn(c);
            return;
        }
        c->state = RUNNING;
        c->to_write = size;
        c->started = now();
    }
    for (;;) {
        if (c->to_write) {
            int r = SSL_write(c->ssl, payload, (int)c->to_write);
            if (r <= 0) { if (!blocked(c, r)) { errors++; close_conn(c); open_conn(c); } return; }
            c->to_write = 0;
        }
        int r = SSL_read(c->ssl, sink, sizeof sink);
        if (r <= 0) { if (!blocked(c, r)) { errors++; close_conn(c); open_conn(c); } return; }
        c->received += (size_t)r;
        if (c->received >= size) {
            c->received -= size;
            record(c->started);
            c->started = now();
            c->to_write = size;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE WARMUP_S DURATION_S echo|handshake\n",
                argv[0]);
        return 2;
    }
    int nconns = atoi(argv[3]);
    size = (size_t)atol(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    handshake_mode = strcmp(argv[7], "handshake") == 0;
    payload = malloc(size);
    memset(payload, 'x', size);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    ep = epoll_create1(0);
    conn_t *conns = calloc(nconns, sizeof(conn_t));
    for (int i = 0; i < nconns; i++) open_conn(&conns[i]);
    double start = now(), measure_from = start + warmup;
    stop_at = measure_from + duration;
    struct rusage ru0, ru1;
    struct epoll_event events[1024];
    for (;;) {
        double t = now();
        if (!measuring && t >= measure_from) { measuring = 1; getrusage(RUSAGE_SELF, &ru0); announce(); }
        if (t >= stop_at) break;
        int n = epoll_wait(ep, events, 1024, 50);
        for (int e = 0; e < n; e++) drive(events[e].data.ptr);
    }
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6
               + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"p50_us\": %.0f, \"p99_us\": %.0f, "
           "\"cpu_seconds\": %.6f, \"errors\": %ld}\n", (unsigned long long)completed, duration,
           percentile(0.50), percentile(0.99), cpu, errors);
    hold();
    return 0;
}
