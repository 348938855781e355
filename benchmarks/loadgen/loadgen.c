/*
 * loadgen: an epoll echo load generator for `python -m benchmarks echo`.
 *
 * A Python client saturates before a Python server does, so the echo suite
 * drives servers with this small C program when a C compiler is present.
 * It opens CONNS connections, keeps PIPELINE messages of SIZE bytes in flight
 * on each, and counts a message complete when SIZE bytes have come back.
 * Latency of a message = time from its send to its last byte echoed.
 *
 * usage: loadgen HOST PORT CONNS SIZE PIPELINE WARMUP_S DURATION_S [raw|length]
 * prints one JSON line: requests, seconds, p50_us, p90_us, p99_us, p999_us, cpu_seconds,
 * errors, lost
 *
 * With "length", each SIZE-byte message is a frame: a 4-byte big-endian
 * length (SIZE - 4) and its payload, for framed echo servers.
 * With "udp", each connection is a connected UDP socket and each message one
 * datagram; a connection that hears nothing for 200 ms re-sends its window
 * (the datagrams are counted as lost).
 * With LOADGEN_PREAMBLE set in the environment, each TCP connection first
 * sends that string and a newline (an auth token), which is not echoed.
 * With LOADGEN_HOLD set, it also says when it starts measuring and keeps
 * its connections until stdin closes (see hold() below).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIPELINE 64
#define HIST_BUCKETS 2000000          /* 1 us buckets up to 2 s (10,000 connections wait long), then overflow */

typedef struct {
    int fd;
    size_t to_send;                   /* bytes queued for sending */
    size_t phase;                     /* total bytes sent, modulo SIZE */
    size_t received;                  /* bytes of the current message received */
    double sent_at[MAX_PIPELINE];     /* ring of send times, one per message in flight */
    int head, tail;
    double last_heard;                /* udp: when an echo last arrived */
} conn_t;

static uint64_t hist[HIST_BUCKETS + 1];
static char *payload;                 /* SIZE-periodic: whole messages back to back */
static size_t message_size;
static int udp;
static char sink[1 << 16];

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

static double percentile(uint64_t total, double p) {
    uint64_t want = (uint64_t)(total * p), seen = 0;
    for (int i = 0; i <= HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return i;
    }
    return HIST_BUCKETS;
}

static int flush(conn_t *c) {
    if (udp) {                        /* one datagram per message */
        while (c->to_send >= message_size) {
            ssize_t w = send(c->fd, payload, message_size, 0);
            if (w < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
            c->to_send -= message_size;
        }
        return 0;
    }
    while (c->to_send > 0) {
        size_t n = c->to_send < (1 << 16) ? c->to_send : (1 << 16);
        /* The buffer repeats every message_size bytes, so starting at the
           current phase keeps the byte stream aligned across partial sends. */
        ssize_t w = send(c->fd, payload + c->phase, n, MSG_NOSIGNAL);
        if (w < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->to_send -= (size_t)w;
        c->phase = (c->phase + (size_t)w) % message_size;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE PIPELINE WARMUP_S DURATION_S [raw|length]\n",
                argv[0]);
        return 2;
    }
    int length_framed = argc == 9 && strcmp(argv[8], "length") == 0;
    udp = argc == 9 && strcmp(argv[8], "udp") == 0;
    const char *host = argv[1];
    int port = atoi(argv[2]), nconns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    int pipeline = atoi(argv[5]);
    double warmup = atof(argv[6]), duration = atof(argv[7]);
    if (pipeline < 1 || pipeline > MAX_PIPELINE || size < 1 || nconns < 1) return 2;
    if (length_framed && size < 5) return 2;
    message_size = size;
    size_t buffer_size = (1 << 16) + size;
    payload = malloc(buffer_size);
    for (size_t at = 0; at < buffer_size; at++) {
        size_t offset = at % size;
        uint32_t body = (uint32_t)(size - 4);
        payload[at] = (length_framed && offset < 4) ? (char)(body >> (8 * (3 - offset))) : 'x';
    }

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    int ep = epoll_create1(0);
    conn_t *conns = calloc(nconns, sizeof(conn_t));
    long errors = 0;
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        int one = 1;
        if (!udp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); return 1; }
        const char *preamble = getenv("LOADGEN_PREAMBLE");
        if (preamble && !udp) {
            size_t length = strlen(preamble);
            if (write(fd, preamble, length) != (ssize_t)length || write(fd, "\n", 1) != 1) {
                perror("preamble");
                return 1;
            }
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double start = now(), measure_from = start + warmup, stop_at = measure_from + duration;
    for (int i = 0; i < nconns; i++) {
        for (int k = 0; k < pipeline; k++) conns[i].sent_at[conns[i].tail++ % MAX_PIPELINE] = start;
        conns[i].to_send = size * pipeline;
        if (flush(&conns[i]) < 0) errors++;
    }
    uint64_t completed = 0, lost = 0;
    double last_scan = start;
    for (int i = 0; i < nconns; i++) conns[i].last_heard = start;
    struct rusage ru0;
    int measuring = 0;
    struct epoll_event events[1024];
    for (;;) {
        double t = now();
        if (!measuring && t >= measure_from) { measuring = 1; getrusage(RUSAGE_SELF, &ru0); announce(); }
        if (t >= stop_at) break;
        if (udp && t - last_scan > 0.05) {       /* re-arm connections whose datagrams were lost */
            last_scan = t;
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (t - c->last_heard > 0.2) {
                    lost += (uint64_t)(c->tail - c->head);
                    c->head = c->tail = 0;
                    c->received = 0;
                    for (int k = 0; k < pipeline; k++) c->sent_at[c->tail++ % MAX_PIPELINE] = t;
                    c->to_send = size * pipeline;
                    c->last_heard = t;
                    if (flush(c) < 0) errors++;
                }
            }
        }
        int n = epoll_wait(ep, events, 1024, 50);
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (events[e].events & EPOLLOUT) { if (flush(c) < 0) errors++; }
            if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            /* One recv per event: epoll is level-triggered and reports what is
               left, and skipping the recv that would say EAGAIN halves our
               syscalls, so the generator saturates later than the server. */
            {
                ssize_t r = recv(c->fd, sink, sizeof sink, 0);
                if (r <= 0) {
                    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                        errors++;
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    }
                    continue;
                }
                c->received += udp ? size : (size_t)r;
                double done_at = now();
                c->last_heard = done_at;
                while (c->received >= size) {
                    c->received -= size;
                    double sent = c->sent_at[c->head++ % MAX_PIPELINE];
                    if (measuring && done_at < stop_at) {
                        long us = (long)((done_at - sent) * 1e6);
                        hist[us < HIST_BUCKETS ? us : HIST_BUCKETS]++;
                        completed++;
                    }
                    c->sent_at[c->tail++ % MAX_PIPELINE] = done_at;
                    c->to_send += size;
                }
                if (flush(c) < 0) errors++;
            }
        }
    }
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6
               + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"p50_us\": %.0f, \"p90_us\": %.0f, "
           "\"p99_us\": %.0f, \"p999_us\": %.0f, \"cpu_seconds\": %.6f, \"errors\": %ld, "
           "\"lost\": %llu}\n",
           (unsigned long long)completed, duration, percentile(completed, 0.50),
           percentile(completed, 0.90), percentile(completed, 0.99),
           percentile(completed, 0.999), cpu, errors, (unsigned long long)lost);
    hold();
    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    return 0;
}
