/*
 * A folder whose listing the kernel keeps (JS answered its OPENDIR with FOPEN_CACHE_DIR and,
 * while the listing is fresh, FOPEN_KEEP_CACHE: mount/fuse/dir-ops.ts) is opened and closed
 * without a READDIR. JS marks such a folder fresh until its listing is too old to reuse
 * (dirs_fresh); until then, or until anything changes (dirs_changed, on every change JS hears
 * of and every RMDIR and RENAME), its OPENDIR is answered here with the same flags and a handle
 * of our own, and that handle's RELEASEDIR too. Were the kernel's copy of the listing gone
 * (dropped pages), it sends READDIR on our handle: JS lists the folder then, adopts the
 * handle (dirs_adopt) and answers its RELEASEDIR itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include "native-dirs.h"
#include "fuse-uring.h"

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dirs_init(struct fresh_dirs *d) {
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, NULL);
  d->gen = 1;
}

static struct fresh_dir *probe(struct fresh_dirs *d, uint64_t nodeid, int i) {
  return &d->slot[((nodeid * 0x9E3779B97F4A7C15ull >> 32) + (uint64_t)i) % FRESH_DIR_SLOTS];
}

/* Marked fresh since the last change, and not expired. Under d->mu. */
static int live(const struct fresh_dirs *d, const struct fresh_dir *s, uint64_t now) { return s->nodeid && s->gen == d->gen && now < s->expires_ns; }

/* The live slot of `nodeid`, or NULL. Under d->mu. */
static struct fresh_dir *find(struct fresh_dirs *d, uint64_t nodeid, uint64_t now) {
  for (int i = 0; i < FRESH_DIR_PROBES; i++) {
    struct fresh_dir *s = probe(d, nodeid, i);
    if (s->nodeid == nodeid && live(d, s, now)) return s;
  }
  return NULL;
}

void dirs_fresh(struct fresh_dirs *d, uint64_t nodeid, uint32_t ms) {
  uint64_t now = mono_ns();
  pthread_mutex_lock(&d->mu);
  struct fresh_dir *s = find(d, nodeid, now);
  /* Else a slot that is not live (none: the first, whose folder is then opened by JS again). */
  for (int i = 0; !s && i < FRESH_DIR_PROBES; i++)
    if (!live(d, probe(d, nodeid, i), now)) s = probe(d, nodeid, i);
  if (!s && ms) s = probe(d, nodeid, 0);
  if (s && ms) *s = (struct fresh_dir){.nodeid = nodeid, .gen = d->gen, .expires_ns = now + (uint64_t)ms * 1000000ull};
  else if (s && s->nodeid == nodeid) s->nodeid = 0;
  pthread_mutex_unlock(&d->mu);
}

void dirs_changed(struct fresh_dirs *d) {
  pthread_mutex_lock(&d->mu);
  d->gen++;
  pthread_mutex_unlock(&d->mu);
}

int dirs_adopt(struct fresh_dirs *d, uint64_t fh) {
  int rc = 0;
  pthread_mutex_lock(&d->mu);
  if (d->nadopted == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    uint64_t *a = realloc(d->adopted, cap * sizeof *a);
    if (a) {
      d->adopted = a;
      d->cap = cap;
    }
  }
  if (d->nadopted < d->cap) d->adopted[d->nadopted++] = fh;
  else rc = -ENOMEM;
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* Takes `fh` out of the adopted ones; 1 when it was there. Under d->mu. */
static int take_adopted(struct fresh_dirs *d, uint64_t fh) {
  for (size_t i = 0; i < d->nadopted; i++) {
    if (d->adopted[i] == fh) {
      d->adopted[i] = d->adopted[--d->nadopted];
      return 1;
    }
  }
  return 0;
}

int dirs_try_opendir(struct fresh_dirs *d, int devfd, struct fuse_in_header *h, size_t n) {
  if (n < sizeof *h + sizeof(struct fuse_open_in) || h->nodeid == 0) return 0;
  uint64_t fh = 0, now = mono_ns();
  pthread_mutex_lock(&d->mu);
  if (find(d, h->nodeid, now)) fh = NATIVE_DIR_FH | ++d->next_fh;
  pthread_mutex_unlock(&d->mu);
  if (!fh) return 0;
  struct fuse_out_header out = {.len = sizeof out + sizeof(struct fuse_open_out), .unique = h->unique};
  struct fuse_open_out oo = {.fh = fh, .open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE};
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &oo, .iov_len = sizeof oo}};
  vdfs_send_reply(devfd, iov, 2);
  return 1;
}

int dirs_try_releasedir(struct fresh_dirs *d, int devfd, struct fuse_in_header *h, size_t n) {
  if (n < sizeof *h + sizeof(struct fuse_release_in)) return 0;
  uint64_t fh = ((struct fuse_release_in *)(h + 1))->fh;
  if (!(fh & NATIVE_DIR_FH)) return 0;
  pthread_mutex_lock(&d->mu);
  int js = take_adopted(d, fh);
  pthread_mutex_unlock(&d->mu);
  if (js) return 0;
  struct fuse_out_header out = {.len = sizeof out, .unique = h->unique};
  struct iovec iov = {.iov_base = &out, .iov_len = sizeof out};
  vdfs_send_reply(devfd, &iov, 1);
  return 1;
}
