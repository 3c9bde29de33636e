/*
 * OPENDIR and RELEASEDIR of folders whose listing the kernel keeps, answered in the reader
 * threads (`git status` opens and closes every folder of the work tree each run): see
 * native-dirs.c.
 */
#ifndef VDFS_NATIVE_DIRS_H
#define VDFS_NATIVE_DIRS_H
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Handles of folders opened here carry this bit; JS's own handles count up from 1 (mount/fuse/dir-ops.ts). */
#define NATIVE_DIR_FH (1ull << 51)

/* Open addressing: a folder sits in one of FRESH_DIR_PROBES slots from its hash. */
#define FRESH_DIR_SLOTS 8192
#define FRESH_DIR_PROBES 8
struct fresh_dir {
  uint64_t nodeid;
  uint64_t gen;
  uint64_t expires_ns;
};

struct fresh_dirs {
  pthread_mutex_t mu;
  /* Moved by every change JS hears of (dirs_changed): a folder marked fresh before it is not any more. */
  uint64_t gen;
  uint64_t next_fh;
  struct fresh_dir slot[FRESH_DIR_SLOTS];
  /* Handles opened here that JS has read a listing through (dirs_adopt): their RELEASEDIR goes to JS. */
  uint64_t *adopted;
  size_t nadopted, cap;
};

void dirs_init(struct fresh_dirs *d);
/* Opens of `nodeid` within the next `ms` milliseconds are answered here (ms 0: not any more). */
void dirs_fresh(struct fresh_dirs *d, uint64_t nodeid, uint32_t ms);
/* Something changed: no folder is fresh any more until JS says so again. */
void dirs_changed(struct fresh_dirs *d);
/* JS keeps state for the handle `fh` (opened here): its RELEASEDIR goes to JS. 0 or -ENOMEM. */
int dirs_adopt(struct fresh_dirs *d, uint64_t fh);
/* Each returns 1 when it answered the request (n: its length), 0 when JS must. `devfd`: as vdfs_send_reply's. */
int dirs_try_opendir(struct fresh_dirs *d, int devfd, struct fuse_in_header *h, size_t n);
int dirs_try_releasedir(struct fresh_dirs *d, int devfd, struct fuse_in_header *h, size_t n);
#endif
