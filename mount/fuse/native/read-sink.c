#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>
#include "read-sink.h"

#define PIPE_BYTES (2 * 1024 * 1024)
#define PAGE 4096

static int sized_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  /* Above /proc/sys/fs/pipe-max-size (1 MiB unless raised) only with CAP_SYS_RESOURCE: then as much as allowed. */
  int got = fcntl(fds[0], F_SETPIPE_SZ, PIPE_BYTES);
  if (got < 0) got = fcntl(fds[0], F_SETPIPE_SZ, PIPE_BYTES / 2);
  if (got < 0) got = fcntl(fds[0], F_GETPIPE_SZ);
  return got;
}

void splice_pipes_open(struct splice_pipes *p) {
  p->max = 0;
  p->data[0] = p->data[1] = p->msg[0] = p->msg[1] = -1;
  int a = sized_pipe(p->data);
  int b = a > 0 ? sized_pipe(p->msg) : -1;
  if (a <= 0 || b <= 0) {
    splice_pipes_close(p);
    return;
  }
  /* A pipe slot holds at most a page: an unaligned READ takes one more, the header one. */
  size_t cap = (size_t)(a < b ? a : b);
  p->max = cap > 2 * PAGE ? cap - 2 * PAGE : 0;
}

void splice_pipes_close(struct splice_pipes *p) {
  for (int i = 0; i < 2; i++) {
    if (p->data[i] >= 0) close(p->data[i]);
    if (p->msg[i] >= 0) close(p->msg[i]);
    p->data[i] = p->msg[i] = -1;
  }
  p->max = 0;
}

static void drain(int fd) {
  static char sink[64 * 1024];
  while (read(fd, sink, sizeof sink) > 0) {
  }
}

void splice_pipes_drain(struct splice_pipes *p) {
  if (p->data[0] >= 0) drain(p->data[0]);
  if (p->msg[0] >= 0) drain(p->msg[0]);
}

/* Whether the byte at off is in the page cache (a read of it would not wait for the disk). */
static int cached(int fd, uint64_t off) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  return preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT) >= 0 || errno != EAGAIN;
}

ssize_t sink_read(struct read_sink *k, int fd, size_t at, size_t len, uint64_t off) {
  /* Spliced only from the page cache: from a cold file, splice waited for the disk page by page
   * and a cold re-read of cached blocks ran at ~0.75x of pread's speed. Decided at the first
   * byte, before anything went into the pipe. */
  if (k->pipes && at == 0 && !cached(fd, off)) k->pipes = NULL;
  size_t got = 0;
  while (got < len) {
    ssize_t n;
    if (k->pipes) {
      loff_t from = (loff_t)(off + got);
      n = splice(fd, &from, k->pipes->data[1], NULL, len - got, SPLICE_F_MOVE);
    } else {
      n = pread(fd, k->buf + at + got, len - got, (off_t)(off + got));
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return got > 0 ? (ssize_t)got : -errno;
    if (n == 0) break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

int splice_reply(struct splice_pipes *p, int devfd, uint64_t unique, size_t got) {
  struct fuse_out_header out = {.len = (uint32_t)(sizeof out + got), .unique = unique};
  if (write(p->msg[1], &out, sizeof out) != (ssize_t)sizeof out) return -EIO;
  for (size_t moved = 0; moved < got;) {
    /* Pipe to pipe moves the page references: still no copy of the bytes. */
    ssize_t n = splice(p->data[0], NULL, p->msg[1], NULL, got - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EIO;
    moved += (size_t)n;
  }
  /* The device takes a whole reply per call; it copies the pages into the reader's pages once. */
  for (;;) {
    ssize_t n = splice(p->msg[0], NULL, devfd, NULL, sizeof out + got, SPLICE_F_MOVE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    return (size_t)n == sizeof out + got ? 0 : -EIO;
  }
}
