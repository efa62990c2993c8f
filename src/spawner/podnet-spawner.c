/*
 * podnet-spawner: starts processes and makes network namespaces on behalf of podnetd.
 *
 * Why it exists: Node's child_process.spawn forks the whole daemon on its event-loop thread. The
 * fork copies the page tables of a 100+ MiB process, costs 1-3 ms of CPU per plugin, and stops
 * every other RPC while it runs (bench/NOTES.md). This helper is a few hundred KiB; it starts
 * plugins with posix_spawn (vfork semantics in glibc), so a start costs tens of microseconds, and
 * it makes and unmounts namespaces with the syscalls themselves instead of running unshare(1) and
 * umount(8).
 *
 * It has no policy: podnetd decides what to run, with which environment, and when to kill it.
 * It talks to podnetd over its stdin (requests) and stdout (replies) in length-prefixed frames:
 *
 *   frame   = u32 length-of-rest, u32 id, u8 type, payload          (little endian)
 *   str     = u32 length, bytes                                      (no NUL inside)
 *
 *   SPAWN  (1)  u32 max-output, str path, u32 argc, str*argc, u32 envc, str*envc, str stdin
 *   NETNS  (2)  str path     bind-mount a new network namespace on an existing empty file
 *   UMOUNT (3)  str path     lazy unmount (MNT_DETACH)
 *   KILL   (4)  (none)       SIGKILL the process group of the SPAWN with this id
 *   NETDEV (5)  str path     /proc/net/dev as seen from inside the network namespace at path
 *
 *   STARTED (0x81)  i32 pid
 *   EXITED  (0x82)  u8 how (0 exit, 1 signal), i32 code-or-signal, u8 overflowed, str stdout, str stderr
 *   ERROR   (0x83)  i32 errno, str message
 *   OK      (0x84)  (none)
 *   DATA    (0x85)  str bytes
 *
 * When podnetd goes away (EOF on stdin) the helper exits at once and leaves running plugins to
 * finish, as they would if podnetd had forked them itself: a plugin killed halfway can leave
 * state its own DEL cannot find (host-local's allocation file before the container id is written
 * into it), while one that finishes is undone by the restarted podnetd's recovery.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

enum { REQ_SPAWN = 1, REQ_NETNS = 2, REQ_UMOUNT = 3, REQ_KILL = 4, REQ_NETDEV = 5 };
enum { REP_STARTED = 0x81, REP_EXITED = 0x82, REP_ERROR = 0x83, REP_OK = 0x84, REP_DATA = 0x85 };

/* A namespace's /proc/net/dev has one ~130-byte line per interface; this is thousands of them. */
#define MAX_NETDEV (1u << 20)

#define MAX_FRAME (64u << 20)
#define READ_CHUNK 65536

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct job {
    uint32_t id;
    pid_t pid;
    int in_fd, out_fd, err_fd;
    uint8_t *in_data;
    size_t in_len, in_off;
    struct buf out, err;
    size_t max_output;
    int exited, status, overflowed;
    struct job *next;
};

static struct job *jobs;
static struct buf inbuf;
static int orig_netns = -1;

static void die(const char *what) {
    fprintf(stderr, "podnet-spawner: %s: %s\n", what, strerror(errno));
    exit(70);
}

static void buf_reserve(struct buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_put(struct buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_u32(struct buf *b, uint32_t v) {
    uint8_t x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
    buf_put(b, x, 4);
}

static void buf_str(struct buf *b, const void *data, size_t n) {
    buf_u32(b, (uint32_t)n);
    buf_put(b, data, n);
}

static void write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) exit(0); /* podnetd is gone */
            die("write reply");
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Replies are assembled whole and written in one go; fd 1 is blocking, so a slow reader only
 * delays the helper, it never loses a frame. */
static void reply(uint32_t id, uint8_t type, const struct buf *payload) {
    struct buf f = {0};
    size_t plen = payload ? payload->len : 0;
    buf_u32(&f, (uint32_t)(5 + plen));
    buf_u32(&f, id);
    buf_put(&f, &type, 1);
    if (plen) buf_put(&f, payload->p, plen);
    write_all(1, f.p, f.len);
    free(f.p);
}

static void reply_error(uint32_t id, int err, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg, strerror(err));
    struct buf p = {0};
    buf_u32(&p, (uint32_t)err);
    buf_str(&p, msg, strlen(msg));
    reply(id, REP_ERROR, &p);
    free(p.p);
}

/* A cursor over one request's payload; any read past the end marks it bad. */
struct cursor {
    const uint8_t *p, *end;
    int bad;
};

static uint32_t cur_u32(struct cursor *c) {
    if (c->end - c->p < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 | (uint32_t)c->p[3] << 24;
    c->p += 4;
    return v;
}

/* Returns a NUL-terminated copy; strings with NUL inside are refused (they would be cut short). */
static char *cur_cstr(struct cursor *c) {
    uint32_t n = cur_u32(c);
    if (c->bad || (size_t)(c->end - c->p) < n || memchr(c->p, 0, n)) {
        c->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) die("out of memory");
    memcpy(s, c->p, n);
    s[n] = 0;
    c->p += n;
    return s;
}

static void free_strv(char **v) {
    if (!v) return;
    for (char **s = v; *s; s++) free(*s);
    free(v);
}

static char **cur_strv(struct cursor *c) {
    uint32_t n = cur_u32(c);
    if (c->bad || n > 65536) {
        c->bad = 1;
        return NULL;
    }
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) die("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        v[i] = cur_cstr(c);
        if (c->bad) {
            free_strv(v);
            return NULL;
        }
    }
    return v;
}

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl");
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void kill_group(struct job *j) {
    /* The group id is the plugin's pid (setsid at spawn); it stays valid while any member lives. */
    if (j->pid > 0) kill(-j->pid, SIGKILL);
}

static void spawn_job(uint32_t id, struct cursor *c) {
    uint32_t max_output = cur_u32(c);
    char *path = cur_cstr(c);
    char **argv = cur_strv(c);
    char **envp = cur_strv(c);
    uint32_t in_len = cur_u32(c);
    if (c->bad || (size_t)(c->end - c->p) != in_len || !argv || !argv[0]) {
        reply_error(id, EINVAL, "malformed spawn request%s (%s)", "");
        goto out;
    }
    int in[2], outp[2], errp[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        reply_error(id, errno, "pipe for %s: %s", path);
        goto out;
    }
    if (pipe2(outp, O_CLOEXEC) < 0) {
        reply_error(id, errno, "pipe for %s: %s", path);
        close(in[0]), close(in[1]);
        goto out;
    }
    if (pipe2(errp, O_CLOEXEC) < 0) {
        reply_error(id, errno, "pipe for %s: %s", path);
        close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
        goto out;
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    /* Our SIGPIPE is ignored and SIGCHLD blocked; a plugin must start with neither. */
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    /* Own session and process group, so a kill reaches the plugin's children (bridge → host-local). */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]), close(outp[1]), close(errp[1]);
    if (rc != 0) {
        close(in[1]), close(outp[0]), close(errp[0]);
        reply_error(id, rc, "failed to start %s: %s", path);
        goto out;
    }

    struct job *j = calloc(1, sizeof *j);
    if (!j) die("out of memory");
    j->id = id;
    j->pid = pid;
    j->in_fd = in[1];
    j->out_fd = outp[0];
    j->err_fd = errp[0];
    j->max_output = max_output;
    j->in_len = in_len;
    if (in_len) {
        j->in_data = malloc(in_len);
        if (!j->in_data) die("out of memory");
        memcpy(j->in_data, c->p, in_len);
    } else {
        close_fd(&j->in_fd);
    }
    set_nonblock(j->out_fd);
    set_nonblock(j->err_fd);
    if (j->in_fd >= 0) set_nonblock(j->in_fd);
    j->next = jobs;
    jobs = j;

    struct buf p = {0};
    buf_u32(&p, (uint32_t)pid);
    reply(id, REP_STARTED, &p);
    free(p.p);
out:
    free(path);
    free_strv(argv);
    free_strv(envp);
}

static void netns_create(uint32_t id, const char *path) {
    if (orig_netns < 0) {
        reply_error(id, EPERM, "cannot create network namespace %s: no handle on the helper's own namespace (%s)", path);
        return;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        reply_error(id, errno, "unshare for %s: %s", path);
        return;
    }
    int rc = mount("/proc/self/ns/net", path, "none", MS_BIND, NULL);
    int err = errno;
    /* Back to the host namespace before anything else: every later spawn inherits it. */
    if (setns(orig_netns, CLONE_NEWNET) < 0) die("setns back to the original network namespace");
    if (rc < 0)
        reply_error(id, err, "bind-mount network namespace on %s: %s", path);
    else
        reply(id, REP_OK, NULL);
}

/* Interface counters of a pod, read with a setns() of the helper itself rather than a process
 * started in the namespace: /proc/self/net follows the reader's network namespace. The helper
 * is single-threaded, so nothing else runs while it is away from its own namespace. */
static void netns_read_netdev(uint32_t id, const char *path) {
    if (orig_netns < 0) {
        reply_error(id, EPERM, "cannot enter network namespace %s: no handle on the helper's own namespace (%s)", path);
        return;
    }
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        reply_error(id, errno, "open network namespace %s: %s", path);
        return;
    }
    if (setns(ns, CLONE_NEWNET) < 0) {
        int err = errno;
        close(ns);
        reply_error(id, err, "enter network namespace %s: %s", path);
        return;
    }
    close(ns);
    struct buf data = {0};
    int err = 0;
    int fd = open("/proc/self/net/dev", O_RDONLY | O_CLOEXEC);
    if (fd < 0) err = errno;
    while (fd >= 0) {
        buf_reserve(&data, READ_CHUNK);
        ssize_t r = read(fd, data.p + data.len, READ_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        data.len += (size_t)r;
        if (data.len > MAX_NETDEV) {
            err = EFBIG;
            break;
        }
    }
    if (fd >= 0) close(fd);
    /* Back to the host namespace before anything else: every later spawn inherits it. */
    if (setns(orig_netns, CLONE_NEWNET) < 0) die("setns back to the original network namespace");
    if (err) {
        reply_error(id, err, "read /proc/net/dev in network namespace %s: %s", path);
    } else {
        struct buf p = {0};
        buf_str(&p, data.p, data.len);
        reply(id, REP_DATA, &p);
        free(p.p);
    }
    free(data.p);
}

static void handle_frame(uint32_t id, uint8_t type, const uint8_t *p, size_t n) {
    struct cursor c = {p, p + n, 0};
    if (type == REQ_SPAWN) {
        spawn_job(id, &c);
    } else if (type == REQ_NETNS || type == REQ_UMOUNT || type == REQ_NETDEV) {
        char *path = cur_cstr(&c);
        if (c.bad || c.p != c.end || !path || path[0] != '/') {
            reply_error(id, EINVAL, "malformed namespace request%s (%s)", "");
        } else if (type == REQ_NETNS) {
            netns_create(id, path);
        } else if (type == REQ_NETDEV) {
            netns_read_netdev(id, path);
        } else if (umount2(path, MNT_DETACH) < 0) {
            reply_error(id, errno, "unmount %s: %s", path);
        } else {
            reply(id, REP_OK, NULL);
        }
        free(path);
    } else if (type == REQ_KILL) {
        for (struct job *j = jobs; j; j = j->next)
            if (j->id == id) kill_group(j);
    } else {
        reply_error(id, EINVAL, "unknown request type%s (%s)", "");
    }
}

/* Consumes whole frames from the request buffer. */
static void drain_requests(void) {
    size_t off = 0;
    while (inbuf.len - off >= 4) {
        const uint8_t *f = inbuf.p + off;
        uint32_t len = (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 24;
        if (len < 5 || len > MAX_FRAME) {
            errno = EPROTO;
            die("bad frame length");
        }
        if (inbuf.len - off - 4 < len) break;
        uint32_t id = (uint32_t)f[4] | (uint32_t)f[5] << 8 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 24;
        handle_frame(id, f[8], f + 9, len - 5);
        off += 4 + len;
    }
    memmove(inbuf.p, inbuf.p + off, inbuf.len - off);
    inbuf.len -= off;
}

static void read_output(struct job *j, int *fd, struct buf *b) {
    for (;;) {
        buf_reserve(b, READ_CHUNK);
        ssize_t r = read(*fd, b->p + b->len, READ_CHUNK);
        if (r > 0) {
            b->len += (size_t)r;
            if (j->out.len + j->err.len > j->max_output) {
                /* Past the bound: stop reading and kill; podnetd reports the overflow. */
                j->overflowed = 1;
                kill_group(j);
                close_fd(&j->out_fd);
                close_fd(&j->err_fd);
                return;
            }
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        close_fd(fd); /* EOF or error */
        return;
    }
}

static void write_input(struct job *j) {
    while (j->in_off < j->in_len) {
        ssize_t w = write(j->in_fd, j->in_data + j->in_off, j->in_len - j->in_off);
        if (w > 0) {
            j->in_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        break; /* EPIPE: the plugin stopped reading; that is its business */
    }
    close_fd(&j->in_fd);
}

static void reap(void) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (struct job *j = jobs; j; j = j->next) {
            if (j->pid == pid) {
                j->exited = 1;
                j->status = st;
            }
        }
    }
}

/* A job is done when the plugin was reaped and both of its outputs reached EOF. */
static void finish_jobs(void) {
    struct job **pp = &jobs;
    while (*pp) {
        struct job *j = *pp;
        if (!j->exited || j->out_fd >= 0 || j->err_fd >= 0) {
            pp = &j->next;
            continue;
        }
        close_fd(&j->in_fd);
        struct buf p = {0};
        uint8_t how = WIFSIGNALED(j->status) ? 1 : 0;
        buf_put(&p, &how, 1);
        buf_u32(&p, (uint32_t)(how ? WTERMSIG(j->status) : WEXITSTATUS(j->status)));
        uint8_t over = (uint8_t)j->overflowed;
        buf_put(&p, &over, 1);
        buf_str(&p, j->out.p, j->out.len);
        buf_str(&p, j->err.p, j->err.len);
        reply(j->id, REP_EXITED, &p);
        free(p.p);
        *pp = j->next;
        free(j->in_data);
        free(j->out.p);
        free(j->err.p);
        free(j);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd");
    orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    set_nonblock(0);

    struct pollfd *pfd = NULL;
    struct job **owner = NULL;
    size_t pcap = 0;
    for (;;) {
        size_t njobs = 0;
        for (struct job *j = jobs; j; j = j->next) njobs++;
        size_t need = 2 + 3 * njobs;
        if (need > pcap) {
            pcap = need * 2;
            pfd = realloc(pfd, pcap * sizeof *pfd);
            owner = realloc(owner, pcap * sizeof *owner);
            if (!pfd || !owner) die("out of memory");
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        for (struct job *j = jobs; j; j = j->next) {
            if (j->in_fd >= 0) owner[n] = j, pfd[n++] = (struct pollfd){.fd = j->in_fd, .events = POLLOUT};
            if (j->out_fd >= 0) owner[n] = j, pfd[n++] = (struct pollfd){.fd = j->out_fd, .events = POLLIN};
            if (j->err_fd >= 0) owner[n] = j, pfd[n++] = (struct pollfd){.fd = j->err_fd, .events = POLLIN};
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        for (size_t i = 2; i < n; i++) {
            if (!pfd[i].revents) continue;
            struct job *j = owner[i];
            if (pfd[i].fd == j->in_fd) write_input(j);
            else if (pfd[i].fd == j->out_fd) read_output(j, &j->out_fd, &j->out);
            else if (pfd[i].fd == j->err_fd) read_output(j, &j->err_fd, &j->err);
        }
        if (pfd[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
            }
            reap();
        }
        if (pfd[0].revents) {
            for (;;) {
                buf_reserve(&inbuf, READ_CHUNK);
                ssize_t r = read(0, inbuf.p + inbuf.len, READ_CHUNK);
                if (r > 0) {
                    inbuf.len += (size_t)r;
                    continue;
                }
                if (r < 0 && errno == EINTR) continue;
                if (r < 0 && errno == EAGAIN) break;
                /* EOF: podnetd is gone; see the top of this file. */
                exit(0);
            }
            drain_requests();
        }
        finish_jobs();
    }
}
