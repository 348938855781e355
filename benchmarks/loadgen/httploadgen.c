/*
 * httploadgen: an epoll HTTP/1.1 keep-alive load generator for `python -m benchmarks http`,
 * used when wrk is not installed.
 *
 * It opens CONNS connections and keeps one request in flight on each: the
 * same bytes every time, "GET PATH HTTP/1.1\r\nHost: HOST:PORT\r\n\r\n".
 * A response is its head up to the blank line, then Content-Length bytes of
 * body; the next request goes out when the last body byte arrives. A
 * response without Content-Length (chunked, or ended by a close) is not
 * supported and counts as an error, as does a status other than 2xx, a head
 * over 16 KiB, or a connection the server closes (it is not reopened).
 * Latency of a request = time from its send to its response's last byte.
 *
 * usage: httploadgen HOST PORT CONNS PATH WARMUP_S DURATION_S
 * prints one JSON line: requests, seconds, p50_us, p90_us, p99_us, p999_us,
 * cpu_seconds, errors.
 * With LOADGEN_HOLD set, prints "measuring" when the measured window opens,
 * and after the JSON line keeps its connections open until stdin closes,
 * so the suite can read the server's CPU time at exactly those two points.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define BUCKETS 1000000               /* 1 us buckets up to 1 s, then one overflow bucket */

typedef struct {
    int fd, alive, writing;           /* writing: EPOLLOUT watched, a request is partly sent */
    size_t head_len;                  /* bytes of the response head buffered so far */
    long body_left;                   /* -1 while reading the head */
    size_t unsent;                    /* request bytes not yet written */
    double sent_at;
    char head[HEAD_MAX];
} conn_t;

static uint64_t histogram[BUCKETS + 1];
static char request[1024];
static size_t request_len;
static uint64_t completed;
static long errors;
static int measuring, ep;
static double stop_at;

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double quantile(double q) {
    uint64_t rank = (uint64_t)(completed * q), below = 0;
    for (long us = 0; us <= BUCKETS; us++) {
        below += histogram[us];
        if (below > rank) return (double)us;
    }
    return BUCKETS;
}

static void drop(conn_t *c) {
    errors++;
    c->alive = 0;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
}

static void watch(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is left of the request; 0 when done or the socket is full, -1 on error.
   EPOLLOUT is watched only while a request is partly sent (level-triggered,
   it would otherwise wake us for every idle writable socket). */
static int send_rest(conn_t *c) {
    while (c->unsent > 0) {
        ssize_t w = send(c->fd, request + request_len - c->unsent, c->unsent, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->writing) watch(c, EPOLLIN | EPOLLOUT);
            c->writing = 1;
            return 0;
        }
        if (w < 0) return -1;
        c->unsent -= (size_t)w;
    }
    if (c->writing) watch(c, EPOLLIN);
    c->writing = 0;
    return 0;
}

static int send_request(conn_t *c, double t) {
    c->sent_at = t;
    c->unsent = request_len;
    return send_rest(c);
}

/* Parse a complete head: 2xx status and a Content-Length; the body length, or -1. */
static long parse_head(const char *head, size_t len) {
    if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[9] != '2') return -1;
    const char *line = memchr(head, '\n', len);
    while (line && (size_t)(line + 1 - head) < len) {
        line++;
        if (strncasecmp(line, "content-length:", 15) == 0) return strtol(line + 15, NULL, 10);
        line = memchr(line, '\n', len - (size_t)(line - head));
    }
    return -1;
}

/* Consume n received bytes; 0, or -1 on a response we cannot read. */
static int received(conn_t *c, const char *data, size_t n, double t) {
    while (n > 0) {
        if (c->body_left < 0) {       /* in the head: buffer it, look for the blank line */
            size_t take = n < HEAD_MAX - c->head_len ? n : HEAD_MAX - c->head_len;
            size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
            if (take == 0) return -1;
            memcpy(c->head + c->head_len, data, take);
            c->head_len += take;
            char *end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
            if (end == NULL) { data += take; n -= take; continue; }
            size_t head_size = (size_t)(end + 4 - c->head), used = take - (c->head_len - head_size);
            data += used;
            n -= used;
            c->body_left = parse_head(c->head, head_size);
            if (c->body_left < 0) return -1;
            c->head_len = 0;
        }
        size_t take = (size_t)c->body_left < n ? (size_t)c->body_left : n;
        c->body_left -= (long)take;
        data += take;
        n -= take;
        if (c->body_left == 0) {      /* a whole response */
            c->body_left = -1;
            if (measuring && t < stop_at) {
                long us = (long)((t - c->sent_at) * 1e6);
                histogram[us < BUCKETS ? us : BUCKETS]++;
                completed++;
            }
            if (send_request(c, t) < 0) return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNS PATH WARMUP_S DURATION_S\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[4];
    int port = atoi(argv[2]), nconns = atoi(argv[3]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    if (nconns < 1 || strlen(path) > 512) return 2;
    request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                                   path, host, port);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));
    double start = seconds_now();
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        int one = 1;
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); return 1; }
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        c->alive = 1;
        c->body_left = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (send_request(c, start) < 0) drop(c);
    }
    double measure_from = start + warmup, cpu_from = 0;
    stop_at = measure_from + duration;
    static char buffer[1 << 16];
    struct epoll_event events[1024];
    for (;;) {
        double t = seconds_now();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            cpu_from = cpu_now();
            if (getenv("LOADGEN_HOLD")) { printf("measuring\n"); fflush(stdout); }
        }
        if (t >= stop_at) break;
        int n = epoll_wait(ep, events, 1024, 50);
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (!c->alive) continue;
            if ((events[e].events & EPOLLOUT) && send_rest(c) < 0) { drop(c); continue; }
            if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = recv(c->fd, buffer, sizeof buffer, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            if (r <= 0 || received(c, buffer, (size_t)r, seconds_now()) < 0) drop(c);
        }
    }
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"p50_us\": %.0f, \"p90_us\": %.0f, "
           "\"p99_us\": %.0f, \"p999_us\": %.0f, \"cpu_seconds\": %.6f, \"errors\": %ld}\n",
           (unsigned long long)completed, duration, quantile(0.50), quantile(0.90),
           quantile(0.99), quantile(0.999), cpu_now() - cpu_from, errors);
    fflush(stdout);
    if (getenv("LOADGEN_HOLD")) while (read(0, buffer, sizeof buffer) > 0) {}
    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    return 0;
}
