/* redlab-probe: constant-rate UDP gap probe with per-packet wall-clock timestamps.
 *
 *   redlab-probe [--rt] server BIND_ADDR PORT LOGFILE
 *   redlab-probe [--rt] client SERVER_ADDR PORT INTERVAL_NS DURATION_NS TAIL_NS LOGFILE
 *
 * Why not irtt: its timer drifts (1 ms asked, ~1.13 ms sent), it skips late slots, it
 * dies on send errors and its runtime spins under SCHED_FIFO.  Here the sender sleeps to
 * an absolute schedule t0 + seq * interval and, when late, sends at once without skipping
 * a seq, so every seq 0..N-1 is sent exactly once whatever comes back.
 * DURATION_NS is a ceiling: SIGUSR1 says the traffic it watches is over, and the client
 * ends its sending once TAIL_PROOF packets in a row, sent after the signal, have come
 * back (so an outage still open at the signal has closed in the log), or TAIL_NS after
 * the signal if they never do; it then drains the last echoes and writes its log.
 * SIGTERM and SIGINT stop at once and write the log.
 *
 * All stamps are CLOCK_REALTIME ns (kernel receive stamps via SO_TIMESTAMPNS), the clock
 * the harness stamps its events with (time.time_ns()).  Logs are kept in memory and
 * written as CSV at the end, so no disk I/O lands inside a measured outage.
 * IPv4 only.  One client per server instance (the server does not tell clients apart).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x524c5042u /* "RLPB" */
#define PKT_LEN 64
#define DRAIN_MIN_NS 200000000LL   /* wait at least this long for the last echoes */
#define DRAIN_MAX_NS 2000000000LL  /* and never longer: a dead path must not hang us */
#define TAIL_PROOF 10              /* echoes in a row after SIGUSR1: the path works */

/* Wire format, big-endian; fixed 64 bytes so the rate in bytes is predictable. */
struct pkt {
    uint32_t magic, flags;
    uint64_t seq;
    int64_t send_ns, srv_recv_ns, srv_send_ns;
    uint8_t pad[PKT_LEN - 40];
};
_Static_assert(sizeof(struct pkt) == PKT_LEN, "packet must be 64 bytes");

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) { perror(what); exit(2); }

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) die("calloc");
    return p;
}

/* SCHED_FIFO: the probe sleeps in clock_nanosleep/recvmsg between packets, so at
 * 10k pps it uses a few % of a CPU and cannot starve a single-CPU guest. */
static void go_realtime(void) {
    struct sched_param sp = { .sched_priority = 50 };
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) perror("warning: SCHED_FIFO");
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) perror("warning: mlockall");
}

static int udp_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, buf = 4 << 20;
    if (fd < 0) die("socket");
    /* Kernel receive stamps: taken in softirq, so a stalled process does not skew them. */
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
        perror("warning: SO_TIMESTAMPNS (using clock_gettime)");
    /* Big buffers ride out a scheduling stall without dropping packets locally. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    /* Wake up regularly to see the stop flag: a signal can land just before recvmsg. */
    struct timeval tv = { .tv_sec = 0, .tv_usec = 50000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static struct sockaddr_in parse_addr(const char *host, const char *port) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 0 || p > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s port %s (IPv4 dotted quad, 0-65535)\n", host, port);
        exit(2);
    }
    a.sin_port = htons((uint16_t)p);
    return a;
}

/* Receive one valid probe packet; returns 1 with *rx_ns set, 0 on timeout/garbage. */
static int recv_pkt(int fd, struct pkt *p, int64_t *rx_ns, struct sockaddr_in *from) {
    char ctrl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = { p, sizeof *p };
    struct msghdr m = { .msg_name = from, .msg_namelen = from ? sizeof *from : 0,
                        .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = ctrl, .msg_controllen = sizeof ctrl };
    ssize_t n = recvmsg(fd, &m, 0);
    if (n < 0) {
        return 0; /* timeout, signal, or an ICMP error reported on the socket */
    }
    if (n != PKT_LEN || ntohl(p->magic) != MAGIC) return 0; /* garbage: ignore */
    *rx_ns = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            *rx_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        }
    if (!*rx_ns) *rx_ns = now_ns(CLOCK_REALTIME);
    return 1;
}

static FILE *open_log(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) die(path);
    return f;
}

static void close_log(FILE *f, const char *path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) die(path);
}

/* ---------------------------------------------------------------- server */

struct srec { uint64_t seq; int64_t cl_send, rx, tx; };

static int run_server(char **av) {
    struct sockaddr_in addr = parse_addr(av[0], av[1]);
    const char *logpath = av[2];
    FILE *log = open_log(logpath); /* open first: fail before the run, not after */
    int fd = udp_socket();
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    size_t n = 0, cap = 1 << 16;
    struct srec *rec = xcalloc(cap, sizeof *rec);
    fprintf(stderr, "redlab-probe server listening on %s:%s\n", av[0], av[1]);
    while (!stop) {
        struct pkt p;
        struct sockaddr_in from;
        int64_t rx;
        if (!recv_pkt(fd, &p, &rx, &from)) continue;
        int64_t tx = now_ns(CLOCK_REALTIME);
        p.srv_recv_ns = (int64_t)htobe64((uint64_t)rx);
        p.srv_send_ns = (int64_t)htobe64((uint64_t)tx);
        /* A failed echo is still logged as received: the up leg worked. */
        sendto(fd, &p, sizeof p, 0, (struct sockaddr *)&from, sizeof from);
        if (n == cap) {
            struct srec *bigger = realloc(rec, (cap *= 2) * sizeof *rec);
            if (!bigger) die("realloc"); /* exit 2: losing records silently is worse */
            rec = bigger;
        }
        rec[n++] = (struct srec){ be64toh(p.seq), (int64_t)be64toh((uint64_t)p.send_ns),
                                  rx, tx };
    }
    fprintf(log, "seq,client_send_ns,server_recv_ns,server_send_ns\n");
    for (size_t i = 0; i < n; i++)
        fprintf(log, "%llu,%lld,%lld,%lld\n", (unsigned long long)rec[i].seq,
                (long long)rec[i].cl_send, (long long)rec[i].rx, (long long)rec[i].tx);
    close_log(log, logpath);
    fprintf(stderr, "redlab-probe server: %zu packets logged\n", n);
    return 0;
}

/* ---------------------------------------------------------------- client */

struct client {
    int fd;
    struct sockaddr_in server;
    int64_t interval, n;
    volatile int sender_done;          /* set by the sender, read by main */
    volatile int end_sending;          /* set by main (SIGUSR1, then the tail's proof) */
    int64_t next_seq;                  /* the sender's next seq (atomic access) */
    int64_t top_echo;                  /* the highest seq echoed, -1 before any (atomic) */
    volatile int64_t max_rtt;          /* written by the receiver only */
    int64_t sent_count;                /* seqs 0..sent_count-1 were attempted */
    int64_t *sent_ns, *late_ns, *srv_rx, *srv_tx, *cl_rx;
    int *send_errno, *dups;
    int64_t send_errors, duplicates, garbage;
};

static void *sender(void *arg) {
    struct client *c = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t base = (int64_t)t0.tv_sec * 1000000000LL + t0.tv_nsec;
    int64_t seq;
    for (seq = 0; seq < c->n && !stop && !c->end_sending; seq++) {
        int64_t due = base + seq * c->interval;
        struct timespec ts = { due / 1000000000LL, due % 1000000000LL };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
            ;
        /* Late (woken after the slot): send now and keep the seq; lateness is logged. */
        c->late_ns[seq] = now_ns(CLOCK_MONOTONIC) - due;
        struct pkt p = { .magic = htonl(MAGIC), .seq = htobe64((uint64_t)seq) };
        int64_t t = now_ns(CLOCK_REALTIME);
        p.send_ns = (int64_t)htobe64((uint64_t)t);
        c->sent_ns[seq] = t;
        /* ENOBUFS, ENETUNREACH, EPERM (a local filter), EADDRNOTAVAIL while an address
         * is gone: the path is what we measure, so count it and keep the schedule. */
        if (sendto(c->fd, &p, sizeof p, 0, (struct sockaddr *)&c->server,
                   sizeof c->server) != (ssize_t)sizeof p) {
            c->send_errno[seq] = errno ? errno : EIO;
            c->send_errors++;
        }
        __atomic_store_n(&c->next_seq, seq + 1, __ATOMIC_RELEASE);
    }
    c->sent_count = seq;
    c->sender_done = 1;
    return NULL;
}

static void *receiver(void *arg) {
    struct client *c = arg;
    while (stop != 2) { /* main sets stop = 2 after the drain */
        struct pkt p;
        int64_t rx;
        struct sockaddr_in from;
        if (!recv_pkt(c->fd, &p, &rx, &from)) continue;
        if (from.sin_addr.s_addr != c->server.sin_addr.s_addr
            || from.sin_port != c->server.sin_port) { c->garbage++; continue; }
        uint64_t seq = be64toh(p.seq);
        if (seq >= (uint64_t)c->n) { c->garbage++; continue; }
        if (c->cl_rx[seq]) { c->dups[seq]++; c->duplicates++; continue; }
        __atomic_store_n(&c->cl_rx[seq], rx, __ATOMIC_RELEASE);
        if ((int64_t)seq > c->top_echo)  /* the only writer: a plain compare is enough */
            __atomic_store_n(&c->top_echo, (int64_t)seq, __ATOMIC_RELEASE);
        c->srv_rx[seq] = (int64_t)be64toh((uint64_t)p.srv_recv_ns);
        c->srv_tx[seq] = (int64_t)be64toh((uint64_t)p.srv_send_ns);
        int64_t rtt = rx - (int64_t)be64toh((uint64_t)p.send_ns);
        if (rtt > c->max_rtt) c->max_rtt = rtt;
    }
    return NULL;
}

/* The highest seq echoed and the TAIL_PROOF - 1 before it came back, all sent from
 * ``first`` on: the path carries the probe again, and any loss before them is closed. */
static int path_proven(struct client *c, int64_t first) {
    int64_t top = __atomic_load_n(&c->top_echo, __ATOMIC_ACQUIRE);
    if (top - TAIL_PROOF + 1 < first) return 0;
    for (int64_t s = top - TAIL_PROOF + 1; s <= top; s++)
        if (!__atomic_load_n(&c->cl_rx[s], __ATOMIC_ACQUIRE)) return 0;
    return 1;
}

static int64_t parse_ns(const char *s, const char *what) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v <= 0) { fprintf(stderr, "%s must be a positive integer (ns)\n", what); exit(2); }
    return v;
}

static int run_client(char **av) {
    struct sockaddr_in addr = parse_addr(av[0], av[1]);
    struct client c = { .interval = parse_ns(av[2], "INTERVAL_NS"), .top_echo = -1 };
    int64_t duration = parse_ns(av[3], "DURATION_NS");
    int64_t tail = parse_ns(av[4], "TAIL_NS");
    const char *logpath = av[5];
    c.n = duration / c.interval;
    FILE *log = open_log(logpath);
    c.fd = udp_socket();
    /* No connect(): it fails outright when there is no route yet, and its ICMP errors
     * would surface as send errors; sendto() plus a source check in the receiver. */
    c.server = addr;
    struct sockaddr_in any = { .sin_family = AF_INET }; /* bind now: the receiver starts first */
    if (bind(c.fd, (struct sockaddr *)&any, sizeof any) != 0) die("bind");
    size_t n = (size_t)c.n;
    c.sent_ns = xcalloc(n, 8); c.late_ns = xcalloc(n, 8); c.srv_rx = xcalloc(n, 8);
    c.srv_tx = xcalloc(n, 8); c.cl_rx = xcalloc(n, 8);
    c.send_errno = xcalloc(n, sizeof(int)); c.dups = xcalloc(n, sizeof(int));

    /* Signals go to main only (sigtimedwait below); the workers never see EINTR storms. */
    sigset_t set;
    sigemptyset(&set); sigaddset(&set, SIGTERM); sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t ts, tr;
    if (pthread_create(&tr, NULL, receiver, &c) || pthread_create(&ts, NULL, sender, &c))
        die("pthread_create");
    struct timespec tick = { 0, 20000000 }, proof_tick = { 0, 1000000 };
    int64_t asked_at = 0, first = -1;    /* SIGUSR1: when, and the first seq after it */
    while (!c.sender_done) {
        int sig = sigtimedwait(&set, NULL, first < 0 ? &tick : &proof_tick);
        if (sig == SIGUSR1 && first < 0) { /* end of traffic: the tail, then the drain */
            asked_at = now_ns(CLOCK_MONOTONIC);
            first = __atomic_load_n(&c.next_seq, __ATOMIC_ACQUIRE);
        } else if (sig > 0 && sig != SIGUSR1) {
            stop = 1;                      /* stop early, keep the log */
        }
        if (first >= 0 && (path_proven(&c, first)
                           || now_ns(CLOCK_MONOTONIC) - asked_at >= tail))
            c.end_sending = 1;
    }
    pthread_join(ts, NULL);
    /* Drain: echoes of the last packets are still in flight. */
    int64_t drain = 3 * c.max_rtt;
    drain = drain < DRAIN_MIN_NS ? DRAIN_MIN_NS : drain > DRAIN_MAX_NS ? DRAIN_MAX_NS : drain;
    if (!stop) {
        struct timespec d = { drain / 1000000000LL, drain % 1000000000LL };
        sigtimedwait(&set, NULL, &d);
    }
    stop = 2;
    pthread_join(tr, NULL);

    int64_t received = 0;
    fprintf(log, "seq,sent_ns,send_errno,late_ns,server_recv_ns,server_send_ns,"
                 "client_recv_ns,dup_count\n");
    for (int64_t i = 0; i < c.sent_count; i++) {
        fprintf(log, "%lld,%lld,%d,%lld,", (long long)i, (long long)c.sent_ns[i],
                c.send_errno[i], (long long)c.late_ns[i]);
        if (c.cl_rx[i]) {
            received++;
            fprintf(log, "%lld,%lld,%lld,%d\n", (long long)c.srv_rx[i],
                    (long long)c.srv_tx[i], (long long)c.cl_rx[i], c.dups[i]);
        } else {
            fprintf(log, ",,,%d\n", c.dups[i]);
        }
    }
    close_log(log, logpath);
    fprintf(stderr, "redlab-probe client: sent %lld of %lld, send errors %lld, received "
            "%lld, duplicates %lld, ignored %lld, max rtt %lld ns\n",
            (long long)c.sent_count, (long long)c.n, (long long)c.send_errors,
            (long long)received, (long long)c.duplicates, (long long)c.garbage,
            (long long)c.max_rtt);
    return 0;
}

static __attribute__((noreturn)) void usage(void) {
    fprintf(stderr, "usage: redlab-probe [--rt] server BIND_ADDR PORT LOGFILE\n"
                    "       redlab-probe [--rt] client SERVER_ADDR PORT INTERVAL_NS "
                    "DURATION_NS TAIL_NS LOGFILE\n");
    exit(2);
}

int main(int argc, char **argv) {
    int i = 1;
    int rt = i < argc && strcmp(argv[i], "--rt") == 0;
    i += rt;
    if (i >= argc) usage();
    /* The default 50 us timer slack would add up to 50 us of jitter to every send. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* No SA_RESTART: SIGTERM interrupts recvmsg so the server writes its log and exits. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (rt) go_realtime(); /* before the threads: they inherit the policy */
    if (strcmp(argv[i], "server") == 0 && argc - i == 4) return run_server(argv + i + 1);
    if (strcmp(argv[i], "client") == 0 && argc - i == 7) return run_client(argv + i + 1);
    usage();
}
