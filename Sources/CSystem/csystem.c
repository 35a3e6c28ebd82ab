#define _GNU_SOURCE
#include "csystem.h"
#include <errno.h>
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
