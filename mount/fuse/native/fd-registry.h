/* A map from FUSE file handle to a local descriptor that reader threads may pread natively. */
#ifndef VDFS_FD_REGISTRY_H
#define VDFS_FD_REGISTRY_H
#include <stdint.h>
#include <pthread.h>

#define REGISTRY_BUCKETS 1024

struct reg_node {
  uint64_t fh;
  int fd;
  int writable;
  struct reg_node *next;
};

struct fd_registry {
  pthread_rwlock_t lock;
  struct reg_node *buckets[REGISTRY_BUCKETS];
};

void registry_init(struct fd_registry *r);
void registry_destroy(struct fd_registry *r);
/* Replaces any earlier descriptor of fh. Returns 0 or -ENOMEM. */
int registry_put(struct fd_registry *r, uint64_t fh, int fd, int writable);
void registry_remove(struct fd_registry *r, uint64_t fh);
/*
 * Reads natively when fh is registered: holds the read lock across the pread so that
 * unregistering (before JS closes the descriptor) waits for reads in flight.
 * Returns 1 and sets *result (bytes or -errno) when fh was registered, 0 otherwise.
 */
int registry_pread(struct fd_registry *r, uint64_t fh, char *buf, size_t size, uint64_t offset, ssize_t *result);
/* SEEK_DATA/SEEK_HOLE (or any whence) on a registered descriptor; same return convention. */
int registry_lseek(struct fd_registry *r, uint64_t fh, int64_t offset, int whence, int64_t *result);
/* pwrite of all of data when fh is registered writable; same return convention as registry_pread. */
int registry_pwrite(struct fd_registry *r, uint64_t fh, const char *data, size_t size, uint64_t offset, ssize_t *result);
#endif
