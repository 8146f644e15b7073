/*
 * LD_PRELOAD shim for tests/power_cut.rs: after each successful fsync or fdatasync, appends
 * "<size> <path>\n" to the file named by INVMETRICS_SYNC_LOG, where size is the file's length
 * when the sync began. The power-cut test keeps at least that many bytes of the file: no
 * more than the disk had been told to keep.
 *
 * The line is written after the sync returns and before the caller sees the result, so
 * anything the caller acknowledges after a sync is covered by a line already in the log.
 *
 * For tests/sync_failure.rs: while the file named by INVMETRICS_FAIL_SYNC_IF exists, a sync
 * of a file whose name ends in "invocations.jsonl" fails with EIO, as a failing disk's does.
 * For tests/failed_cut.rs: the same for ftruncate while INVMETRICS_FAIL_TRUNCATE_IF exists.
 * For tests/hung_disk.rs: while INVMETRICS_HANG_WRITE_IF exists, a write to that file blocks,
 * as on a disk that stopped answering (for at most 30 s); "<trigger>.blocked" exists while
 * one is blocked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void log_sync(int fd, long long size) {
    const char *log = getenv("INVMETRICS_SYNC_LOG");
    if (log == NULL || size < 0) {
        return;
    }
    char link[64], target[4096], line[4200];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        return;
    }
    target[n] = '\0';
    int len = snprintf(line, sizeof line, "%lld %s\n", size, target);
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out >= 0) {
        /* One write with O_APPEND: lines from concurrent syncs never interleave. */
        ssize_t ignored = write(out, line, (size_t)len);
        (void)ignored;
        close(out);
    }
}

/* Whether this call on `fd` is to fail: the trigger file `variable` names exists (see above). */
static int should_fail_if(int fd, const char *variable) {
    const char *trigger = getenv(variable);
    if (trigger == NULL || access(trigger, F_OK) != 0) {
        return 0;
    }
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        return 0;
    }
    target[n] = '\0';
    const char *suffix = "invocations.jsonl";
    size_t len = strlen(target), suffix_len = strlen(suffix);
    return len >= suffix_len && strcmp(target + len - suffix_len, suffix) == 0;
}

static int should_fail(int fd) {
    return should_fail_if(fd, "INVMETRICS_FAIL_SYNC_IF");
}

static int truncate_fails(int fd) {
    return should_fail_if(fd, "INVMETRICS_FAIL_TRUNCATE_IF");
}

/* ftruncate and ftruncate64 (the name Rust's std calls): `real` from `name`, failing on
 * demand. */
static int truncate_with(const char *name, int fd, off_t length) {
    int (*real)(int, off_t) = (int (*)(int, off_t))dlsym(RTLD_NEXT, name);
    if (truncate_fails(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd, length);
}

int ftruncate(int fd, off_t length) {
    return truncate_with("ftruncate", fd, length);
}

int ftruncate64(int fd, off_t length) {
    return truncate_with("ftruncate64", fd, length);
}

static long long size_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
}

/* fsync and fdatasync: `real` from `name`, failing on demand, logged when they succeed. */
static int sync_with(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    long long size = size_of(fd);
    int result = real(fd);
    if (result == 0) {
        log_sync(fd, size);
    }
    return result;
}

int fsync(int fd) {
    return sync_with("fsync", fd);
}

int fdatasync(int fd) {
    return sync_with("fdatasync", fd);
}

/* write: blocks on demand (see above). */
ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*real)(int, const void *, size_t);
    if (real == NULL) {
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    }
    if (should_fail_if(fd, "INVMETRICS_HANG_WRITE_IF")) {
        const char *trigger = getenv("INVMETRICS_HANG_WRITE_IF");
        char marker[4200];
        snprintf(marker, sizeof marker, "%s.blocked", trigger);
        int m = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (m >= 0) {
            close(m);
        }
        for (int i = 0; i < 3000 && access(trigger, F_OK) == 0; i++) {
            usleep(10000);
        }
        unlink(marker);
    }
    return real(fd, buf, count);
}
