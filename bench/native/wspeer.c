/* wspeer: the native peer of the femtows benchmark (bench/README.md).
 *
 * One single-threaded epoll program, optionally with TLS through OpenSSL, that plays whichever
 * side the Python process under test does not:
 *
 *   wspeer server    [--raw] [--tls CERT KEY] [--port P]
 *       WebSocket echo server: answers the HTTP upgrade with 101 and echoes every frame back
 *       unmasked (same opcode and FIN bit; a CLOSE is answered and the connection closed).
 *       --raw: plain byte echo, no HTTP and no framing (the "floor" peer).
 *       Prints "LISTENING <port>" once it accepts connections.
 *
 *   wspeer client    --port P --size S [--conns N] [--duration D] [--warmup W] [--raw] [--tls]
 *       Load generator: N connections, each sends one masked BINARY message of S bytes and
 *       waits for the complete echo, repeat. The masked frame is built once (fixed mask key),
 *       so a round trip costs the peer one send and a few recvs. The first echo on each
 *       connection is compared byte for byte; later ones by header and length.
 *       Prints "START" when the measured window begins (after W seconds of warm-up) and one
 *       JSON line at its end: {"count", "elapsed", "cpu_user", "cpu_sys", ...}.
 *
 *   wspeer handshake --port P [--duration D] [--warmup W] [--tls]
 *       Sequentially: connect, upgrade, send CLOSE, wait for the server's CLOSE/EOF, close.
 *       Same START / JSON protocol; count = completed handshakes.
 *
 *   wspeer idle      --port P --conns N [--raw] [--tls]
 *       Opens N connections (upgraded unless --raw) and keeps them idle; prints
 *       "READY <opened> <errno-or-0>" and exits when stdin reaches EOF.
 *
 * Connection set-up (TCP connect / accept, TLS handshake, HTTP upgrade) uses blocking sockets
 * with a timeout; only the measured echo traffic goes through the non-blocking epoll loop.
 *
 * Build: cc -O2 -o wspeer bench/native/wspeer.c -lssl -lcrypto
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#define MAX_EVENTS 64
#define MASK_KEY 0x37FA213Du
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 1.3 example for WS_KEY */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static void die(const char *what)
{
    fprintf(stderr, "wspeer: %s: %s\n", what, strerror(errno));
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void fail(const char *what)
{
    fprintf(stderr, "wspeer: %s\n", what);
    exit(3);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cpu_times(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sockets and TLS                                                                            */

static SSL_CTX *g_ssl_ctx; /* NULL: plain TCP */

typedef struct {
    int fd;
    SSL *ssl;
} stream_t;

static void set_nonblocking(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

static void set_socket_options(int fd)
{
    int one = 1;
    struct timeval tv = {5, 0}; /* blocking set-up phase only */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Blocking write of the whole buffer; 0 on success. */
static int write_all(stream_t *s, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n;
        if (s->ssl) {
            int r = SSL_write(s->ssl, p, (int)len);
            n = r > 0 ? r : -1;
        } else {
            n = send(s->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
        }
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Blocking read of at most len bytes: >0 bytes, 0 EOF, <0 error. */
static ssize_t read_some(stream_t *s, void *buf, size_t len)
{
    if (s->ssl) {
        int r = SSL_read(s->ssl, buf, (int)len);
        if (r > 0)
            return r;
        return SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

/* Non-blocking variants: >0 bytes, 0 EOF, -1 would block, -2 error. */
static ssize_t nb_read(stream_t *s, void *buf, size_t len)
{
    if (s->ssl) {
        int r = SSL_read(s->ssl, buf, (int)len);
        if (r > 0)
            return r;
        switch (SSL_get_error(s->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        default:
            return -2;
        }
    }
    ssize_t n = recv(s->fd, buf, len, 0);
    if (n >= 0)
        return n;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
}

static ssize_t nb_write(stream_t *s, const void *buf, size_t len)
{
    if (s->ssl) {
        int r = SSL_write(s->ssl, buf, (int)(len > (1 << 30) ? (1 << 30) : len));
        if (r > 0)
            return r;
        int e = SSL_get_error(s->ssl, r);
        return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? -1 : -2;
    }
    ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
}

static void stream_close(stream_t *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static void init_tls(int server, const char *cert, const char *key)
{
    g_ssl_ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!g_ssl_ctx)
        die("SSL_CTX_new");
    SSL_CTX_set_mode(g_ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server) {
        if (SSL_CTX_use_certificate_chain_file(g_ssl_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(g_ssl_ctx, key, SSL_FILETYPE_PEM) != 1)
            die("loading certificate/key");
        /* No session tickets: the server must not write after the handshake on its own. */
        SSL_CTX_set_num_tickets(g_ssl_ctx, 0);
    } else {
        SSL_CTX_set_verify(g_ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
}

static int tcp_connect(int port)
{
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    set_socket_options(fd);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Connect (and TLS-handshake if enabled); 0 on success. */
static int stream_connect(stream_t *s, int port)
{
    s->ssl = NULL;
    s->fd = tcp_connect(port);
    if (s->fd < 0)
        return -1;
    if (g_ssl_ctx) {
        s->ssl = SSL_new(g_ssl_ctx);
        SSL_set_fd(s->ssl, s->fd);
        if (SSL_connect(s->ssl) != 1) {
            stream_close(s);
            errno = EPROTO;
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP upgrade                                                                               */

static const char UPGRADE_REQUEST[] = "GET / HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: " WS_KEY "\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "\r\n";

/* Client side: send the request, read the response head; 0 if it is a valid 101. Any bytes
 * after the head are an error (the server must not send frames before we do). */
static int client_upgrade(stream_t *s)
{
    char buf[4096];
    size_t len = 0;
    if (write_all(s, UPGRADE_REQUEST, sizeof UPGRADE_REQUEST - 1) != 0)
        return -1;
    for (;;) {
        ssize_t n = read_some(s, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            if ((size_t)(end + 4 - buf) != len)
                return -1;
            break;
        }
        if (len >= sizeof buf - 1)
            return -1;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0 || !strstr(buf, WS_ACCEPT))
        return -1;
    return 0;
}

/* Server side: read the request head (blocking), answer 101. Bytes received after the head
 * are copied to *extra (at most extra_cap) and counted in *extra_len. 0 on success. */
static int server_upgrade(stream_t *s, char *extra, size_t extra_cap, size_t *extra_len)
{
    char buf[8192];
    size_t len = 0;
    char *end;
    for (;;) {
        ssize_t n = read_some(s, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = 0;
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
        if (len >= sizeof buf - 1)
            return -1;
    }
    size_t head = (size_t)(end + 4 - buf);
    *extra_len = len - head;
    if (*extra_len > extra_cap)
        return -1;
    memcpy(extra, buf + head, *extra_len);
    *end = 0;

    /* Find Sec-WebSocket-Key (case-insensitive header name). */
    const char *key = NULL;
    size_t key_len = 0;
    for (char *line = strstr(buf, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
            key = line + 18;
            while (*key == ' ' || *key == '\t')
                key++;
            const char *e = strstr(key, "\r\n");
            key_len = e ? (size_t)(e - key) : strlen(key);
            while (key_len && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
                key_len--;
            break;
        }
    }
    if (!key || key_len == 0 || key_len > 64)
        return -1;

    char concat[128];
    unsigned char digest[SHA_DIGEST_LENGTH];
    char accept[64];
    memcpy(concat, key, key_len);
    memcpy(concat + key_len, WS_GUID, sizeof WS_GUID - 1);
    SHA1((unsigned char *)concat, key_len + sizeof WS_GUID - 1, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);

    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    return write_all(s, resp, (size_t)n);
}

/* ------------------------------------------------------------------------------------------ */
/* Frames                                                                                     */

static size_t frame_header(unsigned char *h, int opcode_fin, uint64_t len, int masked)
{
    size_t n;
    h[0] = (unsigned char)opcode_fin;
    if (len < 126) {
        h[1] = (unsigned char)len;
        n = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    if (masked) {
        h[1] |= 0x80;
        uint32_t k = MASK_KEY;
        memcpy(h + n, &k, 4);
        n += 4;
    }
    return n;
}

static void apply_mask(unsigned char *p, size_t len, const unsigned char key[4])
{
    uint64_t k8;
    unsigned char kk[8];
    for (int i = 0; i < 8; i++)
        kk[i] = key[i & 3];
    memcpy(&k8, kk, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= k8;
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] ^= key[i & 3];
}

/* ------------------------------------------------------------------------------------------ */
/* Server                                                                                     */

typedef struct {
    stream_t s;
    int raw;
    int closing;         /* a CLOSE was echoed: close once the output is flushed */
    unsigned char *buf;  /* input; echoed frames are rewritten in place and sent from here */
    size_t cap, len, rpos;
    size_t out_pos, out_end; /* pending output: buf[out_pos, out_end) */
    uint32_t events;
} sconn_t;

static int g_epfd;

static void ep_set(int fd, void *ptr, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(g_epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

static void sconn_free(sconn_t *c)
{
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->s.fd, NULL);
    stream_close(&c->s);
    free(c->buf);
    free(c);
}

static void sconn_want(sconn_t *c, uint32_t events)
{
    if (c->events != events) {
        ep_set(c->s.fd, c, events, EPOLL_CTL_MOD);
        c->events = events;
    }
}

/* Flush pending output. 1 done, 0 would block, -1 error. */
static int sconn_flush(sconn_t *c)
{
    while (c->out_pos < c->out_end) {
        ssize_t n = nb_write(&c->s, c->buf + c->out_pos, c->out_end - c->out_pos);
        if (n == -1)
            return 0;
        if (n < 0)
            return -1;
        c->out_pos += (size_t)n;
    }
    return 1;
}

/* Next complete frame at rpos: rewrite it in place as an unmasked server frame and queue it.
 * Returns 1 if a frame was queued, 0 if more input is needed, -1 on a protocol error. */
static int sconn_next_frame(sconn_t *c)
{
    unsigned char *f = c->buf + c->rpos;
    size_t avail = c->len - c->rpos;
    if (avail < 2)
        return 0;
    if (!(f[1] & 0x80))
        return -1; /* client frames must be masked */
    uint64_t plen = f[1] & 0x7F;
    size_t hlen = 2;
    if (plen == 126) {
        if (avail < 4)
            return 0;
        plen = ((uint64_t)f[2] << 8) | f[3];
        hlen = 4;
    } else if (plen == 127) {
        if (avail < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | f[2 + i];
        hlen = 10;
    }
    size_t total = hlen + 4 + (size_t)plen;
    if (avail < total) {
        if (c->rpos + total > c->cap) {
            /* Make room for the whole frame: compact, then grow. */
            memmove(c->buf, f, avail);
            c->len = avail;
            c->rpos = 0;
            if (total > c->cap) {
                c->cap = total + 4096;
                c->buf = realloc(c->buf, c->cap);
                if (!c->buf)
                    die("realloc");
            }
        }
        return 0;
    }
    unsigned char key[4];
    memcpy(key, f + hlen, 4);
    unsigned char *payload = f + hlen + 4;
    apply_mask(payload, (size_t)plen, key);
    int opcode = f[0] & 0x0F;
    unsigned char hdr[10];
    size_t ohl = frame_header(hdr, f[0], plen, 0); /* same FIN/opcode, unmasked */
    memcpy(payload - ohl, hdr, ohl);
    c->out_pos = (size_t)(payload - ohl - c->buf);
    c->out_end = (size_t)(payload - c->buf) + (size_t)plen;
    c->rpos += total;
    if (opcode == 0x8)
        c->closing = 1;
    else if (opcode == 0x9)
        c->buf[c->out_pos] = (unsigned char)((c->buf[c->out_pos] & 0xF0) | 0xA); /* pong */
    return 1;
}

/* More input may be waiting without a new epoll event only if the last read filled the space
 * it was offered, or TLS holds decrypted or undecrypted bytes of its own. */
static int more_input_possible(stream_t *s, ssize_t got, size_t asked)
{
    return (size_t)got == asked || (s->ssl && SSL_has_pending(s->ssl));
}

/* Process buffered input and pending output. ``readable``: the socket may have input (an
 * EPOLLIN event); otherwise no read is tried, which saves a syscall returning EAGAIN per echo.
 * Returns 0 to keep the connection, -1 to drop it. */
static int sconn_pump(sconn_t *c, int readable)
{
    for (;;) {
        int r = sconn_flush(c);
        if (r < 0)
            return -1;
        if (r == 0) {
            sconn_want(c, EPOLLOUT);
            return 0;
        }
        if (c->closing)
            return -1;
        if (c->raw) {
            c->len = c->rpos = c->out_pos = c->out_end = 0;
        } else {
            int f = sconn_next_frame(c);
            if (f < 0)
                return -1;
            if (f > 0)
                continue;
            if (c->rpos == c->len)
                c->len = c->rpos = 0;
        }
        /* Output flushed and no complete frame buffered: read. */
        if (!readable && !(c->s.ssl && SSL_has_pending(c->s.ssl))) {
            sconn_want(c, EPOLLIN);
            return 0;
        }
        if (c->len == c->cap) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf)
                die("realloc");
        }
        size_t asked = c->cap - c->len;
        ssize_t n = nb_read(&c->s, c->buf + c->len, asked);
        if (n == -1) {
            sconn_want(c, EPOLLIN);
            return 0;
        }
        if (n <= 0)
            return -1;
        readable = more_input_possible(&c->s, n, asked);
        c->len += (size_t)n;
        if (c->raw) {
            c->out_pos = 0;
            c->out_end = c->len;
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr = {0};
    socklen_t alen = sizeof addr;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 4096) < 0)
        die("bind/listen");
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static _Noreturn void run_server(int port, int raw)
{
    int lfd = listen_on(port);
    static int listener_tag;
    g_epfd = epoll_create1(0);
    ep_set(lfd, &listener_tag, EPOLLIN, EPOLL_CTL_ADD);
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(g_epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0)
                    continue;
                set_socket_options(fd);
                sconn_t *c = calloc(1, sizeof *c);
                c->s.fd = fd;
                c->raw = raw;
                c->cap = 256 * 1024;
                c->buf = malloc(c->cap);
                if (g_ssl_ctx) {
                    c->s.ssl = SSL_new(g_ssl_ctx);
                    SSL_set_fd(c->s.ssl, fd);
                    if (SSL_accept(c->s.ssl) != 1) {
                        stream_close(&c->s);
                        free(c->buf);
                        free(c);
                        continue;
                    }
                }
                if (!raw && server_upgrade(&c->s, (char *)c->buf, c->cap, &c->len) != 0) {
                    stream_close(&c->s);
                    free(c->buf);
                    free(c);
                    continue;
                }
                if (raw) {
                    c->out_pos = 0;
                    c->out_end = 0;
                }
                set_nonblocking(fd, 1);
                c->events = EPOLLIN;
                ep_set(fd, c, EPOLLIN, EPOLL_CTL_ADD);
                if (sconn_pump(c, 1) < 0)
                    sconn_free(c);
            } else {
                sconn_t *c = evs[i].data.ptr;
                if (sconn_pump(c, (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) < 0)
                    sconn_free(c);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Load client                                                                                */

typedef struct {
    stream_t s;
    size_t sent;     /* bytes of the request frame sent; == req_len once fully sent */
    size_t received; /* bytes of the current echo received */
    int verified;    /* first echo compared in full */
    uint32_t events;
} cconn_t;

static unsigned char *g_req;      /* pre-built masked frame (or raw message) */
static size_t g_req_len;
static unsigned char *g_expect;   /* expected echo: unmasked header + payload */
static size_t g_expect_len;
static size_t g_expect_hdr;
static unsigned char g_scratch[1 << 20];
static uint64_t g_count;

static void cconn_want(cconn_t *c, uint32_t events)
{
    if (c->events != events) {
        ep_set(c->s.fd, c, events, EPOLL_CTL_MOD);
        c->events = events;
    }
}

/* Drive one connection as far as it goes without blocking. ``readable`` as in sconn_pump. */
static void cconn_pump(cconn_t *c, int readable)
{
    for (;;) {
        if (c->sent < g_req_len) {
            ssize_t n = nb_write(&c->s, g_req + c->sent, g_req_len - c->sent);
            if (n == -2)
                fail("send failed (server gone?)");
            if (n > 0) {
                c->sent += (size_t)n;
                continue;
            }
        }
        if (!readable && !(c->s.ssl && SSL_has_pending(c->s.ssl))) {
            cconn_want(c, c->sent < g_req_len ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
            return;
        }
        size_t want = g_expect_len - c->received;
        size_t asked = want < sizeof g_scratch ? want : sizeof g_scratch;
        ssize_t n = nb_read(&c->s, g_scratch, asked);
        if (n == 0 || n == -2)
            fail("connection closed by the server during the run");
        if (n == -1) {
            cconn_want(c, c->sent < g_req_len ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
            return;
        }
        /* A read that got all it asked for ends exactly at the echo's end: the server sends
         * nothing more until the next request, so there is nothing left to read either. */
        readable = (size_t)n == asked ? (asked == want ? 0 : 1) : 0;
        size_t off = c->received;
        if (!c->verified) {
            if (memcmp(g_scratch, g_expect + off, (size_t)n) != 0)
                fail("echo differs from the message sent");
        } else if (off < g_expect_hdr) {
            size_t k = g_expect_hdr - off < (size_t)n ? g_expect_hdr - off : (size_t)n;
            if (memcmp(g_scratch, g_expect + off, k) != 0)
                fail("unexpected echo header");
        }
        c->received += (size_t)n;
        if (c->received == g_expect_len) {
            if (c->sent != g_req_len)
                fail("echo arrived before the request was sent");
            c->received = 0;
            c->sent = 0;
            c->verified = 1;
            g_count++;
        }
    }
}

static void build_messages(size_t size, int raw)
{
    unsigned char *payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++)
        payload[i] = (unsigned char)(i * 131 + 7);
    if (raw) {
        g_req = payload;
        g_req_len = size;
        g_expect = payload;
        g_expect_len = size;
        g_expect_hdr = 0;
        return;
    }
    g_req = malloc(size + 14);
    size_t h = frame_header(g_req, 0x82, size, 1);
    memcpy(g_req + h, payload, size);
    apply_mask(g_req + h, size, g_req + h - 4);
    g_req_len = h + size;
    g_expect = malloc(size + 10);
    g_expect_hdr = frame_header(g_expect, 0x82, size, 0);
    memcpy(g_expect + g_expect_hdr, payload, size);
    g_expect_len = g_expect_hdr + size;
    free(payload);
}

static void print_result(const char *mode, uint64_t count, double elapsed, double u0, double s0,
                         int conns, size_t size)
{
    double u1, s1;
    cpu_times(&u1, &s1);
    printf("{\"mode\": \"%s\", \"count\": %llu, \"elapsed\": %.6f, \"cpu_user\": %.6f, "
           "\"cpu_sys\": %.6f, \"conns\": %d, \"size\": %zu}\n",
           mode, (unsigned long long)count, elapsed, u1 - u0, s1 - s0, conns, size);
    fflush(stdout);
}

static int run_client(int port, size_t size, int conns, double duration, double warmup, int raw)
{
    build_messages(size, raw);
    g_epfd = epoll_create1(0);
    cconn_t *cs = calloc((size_t)conns, sizeof *cs);
    for (int i = 0; i < conns; i++) {
        if (stream_connect(&cs[i].s, port) != 0)
            die("connect");
        if (!raw && client_upgrade(&cs[i].s) != 0)
            fail("upgrade failed");
        set_nonblocking(cs[i].s.fd, 1);
        cs[i].events = EPOLLIN | EPOLLOUT;
        ep_set(cs[i].s.fd, &cs[i], cs[i].events, EPOLL_CTL_ADD);
    }
    for (int i = 0; i < conns; i++)
        cconn_pump(&cs[i], 0);

    struct epoll_event evs[MAX_EVENTS];
    double t_start = now() + warmup, t_end = t_start + duration;
    int measuring = 0;
    uint64_t c0 = 0;
    double u0 = 0, s0 = 0, t0 = 0;
    for (;;) {
        int n = epoll_wait(g_epfd, evs, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int readable = (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
            cconn_pump(evs[i].data.ptr, readable);
        }
        double t = now();
        if (!measuring && t >= t_start) {
            measuring = 1;
            c0 = g_count;
            t0 = t;
            cpu_times(&u0, &s0);
            printf("START\n");
            fflush(stdout);
        } else if (measuring && t >= t_end) {
            print_result(raw ? "client-raw" : "client", g_count - c0, t - t0, u0, s0, conns,
                         size);
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Handshakes and idle connections                                                            */

static int one_handshake(int port)
{
    stream_t s;
    unsigned char close_frame[8];
    char buf[512];
    if (stream_connect(&s, port) != 0)
        return -1;
    if (client_upgrade(&s) != 0) {
        stream_close(&s);
        return -1;
    }
    size_t h = frame_header(close_frame, 0x88, 2, 1);
    close_frame[h] = 0x03 ^ close_frame[h - 4]; /* code 1000, masked */
    close_frame[h + 1] = 0xE8 ^ close_frame[h - 3];
    int ok = write_all(&s, close_frame, h + 2) == 0;
    /* Wait for the server's CLOSE and its EOF. */
    int got_close = 0;
    while (ok) {
        ssize_t n = read_some(&s, buf, sizeof buf);
        if (n < 0)
            ok = 0;
        if (n <= 0)
            break;
        if ((unsigned char)buf[0] == 0x88)
            got_close = 1;
    }
    stream_close(&s);
    return ok && got_close ? 0 : -1;
}

static int run_handshakes(int port, double duration, double warmup)
{
    double t_start = now() + warmup, t_end = t_start + duration, t0 = 0, u0 = 0, s0 = 0;
    uint64_t count = 0, c0 = 0, errors = 0;
    int measuring = 0;
    for (;;) {
        if (one_handshake(port) == 0)
            count++;
        else if (++errors > 100)
            fail("too many failed handshakes");
        double t = now();
        if (!measuring && t >= t_start) {
            measuring = 1;
            c0 = count;
            t0 = t;
            cpu_times(&u0, &s0);
            printf("START\n");
            fflush(stdout);
        } else if (measuring && t >= t_end) {
            print_result("handshake", count - c0, t - t0, u0, s0, 1, 0);
            return 0;
        }
    }
}

static int run_idle(int port, int conns, int raw)
{
    raise_nofile();
    stream_t *ss = calloc((size_t)conns, sizeof *ss);
    int opened = 0, err = 0;
    for (; opened < conns; opened++) {
        if (stream_connect(&ss[opened], port) != 0) {
            err = errno;
            break;
        }
        if (!raw && client_upgrade(&ss[opened]) != 0) {
            err = EPROTO;
            stream_close(&ss[opened]);
            break;
        }
    }
    printf("READY %d %d\n", opened, err);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: wspeer server|client|handshake|idle [--port P] [--size S] "
                    "[--conns N] [--duration D] [--warmup W] [--raw] [--tls [CERT KEY]]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    int port = 0, conns = 1, raw = 0, tls = 0;
    size_t size = 256;
    double duration = 1.0, warmup = 0.3;
    const char *cert = NULL, *key = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--port") && has)
            port = atoi(argv[++i]);
        else if (!strcmp(a, "--size") && has)
            size = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--conns") && has)
            conns = atoi(argv[++i]);
        else if (!strcmp(a, "--duration") && has)
            duration = atof(argv[++i]);
        else if (!strcmp(a, "--warmup") && has)
            warmup = atof(argv[++i]);
        else if (!strcmp(a, "--raw"))
            raw = 1;
        else if (!strcmp(a, "--tls")) {
            tls = 1;
            if (!strcmp(mode, "server")) {
                if (i + 2 >= argc)
                    usage();
                cert = argv[++i];
                key = argv[++i];
            }
        } else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    if (tls)
        init_tls(!strcmp(mode, "server"), cert, key);
    if (!strcmp(mode, "server"))
        run_server(port, raw);
    if (port <= 0 || conns <= 0)
        usage();
    if (!strcmp(mode, "client"))
        return run_client(port, size, conns, duration, warmup, raw);
    if (!strcmp(mode, "handshake"))
        return run_handshakes(port, duration, warmup);
    if (!strcmp(mode, "idle"))
        return run_idle(port, conns, raw);
    usage();
    return 1;
}
