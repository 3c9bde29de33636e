/*
 * Metadata of local files open for writing, answered in the reader threads (`tar x` sends
 * three SETATTRs, a GETATTR or two and a FLUSH per file): see native-meta.c.
 */
#ifndef VDFS_NATIVE_META_H
#define VDFS_NATIVE_META_H
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "fd-registry.h"

/* Notes handed to JS (not kernel opcodes), queued before the reply they follow. */
#define VDFS_OP_SETATTR_DONE 0x40000002u
#define VDFS_OP_FLUSHED 0x40000003u

/*
 * What the file's fstat said after a natively answered SETATTR, appended to its note (after the
 * fuse_setattr_in) so JS records owner, mode and times without an fstat of its own (tar sends
 * three SETATTRs per file). Read by mount/fuse/native-server.ts (notedStat); `ok` is 0 when the
 * fstat failed.
 */
struct vdfs_noted_stat {
  uint64_t dev, ino, size;
  int64_t atime_sec, mtime_sec, ctime_sec;
  uint32_t atime_nsec, mtime_nsec, ctime_nsec;
  uint32_t mode, uid, gid, nlink, ok;
};

/*
 * The attributes JS worked out for a folder it just created a file in, for the one GETATTR of
 * that folder the kernel sends next (a CREATE makes it drop the folder's attributes, and the
 * next permission check in it asks again: once per file of a `tar x`). Used once, within
 * PRIMED_NS; JS takes it back (meta_unprime) when it changes the folder otherwise.
 */
#define PRIMED_SLOTS 64
struct primed_attr {
  uint64_t nodeid;
  uint64_t expires_ns;
  struct fuse_attr_out out;
};
struct primed_attrs {
  pthread_mutex_t mu;
  struct primed_attr slot[PRIMED_SLOTS];
};

struct meta_io {
  struct fd_registry *reg;
  struct primed_attrs *primed;
  int devfd;
  /* How long the kernel may cache the attributes of a reply, as the JS replies say. */
  uint64_t attr_ttl_sec;
  uint32_t attr_ttl_nsec;
  /* Queues a note for JS (a copy is made); called before the reply is written. */
  void (*note)(void *arg, const char *buf, size_t len);
  void *arg;
};

/* Each returns 1 when it answered the request (n: its length), 0 when JS must. */
int meta_try_setattr(const struct meta_io *io, struct fuse_in_header *h, size_t n);
int meta_try_getattr(const struct meta_io *io, struct fuse_in_header *h, size_t n);
int meta_try_flush(const struct meta_io *io, struct fuse_in_header *h, size_t n);
/* The next GETATTR of `nodeid` (within PRIMED_NS) is answered with `out`; meta_unprime takes it back. */
void meta_prime(struct primed_attrs *p, uint64_t nodeid, const struct fuse_attr_out *out);
void meta_unprime(struct primed_attrs *p, uint64_t nodeid);
#endif
