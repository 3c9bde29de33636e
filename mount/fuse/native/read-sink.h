/*
 * Where a native READ's bytes go: a buffer (pread, then writev of the reply), or a pipe that
 * the reply is spliced from (the page cache's pages are referenced, not copied, on the way in).
 */
#ifndef VDFS_READ_SINK_H
#define VDFS_READ_SINK_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Two pipes per reader thread: `data` takes a READ's bytes, `msg` the reply (header, then the data moved over). */
struct splice_pipes {
  int data[2];
  int msg[2];
  size_t max; /* the largest READ that fits (0: splicing is off) */
};

struct read_sink {
  char *buf;                   /* bytes land at buf + at, or */
  struct splice_pipes *pipes;  /* (when set) they are appended to pipes->data in order */
};

/* Opens the pipes (2 MiB each as root; as large as allowed otherwise); max 0 when that failed. */
void splice_pipes_open(struct splice_pipes *p);
void splice_pipes_close(struct splice_pipes *p);
/* Empties both pipes (after a failed or abandoned reply), so the next READ starts clean. */
void splice_pipes_drain(struct splice_pipes *p);
/*
 * [off, off+len) of fd into the sink (buf + at, or the data pipe): the bytes moved, short only at
 * EOF, or -errno. The first call of a READ (at 0) turns a pipe sink into a buffer one when the
 * byte at off is not in the page cache; the caller looks at k->pipes afterwards.
 */
ssize_t sink_read(struct read_sink *k, int fd, size_t at, size_t len, uint64_t off);
/* The reply to `unique`: its header, then the `got` bytes waiting in the data pipe, in one splice to devfd. 0 or -errno. */
int splice_reply(struct splice_pipes *p, int devfd, uint64_t unique, size_t got);
#endif
