/*
 * wsloadgen: an epoll WebSocket (RFC 6455) load generator for `python -m benchmarks websocket`.
 *
 * Each connection does the opening handshake (GET PATH with the RFC's sample
 * key, no extensions offered, so no permessage-deflate) and checks the 101
 * and its Sec-WebSocket-Accept. Then, by mode:
 *
 *   echo: CONNS connections to "/echo", each keeping one masked message of
 *     SIZE bytes (text: ASCII; binary) in flight; a message is complete when
 *     the server's echo (same type, SIZE bytes, in one or more frames) has
 *     arrived, and the next one goes out. Latency = send to last echoed byte.
 *     usage: wsloadgen HOST PORT CONNS echo SIZE text|binary WARMUP_S DURATION_S
 *     JSON: messages, seconds, p50_us, p90_us, p99_us, p999_us, cpu_seconds, errors
 *
 *   broadcast: CONNS member connections to "/member", which only read, and
 *     one to "/control". A round sends "go MESSAGES" on the control
 *     connection; the server sends MESSAGES text messages of 64 B to every
 *     member and answers with the seconds that took on its side. A round
 *     ends when every member has received all MESSAGES and the answer has
 *     come; its time runs from sending "go" to the last member's last
 *     message. One warm-up round, then ROUNDS measured rounds.
 *     usage: wsloadgen HOST PORT CONNS broadcast MESSAGES ROUNDS
 *     JSON: deliveries, seconds (sum of the rounds' times), server_seconds
 *     (sum of the server's answers), rounds, p50_round_s, max_round_s,
 *     cpu_seconds, errors
 *
 * A Ping from the server is answered with a Pong. A Close, a masked server
 * frame, a message of the wrong type or size, or a closed connection counts
 * as an error and drops that connection (not reopened); in broadcast mode
 * an error ends the run. With LOADGEN_HOLD set, prints "measuring" when the
 * measured window opens, and after the JSON line keeps its connections open
 * until stdin closes, so the suite can read the server's CPU time at exactly
 * those two points.
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 1000000               /* 1 us buckets up to 1 s, then one overflow bucket */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="   /* RFC 6455 1.3: the accept value of KEY */
#define BROADCAST_SIZE 64
#define BATCH 100                     /* handshakes sent before their answers are read */

typedef struct {
    int fd, alive, writing, control;
    unsigned char *out;               /* bytes queued to send: out[sent..len) */
    size_t out_len, out_sent, out_cap;
    double sent_at;
    unsigned char head[14];           /* the frame head being read */
    int head_len, in_payload, opcode, fin, message_opcode;
    uint64_t payload_left, message_len;
    char small[128];                  /* a control frame's payload, or the control answer */
    size_t small_len;
    long got;                         /* broadcast: messages received this round */
} conn_t;

static uint64_t histogram[BUCKETS + 1];
static uint64_t completed;
static long errors;
static int ep, measuring, broadcast_mode, members_done, control_answered;
static double stop_at, last_done_at, server_seconds;
static unsigned char *message_frame;  /* echo: the masked frame every connection sends */
static size_t message_frame_len, message_size;
static int message_opcode;
static long messages_per_round;
static const unsigned char mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
           + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double percentile(double q) {
    uint64_t rank = (uint64_t)(completed * q), seen = 0;
    for (long us = 0; us <= BUCKETS; us++) {
        seen += histogram[us];
        if (seen > rank) return (double)us;
    }
    return BUCKETS;
}

/* A masked client frame (FIN set) of opcode and payload, in a fresh buffer. */
static unsigned char *masked_frame(int opcode, const unsigned char *payload, size_t n,
                                   size_t *len) {
    unsigned char *f = malloc(n + 14), *p = f;
    *p++ = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        *p++ = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char)(n >> 8);
        *p++ = (unsigned char)n;
    } else {
        *p++ = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8) *p++ = (unsigned char)((uint64_t)n >> shift);
    }
    memcpy(p, mask_key, 4);
    p += 4;
    for (size_t i = 0; i < n; i++) p[i] = payload[i] ^ mask_key[i & 3];
    *len = (size_t)(p - f) + n;
    return f;
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

/* Send what is queued; 0 when done or the socket is full, -1 on error. EPOLLOUT is
   watched only while something is queued (level-triggered). */
static int flush(conn_t *c) {
    while (c->out_sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->writing) watch(c, EPOLLIN | EPOLLOUT);
            c->writing = 1;
            return 0;
        }
        if (w < 0) return -1;
        c->out_sent += (size_t)w;
    }
    c->out_len = c->out_sent = 0;
    if (c->writing) watch(c, EPOLLIN);
    c->writing = 0;
    return 0;
}

static int queue(conn_t *c, const unsigned char *data, size_t n) {
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return flush(c);
}

static int send_text(conn_t *c, const char *text) {
    size_t len;
    unsigned char *f = masked_frame(0x1, (const unsigned char *)text, strlen(text), &len);
    int r = queue(c, f, len);
    free(f);
    return r;
}

/* A whole message has arrived on c; 0, or -1 when it is not what we expect. */
static int message_done(conn_t *c, double t) {
    if (!broadcast_mode) {
        if (c->message_opcode != message_opcode || c->message_len != message_size) return -1;
        if (measuring && t < stop_at) {
            long us = (long)((t - c->sent_at) * 1e6);
            histogram[us < BUCKETS ? us : BUCKETS]++;
            completed++;
        }
        c->sent_at = t;
        return queue(c, message_frame, message_frame_len);
    }
    if (c->control) {                 /* the server's seconds for this round */
        c->small[c->small_len] = 0;
        server_seconds += strtod(c->small, NULL);
        control_answered = 1;
        return 0;
    }
    if (c->message_opcode != 0x1 || c->message_len != BROADCAST_SIZE) return -1;
    if (++c->got > messages_per_round) return -1;
    if (c->got == messages_per_round) {
        members_done++;
        last_done_at = t;
    }
    return 0;
}

static int frame_done(conn_t *c, double t) {
    switch (c->opcode) {
    case 0x9: {                       /* Ping: answer with a Pong of the same payload */
        size_t len;
        unsigned char *f = masked_frame(0xA, (unsigned char *)c->small, c->small_len, &len);
        int r = queue(c, f, len);
        free(f);
        return r;
    }
    case 0xA: return 0;
    case 0x0: case 0x1: case 0x2:
        return c->fin ? message_done(c, t) : 0;
    default: return -1;               /* Close, or a reserved opcode */
    }
}

/* Consume n received bytes of frames; 0, or -1 on something we cannot accept. */
static int received(conn_t *c, const unsigned char *data, size_t n, double t) {
    while (n > 0) {
        if (!c->in_payload) {         /* the head: 2 bytes, then its length field */
            c->head[c->head_len++] = *data++;
            n--;
            if (c->head_len < 2) continue;
            if (c->head[1] & 0x80) return -1;          /* a server must not mask */
            int len7 = c->head[1] & 0x7f, need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            if (c->head_len < need) continue;
            uint64_t length = (uint64_t)len7;
            if (len7 >= 126) {
                length = 0;
                for (int i = 2; i < need; i++) length = (length << 8) | c->head[i];
            }
            c->head_len = 0;
            c->fin = c->head[0] >> 7;
            c->opcode = c->head[0] & 0x0f;
            if (c->opcode >= 0x8) {
                if (length > 125 || !c->fin) return -1;
            } else if (c->opcode != 0x0) {
                c->message_opcode = c->opcode;
                c->message_len = 0;
            }
            if (c->opcode >= 0x8 || c->control) c->small_len = 0;
            c->payload_left = length;
            if (length == 0) {
                if (frame_done(c, t) < 0) return -1;
            } else {
                c->in_payload = 1;
            }
            continue;
        }
        size_t take = c->payload_left < n ? (size_t)c->payload_left : n;
        if (c->opcode >= 0x8 || c->control) {
            size_t room = sizeof c->small - 1 - c->small_len, keep = take < room ? take : room;
            memcpy(c->small + c->small_len, data, keep);
            c->small_len += keep;
        }
        if (c->opcode < 0x8) c->message_len += take;
        c->payload_left -= take;
        data += take;
        n -= take;
        if (c->payload_left == 0) {
            c->in_payload = 0;
            if (frame_done(c, t) < 0) return -1;
        }
    }
    return 0;
}

/* Open every connection with a blocking handshake, BATCH at a time; then non-blocking. */
static int open_all(conn_t *conns, int n, struct sockaddr_in *addr, const char *host, int port) {
    static char buffer[16384];
    for (int from = 0; from < n; from += BATCH) {
        int to = from + BATCH < n ? from + BATCH : n;
        for (int i = from; i < to; i++) {
            conn_t *c = &conns[i];
            int one = 1;
            struct timeval timeout = {10, 0};
            c->fd = socket(AF_INET, SOCK_STREAM, 0);
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
            if (connect(c->fd, (struct sockaddr *)addr, sizeof *addr) < 0) {
                perror("connect");
                return -1;
            }
            int len = snprintf(buffer, sizeof buffer,
                               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n",
                               c->control ? "/control" : broadcast_mode ? "/member" : "/echo",
                               host, port);
            if (send(c->fd, buffer, (size_t)len, MSG_NOSIGNAL) != len) {
                perror("send");
                return -1;
            }
        }
        for (int i = from; i < to; i++) {
            conn_t *c = &conns[i];
            size_t have = 0;
            char *end = NULL;
            while (end == NULL) {     /* nothing follows the 101 until we send */
                ssize_t r = recv(c->fd, buffer + have, sizeof buffer - 1 - have, 0);
                if (r <= 0) { fprintf(stderr, "handshake: no answer\n"); return -1; }
                have += (size_t)r;
                buffer[have] = 0;
                end = strstr(buffer, "\r\n\r\n");
                if (end == NULL && have == sizeof buffer - 1) return -1;
            }
            *end = 0;
            if (strncmp(buffer, "HTTP/1.1 101", 12) != 0 || strstr(buffer, ACCEPT) == NULL
                    || strcasestr(buffer, "sec-websocket-extensions") != NULL) {
                fprintf(stderr, "handshake refused: %.200s\n", buffer);
                return -1;
            }
            fcntl(c->fd, F_SETFL, O_NONBLOCK);
            c->alive = 1;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            if ((size_t)(end + 4 - buffer) < have && received(c, (unsigned char *)end + 4,
                                                              have - (size_t)(end + 4 - buffer),
                                                              seconds_now()) < 0)
                drop(c);
        }
    }
    return 0;
}

/* One pass of epoll: read what came, write what waits. */
static void poll_once(int timeout_ms) {
    static unsigned char buffer[1 << 16];
    struct epoll_event events[1024];
    int n = epoll_wait(ep, events, 1024, timeout_ms);
    for (int e = 0; e < n; e++) {
        conn_t *c = events[e].data.ptr;
        if (!c->alive) continue;
        if ((events[e].events & EPOLLOUT) && flush(c) < 0) { drop(c); continue; }
        if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
        ssize_t r = recv(c->fd, buffer, sizeof buffer, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (r <= 0 || received(c, buffer, (size_t)r, seconds_now()) < 0) drop(c);
    }
}

static void start_measuring(double *cpu_from) {
    measuring = 1;
    *cpu_from = cpu_seconds();
    if (getenv("LOADGEN_HOLD")) { printf("measuring\n"); fflush(stdout); }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_echo(conn_t *conns, int n, double warmup, double duration) {
    double cpu_from = 0, start = seconds_now(), measure_from = start + warmup;
    stop_at = measure_from + duration;
    for (int i = 0; i < n; i++) {
        conns[i].sent_at = start;
        if (conns[i].alive && queue(&conns[i], message_frame, message_frame_len) < 0)
            drop(&conns[i]);
    }
    for (;;) {
        double t = seconds_now();
        if (!measuring && t >= measure_from) start_measuring(&cpu_from);
        if (t >= stop_at) break;
        poll_once(50);
    }
    printf("{\"messages\": %llu, \"seconds\": %.6f, \"p50_us\": %.0f, \"p90_us\": %.0f, "
           "\"p99_us\": %.0f, \"p999_us\": %.0f, \"cpu_seconds\": %.6f, \"errors\": %ld}\n",
           (unsigned long long)completed, duration, percentile(0.50), percentile(0.90),
           percentile(0.99), percentile(0.999), cpu_seconds() - cpu_from, errors);
}

static void run_broadcast(conn_t *conns, int members, int rounds) {
    conn_t *control = &conns[members];
    double cpu_from = 0, total = 0, *times = calloc((size_t)rounds + 1, sizeof(double));
    char go[64];
    int measured = 0;
    snprintf(go, sizeof go, "go %ld", messages_per_round);
    for (int round = 0; round <= rounds && errors == 0; round++) {
        if (round == 1) {
            start_measuring(&cpu_from);
            server_seconds = 0;
        }
        for (int i = 0; i < members; i++) conns[i].got = 0;
        members_done = control_answered = 0;
        double started = seconds_now();
        if (send_text(control, go) < 0) drop(control);
        while ((members_done < members || !control_answered) && errors == 0) {
            poll_once(50);
            if (seconds_now() - started > 60) {
                fprintf(stderr, "broadcast round %d: %d of %d members done after 60 s\n",
                        round, members_done, members);
                errors++;
            }
        }
        if (round > 0 && errors == 0) {
            times[measured++] = last_done_at - started;
            total += last_done_at - started;
        }
    }
    qsort(times, (size_t)measured, sizeof(double), compare_doubles);
    printf("{\"deliveries\": %llu, \"seconds\": %.6f, \"server_seconds\": %.6f, \"rounds\": %d, "
           "\"p50_round_s\": %.6f, \"max_round_s\": %.6f, \"cpu_seconds\": %.6f, "
           "\"errors\": %ld}\n",
           (unsigned long long)measured * (unsigned long long)messages_per_round * members, total,
           server_seconds, measured, measured ? times[measured / 2] : 0.0,
           measured ? times[measured - 1] : 0.0, cpu_seconds() - cpu_from, errors);
    free(times);
}

int main(int argc, char **argv) {
    int echo = argc == 9 && strcmp(argv[4], "echo") == 0;
    broadcast_mode = argc == 7 && strcmp(argv[4], "broadcast") == 0;
    if (!echo && !broadcast_mode) {
        fprintf(stderr, "usage: %s HOST PORT CONNS echo SIZE text|binary WARMUP_S DURATION_S\n"
                        "       %s HOST PORT CONNS broadcast MESSAGES ROUNDS\n", argv[0], argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), nconns = atoi(argv[3]);
    if (nconns < 1) return 2;
    if (echo) {
        message_size = (size_t)atol(argv[5]);
        message_opcode = strcmp(argv[6], "binary") == 0 ? 0x2 : 0x1;
        unsigned char *payload = malloc(message_size + 1);
        for (size_t i = 0; i < message_size; i++)
            payload[i] = message_opcode == 0x1 ? (unsigned char)('a' + i % 26)
                                               : (unsigned char)(i * 7);
        message_frame = masked_frame(message_opcode, payload, message_size, &message_frame_len);
        free(payload);
    } else {
        messages_per_round = atol(argv[5]);
        if (messages_per_round < 1 || atoi(argv[6]) < 1) return 2;
    }
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    ep = epoll_create1(0);
    int total = nconns + broadcast_mode;                /* broadcast: the control one last */
    conn_t *conns = calloc((size_t)total, sizeof(conn_t));
    if (broadcast_mode) conns[nconns].control = 1;
    if (open_all(conns, total, &addr, host, port) < 0) return 1;
    if (echo) run_echo(conns, nconns, atof(argv[7]), atof(argv[8]));
    else run_broadcast(conns, nconns, atoi(argv[6]));
    fflush(stdout);
    if (getenv("LOADGEN_HOLD")) {
        char sink[256];
        while (read(0, sink, sizeof sink) > 0) {}
    }
    for (int i = 0; i < total; i++) close(conns[i].fd);
    return 0;
}
