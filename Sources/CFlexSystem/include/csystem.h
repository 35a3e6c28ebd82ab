// CFlexSystem: the few POSIX/glibc calls the board-side executables need, with names that are
// safe to import into both host Swift and Embedded Swift (no macros, no mutable globals).
#ifndef FLEXMOE_CSYSTEM_H
#define FLEXMOE_CSYSTEM_H
#include <stddef.h>
#include <stdint.h>

/// Process arguments, captured by a constructor (glibc passes argc/argv to .init_array),
/// because Embedded Swift has no CommandLine.
int csys_argc(void);
const char *csys_arg(int index);

/// Write bytes to standard output / standard error (unbuffered for stderr).
void csys_write_stdout(const char *bytes, size_t count);
void csys_write_stderr(const char *bytes, size_t count);
void csys_flush_stdout(void);

/// Terminate the process with an exit code after flushing stdout.
void csys_exit(int code) __attribute__((noreturn));

/// Monotonic clock in nanoseconds.
uint64_t csys_monotonic_ns(void);

/// Environment lookup; NULL when unset.
const char *csys_getenv(const char *name);

/// Whole-file I/O. Reads at most `capacity` bytes; returns the number read, or -1 with errno text
/// available from csys_last_error(). A file larger than capacity returns -2.
long long csys_file_size(const char *path);
long long csys_read_file(const char *path, void *buffer, size_t capacity);
/// Writes atomically: to path.tmp, fsync, rename over path, fsync the directory. 0 on success.
int csys_write_file_atomic(const char *path, const void *bytes, size_t count);
const char *csys_last_error(void);
/// The names in directory `path` (without "." and ".."), each followed by a NUL, in `buffer`.
/// Returns the bytes written; -1 when `path` is not a readable directory; -2 when `capacity` is too small.
long long csys_list_directory(const char *path, char *buffer, size_t capacity);

/// Peak resident set size (VmHWM) and current RSS of this process in bytes, from /proc/self/status;
/// -1 when unavailable.
long long csys_peak_rss_bytes(void);
long long csys_current_rss_bytes(void);
/// Resets VmHWM to the current RSS (Linux: "5" into /proc/self/clear_refs); 0 on success.
int csys_reset_peak_rss(void);

/// Sleep for a number of milliseconds (returns early on a signal).
void csys_sleep_ms(int ms);

/// SIGTERM/SIGINT set a flag instead of killing the process, so the agent finishes cleanly;
/// SIGPIPE is ignored (a closed socket is an error return, not a death).
void csys_install_stop_handlers(void);
int csys_stop_requested(void);

/// TCP client sockets with timeouts. Return values: >= 0 success (fd or byte count), -1 error
/// (see csys_last_error), -2 timeout. csys_tcp_recv returns 0 at end of stream.
int csys_tcp_connect(const char *host, int port, int timeout_ms);
long long csys_tcp_send_all(int fd, const void *bytes, size_t count, int timeout_ms);
long long csys_tcp_recv(int fd, void *buffer, size_t capacity, int timeout_ms);
void csys_close(int fd);

#endif
