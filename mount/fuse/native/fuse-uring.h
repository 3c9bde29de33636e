/*
 * FUSE over io_uring (Linux >= 6.14, module parameter fuse.enable_uring): one queue per CPU,
 * served by a thread pinned to that CPU, so a request is answered on the CPU that made it
 * (no cross-CPU wake-up). See fuse-uring.c and docs/fuse.md "FUSE over io_uring".
 */
#ifndef VDFS_FUSE_URING_H
#define VDFS_FUSE_URING_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* INIT flag (flags2 bit 9), protocol 7.42; not in Debian 12's linux/fuse.h. */
#define VDFS_INIT2_OVER_IO_URING (1u << 9)

/*
 * Handles one request taken off a ring, on that queue's thread: `req` is the request laid out as
 * read(2) of /dev/fuse gives it (`len` bytes), `out_buf` scratch room of at least 1 MiB for a
 * READ's data (a READ's request does not overlap it). Replies go through vdfs_send_reply (this
 * thread) or uring_reply (any thread, after a hand-over to JS).
 */
typedef void (*uring_handler)(void *arg, char *req, size_t len, char *out_buf);

struct fuse_uring;

/*
 * Sets up a ring and its entries per possible CPU for the /dev/fuse descriptor `devfd`, before
 * INIT is answered with FUSE_OVER_IO_URING: once that is sent, the kernel holds every request
 * until all queues registered, so nothing may fail after it. NULL and *err = errno when it cannot.
 */
struct fuse_uring *uring_prepare(int devfd, uring_handler handler, void *arg, int *err);
/* After INIT's reply was written: starts the queue threads, which register the entries. 0 or -errno. */
int uring_run(struct fuse_uring *u);
/* A reply to a request a queue thread handed over: 1 when it was one (committed through its ring entry), 0 when `buf` answers no ring request. */
int uring_reply(struct fuse_uring *u, const void *buf, size_t len);
/* Wakes and joins the queue threads and closes the rings (the kernel cancels the entries). Frees u. */
void uring_stop(struct fuse_uring *u);
/* Requests taken off the rings, and queues registered. */
uint64_t uring_requests(const struct fuse_uring *u);
int uring_queues(const struct fuse_uring *u);
/* Requests taken off queue `qid` (the ring of CPU qid). */
uint64_t uring_queue_requests(const struct fuse_uring *u, int qid);
/* Requests a queue thread found while yielding after the previous one (SPIN_NS), instead of sleeping. */
uint64_t uring_spin_hits(const struct fuse_uring *u);
/* Replies from JS queued while their queue's thread was yielding (no eventfd write needed). */
uint64_t uring_quiet_replies(const struct fuse_uring *u);

/*
 * Writes a reply: into the ring entry this thread is handling when it is a queue thread in the
 * middle of a ring request, else writev(devfd). 0 or -errno.
 */
int vdfs_send_reply(int devfd, const struct iovec *iov, int cnt);
/*
 * On a queue thread that has just replied with vdfs_send_reply: commits that reply now, so the
 * caller goes on while this thread does work after the reply (write-behind). Over /dev/fuse the
 * reply is already written: a no-op. Nothing may be replied after it.
 */
void vdfs_reply_now(void);
#endif
