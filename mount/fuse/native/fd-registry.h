/* A map from FUSE file handle to a local descriptor that reader threads may pread natively. */
#ifndef VDFS_FD_REGISTRY_H
#define VDFS_FD_REGISTRY_H
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define REGISTRY_BUCKETS 1024

struct reg_node {
  uint64_t fh;
  int fd;
  int writable;
  /* The kernel node of a local file whose metadata the reader threads answer through this descriptor (0: none). */
  uint64_t nodeid;
  /* Write-behind (registry_write_behind): where the last write ended, and where the sequential run's bytes not yet handed to writeback start. */
  _Atomic uint64_t wb_end;
  _Atomic uint64_t wb_from;
  struct reg_node *next;
};

struct fd_registry {
  pthread_rwlock_t lock;
  struct reg_node *buckets[REGISTRY_BUCKETS];
  /* Writable and read-only entries with a nodeid: lookups by node are skipped while there are none. */
  int node_writers;
  int node_readers;
  /* A reader thread is in sync_file_range (registry_write_behind): one at a time, so a slow disk holds up one reader, not all. */
  atomic_int wb_busy;
};

/* What a handle is in the registry (registry_kind). */
#define REG_NONE 0
#define REG_READ 1
#define REG_WRITE 2
#define REG_WRITE_META 3
#define REG_READ_META 4

void registry_init(struct fd_registry *r);
void registry_destroy(struct fd_registry *r);
/*
 * Replaces any earlier descriptor of fh. `nodeid` (else 0): the kernel node of a local file
 * whose SETATTR, GETATTR and FLUSH the reader threads may answer through a writable fh, or
 * whose owner and mode through a read-only one (native-meta.c). Returns 0 or -ENOMEM.
 */
int registry_put(struct fd_registry *r, uint64_t fh, int fd, int writable, uint64_t nodeid);
/* REG_NONE, REG_READ, REG_WRITE, REG_WRITE_META or REG_READ_META (the last two registered with a nodeid). */
int registry_kind(struct fd_registry *r, uint64_t fh);
/*
 * A writable handle registered for `nodeid`: returns 1 with *fh and *fd set and the read lock
 * held (the descriptor stays open until registry_unhold), 0 when there is none.
 */
int registry_hold_writer(struct fd_registry *r, uint64_t nodeid, uint64_t *fh, int *fd);
/* registry_hold_writer for a read-only handle registered with `nodeid`. */
int registry_hold_reader(struct fd_registry *r, uint64_t nodeid, uint64_t *fh, int *fd);
void registry_unhold(struct fd_registry *r);
/* fh's node is no longer answered natively (its RELEASE is on the way to JS); reads and writes still are. */
void registry_drop_meta(struct fd_registry *r, uint64_t fh);
void registry_remove(struct fd_registry *r, uint64_t fh);
/*
 * Reads natively when fh is registered: holds the read lock across the pread so that
 * unregistering (before JS closes the descriptor) waits for reads in flight.
 * Returns 1 and sets *result (bytes or -errno) when fh was registered, 0 otherwise. With
 * `nowait`, reads only what is in the page cache (RWF_NOWAIT): returns 2, *result untouched,
 * when any of it would have to wait for the disk, or on any error (tmpfs: no RWF_NOWAIT).
 */
int registry_pread(struct fd_registry *r, uint64_t fh, char *buf, size_t size, uint64_t offset, int nowait, ssize_t *result);
/* SEEK_DATA/SEEK_HOLE (or any whence) on a registered descriptor; same return convention. */
int registry_lseek(struct fd_registry *r, uint64_t fh, int64_t offset, int whence, int64_t *result);
/* The writer of a FUSE_WRITE_KILL_SUIDGID write (a caller without CAP_FSETID). */
struct priv_killer {
  uint32_t pid;
  uint32_t gid;
  /* Set by registry_pwrite when it cleared a setuid or setgid bit (the kernel still caches the mode). */
  int killed;
};
/*
 * pwrite of all of data when fh is registered writable; same return convention as registry_pread.
 * With a killer (a direct-I/O write by a caller without CAP_FSETID), first clears setuid and
 * setgid as a write on the disk would (the kernel does it itself only for cached writes).
 */
int registry_pwrite(struct fd_registry *r, uint64_t fh, const char *data, size_t size, uint64_t offset, struct priv_killer *killer, ssize_t *result);
/* A sequential writer's bytes are handed to writeback (not waited for) once this many have gathered. */
#ifndef WRITE_BEHIND_WINDOW
#define WRITE_BEHIND_WINDOW (8u * 1024 * 1024)
#endif
/*
 * Called for a native write of [offset, offset + size) of fh before it is answered (so that the
 * writer's next write, which another reader may take, comes after): 1 with the range to hand to
 * writeback when the write continues the handle's sequential run and the run holds
 * WRITE_BEHIND_WINDOW bytes not yet handed over, and no other thread is handing bytes over (their
 * turn comes with a later write); 0 otherwise (a write elsewhere starts a new run). After 1, the
 * caller must call registry_write_behind.
 */
int registry_plan_write_behind(struct fd_registry *r, uint64_t fh, uint64_t offset, size_t size, uint64_t *from, uint64_t *len);
/*
 * After the write was answered: starts writeback of [from, from + len) of fh, if still registered
 * (sync_file_range SYNC_FILE_RANGE_WRITE, which does not wait for the disk), so that a later fsync
 * only waits for the tail. A hint: errors are ignored here (writeback errors still reach the
 * writer's fsync through the file).
 */
void registry_write_behind(struct fd_registry *r, uint64_t fh, uint64_t from, uint64_t len);
#endif
