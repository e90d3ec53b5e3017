// loadgen.c - WebSocket load generator for the fdws benchmarks.
//
// One thread, epoll (edge-triggered), non-blocking sockets. Real RFC 6455 handshakes
// (random Sec-WebSocket-Key, checks 101 + Sec-WebSocket-Accept), masked binary frames
// with random masks, in-place parsing of server frames, answers pings.
//
// Modes:
//   echo       N connections, each keeps K messages of S bytes in flight; counts and verifies
//              echoes (sequence number + fill pattern); msgs/s and latency percentiles.
//   broadcast  1 publisher + N subscribers; the publisher keeps W messages in flight, a message
//              completes when the publisher receives its own copy. Every connection checks that
//              it sees every sequence number in order; deliveries/s, losses, latency at subscribers.
//   idle       open N connections, report connect time, hold H seconds, close cleanly.
//
// Options beyond the basics (see usage()):
//   --tls            TLS client through libssl (dlopen'ed at run time: libssl.so.3 +
//                    libcrypto.so.3), no certificate verification unless --ca FILE is given
//                    (then the chain is verified against that CA; the host name is not checked).
//   --deflate        offers "permessage-deflate; client_max_window_bits" and, when the server
//                    accepts, compresses what it sends and inflates what it gets (zlib, dlopen'ed:
//                    libz.so.1). Connections the server declined count in deflate_declined.
//   --payload json   a JSON-like compressible payload after the 16-byte header instead of the
//                    incompressible check pattern (both are verified byte for byte).
//   --messages N     each sender sends N messages, then the window ends once they all came back
//                    (bounded by --duration); for large-message and volume scenarios.
//   --stalled K      broadcast: K more subscribers that never read after their 101 (their
//                    receive buffers fill; the server must bound what it keeps for them).
//   --ports P,Q      spread connections round-robin over several ports (several server
//                    processes; the publisher uses the first).
//   --pid P[,Q..]    server processes to sample (CPU summed, RSS summed); --aux-pid R: one
//                    more process whose CPU is reported apart (e.g. redis-server).
//
// With --pid it samples the servers' CPU time (/proc/P/stat) and RSS (/proc/P/status) at the
// exact window boundaries, plus /proc/meminfo Slab and /proc/net/sockstat in idle mode. It also
// resets the servers' peak RSS (/proc/P/clear_refs "5") at start and reports VmHWM at the end,
// and samples RSS every 10 ms (peak_rss_sampled_kb) where clear_refs is refused.
// Output: ONE JSON line on stdout. Progress lines ("loadgen: ...") go to stderr.
//
// Build: gcc -O2 -Wall -Wextra -o loadgen loadgen.c -ldl
// Needs no OpenSSL or zlib headers or libraries to build: the few prototypes and the z_stream
// layout are declared below, and the libraries are opened only when --tls / --deflate is given.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (1u << 20)   // shared read buffer: large reads, frames parsed in place
#define READ_STEP (256u << 10) // growth of a connection's own buffer while a frame is partial
#define MAX_SIZE (64u << 20)   // largest --size
#define MAX_EVENTS 1024
#define MAX_ATTEMPTS 30        // connect attempts per connection
#define ATTEMPT_TIMEOUT 10.0   // seconds for one connect + handshake attempt
#define HDR_MAX 8192           // max handshake response size
#define MSG_HDR 16             // payload: u64 seq, u64 send time (ns), then fill bytes

// ---------------------------------------------------------------- options

static struct {
  const char *mode, *host, *ca, *payload;
  int port, conns, size, inflight, ramp, tls, deflate, stalled;
  long messages;
  double warmup, duration, hold, settle, connect_timeout, drain_timeout;
} opt = {"echo", "127.0.0.1", NULL, "bin", 8080, 100, 32, 0, 200, 0, 0, 0, 0,
         1.0, 5.0, 5.0, -1, 60.0, 3.0};

enum { M_ECHO, M_BROADCAST, M_IDLE };
static int mode, json_payload;
static size_t max_frame;  // largest server frame accepted
#define MAX_PIDS 8
static int pids[MAX_PIDS], npids, aux_pid = -1;
static int ports[MAX_PIDS], nports;

// ---------------------------------------------------------------- time, random

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static double now_s(void) { return (double)now_ns() / 1e9; }

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t rng_state;
static uint64_t rng(void) {  // xorshift64*, seeded from getrandom(): masks and jitter
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}

// ---------------------------------------------------------------- SHA-1 + base64 (handshake)

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  uint64_t bits = (uint64_t)len * 8;
  size_t total = ((len + 8) / 64 + 1) * 64;  // message + 0x80 + zero pad + 64-bit length
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++) {
      uint32_t v = 0;
      for (int b = 0; b < 4; b++) {
        size_t j = off + 4 * i + b;
        uint8_t byte = j < len ? msg[j] : j == len ? 0x80
                     : j >= total - 8 ? (uint8_t)(bits >> (8 * (total - 1 - j))) : 0;
        v = v << 8 | byte;
      }
      w[i] = v;
    }
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t len, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? in[i + 1] << 8 : 0) |
                 (i + 2 < len ? in[i + 2] : 0);
    out[o++] = tbl[v >> 18 & 63];
    out[o++] = tbl[v >> 12 & 63];
    out[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
    out[o++] = i + 2 < len ? tbl[v & 63] : '=';
  }
  out[o] = 0;
}

static void ws_accept(const char *key, char out[29]) {
  char buf[64];
  uint8_t digest[20];
  int n = snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  sha1((const uint8_t *)buf, (size_t)n, digest);
  base64(digest, 20, out);
}

// ---------------------------------------------------------------- latency histogram
// Log-linear buckets over nanoseconds: values < 64 exact, above that 64 sub-buckets per power
// of two (< 1.6% error). Constant memory, no per-sample storage.

#define HSUB 64
static uint64_t hist[HSUB + 58 * HSUB];
static uint64_t hist_n, hist_max;

static void hist_add(uint64_t v) {
  int idx;
  if (v < HSUB) {
    idx = (int)v;
  } else {
    int msb = 63 - __builtin_clzll(v);
    idx = HSUB + (msb - 6) * HSUB + (int)((v >> (msb - 6)) & (HSUB - 1));
  }
  hist[idx]++;
  hist_n++;
  if (v > hist_max) hist_max = v;
}

static double hist_pct_us(double p) {  // bucket midpoint, microseconds
  if (!hist_n) return -1;
  uint64_t want = (uint64_t)(p * (double)hist_n), seen = 0;
  if (want < 1) want = 1;
  for (int i = 0; i < (int)(sizeof hist / sizeof hist[0]); i++) {
    seen += hist[i];
    if (seen >= want) {
      if (i < HSUB) return i / 1e3;
      int msb = (i - HSUB) / HSUB + 6, sub = (i - HSUB) % HSUB;
      double lo = (double)((uint64_t)(HSUB + sub) << (msb - 6));
      double hi = (double)((uint64_t)(HSUB + sub + 1) << (msb - 6));
      return (lo + hi) / 2 / 1e3;
    }
  }
  return (double)hist_max / 1e3;
}

// ---------------------------------------------------------------- /proc sampling

static int slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = 0;
  return (int)n;
}

static double proc_cpu_s(int pid) {  // utime + stime of the server process, seconds
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (pid <= 0 || slurp(path, buf, sizeof buf) <= 0) return -1;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  // after "comm)": state(3) ppid(4) ... utime(14) stime(15)
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long find_kb(const char *text, const char *key) {
  const char *p = strstr(text, key);
  return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static long proc_status_kb(int pid, const char *key) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  if (pid <= 0 || slurp(path, buf, sizeof buf) <= 0) return -1;
  return find_kb(buf, key);
}

// Sums over the server processes (workers are threads: one process holds them all).
static double servers_cpu_s(void) {
  double sum = 0;
  for (int i = 0; i < npids; i++) {
    double v = proc_cpu_s(pids[i]);
    if (v < 0) return -1;
    sum += v;
  }
  return npids ? sum : -1;
}

static long servers_kb(const char *key) {
  long sum = 0;
  for (int i = 0; i < npids; i++) {
    long v = proc_status_kb(pids[i], key);
    if (v < 0) return -1;
    sum += v;
  }
  return npids ? sum : -1;
}

// Peak RSS: the kernel's VmHWM after a reset (clear_refs "5"), and our own 10 ms sampling.
static int hwm_reset_ok;
static long peak_sampled_kb = -1;
static double next_peak_sample;

static void reset_hwm(void) {
  hwm_reset_ok = npids > 0;
  for (int i = 0; i < npids; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", pids[i]);
    FILE *f = fopen(path, "w");
    if (!f || fputs("5", f) < 0) hwm_reset_ok = 0;
    if (f && fclose(f) != 0) hwm_reset_ok = 0;
  }
}

static void sample_peak(double now) {
  if (!npids || now < next_peak_sample) return;
  next_peak_sample = now + 0.01;
  long v = servers_kb("VmRSS:");
  if (v > peak_sampled_kb) peak_sampled_kb = v;
}

#define MAX_CPUS 64
static int ncpus;

typedef struct {
  double t, self_cpu, server_cpu, aux_cpu;
  long server_rss_kb, slab_kb, sunreclaim_kb, tcp_mem_pages, sockets_used;
  // /proc/stat jiffies per CPU: total, idle (+iowait), irq + softirq
  unsigned long long cpu_total[MAX_CPUS], cpu_idle[MAX_CPUS], cpu_irq[MAX_CPUS];
} Sample;

// Per-CPU jiffies from /proc/stat: total and idle (idle + iowait). Busy time of a core includes
// softirq (loopback TCP processing), which no process's utime/stime contains.
static void read_cpu_stat(Sample *s) {
  char buf[16384];
  if (slurp("/proc/stat", buf, sizeof buf) <= 0) return;
  for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    int cpu;
    unsigned long long v[10] = {0};
    if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 || cpu < 0 || cpu >= MAX_CPUS)
      continue;
    unsigned long long total = 0;
    for (int i = 0; i < 8; i++) total += v[i];
    s->cpu_total[cpu] = total;
    s->cpu_idle[cpu] = v[3] + v[4];
    s->cpu_irq[cpu] = v[5] + v[6];
    if (cpu + 1 > ncpus) ncpus = cpu + 1;
  }
}

static Sample take_sample(void) {
  Sample s = {now_s(), cpu_s(), servers_cpu_s(), proc_cpu_s(aux_pid), servers_kb("VmRSS:"),
              -1, -1, -1, -1, {0}, {0}, {0}};
  read_cpu_stat(&s);
  if (mode == M_IDLE) {
    char buf[8192];
    if (slurp("/proc/meminfo", buf, sizeof buf) > 0) {
      s.slab_kb = find_kb(buf, "\nSlab:");
      s.sunreclaim_kb = find_kb(buf, "\nSUnreclaim:");
    }
    if (slurp("/proc/net/sockstat", buf, sizeof buf) > 0) {
      s.sockets_used = find_kb(buf, "sockets: used");
      const char *tcp = strstr(buf, "TCP:");
      s.tcp_mem_pages = tcp ? find_kb(tcp, " mem") : -1;
    }
  }
  return s;
}

// ---------------------------------------------------------------- OpenSSL and zlib at run time
// Declared here (stable ABI of OpenSSL 3 and zlib 1.2+) so that building needs neither their
// headers nor their development libraries; the libraries are dlopen'ed only when asked for.

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
#define SSL_ERROR_WANT_READ 2
#define SSL_ERROR_WANT_WRITE 3
#define SSL_ERROR_SYSCALL 5
#define SSL_ERROR_ZERO_RETURN 6
#define SSL_VERIFY_NONE 0
#define SSL_VERIFY_PEER 1
#define SSL_CTRL_MODE 33
#define SSL_MODE_ENABLE_PARTIAL_WRITE 0x1L
#define SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER 0x2L

static struct {
  const SSL_METHOD *(*TLS_client_method)(void);
  SSL_CTX *(*SSL_CTX_new)(const SSL_METHOD *);
  void (*SSL_CTX_set_verify)(SSL_CTX *, int, void *);
  int (*SSL_CTX_load_verify_locations)(SSL_CTX *, const char *, const char *);
  long (*SSL_CTX_ctrl)(SSL_CTX *, int, long, void *);
  SSL *(*SSL_new)(SSL_CTX *);
  int (*SSL_set_fd)(SSL *, int);
  int (*SSL_connect)(SSL *);
  int (*SSL_read)(SSL *, void *, int);
  int (*SSL_write)(SSL *, const void *, int);
  int (*SSL_get_error)(const SSL *, int);
  int (*SSL_shutdown)(SSL *);
  void (*SSL_free)(SSL *);
  void (*ERR_clear_error)(void);
  unsigned long (*ERR_get_error)(void);
  void (*ERR_error_string_n)(unsigned long, char *, size_t);
} ossl;
static SSL_CTX *ssl_ctx;

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "loadgen: missing symbol %s\n", name);
    printf("{\"ok\":false,\"error\":\"missing symbol %s\"}\n", name);
    exit(1);
  }
  return p;
}
#define BIND(lib, t, name) (t.name = (__typeof__(t.name))sym(lib, #name))

static void ssl_setup(void) {
  void *crypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_GLOBAL);
  void *ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_GLOBAL);
  if (!crypto || !ssl) {
    printf("{\"ok\":false,\"error\":\"--tls needs libssl.so.3 and libcrypto.so.3\"}\n");
    exit(1);
  }
  BIND(ssl, ossl, TLS_client_method);
  BIND(ssl, ossl, SSL_CTX_new);
  BIND(ssl, ossl, SSL_CTX_set_verify);
  BIND(ssl, ossl, SSL_CTX_load_verify_locations);
  BIND(ssl, ossl, SSL_CTX_ctrl);
  BIND(ssl, ossl, SSL_new);
  BIND(ssl, ossl, SSL_set_fd);
  BIND(ssl, ossl, SSL_connect);
  BIND(ssl, ossl, SSL_read);
  BIND(ssl, ossl, SSL_write);
  BIND(ssl, ossl, SSL_get_error);
  BIND(ssl, ossl, SSL_shutdown);
  BIND(ssl, ossl, SSL_free);
  BIND(crypto, ossl, ERR_clear_error);
  BIND(crypto, ossl, ERR_get_error);
  BIND(crypto, ossl, ERR_error_string_n);
  ssl_ctx = ossl.SSL_CTX_new(ossl.TLS_client_method());
  if (!ssl_ctx) {
    printf("{\"ok\":false,\"error\":\"SSL_CTX_new failed\"}\n");
    exit(1);
  }
  // Partial writes + moving buffer: our output buffer may be reallocated between retries.
  ossl.SSL_CTX_ctrl(ssl_ctx, SSL_CTRL_MODE,
                    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
  if (opt.ca) {
    if (ossl.SSL_CTX_load_verify_locations(ssl_ctx, opt.ca, NULL) != 1) {
      printf("{\"ok\":false,\"error\":\"cannot load --ca file\"}\n");
      exit(1);
    }
    ossl.SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
  } else {
    ossl.SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
  }
}

typedef struct {
  const uint8_t *next_in;
  unsigned avail_in;
  unsigned long total_in;
  uint8_t *next_out;
  unsigned avail_out;
  unsigned long total_out;
  const char *msg;
  void *state, *zalloc, *zfree, *opaque;
  int data_type;
  unsigned long adler, reserved;
} z_stream;
#define Z_OK 0
#define Z_STREAM_END 1
#define Z_BUF_ERROR (-5)
#define Z_SYNC_FLUSH 2
#define Z_DEFLATED 8

static struct {
  const char *(*zlibVersion)(void);
  int (*deflateInit2_)(z_stream *, int, int, int, int, int, const char *, int);
  int (*deflate)(z_stream *, int);
  int (*deflateReset)(z_stream *);
  int (*deflateEnd)(z_stream *);
  int (*inflateInit2_)(z_stream *, int, const char *, int);
  int (*inflate)(z_stream *, int);
  int (*inflateReset)(z_stream *);
  int (*inflateEnd)(z_stream *);
} zl;

static void zlib_setup(void) {
  void *z = dlopen("libz.so.1", RTLD_NOW);
  if (!z) {
    printf("{\"ok\":false,\"error\":\"--deflate needs libz.so.1\"}\n");
    exit(1);
  }
  BIND(z, zl, zlibVersion);
  BIND(z, zl, deflateInit2_);
  BIND(z, zl, deflate);
  BIND(z, zl, deflateReset);
  BIND(z, zl, deflateEnd);
  BIND(z, zl, inflateInit2_);
  BIND(z, zl, inflate);
  BIND(z, zl, inflateReset);
  BIND(z, zl, inflateEnd);
}

// ---------------------------------------------------------------- connections

enum { S_NEW, S_WAIT, S_CONNECTING, S_TLS, S_HANDSHAKE, S_OPEN, S_CLOSING, S_DONE, S_FAILED };
enum { R_ECHO, R_PUB, R_SUB, R_STALL };
enum { P_CONNECT, P_SETTLE, P_WARMUP, P_MEASURE, P_DRAIN, P_CLOSE };

typedef struct {
  int fd, state, role, attempts, started, opened;
  double retry_at, deadline;
  char accept[29];
  uint8_t *in;  // leftover bytes of a partial frame / handshake response
  size_t in_len, in_cap;
  uint8_t *out;  // pending output (batched: one send() per readiness event)
  size_t out_len, out_off, out_cap;
  uint64_t next_send, expect, received;
  uint32_t inflight;
  SSL *ssl;
  int pmd;                   // permessage-deflate negotiated on this connection
  int srv_no_ctx, cli_no_ctx, cli_bits, srv_bits;
  z_stream *zd, *zi;         // created on first use: idle connections hold no zlib state
  uint8_t *msg;              // a fragmented message being reassembled (RFC 6455 §5.4)
  size_t msg_len, msg_cap;
  int msg_op, msg_rsv1;      // msg_op 0: none in progress
} Conn;

static Conn *conns;
static int nconns, ep, phase = P_CONNECT;
static uint8_t *rbuf;
static struct sockaddr_in addr;
static int nsrc = 1;  // number of loopback source addresses the connections are spread over
static double connect_deadline;
static int *queue, q_head, q_tail;  // FIFO of connections waiting to (re)connect

static struct {
  long open, failed, active, closing, retries, last_errno, protocol_errors, unexpected_closes;
  long clean_closes, pings, bad_payload, late_start;
  long tls_failures, deflate_accepted, deflate_declined, stalled_closed;
  uint64_t stalled_backlog;  // bytes a stalled reader still got when it finally read
  uint64_t losses, out_of_order, received, completed, sent;
  const char *fatal;
} G;

static void die_json(const char *msg) {
  printf("{\"ok\":false,\"error\":\"%s\"}\n", msg);
  fflush(stdout);
  exit(1);
}

static void q_push(int i) { queue[q_tail++ % (nconns + 1)] = i; }

static void reserve(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  uint8_t *p = realloc(*buf, c);
  if (!p) die_json("out of memory");
  *buf = p;
  *cap = c;
}

static void close_fd(Conn *c) {
  if (c->ssl) {
    ossl.SSL_free(c->ssl);  // no close_notify: the server sees the TCP close
    c->ssl = NULL;
  }
  if (c->zd) zl.deflateEnd(c->zd), free(c->zd), c->zd = NULL;
  if (c->zi) zl.inflateEnd(c->zi), free(c->zi), c->zi = NULL;
  c->pmd = 0;
  if (c->fd >= 0) close(c->fd);  // also removes it from the epoll set
  c->fd = -1;
  c->in_len = c->out_len = c->out_off = 0;
}

static int is_connecting(int s) { return s == S_CONNECTING || s == S_TLS || s == S_HANDSHAKE; }

static void set_state(Conn *c, int s) {  // keeps the phase counters consistent
  int was_active = is_connecting(c->state);
  int is_active = is_connecting(s);
  G.active += is_active - was_active;
  G.closing += (s == S_CLOSING) - (c->state == S_CLOSING);
  G.open += (s == S_OPEN || s == S_CLOSING) - (c->state == S_OPEN || c->state == S_CLOSING);
  if (s == S_FAILED) G.failed++;
  c->state = s;
}

static void retry(Conn *c, int err) {
  close_fd(c);
  G.retries++;
  G.last_errno = err;
  if (++c->attempts >= MAX_ATTEMPTS || now_s() > connect_deadline) {
    set_state(c, S_FAILED);
    return;
  }
  int shift = c->attempts < 7 ? c->attempts : 7;  // 10 ms .. 640 ms, jittered
  c->retry_at = now_s() + 0.005 * (1 << shift) * (0.5 + (double)(rng() % 1000) / 1000.0);
  set_state(c, S_WAIT);
  q_push((int)(c - conns));
}

static void conn_lost(Conn *c) {  // EOF or error on an established connection
  if (is_connecting(c->state)) {
    retry(c, errno ? errno : ECONNRESET);
    return;
  }
  if (c->state == S_CLOSING) G.clean_closes++;
  else if (c->state == S_OPEN) G.unexpected_closes++;
  close_fd(c);
  set_state(c, S_DONE);
}

static void protocol_error(Conn *c, const char *why) {
  if (G.protocol_errors++ < 5) fprintf(stderr, "loadgen: protocol error on conn %d: %s\n",
                                        (int)(c - conns), why);
  close_fd(c);
  set_state(c, c->state == S_HANDSHAKE ? S_FAILED : S_DONE);
}

// TLS results mapped onto recv()/send() conventions: n > 0 bytes, 0 EOF, -1 with errno
// (EAGAIN when OpenSSL wants the socket readable or writable: with edge-triggered epoll and
// EPOLLIN|EPOLLOUT registered, any readiness retries it).
static ssize_t tls_result(Conn *c, int n) {
  if (n > 0) return n;
  int e = ossl.SSL_get_error(c->ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  if (e != SSL_ERROR_SYSCALL || !errno) errno = EPROTO;
  return -1;
}

static ssize_t io_recv(Conn *c, uint8_t *p, size_t n) {
  if (!c->ssl) return recv(c->fd, p, n, 0);
  ossl.ERR_clear_error();
  return tls_result(c, ossl.SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n));
}

static ssize_t io_send(Conn *c, const uint8_t *p, size_t n) {
  if (!c->ssl) return send(c->fd, p, n, MSG_NOSIGNAL);
  ossl.ERR_clear_error();
  return tls_result(c, ossl.SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n));
}

static int flush_out(Conn *c) {  // 0 = ok (maybe partially, EPOLLOUT resumes), -1 = error
  while (c->out_off < c->out_len) {
    ssize_t n = io_send(c, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else {
      return -1;
    }
  }
  c->out_off = c->out_len = 0;
  return 0;
}

static void mask_bytes(uint8_t *p, size_t n, const uint8_t m[4]) {
  uint64_t m64;
  memcpy(&m64, m, 4);
  memcpy((uint8_t *)&m64 + 4, m, 4);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m64;
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] ^= m[i & 3];
}

// Appends a masked client frame header and reserves room for the payload; returns payload ptr.
static uint8_t *frame_begin(Conn *c, int opcode, size_t len, uint8_t mask[4]) {
  reserve(&c->out, &c->out_cap, c->out_len + len + 14);
  uint8_t *h = c->out + c->out_len;
  size_t hl = 2;
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t m = (uint32_t)rng();
  memcpy(h + hl, &m, 4);
  memcpy(mask, &m, 4);
  c->out_len += hl + 4 + len;
  return h + hl + 4;
}

static void queue_control(Conn *c, int opcode, const uint8_t *payload, size_t len) {
  uint8_t mask[4];
  uint8_t *p = frame_begin(c, opcode, len, mask);
  if (len) memcpy(p, payload, len);
  mask_bytes(p, len, mask);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

// Fill after the 16-byte header: 64-bit words derived from (seq, offset), so every byte of every
// message is checked against what was sent, at word speed.
static uint64_t pattern_word(uint64_t seq, size_t off) {
  return (seq ^ ((uint64_t)off << 40)) * 0x9E3779B97F4A7C15ULL;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seq) {
  for (size_t i = MSG_HDR; i < len; i += 8) {
    uint64_t w = pattern_word(seq, i);
    memcpy(p + i, &w, len - i < 8 ? len - i : 8);
  }
}

static int pattern_ok(const uint8_t *p, size_t len, uint64_t seq) {
  uint64_t diff = 0;
  size_t i = MSG_HDR;
  for (; i + 8 <= len; i += 8) diff |= get64(p + i) ^ pattern_word(seq, i);
  if (i < len) {
    uint64_t w = pattern_word(seq, i);
    diff |= (uint64_t)memcmp(p + i, &w, len - i);
  }
  return diff == 0;
}

// --payload json: chat-like JSON text after the 16-byte header, compressible like real traffic
// (deflate shrinks it several times), still different for every sequence number.
static void fill_json(uint8_t *p, size_t len, uint64_t seq) {
  static const char words[] = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do ";
  char head[160];
  int n = snprintf(head, sizeof head,
                   "{\"type\":\"chat\",\"room\":\"room-%02u\",\"user\":\"user-%05u\","
                   "\"seq\":%llu,\"text\":\"", (unsigned)(seq % 16),
                   (unsigned)(seq * 7919 % 100000), (unsigned long long)seq);
  uint8_t *q = p + MSG_HDR;
  size_t body = len - MSG_HDR, i = 0;
  for (; i < body && i < (size_t)n; i++) q[i] = (uint8_t)head[i];
  for (size_t w = 0; i < body; i++, w++) q[i] = (uint8_t)words[w % (sizeof words - 1)];
  if (body >= 2) q[body - 2] = '"', q[body - 1] = '}';
}

static uint8_t *json_check;  // scratch for verifying JSON payloads

static void fill_payload(uint8_t *p, size_t len, uint64_t seq) {
  if (json_payload) fill_json(p, len, seq);
  else fill_pattern(p, len, seq);
}

static int payload_ok(const uint8_t *p, size_t len, uint64_t seq) {
  if (!json_payload) return pattern_ok(p, len, seq);
  fill_json(json_check, len, seq);
  return memcmp(p + MSG_HDR, json_check + MSG_HDR, len - MSG_HDR) == 0;
}

// ---------------------------------------------------------------- permessage-deflate (RFC 7692)

static uint8_t *zin_buf, *zout_buf;  // plain message being compressed; inflated message
static size_t zout_cap, zdef_cap;
static uint8_t *zdef_buf;            // compressed message

static z_stream *zstream(int deflating, int bits) {
  z_stream *z = calloc(1, sizeof *z);
  if (!z) die_json("out of memory");
  // raw deflate (negative window bits); zlib cannot make 256-byte windows, 9 is its smallest
  int wb = -(bits < 9 ? 9 : bits);
  int r = deflating ? zl.deflateInit2_(z, 1, Z_DEFLATED, wb, 8, 0, zl.zlibVersion(),
                                       (int)sizeof *z)
                    : zl.inflateInit2_(z, -15, zl.zlibVersion(), (int)sizeof *z);
  if (r != Z_OK) die_json("zlib init failed");
  return z;
}

// Compresses one message; returns the length without the 00 00 ff ff tail (RFC 7692 7.2.1).
static size_t deflate_msg(Conn *c, const uint8_t *in, size_t len) {
  if (!c->zd) c->zd = zstream(1, c->cli_bits ? c->cli_bits : 15);
  size_t need = len + len / 100 + 64;
  if (zdef_cap < need) {
    free(zdef_buf);
    zdef_cap = need;
    zdef_buf = malloc(zdef_cap);
    if (!zdef_buf) die_json("out of memory");
  }
  z_stream *z = c->zd;
  z->next_in = in;
  z->avail_in = (unsigned)len;
  z->next_out = zdef_buf;
  z->avail_out = (unsigned)zdef_cap;
  int r = zl.deflate(z, Z_SYNC_FLUSH);
  if ((r != Z_OK && r != Z_BUF_ERROR) || z->avail_in || !z->avail_out) die_json("deflate failed");
  size_t n = zdef_cap - z->avail_out;
  if (n >= 4 && !memcmp(zdef_buf + n - 4, "\0\0\xff\xff", 4)) n -= 4;
  if (c->cli_no_ctx) zl.deflateReset(z);
  return n;
}

// Inflates one compressed message into zout_buf; returns its length or -1.
static long inflate_msg(Conn *c, const uint8_t *in, size_t len) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  if (!c->zi) c->zi = zstream(0, 15);
  z_stream *z = c->zi;
  z->next_out = zout_buf;
  z->avail_out = (unsigned)zout_cap;
  for (int part = 0; part < 2; part++) {
    z->next_in = part ? tail : in;
    z->avail_in = part ? 4 : (unsigned)len;
    int r = zl.inflate(z, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) return -1;
    if (z->avail_in) return -1;  // output full: larger than any message we sent
  }
  long n = (long)(zout_cap - z->avail_out);
  if (c->srv_no_ctx) zl.inflateReset(z);
  return n;
}

static void queue_message(Conn *c) {  // binary message: seq, send timestamp, fill pattern
  if (opt.messages > 0 && c->next_send >= (uint64_t)opt.messages) return;
  uint8_t mask[4];
  size_t len = (size_t)opt.size;
  uint64_t seq = c->next_send++;
  if (c->pmd) {  // build the message apart, then frame the compressed bytes with RSV1
    put64(zin_buf, seq);
    put64(zin_buf + 8, now_ns());
    fill_payload(zin_buf, len, seq);
    size_t clen = deflate_msg(c, zin_buf, len);
    uint8_t *p = frame_begin(c, 0x40 | 0x2, clen, mask);
    memcpy(p, zdef_buf, clen);
    mask_bytes(p, clen, mask);
  } else {
    uint8_t *p = frame_begin(c, 0x2, len, mask);
    put64(p, seq);
    put64(p + 8, now_ns());
    fill_payload(p, len, seq);
    mask_bytes(p, len, mask);
  }
  c->inflight++;
  G.sent++;
}

static int sending(void) { return phase == P_WARMUP || phase == P_MEASURE; }

static void on_message(Conn *c, const uint8_t *p, size_t len, uint64_t now) {
  if (c->state != S_OPEN || c->role == R_STALL) return;  // late data after we started closing
  if (len != (size_t)opt.size || len < MSG_HDR) {
    G.bad_payload++;
    return;
  }
  uint64_t seq = get64(p), ts = get64(p + 8);
  if (!payload_ok(p, len, seq)) G.bad_payload++;
  if (!c->started) {  // broadcast: a subscriber may join the topic slightly after its 101
    c->started = 1;
    if (seq != c->expect) G.late_start++;
    c->expect = seq;
  }
  if (seq > c->expect) G.losses += seq - c->expect;
  if (seq < c->expect) G.out_of_order++;
  else c->expect = seq + 1;
  c->received++;
  G.received++;
  int measuring = phase == P_MEASURE;
  if (c->role == R_SUB || c->role == R_ECHO) {
    if (measuring) hist_add(now - ts);
  }
  if (c->role == R_ECHO || c->role == R_PUB) {  // completion of one of our own messages
    if (c->inflight) c->inflight--;
    G.completed++;
    if (sending()) queue_message(c);
  }
}

// Parses complete server frames in buf[0..len) in place; returns bytes consumed.
static size_t parse_frames(Conn *c, uint8_t *buf, size_t len, uint64_t now) {
  size_t pos = 0;
  while (len - pos >= 2 && c->fd >= 0) {
    uint8_t b0 = buf[pos], b1 = buf[pos + 1];
    uint64_t plen = b1 & 0x7f;
    size_t hl = 2;
    if (b1 & 0x80) {
      protocol_error(c, "masked server frame");
      return len;
    }
    if (plen == 126) {
      if (len - pos < 4) break;
      plen = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3];
      hl = 4;
    } else if (plen == 127) {
      if (len - pos < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | buf[pos + 2 + i];
      hl = 10;
    }
    if (plen > max_frame) {
      protocol_error(c, "frame too large");
      return len;
    }
    if (len - pos < hl + plen) break;
    uint8_t *p = buf + pos + hl;
    int op = b0 & 0x0f;
    if ((b0 & 0x40) && !(c->pmd && (op == 1 || op == 2))) {
      protocol_error(c, "RSV1 set without permessage-deflate on a data frame");
      return len;
    }
    if ((op == 1 || op == 2) && c->msg_op) {
      protocol_error(c, "new message inside a fragmented one");
      return len;
    }
    if (op == 0 || ((op == 1 || op == 2) && !(b0 & 0x80))) {  // a fragment: reassemble
      if (op == 0 && !c->msg_op) {
        protocol_error(c, "continuation frame without a message");
        return len;
      }
      if (op != 0) {
        c->msg_op = op;
        c->msg_rsv1 = (b0 & 0x40) != 0;
        c->msg_len = 0;
      }
      if (c->msg_len + plen > max_frame) {
        protocol_error(c, "message too large");
        return len;
      }
      reserve(&c->msg, &c->msg_cap, c->msg_len + plen);
      memcpy(c->msg + c->msg_len, p, plen);
      c->msg_len += plen;
      pos += hl + plen;
      if (!(b0 & 0x80)) continue;
      c->msg_op = 0;
      if (c->msg_rsv1) {
        long n = inflate_msg(c, c->msg, c->msg_len);
        if (n < 0) {
          protocol_error(c, "inflate failed or message too large");
          return len;
        }
        on_message(c, zout_buf, (size_t)n, now);
      } else {
        on_message(c, c->msg, c->msg_len, now);
      }
      continue;
    }
    if ((op == 1 || op == 2) && (b0 & 0x80) && (b0 & 0x40)) {
      long n = inflate_msg(c, p, plen);
      if (n < 0) {
        protocol_error(c, "inflate failed or message too large");
        return len;
      }
      on_message(c, zout_buf, (size_t)n, now);
    } else if ((op == 1 || op == 2) && (b0 & 0x80)) {
      on_message(c, p, plen, now);
    } else if (op == 9) {  // ping -> pong with the same payload
      G.pings++;
      queue_control(c, 0xA, p, plen);
    } else if (op == 8) {  // close
      if (c->state == S_OPEN) {
        G.unexpected_closes++;
        queue_control(c, 0x8, p, plen < 2 ? plen : 2);
        flush_out(c);
        close_fd(c);
        set_state(c, S_DONE);
      } else {
        G.clean_closes++;
        close_fd(c);
        set_state(c, S_DONE);
      }
      return len;
    } else if (op != 0xA) {
      protocol_error(c, "fragmented or unknown frame");
      return len;
    }
    pos += hl + plen;
  }
  return pos;
}

static const char *header_value(const char *head, const char *name) {
  size_t n = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, name, n) == 0) {
      const char *v = line + 2 + n;
      while (*v == ' ' || *v == '\t') v++;
      return v;
    }
  }
  return NULL;
}

static size_t handle_handshake(Conn *c, uint8_t *buf, size_t len, uint64_t now) {
  uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) {
    if (len >= HDR_MAX) protocol_error(c, "handshake response too large");
    return 0;
  }
  *end = 0;  // headers become a C string (the byte is consumed anyway)
  const char *h = (const char *)buf;
  if (strncmp(h, "HTTP/1.1 101", 12) != 0) {
    protocol_error(c, "status is not 101");
    return len;
  }
  const char *acc = header_value(h, "sec-websocket-accept:");
  if (!acc || strncmp(acc, c->accept, 28) != 0) {
    protocol_error(c, "bad Sec-WebSocket-Accept");
    return len;
  }
  if (opt.deflate) {
    const char *ext = header_value(h, "sec-websocket-extensions:");
    char line[512] = "";
    if (ext) snprintf(line, sizeof line, "%.*s", (int)strcspn(ext, "\r\n"), ext);
    if (strstr(line, "permessage-deflate")) {
      c->pmd = 1;
      c->srv_no_ctx = strstr(line, "server_no_context_takeover") != NULL;
      c->cli_no_ctx = strstr(line, "client_no_context_takeover") != NULL;
      const char *b = strstr(line, "client_max_window_bits=");
      c->cli_bits = b ? atoi(b + 23) : 15;
      b = strstr(line, "server_max_window_bits=");
      c->srv_bits = b ? atoi(b + 23) : 15;
      G.deflate_accepted++;
    } else {
      G.deflate_declined++;
    }
  }
  set_state(c, S_OPEN);
  c->opened = 1;
  size_t hdr = (size_t)(end - buf) + 4;
  return hdr + parse_frames(c, buf + hdr, len - hdr, now);
}

// Reads into the shared buffer and parses in place; only a partial frame moves into the
// connection's own buffer, which then takes further reads directly (a 16 MiB frame is not
// copied back and forth on every read).
static void do_read(Conn *c) {
  for (;;) {
    int own = c->in_len > 0;
    uint8_t *buf = rbuf;
    size_t have = 0, room = RBUF_SIZE;
    if (own) {
      reserve(&c->in, &c->in_cap, c->in_len + READ_STEP);
      buf = c->in;
      have = c->in_len;
      room = c->in_cap - have;
    }
    ssize_t n = io_recv(c, buf + have, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      if (n == 0) errno = 0;
      conn_lost(c);
      return;
    }
    have += (size_t)n;
    uint64_t now = now_ns();
    size_t used = c->state == S_HANDSHAKE ? handle_handshake(c, buf, have, now)
                                          : parse_frames(c, buf, have, now);
    if (c->fd < 0) return;
    if (own) {
      if (used) memmove(c->in, c->in + used, have - used);
      c->in_len = have - used;
    } else if (used < have) {
      reserve(&c->in, &c->in_cap, have - used);
      memcpy(c->in, rbuf + used, have - used);
      c->in_len = have - used;
    }
    if (c->role == R_STALL && c->state == S_OPEN) return;  // reads nothing after its 101
    // A short read means the socket was drained; with EPOLLET new data raises a new event.
    // (TLS: SSL_read returns one record at a time, so read until it wants more.)
    if (!c->ssl && (size_t)n < room) break;
  }
  if (flush_out(c) < 0) conn_lost(c);
}

static void start_connect(Conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    G.fatal = errno == EMFILE || errno == ENFILE ? "out of file descriptors" : "socket() failed";
    set_state(c, S_FAILED);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nsrc > 1) {  // spread over source addresses 127.0.0.1, .2, ... (see main)
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(ntohl(addr.sin_addr.s_addr) + (uint32_t)((c - conns) % nsrc));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) G.fatal = "bind(source address) failed";
  }
  c->fd = fd;
  c->deadline = now_s() + ATTEMPT_TIMEOUT;
  set_state(c, S_CONNECTING);
  struct sockaddr_in dst = addr;  // --ports: round-robin over the server processes
  if (nports > 1) dst.sin_port = htons((uint16_t)ports[(c - conns) % nports]);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.u32 = (uint32_t)(c - conns)};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die_json("epoll_ctl failed");
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)
    retry(c, errno);  // ECONNREFUSED, EAGAIN (no local port), ...
}

static void send_handshake(Conn *c) {
  uint8_t raw[16];
  char key[25];
  if (getrandom(raw, sizeof raw, 0) != sizeof raw) die_json("getrandom failed");
  base64(raw, sizeof raw, key);
  ws_accept(key, c->accept);
  reserve(&c->out, &c->out_cap, 512);
  c->out_len = (size_t)snprintf((char *)c->out, c->out_cap,
                                "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n%s\r\n",
                                opt.host, opt.port, key,
                                opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                              "client_max_window_bits\r\n" : "");
  c->out_off = 0;
  set_state(c, S_HANDSHAKE);
  if (flush_out(c) < 0) retry(c, errno);
}

static void tls_step(Conn *c) {
  ossl.ERR_clear_error();
  int r = ossl.SSL_connect(c->ssl);
  if (r == 1) {
    send_handshake(c);
    return;
  }
  int e = ossl.SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  // A TLS failure is not a transient connect error: fail the connection, say why once.
  if (G.tls_failures++ < 3) {
    char msg[256];
    ossl.ERR_error_string_n(ossl.ERR_get_error(), msg, sizeof msg);
    fprintf(stderr, "loadgen: TLS handshake failed on conn %d: %s (errno %d)\n",
            (int)(c - conns), msg, errno);
  }
  close_fd(c);
  set_state(c, S_FAILED);
}

static void on_event(Conn *c, uint32_t ev) {
  if (c->fd < 0) return;
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      retry(c, err);
    } else if ((ev & EPOLLOUT) && opt.tls) {
      c->ssl = ossl.SSL_new(ssl_ctx);
      if (!c->ssl || ossl.SSL_set_fd(c->ssl, c->fd) != 1) die_json("SSL_new failed");
      set_state(c, S_TLS);
      tls_step(c);
    } else if (ev & EPOLLOUT) {
      send_handshake(c);
    }
    return;
  }
  if (c->state == S_TLS) {
    tls_step(c);
    return;
  }
  if (c->role == R_STALL && c->state == S_OPEN) return;  // never reads
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) do_read(c);
  if (c->fd >= 0 && (ev & EPOLLOUT) && c->out_off < c->out_len && flush_out(c) < 0) conn_lost(c);
}

static void poll_once(int timeout_ms) {
  static struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
  for (int i = 0; i < n; i++) on_event(&conns[evs[i].data.u32], evs[i].events);
  sample_peak(now_s());
}

// Services sockets until `until` (seconds) or until done() returns true.
static void service(double until, int (*done)(void)) {
  for (;;) {
    if (done && done()) return;
    double left = until - now_s();
    if (left <= 0) return;
    poll_once(left > 0.05 ? 50 : (int)(left * 1000) + 1);
  }
}

static int all_connected(void) { return G.active == 0 && q_head == q_tail; }

static void connect_all(void) {
  double next_scan = 0;
  connect_deadline = now_s() + opt.connect_timeout;
  for (int i = 0; i < nconns; i++) q_push(i);
  while (!all_connected() && !G.fatal) {
    double now = now_s();
    if (now > connect_deadline + ATTEMPT_TIMEOUT) break;
    // ramp: at most opt.ramp connections in connect/handshake at once
    while (G.active < opt.ramp && q_head != q_tail) {
      Conn *c = &conns[queue[q_head % (nconns + 1)]];
      if (c->state == S_WAIT && c->retry_at > now) break;
      q_head++;
      start_connect(c);
      if (G.fatal) break;
    }
    poll_once(5);
    if (now >= next_scan) {  // per-attempt timeouts
      next_scan = now + 0.1;
      for (int i = 0; i < nconns; i++) {
        Conn *c = &conns[i];
        if (is_connecting(c->state) && now > c->deadline)
          retry(c, ETIMEDOUT);
      }
    }
  }
}

static int drained(void) {
  if (mode == M_ECHO) {
    for (int i = 0; i < nconns; i++)
      if (conns[i].state == S_OPEN && conns[i].inflight) return 0;
    return 1;
  }
  uint64_t last = conns[0].next_send;  // broadcast: everyone has seen every published seq
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == S_OPEN && conns[i].role != R_STALL && conns[i].expect < last) return 0;
  return 1;
}

// --messages: every sender has sent its N messages and received them back.
static int senders_done(void) {
  if (opt.messages <= 0) return 0;
  for (int i = 0; i < nconns; i++) {
    Conn *c = &conns[i];
    if (c->state != S_OPEN || (c->role != R_ECHO && c->role != R_PUB)) continue;
    if (c->next_send < (uint64_t)opt.messages || c->inflight) return 0;
  }
  return 1;
}

static int all_closed(void) { return G.closing == 0; }

static void close_all(void) {
  phase = P_CLOSE;
  static const uint8_t normal[2] = {0x03, 0xE8};  // status 1000
  // Stalled readers: did the server give up on them? A server's close waits behind the data
  // we never read, so read it now (bounded: 2 s in all) and look for the end of the stream.
  double until = now_s() + 2.0;
  for (int i = 0; i < nconns; i++) {
    Conn *c = &conns[i];
    if (c->role != R_STALL || c->fd < 0) continue;
    for (;;) {
      ssize_t n = io_recv(c, rbuf, RBUF_SIZE);
      if (n > 0) {
        G.stalled_backlog += (uint64_t)n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        G.stalled_closed++;
        break;
      }
      if (now_s() > until) break;
      struct pollfd p = {.fd = c->fd, .events = POLLIN};
      poll(&p, 1, 20);
    }
    close_fd(c);
    set_state(c, S_DONE);
  }
  for (int i = 0; i < nconns; i++) {
    Conn *c = &conns[i];
    if (c->state != S_OPEN) continue;
    queue_control(c, 0x8, normal, 2);
    set_state(c, S_CLOSING);
    if (flush_out(c) < 0) conn_lost(c);
  }
  service(now_s() + 3.0, all_closed);
  for (int i = 0; i < nconns; i++) {
    if (conns[i].fd >= 0) close_fd(&conns[i]);
  }
}

// ---------------------------------------------------------------- output

static void json_sample(const char *name, const Sample *s, int last) {
  printf("\"%s\":{\"server_cpu_s\":%.3f,\"aux_cpu_s\":%.3f,\"server_rss_kb\":%ld,"
         "\"slab_kb\":%ld,\"sunreclaim_kb\":%ld,\"tcp_mem_pages\":%ld,\"sockets_used\":%ld}%s",
         name, s->server_cpu, s->aux_cpu, s->server_rss_kb, s->slab_kb, s->sunreclaim_kb,
         s->tcp_mem_pages, s->sockets_used, last ? "" : ",");
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "{\"ok\":false,\"error\":\"loadgen hard timeout\"}\n";
  if (write(1, msg, sizeof msg - 1) < 0) _exit(4);
  _exit(3);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode echo|broadcast|idle [--host 127.0.0.1] [--port 8080]\n"
          "  [--conns N] [--size BYTES] [--inflight K] [--warmup SEC] [--duration SEC]\n"
          "  [--hold SEC] [--settle SEC] [--ramp N] [--connect-timeout SEC]\n"
          "  [--pid PID[,PID..]] [--aux-pid PID] [--ports P,Q..] [--tls] [--ca FILE] [--deflate]\n"
          "  [--payload bin|json] [--messages N] [--stalled K]\n"
          "  loadgen --selftest\n"
          "broadcast: --conns = subscribers (plus 1 publisher, plus --stalled);"
          " --inflight default 32.\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--selftest") == 0) {
      char out[29];
      ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);  // RFC 6455 section 1.3 example
      int ok = strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0;
      printf("{\"ok\":%s,\"selftest\":\"%s\"}\n", ok ? "true" : "false", out);
      return ok ? 0 : 1;
    }
    if (!strcmp(a, "--tls")) {
      opt.tls = 1;
      continue;
    }
    if (!strcmp(a, "--deflate")) {
      opt.deflate = 1;
      continue;
    }
    if (!v) usage();
    i++;
    if (!strcmp(a, "--mode")) opt.mode = v;
    else if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--port")) opt.port = atoi(v);
    else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
    else if (!strcmp(a, "--size")) opt.size = atoi(v);
    else if (!strcmp(a, "--inflight")) opt.inflight = atoi(v);
    else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
    else if (!strcmp(a, "--duration")) opt.duration = atof(v);
    else if (!strcmp(a, "--hold")) opt.hold = atof(v);
    else if (!strcmp(a, "--settle")) opt.settle = atof(v);
    else if (!strcmp(a, "--ramp")) opt.ramp = atoi(v);
    else if (!strcmp(a, "--connect-timeout")) opt.connect_timeout = atof(v);
    else if (!strcmp(a, "--pid") || !strcmp(a, "--ports")) {
      int *list = a[2] == 'p' && a[3] == 'i' ? pids : ports, *count = list == pids ? &npids : &nports;
      for (const char *p = v; *p && *count < MAX_PIDS; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
        list[(*count)++] = atoi(p);
    } else if (!strcmp(a, "--aux-pid")) aux_pid = atoi(v);
    else if (!strcmp(a, "--ca")) opt.ca = v;
    else if (!strcmp(a, "--payload")) opt.payload = v;
    else if (!strcmp(a, "--messages")) opt.messages = atol(v);
    else if (!strcmp(a, "--stalled")) opt.stalled = atoi(v);
    else usage();
  }
  if (!strcmp(opt.mode, "echo")) mode = M_ECHO;
  else if (!strcmp(opt.mode, "broadcast")) mode = M_BROADCAST;
  else if (!strcmp(opt.mode, "idle")) mode = M_IDLE;
  else usage();
  if (opt.inflight <= 0) opt.inflight = mode == M_BROADCAST ? 32 : 1;
  if (opt.settle < 0) opt.settle = mode == M_ECHO ? 0.2 : mode == M_BROADCAST ? 0.5 : 1.0;
  if (opt.conns <= 0 || opt.size < MSG_HDR || opt.size > (int)MAX_SIZE || opt.ramp <= 0)
    die_json("bad --conns/--size/--ramp (size must be 16 B..64 MiB)");
  if (strcmp(opt.payload, "bin") && strcmp(opt.payload, "json")) usage();
  json_payload = !strcmp(opt.payload, "json");
  if (opt.stalled < 0 || (opt.stalled && mode != M_BROADCAST)) die_json("--stalled: broadcast only");
  if (nports == 0) ports[nports++] = opt.port;
  opt.port = ports[0];
  max_frame = (size_t)opt.size + 1024 > RBUF_SIZE / 2 ? (size_t)opt.size + 1024 : RBUF_SIZE / 2;
  json_check = malloc((size_t)opt.size);
  if (!json_check) die_json("out of memory");
  if (opt.tls) ssl_setup();
  if (opt.deflate) {
    zlib_setup();
    zout_cap = (size_t)opt.size + 1024;
    zout_buf = malloc(zout_cap);
    zin_buf = malloc((size_t)opt.size);
    if (!zout_buf || !zin_buf) die_json("out of memory");
  }

  // broadcast: conns[0] is the publisher, the last --stalled connections never read
  nconns = opt.conns + (mode == M_BROADCAST) + opt.stalled;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if ((rlim_t)nconns + 16 > rl.rlim_cur) die_json("open-files limit too low for --conns");

  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, on_alarm);  // hard timeout: nothing can make us run forever
  alarm((unsigned)(opt.connect_timeout + 2 * ATTEMPT_TIMEOUT + opt.settle + opt.warmup +
                   opt.duration + opt.hold + opt.drain_timeout + 30));
  if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || !rng_state) rng_state = 1;

  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) die_json("bad --host (IPv4 only)");
  // Linux scans the ephemeral range (32768-60999 here) for a free port on every connect(), and
  // that gets very slow once about half of it is in use towards one destination (> ~14k
  // connections: connect time grows from 0.8 s to 10 s). On loopback, spreading connections
  // over the source addresses 127.0.0.1, .2, ... (about 4,000 each) keeps connect() cheap.
  if ((ntohl(addr.sin_addr.s_addr) >> 24) == 127) nsrc = opt.conns / 4000 + 1;
  conns = calloc((size_t)nconns, sizeof *conns);
  queue = calloc((size_t)nconns + 1, sizeof *queue);
  rbuf = malloc(RBUF_SIZE);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !queue || !rbuf || ep < 0) die_json("setup failed");
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    conns[i].role = mode == M_ECHO ? R_ECHO : i == 0 ? R_PUB : i >= nconns - opt.stalled ? R_STALL
                                                                                   : R_SUB;
  }

  double t_start = now_s(), cpu_start = cpu_s();
  reset_hwm();  // peak RSS from here on
  Sample s_before = take_sample();
  peak_sampled_kb = s_before.server_rss_kb;
  connect_all();
  for (int i = 0; i < nconns; i++) {  // connect timeout: whatever is not open now has failed
    Conn *c = &conns[i];
    if (c->state == S_NEW || c->state == S_WAIT || is_connecting(c->state)) {
      close_fd(c);
      set_state(c, S_FAILED);
    }
  }
  double t_connected = now_s();
  long connected = G.open;
  fprintf(stderr, "loadgen: connected %ld/%d in %.3f s (%ld retries, %ld failed)\n", G.open,
          nconns, t_connected - t_start, G.retries, G.failed);
  phase = P_SETTLE;
  service(now_s() + opt.settle, NULL);
  Sample s_after = take_sample(), s_w0 = s_after, s_w1 = s_after, s_end = s_after;
  uint64_t rec0 = 0, rec1 = 0, comp0 = 0, comp1 = 0;

  if (mode == M_IDLE) {
    fprintf(stderr, "loadgen: phase hold %.1f s\n", opt.hold);
    service(now_s() + opt.hold, NULL);
  } else if (G.open > 0 && (mode == M_ECHO || conns[0].state == S_OPEN)) {
    phase = P_WARMUP;
    for (int i = 0; i < nconns; i++) {
      Conn *c = &conns[i];
      if (c->state != S_OPEN || c->role == R_SUB || c->role == R_STALL) continue;
      for (int k = 0; k < opt.inflight; k++) queue_message(c);
      if (flush_out(c) < 0) conn_lost(c);
    }
    service(now_s() + opt.warmup, NULL);
    s_w0 = take_sample();
    rec0 = G.received, comp0 = G.completed;
    phase = P_MEASURE;
    fprintf(stderr, "loadgen: phase measure %.1f s\n", opt.duration);
    service(s_w0.t + opt.duration, senders_done);
    s_w1 = take_sample();
    rec1 = G.received, comp1 = G.completed;
    phase = P_DRAIN;
    service(now_s() + opt.drain_timeout, drained);
    // whatever is still missing now is lost
    for (int i = 0; i < nconns; i++) {
      Conn *c = &conns[i];
      if (!c->opened || c->role == R_STALL) continue;  // never connected: failed_conns
      if (mode == M_ECHO) G.losses += c->inflight;
      else if (c->expect < conns[0].next_send) G.losses += conns[0].next_send - c->expect;
    }
  } else {
    G.fatal = G.fatal ? G.fatal : "no connection (or no publisher) could be opened";
  }
  long never = 0;
  for (int i = 0; i < nconns && mode == M_BROADCAST; i++)
    never += conns[i].opened && !conns[i].started && conns[i].role != R_STALL;
  s_end = take_sample();
  next_peak_sample = 0;
  sample_peak(now_s());
  long hwm_kb = servers_kb("VmHWM:");
  close_all();

  double win = s_w1.t - s_w0.t, wcpu = s_w1.self_cpu - s_w0.self_cpu;
  double scpu = s_w1.server_cpu >= 0 && s_w0.server_cpu >= 0 ? s_w1.server_cpu - s_w0.server_cpu
                                                              : -1;
  int ok = !G.fatal && G.failed == 0;
  printf("{\"ok\":%s,\"error\":\"%s\",\"mode\":\"%s\",\"port\":%d,\"conns\":%d,"
         "\"connected\":%ld,\"failed_conns\":%ld,\"connect_retries\":%ld,\"last_errno\":%ld,"
         "\"connect_time_s\":%.4f,\"size\":%d,\"inflight\":%d,\"warmup_s\":%.3f,"
         "\"window_s\":%.4f,\"msgs\":%llu,\"msgs_per_s\":%.1f,\"deliveries\":%llu,"
         "\"deliveries_per_s\":%.1f,\"sent\":%llu,\"losses\":%llu,\"out_of_order\":%llu,"
         "\"bad_payload\":%ld,\"late_start\":%ld,\"never_received\":%ld,"
         "\"protocol_errors\":%ld,\"unexpected_closes\":%ld,\"clean_closes\":%ld,\"pings\":%ld,"
         "\"lat_samples\":%llu,\"lat_p50_us\":%.1f,\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,"
         "\"lat_max_us\":%.1f,\"cpu_s\":%.3f,\"wall_s\":%.3f,\"window_cpu_s\":%.3f,"
         "\"window_cpu_frac\":%.3f,\"server_pid\":%d,\"server_window_cpu_s\":%.3f,",
         ok ? "true" : "false", G.fatal ? G.fatal : "", opt.mode, opt.port,
         nconns, connected, G.failed, G.retries, G.last_errno, t_connected - t_start, opt.size,
         opt.inflight, opt.warmup, win, (unsigned long long)(comp1 - comp0),
         win > 0 ? (double)(comp1 - comp0) / win : 0, (unsigned long long)(rec1 - rec0),
         win > 0 ? (double)(rec1 - rec0) / win : 0, (unsigned long long)G.sent,
         (unsigned long long)G.losses, (unsigned long long)G.out_of_order, G.bad_payload,
         G.late_start, never, G.protocol_errors, G.unexpected_closes, G.clean_closes, G.pings,
         (unsigned long long)hist_n, hist_pct_us(0.5), hist_pct_us(0.9), hist_pct_us(0.99),
         hist_n ? (double)hist_max / 1e3 : -1, cpu_s() - cpu_start, now_s() - t_start, wcpu,
         win > 0 ? wcpu / win : 0, npids ? pids[0] : -1, scpu);
  printf("\"tls\":%d,\"deflate\":%d,\"deflate_accepted\":%ld,\"deflate_declined\":%ld,"
         "\"tls_failures\":%ld,\"payload\":\"%s\",\"messages_per_sender\":%ld,\"stalled\":%d,"
         "\"stalled_closed\":%ld,\"stalled_backlog\":%llu,\"npids\":%d,\"hwm_reset_ok\":%d,\"server_hwm_kb\":%ld,"
         "\"peak_rss_sampled_kb\":%ld,\"aux_window_cpu_s\":%.3f,",
         opt.tls, opt.deflate, G.deflate_accepted, G.deflate_declined, G.tls_failures, opt.payload,
         opt.messages, opt.stalled, G.stalled_closed, (unsigned long long)G.stalled_backlog, npids, hwm_reset_ok, hwm_kb,
         peak_sampled_kb,
         s_w1.aux_cpu >= 0 && s_w0.aux_cpu >= 0 ? s_w1.aux_cpu - s_w0.aux_cpu : -1.0);
  printf("\"window_core_busy\":[");
  for (int i = 0; i < ncpus; i++) {
    unsigned long long dt = s_w1.cpu_total[i] - s_w0.cpu_total[i];
    unsigned long long di = s_w1.cpu_idle[i] - s_w0.cpu_idle[i];
    printf("%s%.3f", i ? "," : "", dt ? 1.0 - (double)di / (double)dt : 0.0);
  }
  printf("],\"window_core_irq\":[");
  for (int i = 0; i < ncpus; i++) {
    unsigned long long dt = s_w1.cpu_total[i] - s_w0.cpu_total[i];
    unsigned long long di = s_w1.cpu_irq[i] - s_w0.cpu_irq[i];
    printf("%s%.3f", i ? "," : "", dt ? (double)di / (double)dt : 0.0);
  }
  printf("],");
  json_sample("before", &s_before, 0);
  json_sample("after_connect", &s_after, 0);
  json_sample("window_start", &s_w0, 0);
  json_sample("window_end", &s_w1, 0);
  json_sample("end", &s_end, 1);
  printf("}\n");
  return ok ? 0 : 1;
}
