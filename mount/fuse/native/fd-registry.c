#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "fd-registry.h"

static unsigned bucket_of(uint64_t fh) {
  return (unsigned)((fh * 0x9E3779B97F4A7C15ull) >> 54) % REGISTRY_BUCKETS;
}

void registry_init(struct fd_registry *r) {
  pthread_rwlock_init(&r->lock, NULL);
  for (int i = 0; i < REGISTRY_BUCKETS; i++) r->buckets[i] = NULL;
  r->node_writers = 0;
  r->node_readers = 0;
  atomic_init(&r->wb_busy, 0);
}

void registry_destroy(struct fd_registry *r) {
  pthread_rwlock_wrlock(&r->lock);
  for (int i = 0; i < REGISTRY_BUCKETS; i++) {
    struct reg_node *n = r->buckets[i];
    while (n) {
      struct reg_node *next = n->next;
      free(n);
      n = next;
    }
    r->buckets[i] = NULL;
  }
  pthread_rwlock_unlock(&r->lock);
}

/* Keeps node_writers and node_readers: `by` is 1 for an entry added (or changed to), -1 for one removed (or changed from). */
static void count_node(struct fd_registry *r, const struct reg_node *n, int by) {
  if (!n->nodeid) return;
  if (n->writable) r->node_writers += by;
  else r->node_readers += by;
}

int registry_put(struct fd_registry *r, uint64_t fh, int fd, int writable, uint64_t nodeid) {
  struct reg_node *n = malloc(sizeof *n);
  if (!n) return -ENOMEM;
  unsigned b = bucket_of(fh);
  pthread_rwlock_wrlock(&r->lock);
  for (struct reg_node **p = &r->buckets[b]; *p; p = &(*p)->next) {
    if ((*p)->fh == fh) {
      count_node(r, *p, -1);
      (*p)->fd = fd;
      (*p)->writable = writable;
      (*p)->nodeid = nodeid;
      count_node(r, *p, 1);
      atomic_store(&(*p)->wb_end, 0);
      atomic_store(&(*p)->wb_from, 0);
      pthread_rwlock_unlock(&r->lock);
      free(n);
      return 0;
    }
  }
  n->fh = fh;
  n->fd = fd;
  n->writable = writable;
  n->nodeid = nodeid;
  atomic_init(&n->wb_end, 0);
  atomic_init(&n->wb_from, 0);
  count_node(r, n, 1);
  n->next = r->buckets[b];
  r->buckets[b] = n;
  pthread_rwlock_unlock(&r->lock);
  return 0;
}

void registry_remove(struct fd_registry *r, uint64_t fh) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_wrlock(&r->lock);
  for (struct reg_node **p = &r->buckets[b]; *p; p = &(*p)->next) {
    if ((*p)->fh == fh) {
      struct reg_node *dead = *p;
      *p = dead->next;
      count_node(r, dead, -1);
      free(dead);
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
}

int registry_pread(struct fd_registry *r, uint64_t fh, char *buf, size_t size, uint64_t offset, int nowait, ssize_t *result) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_rdlock(&r->lock);
  int fd = -1;
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh) { fd = n->fd; break; }
  }
  if (fd < 0) {
    pthread_rwlock_unlock(&r->lock);
    return 0;
  }
  size_t got = 0;
  ssize_t err = 0;
  while (got < size) {
    struct iovec iov = {.iov_base = buf + got, .iov_len = size - got};
    ssize_t n = preadv2(fd, &iov, 1, (off_t)(offset + got), nowait ? RWF_NOWAIT : 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && nowait) {
      /*
       * EAGAIN: not all in the page cache; EOPNOTSUPP: a file system without RWF_NOWAIT (tmpfs).
       * Nothing is answered (a short read would mean end of file): the blocking read will.
       */
      pthread_rwlock_unlock(&r->lock);
      return 2;
    }
    if (n < 0) { err = -errno; break; }
    if (n == 0) break;
    got += (size_t)n;
  }
  pthread_rwlock_unlock(&r->lock);
  *result = (got > 0 || err == 0) ? (ssize_t)got : err;
  return 1;
}

int registry_lseek(struct fd_registry *r, uint64_t fh, int64_t offset, int whence, int64_t *result) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_rdlock(&r->lock);
  int found = 0;
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh) {
      off_t o = lseek(n->fd, (off_t)offset, whence);
      *result = o < 0 ? -errno : (int64_t)o;
      found = 1;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  return found;
}

/* Whether the writer is in group gid (its own gid, else the supplementary groups in /proc). */
static int writer_in_group(const struct priv_killer *k, gid_t gid) {
  if (k->gid == gid) return 1;
  char path[64], line[4096];
  snprintf(path, sizeof path, "/proc/%u/status", k->pid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    if (strncmp(line, "Groups:", 7) != 0) continue;
    char *p = line + 7, *end;
    for (unsigned long g = strtoul(p, &end, 10); end != p; p = end, g = strtoul(p, &end, 10)) {
      if (g == gid) { found = 1; break; }
    }
    break;
  }
  fclose(f);
  return found;
}

/*
 * What a write by a caller without CAP_FSETID does on a disk (setattr_should_drop_sgid): setuid
 * goes; setgid goes when the file is group-executable or the writer is not in its group.
 */
static void kill_suidgid(int fd, struct priv_killer *k) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !(st.st_mode & (S_ISUID | S_ISGID))) return;
  mode_t kill = st.st_mode & S_ISUID;
  if ((st.st_mode & S_ISGID) && ((st.st_mode & S_IXGRP) || !writer_in_group(k, st.st_gid))) kill |= S_ISGID;
  if (kill && fchmod(fd, st.st_mode & 07777 & ~kill) == 0) k->killed = 1;
}

int registry_pwrite(struct fd_registry *r, uint64_t fh, const char *data, size_t size, uint64_t offset, struct priv_killer *killer, ssize_t *result) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_rdlock(&r->lock);
  int fd = -1;
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh) { fd = n->writable ? n->fd : -1; break; }
  }
  if (fd < 0) {
    pthread_rwlock_unlock(&r->lock);
    return 0;
  }
  if (killer) kill_suidgid(fd, killer);
  size_t done = 0;
  ssize_t err = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, data + done, size - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { err = -errno; break; }
    done += (size_t)n;
  }
  pthread_rwlock_unlock(&r->lock);
  *result = (done > 0 || err == 0) ? (ssize_t)done : err;
  return 1;
}

int registry_kind(struct fd_registry *r, uint64_t fh) {
  unsigned b = bucket_of(fh);
  int kind = REG_NONE;
  pthread_rwlock_rdlock(&r->lock);
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh) {
      kind = !n->writable ? (n->nodeid ? REG_READ_META : REG_READ) : n->nodeid ? REG_WRITE_META : REG_WRITE;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  return kind;
}

int registry_hold_writer(struct fd_registry *r, uint64_t nodeid, uint64_t *fh, int *fd) {
  if (nodeid == 0) return 0;
  pthread_rwlock_rdlock(&r->lock);
  /* A scan, not a second index: few files are open for writing at once, and none most of the time. */
  for (int i = 0; r->node_writers > 0 && i < REGISTRY_BUCKETS; i++) {
    for (struct reg_node *n = r->buckets[i]; n; n = n->next) {
      if (n->nodeid == nodeid && n->writable) {
        *fh = n->fh;
        *fd = n->fd;
        return 1;
      }
    }
  }
  pthread_rwlock_unlock(&r->lock);
  return 0;
}

int registry_hold_reader(struct fd_registry *r, uint64_t nodeid, uint64_t *fh, int *fd) {
  if (nodeid == 0) return 0;
  pthread_rwlock_rdlock(&r->lock);
  for (int i = 0; r->node_readers > 0 && i < REGISTRY_BUCKETS; i++) {
    for (struct reg_node *n = r->buckets[i]; n; n = n->next) {
      if (n->nodeid == nodeid && !n->writable) {
        *fh = n->fh;
        *fd = n->fd;
        return 1;
      }
    }
  }
  pthread_rwlock_unlock(&r->lock);
  return 0;
}

void registry_unhold(struct fd_registry *r) {
  pthread_rwlock_unlock(&r->lock);
}

void registry_drop_meta(struct fd_registry *r, uint64_t fh) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_wrlock(&r->lock);
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh && n->nodeid) {
      count_node(r, n, -1);
      n->nodeid = 0;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
}

int registry_plan_write_behind(struct fd_registry *r, uint64_t fh, uint64_t offset, size_t size, uint64_t *from_out, uint64_t *len_out) {
  if (size == 0) return 0;
  int due = 0;
  unsigned b = bucket_of(fh);
  uint64_t end = offset + size;
  pthread_rwlock_rdlock(&r->lock);
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh != fh || !n->writable) continue;
    /* Two writes of one handle answered at once only blur which bytes are handed over when. */
    uint64_t prev_end = atomic_exchange_explicit(&n->wb_end, end, memory_order_relaxed);
    if (prev_end != offset) {
      atomic_store_explicit(&n->wb_from, offset, memory_order_relaxed);
      break;
    }
    uint64_t from = atomic_load_explicit(&n->wb_from, memory_order_relaxed);
    if (end > from && end - from >= WRITE_BEHIND_WINDOW && !atomic_exchange(&r->wb_busy, 1)) {
      if (atomic_compare_exchange_strong(&n->wb_from, &from, end)) {
        *from_out = from;
        *len_out = end - from;
        due = 1;
      } else {
        atomic_store(&r->wb_busy, 0);
      }
    }
    break;
  }
  pthread_rwlock_unlock(&r->lock);
  return due;
}

void registry_write_behind(struct fd_registry *r, uint64_t fh, uint64_t from, uint64_t len) {
  unsigned b = bucket_of(fh);
  pthread_rwlock_rdlock(&r->lock);
  for (struct reg_node *n = r->buckets[b]; n; n = n->next) {
    if (n->fh == fh && n->writable) {
      (void)sync_file_range(n->fd, (off64_t)from, (off64_t)len, SYNC_FILE_RANGE_WRITE);
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  atomic_store(&r->wb_busy, 0);
}
