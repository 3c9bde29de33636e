/*
 * Per FUSE file handle: the verified block files of content read through the block cache.
 * Reader threads answer READs that fall inside registered blocks by pread on those files; any
 * other READ (a block not registered, or a block file gone or short) goes to JS.
 */
#ifndef VDFS_BLOCK_REGISTRY_H
#define VDFS_BLOCK_REGISTRY_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define BLOCK_BUCKETS 256

struct block_map {
  uint64_t fh;
  uint64_t size;
  uint32_t block_size;
  uint32_t nblocks;
  char **files; /* absolute path of block i's file, or NULL */
  /*
   * The descriptor of the block read last, kept open so that sequential READs of one block
   * share the kernel's readahead state of its file (an open per READ started it afresh).
   */
  pthread_mutex_t slot_mu;
  int64_t slot_index;
  int slot_fd;
  int slot_users;
  /* The last block whose file was advised WILLNEED (prefetch_after); under slot_mu. */
  int64_t advised;
  /* The highest block a native READ has covered (-1: none yet). */
  _Atomic int64_t reached;
  /* JS asked to be told once native READs reach this block (-1: not asked; block_registry_wake). */
  _Atomic int64_t wake_at;
  /*
   * The registry's reference (dropped when fh is removed) plus one per READ in flight: a READ
   * reads its files without the registry's lock, so JS registering the next blocks never
   * waits for a disk read; whoever drops the last reference frees the map.
   */
  _Atomic int refs;
  struct block_map *next;
};

struct block_registry {
  pthread_rwlock_t lock;
  struct block_map *buckets[BLOCK_BUCKETS];
};

void block_registry_init(struct block_registry *r);
void block_registry_destroy(struct block_registry *r);
/* A handle of `size` bytes in blocks of `block_size`, no block registered yet. 0, -EINVAL or -ENOMEM. */
int block_registry_add(struct block_registry *r, uint64_t fh, uint32_t block_size, uint64_t size);
/*
 * Block `index` of fh is the file at `path` (NULL: not any more). 0, -ENOENT (fh unknown), -EINVAL,
 * -ENOMEM. No READ opens the old file once this returns; one in flight may finish from the
 * descriptor it opened before (block files are never changed in place, only unlinked).
 */
int block_registry_set(struct block_registry *r, uint64_t fh, uint32_t index, const char *path);
/* Forgets fh; a READ in flight finishes with what it opened (the last one frees the map). */
void block_registry_remove(struct block_registry *r, uint64_t fh);
/*
 * A READ of fh at [offset, offset+size): 1 with *result (bytes, or 0 at/after the end) when every
 * block it covers is registered and each file gave all its bytes; 0 otherwise (the caller hands
 * the request to JS). A block file that cannot be opened or is short is unregistered first.
 * *woke: the last block read when this READ reached the block JS asked to be woken at (the
 * caller tells JS), else -1.
 */
int block_registry_pread(struct block_registry *r, uint64_t fh, char *buf, size_t size, uint64_t offset, ssize_t *result, int64_t *woke);
/*
 * JS verifies block files ahead of a reader whose READs the addon answers: it asks to be told
 * when native READs of fh reach block `index`. Returns the highest block read natively when that
 * is already at or past `index` (nothing armed: JS goes on at once), -1 when armed, -ENOENT
 * when fh has no map. At most one of this return and a READ's *woke reports a given arming.
 */
int64_t block_registry_wake(struct block_registry *r, uint64_t fh, int64_t index);
#endif
