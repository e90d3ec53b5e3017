// c_epoll.c - the physical-limit reference: a minimal corked epoll WebSocket server.
//
// Usage: c_epoll --port P --mode echo|broadcast [--host 127.0.0.1]
// Prints a line containing `listening` when ready. Same contract as bench/server.ts: echo sends
// every message back; broadcast sends every message from any client to every open client (the
// sender included). Binary stays binary, text stays text.
//
// What it does and nothing more: one thread, level-triggered epoll, non-blocking sockets; the
// RFC 6455 handshake (SHA-1 + base64 written here, no library); masked client frames
// (text/binary/continuation/ping/pong/close, fragmented messages reassembled); unmasked server
// frames. Writes are corked: during one epoll_wait batch every frame for a connection is
// queued, and each connection is written once at the end of the batch (one send() per
// connection per batch). A broadcast is encoded once, into the batch's shared buffer: a
// connection with nothing else pending just remembers where its part of that buffer starts and
// is written straight from it (no copy per connection: at 20,000 connections the copies cost
// more than the sends); a connection with its own pending bytes (an EAGAIN tail, a pong, its
// 101) gets the frame appended to its own buffer. EAGAIN keeps the unsent tail in the
// connection's buffer and turns on EPOLLOUT until it is gone. A connection with more than
// 16 MiB unsent when more is queued is closed (fdws's default backpressure limit and policy).
//
// Not a general server: no permessage-deflate, no TLS, no HTTP beyond the upgrade, no UTF-8
// validation of text (the load generator sends binary), no limits beyond the backpressure one
// and a 64 MiB message cap.
//
// Build: gcc -O2 -Wall -Wextra -o c_epoll c_epoll.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define READ_CHUNK (256 * 1024)
#define HDR_MAX 8192
#define MAX_MESSAGE (64u * 1024 * 1024)
#define BACKPRESSURE_LIMIT (16u * 1024 * 1024)

// ---------------------------------------------------------------- SHA-1 + base64

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  uint64_t bits = (uint64_t)len * 8;
  size_t total = ((len + 8) / 64 + 1) * 64;
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

// ---------------------------------------------------------------- buffers

typedef struct {
  uint8_t *p;
  size_t len, off, cap;  // bytes [off, len) are live
} Buf;

static void buf_reserve(Buf *b, size_t extra) {
  if (b->off && b->off == b->len) b->off = b->len = 0;
  if (b->len + extra <= b->cap) return;
  if (b->off && b->off >= b->len - b->off) {  // compact when that moves less than it frees
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + extra <= b->cap) return;
  }
  size_t c = b->cap ? b->cap : 512;
  while (c < b->len + extra) c *= 2;
  uint8_t *p = realloc(b->p, c);
  if (!p) {
    fprintf(stderr, "c_epoll: out of memory\n");
    exit(1);
  }
  b->p = p;
  b->cap = c;
}

static void buf_free(Buf *b) {
  free(b->p);
  *b = (Buf){0};
}

// ---------------------------------------------------------------- connections

typedef struct {
  int fd, open, closing, dirty, want_out, list_idx;
  int framed;        // has been sent a WebSocket frame: keeps its output buffer
  int bref;          // its output of this batch is batch[bstart, batch.len): nothing private
  int copied;        // on copy_list: gets this batch's broadcasts appended to its own buffer
  size_t bstart;
  Buf in, out, msg;  // unparsed input, unsent output, fragments of a message
  int msg_op;        // opcode of the message being reassembled (0: none)
} Conn;

static Conn **by_fd;
static int by_fd_cap, ep, broadcast_mode;
static int *open_list, n_open;   // open WebSocket connections (broadcast targets)
static Conn **dirty_list;        // connections with output queued in this batch
static int n_dirty;
static Buf batch;                // broadcast frames of this batch, each encoded once
static Conn **copy_list;         // open connections that get broadcasts copied in this batch
static int n_copy;

static void add_copy(Conn *c) {
  if (c->copied || !batch.len) return;  // before the batch's first broadcast: decided then
  c->copied = 1;
  copy_list[n_copy++] = c;
}

static void mark_dirty(Conn *c) {
  if (!c->dirty) {
    c->dirty = 1;
    dirty_list[n_dirty++] = c;
  }
}

// The shared bytes a connection references become its own (before anything private is queued).
static void materialize(Conn *c) {
  if (!c->bref) return;
  c->bref = 0;
  add_copy(c);  // later broadcasts of this batch must follow what it now holds
  size_t n = batch.len - c->bstart;
  buf_reserve(&c->out, n);
  memcpy(c->out.p + c->out.len, batch.p + c->bstart, n);
  c->out.len += n;
}

static void conn_close(Conn *c) {
  if (c->open) {  // swap-remove from the broadcast list
    int last = open_list[--n_open];
    open_list[c->list_idx] = last;
    by_fd[last]->list_idx = c->list_idx;
  }
  by_fd[c->fd] = NULL;
  close(c->fd);
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->msg);
  c->fd = -1;  // still referenced from dirty_list in this batch: freed after the flush
  c->open = 0;
  if (!c->dirty) free(c);
}

static size_t frame_header(uint8_t *h, int op, size_t len) {
  h[0] = (uint8_t)(0x80 | op);
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len < 65536) {
    h[1] = 126, h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

// Appends bytes to the connection's output; the write happens once at the end of the batch.
static void queue_bytes(Conn *c, const uint8_t *p, size_t n) {
  if (c->fd < 0 || c->closing > 1) return;
  mark_dirty(c);
  materialize(c);
  // slow consumer: more than the limit already unsent (one larger message still goes out)
  if (c->out.len - c->out.off > BACKPRESSURE_LIMIT) {
    c->closing = 2;
    return;
  }
  buf_reserve(&c->out, n);
  memcpy(c->out.p + c->out.len, p, n);
  c->out.len += n;
}

static void queue_frame(Conn *c, int op, const uint8_t *p, size_t len) {
  uint8_t h[10];
  size_t hl = frame_header(h, op, len);
  if (c->fd < 0 || c->closing > 1) return;
  buf_reserve(&c->out, hl + len);  // header and payload contiguous: one append
  c->framed = 1;
  queue_bytes(c, h, hl);
  queue_bytes(c, p, len);
}

static void on_message(Conn *c, int op, const uint8_t *p, size_t len) {
  if (!broadcast_mode) {
    queue_frame(c, op, p, len);
    return;
  }
  // encode once into the batch's shared buffer
  size_t start = batch.len;
  buf_reserve(&batch, len + 10);
  size_t hl = frame_header(batch.p + start, op, len);
  memcpy(batch.p + start + hl, p, len);
  batch.len += hl + len;
  if (start == 0) {
    // the batch's first broadcast: every open connection either references the shared
    // buffer from here to the end of the batch, or (with bytes of its own pending) gets
    // copies; later broadcasts of the batch touch only the copy list
    for (int i = 0; i < n_open; i++) {
      Conn *t = by_fd[open_list[i]];
      t->framed = 1;
      if (t->fd < 0 || t->closing > 1) continue;
      if (t->out.len > t->out.off || t->want_out) {
        add_copy(t);
      } else {
        t->bref = 1;
        t->bstart = start;
        mark_dirty(t);
      }
    }
  }
  for (int i = 0; i < n_copy; i++) {
    Conn *t = copy_list[i];
    if (t->fd >= 0 && t->open) queue_bytes(t, batch.p + start, hl + len);
  }
}

static void unmask(uint8_t *p, size_t n, const uint8_t m[4]) {
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

// Parses complete frames in buf; returns bytes consumed, or -1 to close the connection now.
static long parse_frames(Conn *c, uint8_t *buf, size_t len) {
  size_t pos = 0;
  while (len - pos >= 2) {
    uint8_t b0 = buf[pos], b1 = buf[pos + 1];
    int op = b0 & 0x0f, fin = b0 >> 7;
    uint64_t plen = b1 & 0x7f;
    size_t hl = 2;
    if (!(b1 & 0x80) || (b0 & 0x70)) return -1;  // unmasked client frame or RSV bits
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
    if (plen > MAX_MESSAGE) return -1;
    if (len - pos < hl + 4 + plen) break;
    uint8_t *p = buf + pos + hl + 4;
    unmask(p, plen, buf + pos + hl);
    pos += hl + 4 + plen;
    if (op == 1 || op == 2) {
      if (c->msg_op) return -1;
      if (fin) {
        on_message(c, op, p, plen);
      } else {
        c->msg_op = op;
        c->msg.off = c->msg.len = 0;
        buf_reserve(&c->msg, plen);
        memcpy(c->msg.p, p, plen);
        c->msg.len = plen;
      }
    } else if (op == 0) {
      if (!c->msg_op || c->msg.len + plen > MAX_MESSAGE) return -1;
      buf_reserve(&c->msg, plen);
      memcpy(c->msg.p + c->msg.len, p, plen);
      c->msg.len += plen;
      if (fin) {
        on_message(c, c->msg_op, c->msg.p, c->msg.len);
        c->msg_op = 0;
        c->msg.len = 0;
      }
    } else if (op == 9) {
      queue_frame(c, 0xA, p, plen);
    } else if (op == 8) {  // echo the status code, then close once it is written
      queue_frame(c, 0x8, p, plen < 2 ? plen : 2);
      c->closing = 1;
      return (long)len;
    } else if (op != 0xA) {
      return -1;
    }
  }
  return (long)pos;
}

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Returns bytes consumed by the request head (0: incomplete), -1 on a bad request.
static long handshake(Conn *c, uint8_t *buf, size_t len) {
  uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return len >= HDR_MAX ? -1 : 0;
  *end = 0;
  const char *key = NULL;
  for (const char *l = strstr((char *)buf, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
    if (strncasecmp(l + 2, "sec-websocket-key:", 18) == 0) {
      key = l + 20;
      break;
    }
  }
  while (key && (*key == ' ' || *key == '\t')) key++;
  if (!key || strncmp((char *)buf, "GET ", 4) != 0) return -1;
  size_t klen = strcspn(key, " \t\r\n");
  if (klen == 0 || klen > 64) return -1;
  char cat[128], accept[32], resp[256];
  memcpy(cat, key, klen);
  memcpy(cat + klen, GUID, sizeof GUID - 1);
  uint8_t digest[20];
  sha1((uint8_t *)cat, klen + sizeof GUID - 1, digest);
  base64(digest, 20, accept);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
  queue_bytes(c, (uint8_t *)resp, (size_t)n);
  c->open = 1;
  c->list_idx = n_open;
  open_list[n_open++] = c->fd;
  add_copy(c);  // opened after the batch's first broadcast: the rest is copied behind its 101
  return (long)(end - buf) + 4;
}

static uint8_t rbuf[READ_CHUNK];

// Parses what `buf` holds; returns bytes consumed, or -1 when the connection was closed.
static long consume(Conn *c, uint8_t *buf, size_t len) {
  size_t pos = 0;
  while (pos < len && !c->closing) {
    long used = c->open ? parse_frames(c, buf + pos, len - pos) : handshake(c, buf + pos, len - pos);
    if (used < 0) {
      conn_close(c);
      return -1;
    }
    if (used == 0) break;
    pos += (size_t)used;
  }
  return (long)pos;
}

// Reads into one shared buffer and parses in place; only a partial frame is copied into the
// connection's own buffer (an idle connection owns no buffer at all).
static void on_readable(Conn *c) {
  for (;;) {
    Buf *in = &c->in;
    int partial = in->len > in->off;
    uint8_t *dst = rbuf;
    size_t room = sizeof rbuf;
    if (partial) {  // continue the partial frame in the connection's buffer
      buf_reserve(in, READ_CHUNK);
      dst = in->p + in->len;
      room = in->cap - in->len;
    }
    ssize_t n = recv(c->fd, dst, room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      conn_close(c);
      return;
    }
    uint8_t *base = dst;
    size_t len = (size_t)n;
    if (partial) {
      in->len += (size_t)n;
      base = in->p + in->off;
      len = in->len - in->off;
    }
    long used = consume(c, base, len);
    if (used < 0) return;
    if (c->closing) return;
    if (partial) {
      in->off += (size_t)used;
      if (in->off == in->len) buf_free(in);
    } else if ((size_t)used < len) {
      buf_reserve(in, len - (size_t)used);
      memcpy(in->p + in->len, base + used, len - (size_t)used);
      in->len += len - (size_t)used;
    }
    if ((size_t)n < room) return;  // drained
  }
}

static void set_out_interest(Conn *c, int want) {
  if (c->want_out == want) return;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.fd = c->fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = want;
}

// One send() of everything queued; the unsent tail stays for EPOLLOUT.
static void flush(Conn *c) {
  Buf *o = &c->out;
  while (o->off < o->len) {
    ssize_t n = send(c->fd, o->p + o->off, o->len - o->off, MSG_NOSIGNAL);
    if (n > 0) {
      o->off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_out_interest(c, 1);
      return;
    }
    conn_close(c);
    return;
  }
  // Nothing pending. A connection that only got its 101 keeps no buffer (idle memory); one that
  // gets frames keeps up to 64 KiB (allocating per batch costs more than the send, in malloc).
  if (!c->framed || o->cap > 64 * 1024) buf_free(o);
  else o->off = o->len = 0;
  set_out_interest(c, 0);
  if (c->closing) conn_close(c);
}

// Writes a connection's part of the shared batch buffer; an unsent tail becomes its own.
static void flush_ref(Conn *c) {
  c->bref = 0;
  const uint8_t *p = batch.p + c->bstart;
  size_t n = batch.len - c->bstart;
  while (n) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      buf_reserve(&c->out, n);
      memcpy(c->out.p + c->out.len, p, n);
      c->out.len += n;
      set_out_interest(c, 1);
      return;
    }
    conn_close(c);
    return;
  }
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or EMFILE: try again on the next event
    if (fd >= by_fd_cap) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn *c = calloc(1, sizeof *c);
    if (!c) exit(1);
    c->fd = fd;
    by_fd[fd] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *mode = "echo";
  int port = 9001;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else {
      fprintf(stderr, "usage: c_epoll --port P --mode echo|broadcast [--host H]\n");
      return 2;
    }
  }
  if (strcmp(mode, "echo") && strcmp(mode, "broadcast")) {
    fprintf(stderr, "unknown --mode %s\n", mode);
    return 2;
  }
  broadcast_mode = !strcmp(mode, "broadcast");
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  by_fd_cap = (int)(rl.rlim_cur > 1 << 20 ? 1 << 20 : rl.rlim_cur);
  by_fd = calloc((size_t)by_fd_cap, sizeof *by_fd);
  open_list = calloc((size_t)by_fd_cap, sizeof *open_list);
  dirty_list = calloc(2 * (size_t)by_fd_cap, sizeof *dirty_list);
  copy_list = calloc(2 * (size_t)by_fd_cap, sizeof *copy_list);  // closed + reused fds
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(lfd, (struct sockaddr *)&a, sizeof a) ||
      listen(lfd, 4096)) {
    perror("c_epoll: listen");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("c_epoll %s server listening on %s:%d\n", mode, host, port);
  fflush(stdout);
  static struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        on_accept(lfd);
        continue;
      }
      Conn *c = by_fd[fd];
      if (!c) continue;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
      if (by_fd[fd] == c && (evs[i].events & EPOLLOUT)) flush(c);
    }
    // end of the batch: each connection with queued output is written once (copy-list members
    // are all on the dirty list, which frees the ones closed during the batch: reset them first)
    for (int i = 0; i < n_copy; i++) copy_list[i]->copied = 0;
    n_copy = 0;
    for (int i = 0; i < n_dirty; i++) {
      Conn *c = dirty_list[i];
      c->dirty = 0;
      if (c->fd < 0) free(c);  // closed during the batch
      else if (c->closing > 1) conn_close(c);  // over the backpressure limit
      else if (c->bref) flush_ref(c);
      else if (!c->want_out) flush(c);     // else EPOLLOUT will resume it
    }
    n_dirty = 0;
    batch.len = 0;
  }
}
