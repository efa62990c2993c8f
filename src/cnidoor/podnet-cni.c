/*
 * podnet-cni: the CNI plugin a runtime (containerd, CRI-O) execs for each pod. It forwards the
 * call to podnetd's CNI door (Multus' thick-plugin protocol: HTTP/1.1 on a unix socket) and
 * prints the answer, so the runtime gets podnet's whole network logic from a binary that starts
 * in about a millisecond.
 *
 * - stdin (bounded) is sent base64-encoded with every CNI_* variable: POST /cni
 *   {"env": {...}, "config": "<base64>", "resultVersion": "<stdin cniVersion>"}; the daemon
 *   answers ADD with {"Result": <result in that version>}, which is printed. The conversion
 *   between result versions is the daemon's (it has the library for it); this file only
 *   finds the top-level "socket", "cniVersion" and "readyTimeoutMs" of its stdin and unwraps
 *   "Result".
 * - VERSION is answered here. ADD waits for the daemon to be ready, up to readyTimeoutMs
 *   (default 30 s), as multus-shim waits for /readyz, but without a probe of its own before
 *   each ADD: a daemon that is not up yet (no socket, nothing accepting) is dialled again every
 *   100 ms, and one that is up but still recovering or loading its networks is told the bound in
 *   a Podnet-Ready-Timeout-Ms header and waits on its side, so a ready daemon costs one round
 *   trip, not two. Other verbs do not wait: a daemon that is down is code 11 (try again later)
 *   at once, so a DEL is retried by the runtime, never reported done.
 * - Failure: the CNI error JSON on stdout, exit 1. The daemon's own error JSON is printed as it
 *   came. No child process is ever started.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_STDIN (1 << 20)
#define MAX_RESPONSE (8 << 20)
#define MAX_DEPTH 64
#define DEFAULT_SOCKET "/run/podnet/cni/podnet-cni.sock"
#define DEFAULT_READY_TIMEOUT_MS 30000
#define READY_POLL_MS 100

extern char **environ;

static const char *g_version = "1.0.0"; /* for our own error JSON; the stdin's once known */

/* ---- output ----------------------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return;
		p += w;
		n -= (size_t)w;
	}
}

/* A growable byte buffer; allocation failure ends the process with code 999. */
struct buf {
	char *p;
	size_t len, cap;
};

static void die(int code, const char *msg, const char *details);

static void buf_grow(struct buf *b, size_t more) {
	if (b->len + more + 1 <= b->cap) return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1) cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) die(999, "podnet-cni: out of memory", "");
	b->p = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n) {
	buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* s as a JSON string literal (quotes included), at most max bytes of it. */
static void buf_json_string(struct buf *b, const char *s, size_t n, size_t max) {
	static const char hex[] = "0123456789abcdef";
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_add(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_add(b, e, 6);
		} else {
			buf_add(b, (const char *)&s[i], 1);
		}
	}
	if (n > max) buf_str(b, "...");
	buf_add(b, "\"", 1);
}

/* The CNI error JSON on stdout, exit 1. */
static void die(int code, const char *msg, const char *details) {
	struct buf b = {0};
	char num[16];
	buf_str(&b, "{\"cniVersion\":");
	buf_json_string(&b, g_version, strlen(g_version), 16);
	snprintf(num, sizeof num, "%d", code);
	buf_str(&b, ",\"code\":");
	buf_str(&b, num);
	buf_str(&b, ",\"msg\":");
	buf_json_string(&b, msg, strlen(msg), 512);
	if (details && *details) {
		buf_str(&b, ",\"details\":");
		buf_json_string(&b, details, strlen(details), 1024);
	}
	buf_str(&b, "}\n");
	if (b.p) write_all(1, b.p, b.len);
	exit(1);
}

static void dief(int code, const char *details, const char *fmt, ...) {
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	die(code, msg, details);
}

/* ---- minimal JSON: enough to walk the members of the top-level object ------------------- */

static const char *skip_ws(const char *p, const char *end) {
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
	return p;
}

/* Past the end of the string starting at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end) {
	for (p++; p < end; p++) {
		if (*p == '\\') p++;
		else if (*p == '"') return p + 1;
	}
	return NULL;
}

/* Past the end of the value starting at p, or NULL when it is not one. */
static const char *skip_value(const char *p, const char *end, int depth) {
	p = skip_ws(p, end);
	if (p >= end || depth > MAX_DEPTH) return NULL;
	if (*p == '"') return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		p = skip_ws(p + 1, end);
		if (p < end && *p == close) return p + 1;
		for (;;) {
			if (close == '}') {
				if (p >= end || *p != '"' || !(p = skip_string(p, end))) return NULL;
				p = skip_ws(p, end);
				if (p >= end || *p != ':') return NULL;
				p++;
			}
			if (!(p = skip_value(p, end, depth + 1))) return NULL;
			p = skip_ws(p, end);
			if (p < end && *p == ',') {
				p = skip_ws(p + 1, end);
				continue;
			}
			return p < end && *p == close ? p + 1 : NULL;
		}
	}
	const char *start = p;
	while (p < end && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'))) p++;
	return p > start ? p : NULL;
}

/*
 * The value of a member of the top-level object, as [*vs, *ve). Returns 1 when found, 0 when
 * absent, -1 when the text is not a JSON object.
 */
static int find_member(const char *text, size_t n, const char *key, const char **vs, const char **ve) {
	const char *p = skip_ws(text, text + n), *end = text + n;
	int found = 0;
	if (p >= end || *p != '{') return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}') return skip_ws(p + 1, end) == end ? 0 : -1;
	for (;;) {
		if (p >= end || *p != '"') return -1;
		const char *ks = p + 1, *ke = skip_string(p, end);
		if (!ke) return -1;
		p = skip_ws(ke, end);
		if (p >= end || *p != ':') return -1;
		const char *v = skip_ws(p + 1, end);
		if (!(p = skip_value(v, end, 1))) return -1;
		/* The last of duplicate keys wins, as in Go and JavaScript. */
		if ((size_t)(ke - 1 - ks) == strlen(key) && memcmp(ks, key, strlen(key)) == 0) {
			*vs = v;
			*ve = p;
			found = 1;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}') return skip_ws(p + 1, end) == end ? found : -1;
		return -1;
	}
}

/*
 * A JSON string value into out, NUL-terminated. \uXXXX is accepted for ASCII only. A value that
 * does not fit is a failure, never a truncation; out is left empty on failure.
 */
static int json_string_value(const char *vs, const char *ve, char *out, size_t outsz) {
	size_t o = 0;
	out[0] = '\0';
	if (ve - vs < 2 || *vs != '"') return -1;
	for (const char *p = vs + 1; p < ve - 1; p++) {
		char c = *p;
		if (c == '\\') {
			c = *++p;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned v;
				if (ve - 1 - p < 5 || sscanf(p + 1, "%4x", &v) != 1 || v == 0 || v > 0x7f) goto fail;
				c = (char)v;
				p += 4;
				break;
			}
			default: break; /* \" \\ \/ */
			}
		}
		if (o + 1 >= outsz) goto fail;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

/* ---- HTTP over the unix socket ---------------------------------------------------------- */

struct reply {
	int status;
	const char *body;
	size_t body_len;
	struct buf raw;
};

static long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A chunked body decoded in place (the daemon sends Content-Length; a proxy may not). */
static void dechunk(struct reply *r) {
	char *in = (char *)r->body, *end = in + r->body_len, *out = in;
	while (in < end) {
		char *e;
		unsigned long size = strtoul(in, &e, 16);
		char *data = strstr(e, "\r\n");
		if (!data || size == 0 || (size_t)(end - data - 2) < size) break;
		memmove(out, data + 2, size);
		out += size;
		in = data + 2 + size + 2;
	}
	r->body_len = (size_t)(out - r->body);
}

/* A connected socket, or -1 with errno set. */
static int dial(const char *path) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * One request, Connection: close, the whole answer read. Returns 0; -2 with errno when the
 * socket could not be dialled (nothing was sent); -1 with errno when the exchange broke. The
 * answer is waited for as long as the runtime lets us run (it kills plugins on its own
 * deadline). headers: more header lines, each ending in CRLF, or "".
 */
static int http_post(const char *sock, const char *path, const char *headers, const char *body, size_t n, struct reply *r) {
	char head[384];
	struct buf msg = {0};
	int fd = dial(sock);
	if (fd < 0) return -2;
	snprintf(head, sizeof head,
	         "POST %s HTTP/1.1\r\nHost: podnetd\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
	         path, n, headers);
	buf_str(&msg, head);
	buf_add(&msg, body, n);
	for (size_t off = 0; off < msg.len;) {
		ssize_t w = send(fd, msg.p + off, msg.len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) {
			free(msg.p);
			goto fail;
		}
		off += (size_t)w;
	}
	free(msg.p);
	memset(r, 0, sizeof *r);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, -1);
		if (pr < 0 && errno == EINTR) continue;
		if (pr < 0) goto fail;
		buf_grow(&r->raw, 65536);
		ssize_t got = read(fd, r->raw.p + r->raw.len, 65536);
		if (got < 0 && errno == EINTR) continue;
		if (got < 0) goto fail;
		if (got == 0) break;
		r->raw.len += (size_t)got;
		r->raw.p[r->raw.len] = '\0';
		if (r->raw.len > MAX_RESPONSE) {
			errno = EMSGSIZE;
			goto fail;
		}
	}
	close(fd);
	if (!r->raw.p || sscanf(r->raw.p, "HTTP/1.%*d %d", &r->status) != 1) {
		errno = EPROTO;
		return -1;
	}
	char *sep = strstr(r->raw.p, "\r\n\r\n");
	if (!sep) {
		errno = EPROTO;
		return -1;
	}
	r->body = sep + 4;
	r->body_len = r->raw.len - (size_t)(r->body - r->raw.p);
	*sep = '\0';
	if (strcasestr(r->raw.p, "\r\ntransfer-encoding: chunked")) dechunk(r);
	return 0;
fail: {
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}
}

/* ---- main -------------------------------------------------------------------------------- */

static void base64(struct buf *b, const unsigned char *s, size_t n) {
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
		q[0] = t[v >> 18 & 63];
		q[1] = t[v >> 12 & 63];
		q[2] = i + 1 < n ? t[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? t[v & 63] : '=';
		buf_add(b, q, 4);
	}
}

static const char *SUPPORTED = "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]";

int main(void) {
	static char in[MAX_STDIN + 1];
	static char version[32] = "", sock[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
	size_t n = 0;
	const char *vs, *ve;
	int ready_timeout = DEFAULT_READY_TIMEOUT_MS;

	const char *command = getenv("CNI_COMMAND");
	if (!command || !*command) die(4, "CNI_COMMAND is required", "");
	for (;;) {
		ssize_t got = read(0, in + n, MAX_STDIN + 1 - n);
		if (got < 0 && errno == EINTR) continue;
		if (got < 0) die(5, "cannot read the network config from stdin", strerror(errno));
		if (got == 0) break;
		n += (size_t)got;
		if (n > MAX_STDIN) dief(7, "", "the network config on stdin is larger than %d bytes", MAX_STDIN);
	}
	in[n] = '\0';
	int has = find_member(in, n, "cniVersion", &vs, &ve);
	if (has == 1 && json_string_value(vs, ve, version, sizeof version) == 0 && *version) g_version = version;

	/* VERSION needs nothing of its stdin but the version to echo (1.1.0 when it has none). */
	if (strcmp(command, "VERSION") == 0) {
		if (!*version) g_version = "1.1.0";
		struct buf b = {0};
		buf_str(&b, "{\"cniVersion\":");
		buf_json_string(&b, g_version, strlen(g_version), 16);
		buf_str(&b, ",\"supportedVersions\":");
		buf_str(&b, SUPPORTED);
		buf_str(&b, "}\n");
		write_all(1, b.p, b.len);
		return 0;
	}
	if (has < 0) die(6, "the network config on stdin is not a JSON object", "");
	if (!*version) die(7, "the network config on stdin has no cniVersion (a string of at most 31 bytes)", "");
	if (find_member(in, n, "socket", &vs, &ve) == 1 && json_string_value(vs, ve, sock, sizeof sock) != 0)
		die(7, "\"socket\" must be a string of an absolute path shorter than 108 bytes", "");
	if (sock[0] != '/') die(7, "\"socket\" must be an absolute path", sock);
	if (find_member(in, n, "readyTimeoutMs", &vs, &ve) == 1) {
		char *e;
		long v = strtol(vs, &e, 10);
		if (e != ve || v < 0 || v > 600000) die(7, "\"readyTimeoutMs\" must be an integer from 0 to 600000", "");
		ready_timeout = (int)v;
	}

	/* {"env": {CNI_*...}, "config": "<base64 stdin>", "resultVersion": "<cniVersion>"} */
	struct buf req = {0};
	buf_str(&req, "{\"env\":{");
	int first = 1;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (strncmp(*e, "CNI_", 4) != 0 || !eq) continue;
		if (!first) buf_str(&req, ",");
		first = 0;
		buf_json_string(&req, *e, (size_t)(eq - *e), SIZE_MAX);
		buf_str(&req, ":");
		buf_json_string(&req, eq + 1, strlen(eq + 1), SIZE_MAX);
	}
	buf_str(&req, "},\"config\":\"");
	base64(&req, (const unsigned char *)in, n);
	buf_str(&req, "\",\"resultVersion\":");
	buf_json_string(&req, version, strlen(version), 16);
	buf_str(&req, "}");

	int add = strcmp(command, "ADD") == 0;
	char headers[64] = "";
	if (add) snprintf(headers, sizeof headers, "Podnet-Ready-Timeout-Ms: %d\r\n", ready_timeout);
	long deadline = now_ms() + ready_timeout;
	struct reply r;
	int rc;
	while ((rc = http_post(sock, "/cni", headers, req.p, req.len, &r)) == -2 && add) {
		/* Not up yet: nothing was sent, so dialling again is safe. */
		if (now_ms() >= deadline) dief(11, strerror(errno), "podnetd at %s was not ready within %d ms", sock, ready_timeout);
		struct timespec ts = {0, READY_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (rc != 0) dief(11, strerror(errno), "cannot reach podnetd at %s", sock);
	if (r.status != 200) {
		/* The daemon's CNI error JSON as it came; anything else wrapped in one. */
		const char *cs, *ce;
		if (find_member(r.body, r.body_len, "code", &cs, &ce) == 1) {
			write_all(1, r.body, r.body_len);
			write_all(1, "\n", 1);
			return 1;
		}
		struct buf d = {0};
		buf_add(&d, r.body, r.body_len > 512 ? 512 : r.body_len);
		dief(999, d.p ? d.p : "", "podnetd answered HTTP %d", r.status);
	}
	if (r.body_len == 0) return 0;
	int found = find_member(r.body, r.body_len, "Result", &vs, &ve);
	if (found != 1) die(999, "podnetd answered 200 without a \"Result\"", "");
	write_all(1, vs, (size_t)(ve - vs));
	write_all(1, "\n", 1);
	return 0;
}
