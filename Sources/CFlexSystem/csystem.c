#define _GNU_SOURCE
#include "csystem.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int saved_argc;
static char **saved_argv;

__attribute__((constructor)) static void csys_save_args(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
}

int csys_argc(void) { return saved_argc; }
const char *csys_arg(int index) {
    return (index >= 0 && index < saved_argc) ? saved_argv[index] : NULL;
}

void csys_write_stdout(const char *bytes, size_t count) { fwrite(bytes, 1, count, stdout); }
void csys_write_stderr(const char *bytes, size_t count) {
    fflush(stdout);
    fwrite(bytes, 1, count, stderr);
}
void csys_flush_stdout(void) { fflush(stdout); }
void csys_exit(int code) {
    fflush(stdout);
    exit(code);
}

uint64_t csys_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *csys_getenv(const char *name) { return getenv(name); }

static _Thread_local int last_errno;
const char *csys_last_error(void) { return strerror(last_errno); }

long long csys_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { last_errno = errno; return -1; }
    return (long long)st.st_size;
}

long long csys_read_file(const char *path, void *buffer, size_t capacity) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { last_errno = errno; return -1; }
    size_t total = 0;
    for (;;) {
        if (total == capacity) {
            char probe;
            ssize_t extra = read(fd, &probe, 1);
            close(fd);
            return extra > 0 ? -2 : (long long)total;
        }
        ssize_t n = read(fd, (char *)buffer + total, capacity - total);
        if (n < 0) {
            if (errno == EINTR) continue;
            last_errno = errno; close(fd); return -1;
        }
        if (n == 0) break;
        total += (size_t)n;
    }
    close(fd);
    return (long long)total;
}

int csys_write_file_atomic(const char *path, const void *bytes, size_t count) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp) { last_errno = ENOMEM; return -1; }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { last_errno = errno; free(tmp); return -1; }
    size_t done = 0;
    while (done < count) {
        ssize_t n = write(fd, (const char *)bytes + done, count - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            last_errno = errno; close(fd); unlink(tmp); free(tmp); return -1;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) { last_errno = errno; unlink(tmp); free(tmp); return -1; }
    if (rename(tmp, path) != 0) { last_errno = errno; unlink(tmp); free(tmp); return -1; }
    free(tmp);
    /* fsync the directory so the rename itself is durable */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = ".";
        if (slash == dir) d = "/"; else if (slash) { *slash = 0; d = dir; }
        int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        free(dir);
    }
    return 0;
}

static long long status_field_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t flen = strlen(field);
    long long value = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            value = strtoll(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value < 0 ? -1 : value * 1024;
}

long long csys_peak_rss_bytes(void) { return status_field_kib("VmHWM"); }
long long csys_current_rss_bytes(void) { return status_field_kib("VmRSS"); }

void csys_sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig) { (void)sig; stop_flag = 1; }

void csys_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int csys_stop_requested(void) { return stop_flag != 0; }

/* Waits until fd is ready for `events`; 1 ready, -2 timeout, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd p = { fd, events, 0 };
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r > 0) return 1;
        if (r == 0) return -2;
        if (errno != EINTR) { last_errno = errno; return -1; }
    }
}

int csys_tcp_connect(const char *host, int port, int timeout_ms) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) { last_errno = EHOSTUNREACH; return -1; }
    int result = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) { last_errno = errno; continue; }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            r = wait_fd(fd, POLLOUT, timeout_ms);
            if (r == 1) {
                int err = 0; socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err == 0) r = 0; else { last_errno = err; r = -1; }
            }
        } else if (r != 0) {
            last_errno = errno;
        }
        if (r == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            result = fd;
            break;
        }
        close(fd);
        result = r == -2 ? -2 : -1;
    }
    freeaddrinfo(res);
    return result;
}

long long csys_tcp_send_all(int fd, const void *bytes, size_t count, int timeout_ms) {
    size_t done = 0;
    while (done < count) {
        ssize_t n = send(fd, (const char *)bytes + done, count - done, MSG_NOSIGNAL);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, timeout_ms);
            if (w != 1) return w;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        last_errno = errno;
        return -1;
    }
    return (long long)done;
}

long long csys_tcp_recv(int fd, void *buffer, size_t capacity, int timeout_ms) {
    for (;;) {
        ssize_t n = recv(fd, buffer, capacity, 0);
        if (n >= 0) return (long long)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, timeout_ms);
            if (w != 1) return w;
            continue;
        }
        if (errno == EINTR) continue;
        last_errno = errno;
        return -1;
    }
}

void csys_close(int fd) { if (fd >= 0) close(fd); }

int csys_reset_peak_rss(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) { last_errno = errno; return -1; }
    ssize_t n = write(fd, "5", 1);
    if (n != 1) last_errno = errno;
    close(fd);
    return n == 1 ? 0 : -1;
}

long long csys_list_directory(const char *path, char *buffer, size_t capacity) {
    DIR *dir = opendir(path);
    if (!dir) { last_errno = errno; return -1; }
    size_t used = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        size_t n = strlen(name) + 1;
        if (capacity - used < n) { closedir(dir); return -2; }
        memcpy(buffer + used, name, n);
        used += n;
    }
    closedir(dir);
    return (long long)used;
}
