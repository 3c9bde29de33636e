#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block-registry.h"

static unsigned bucket_of(uint64_t fh) {
  return (unsigned)((fh * 0x9E3779B97F4A7C15ull) >> 56) % BLOCK_BUCKETS;
}

static void free_map(struct block_map *m) {
  if (m->slot_fd >= 0) close(m->slot_fd);
  pthread_mutex_destroy(&m->slot_mu);
  for (uint32_t i = 0; i < m->nblocks; i++) free(m->files[i]);
  free(m->files);
  free(m);
}

static void unref_map(struct block_map *m) {
  if (atomic_fetch_sub(&m->refs, 1) == 1) free_map(m);
}

static struct block_map *find(struct block_registry *r, uint64_t fh) {
  for (struct block_map *m = r->buckets[bucket_of(fh)]; m; m = m->next)
    if (m->fh == fh) return m;
  return NULL;
}

void block_registry_init(struct block_registry *r) {
  pthread_rwlock_init(&r->lock, NULL);
  for (int i = 0; i < BLOCK_BUCKETS; i++) r->buckets[i] = NULL;
}

void block_registry_destroy(struct block_registry *r) {
  pthread_rwlock_wrlock(&r->lock);
  for (int i = 0; i < BLOCK_BUCKETS; i++) {
    struct block_map *m = r->buckets[i];
    while (m) {
      struct block_map *next = m->next;
      unref_map(m);
      m = next;
    }
    r->buckets[i] = NULL;
  }
  pthread_rwlock_unlock(&r->lock);
}

int block_registry_add(struct block_registry *r, uint64_t fh, uint32_t block_size, uint64_t size) {
  if (block_size == 0) return -EINVAL;
  uint64_t n = (size + block_size - 1) / block_size;
  if (n > UINT32_MAX) return -EINVAL;
  struct block_map *m = calloc(1, sizeof *m);
  char **files = calloc(n ? n : 1, sizeof *files);
  if (!m || !files) {
    free(m);
    free(files);
    return -ENOMEM;
  }
  m->fh = fh;
  m->size = size;
  m->block_size = block_size;
  m->nblocks = (uint32_t)n;
  m->files = files;
  pthread_mutex_init(&m->slot_mu, NULL);
  m->slot_index = -1;
  m->slot_fd = -1;
  m->advised = -1;
  atomic_init(&m->reached, -1);
  atomic_init(&m->wake_at, -1);
  atomic_init(&m->refs, 1);
  unsigned b = bucket_of(fh);
  struct block_map *old = NULL;
  pthread_rwlock_wrlock(&r->lock);
  for (struct block_map **p = &r->buckets[b]; *p; p = &(*p)->next) {
    if ((*p)->fh == fh) { /* a stale map of a reused handle number: replaced */
      old = *p;
      *p = old->next;
      break;
    }
  }
  m->next = r->buckets[b];
  r->buckets[b] = m;
  pthread_rwlock_unlock(&r->lock);
  if (old) unref_map(old);
  return 0;
}

int block_registry_set(struct block_registry *r, uint64_t fh, uint32_t index, const char *path) {
  char *copy = path ? strdup(path) : NULL;
  if (path && !copy) return -ENOMEM;
  pthread_rwlock_wrlock(&r->lock);
  struct block_map *m = find(r, fh);
  int rc = 0;
  if (!m) rc = -ENOENT;
  else if (index >= m->nblocks) rc = -EINVAL;
  else {
    free(m->files[index]);
    m->files[index] = copy;
    copy = NULL;
    /* A changed block's kept descriptor is handed to no new READ; it is closed now when no READ
     * uses it, else when block_fd next takes the slot (or with the map). */
    pthread_mutex_lock(&m->slot_mu);
    if (m->slot_index == (int64_t)index) {
      m->slot_index = -1;
      if (m->slot_users == 0 && m->slot_fd >= 0) {
        close(m->slot_fd);
        m->slot_fd = -1;
      }
    }
    pthread_mutex_unlock(&m->slot_mu);
  }
  pthread_rwlock_unlock(&r->lock);
  free(copy);
  return rc;
}

void block_registry_remove(struct block_registry *r, uint64_t fh) {
  struct block_map *dead = NULL;
  pthread_rwlock_wrlock(&r->lock);
  for (struct block_map **p = &r->buckets[bucket_of(fh)]; *p; p = &(*p)->next) {
    if ((*p)->fh == fh) {
      dead = *p;
      *p = dead->next;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  if (dead) unref_map(dead);
}

/* A descriptor of block i: the map's kept one when free or the same block, else a private one (*own = 1). */
static int block_fd(struct block_map *m, uint64_t i, int *own) {
  *own = 0;
  pthread_mutex_lock(&m->slot_mu);
  if (m->slot_index == (int64_t)i && m->slot_fd >= 0) {
    m->slot_users++;
    int fd = m->slot_fd;
    pthread_mutex_unlock(&m->slot_mu);
    return fd;
  }
  int fd = open(m->files[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0 && m->slot_users == 0) {
    if (m->slot_fd >= 0) close(m->slot_fd);
    m->slot_fd = fd;
    m->slot_index = (int64_t)i;
    m->slot_users = 1;
  } else if (fd >= 0) {
    *own = 1;
  }
  pthread_mutex_unlock(&m->slot_mu);
  return fd;
}

static void put_block_fd(struct block_map *m, int fd, int own) {
  if (own) {
    close(fd);
    return;
  }
  pthread_mutex_lock(&m->slot_mu);
  m->slot_users--;
  pthread_mutex_unlock(&m->slot_mu);
}

/*
 * A READ starting at block i's first byte (a sequential reader, or the kernel's read-ahead):
 * the next PREFETCH_BLOCKS block files are advised WILLNEED, so the disk reads them while this
 * one is served. Each block is its own file, whose read-ahead starts afresh: without this a cold
 * re-read waited for each block's first disk read in turn. The files are opened under the
 * registry's lock, as the block's own are (prefetch_plan), and advised after it (prefetch_run).
 */
#define PREFETCH_BLOCKS 2
static int prefetch_plan(struct block_map *m, uint64_t i, int *fds) {
  pthread_mutex_lock(&m->slot_mu);
  if ((int64_t)i < m->advised - PREFETCH_BLOCKS) m->advised = (int64_t)i; /* a seek back: start again */
  int64_t from = (int64_t)i + 1 > m->advised + 1 ? (int64_t)i + 1 : m->advised + 1;
  int64_t to = (int64_t)i + PREFETCH_BLOCKS;
  if (to >= (int64_t)m->nblocks) to = (int64_t)m->nblocks - 1;
  if (to > m->advised) m->advised = to;
  pthread_mutex_unlock(&m->slot_mu);
  int n = 0;
  for (int64_t j = from; j <= to; j++)
    if (m->files[j] && (fds[n] = open(m->files[j], O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) n++;
  return n;
}

static void prefetch_run(const int *fds, int n) {
  for (int k = 0; k < n; k++) {
    (void)posix_fadvise(fds[k], 0, 0, POSIX_FADV_WILLNEED);
    close(fds[k]);
  }
}

/* All of [at, at+len) from a block file's descriptor; 0 or -1 (unreadable or short). */
static int read_all(int fd, char *buf, size_t len, uint64_t at) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, (off_t)(at + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  return got == len ? 0 : -1;
}

/* Records that a native READ covered block `last`; returns `last` when that reached the armed wake (disarming it), else -1. */
static int64_t note_reached(struct block_map *m, int64_t last) {
  int64_t prev = atomic_load(&m->reached);
  while (last > prev && !atomic_compare_exchange_weak(&m->reached, &prev, last)) {
  }
  int64_t w = atomic_load(&m->wake_at);
  /* seq_cst on both sides: either this READ sees the arming, or block_registry_wake sees `reached` */
  if (w >= 0 && last >= w && atomic_compare_exchange_strong(&m->wake_at, &w, -1)) return last;
  return -1;
}

int64_t block_registry_wake(struct block_registry *r, uint64_t fh, int64_t index) {
  pthread_rwlock_rdlock(&r->lock);
  struct block_map *m = find(r, fh);
  int64_t rc = -ENOENT;
  if (m) {
    int64_t got = atomic_load(&m->reached);
    if (got >= index) rc = got;
    else {
      atomic_store(&m->wake_at, index);
      got = atomic_load(&m->reached);
      int64_t w = index;
      /* a READ got there meanwhile and did not see the arming: take it back and report here */
      rc = got >= index && atomic_compare_exchange_strong(&m->wake_at, &w, -1) ? got : -1;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* Blocks one native READ may cover (1 MiB at the smallest block size, 64 KiB); a READ over more goes to JS. */
#define READ_BLOCKS_MAX 17

/*
 * Under the registry's read lock only the map is found, its block files opened and a reference
 * taken; the disk reads run after the lock is released, so JS registering blocks (a write lock)
 * never waits for them, and the map outlives a removal until this READ is done.
 */
int block_registry_pread(struct block_registry *r, uint64_t fh, char *buf, size_t size, uint64_t offset, ssize_t *result, int64_t *woke) {
  *woke = -1;
  pthread_rwlock_rdlock(&r->lock);
  struct block_map *m = find(r, fh);
  if (!m) {
    pthread_rwlock_unlock(&r->lock);
    return 0;
  }
  if (offset >= m->size || size == 0) {
    pthread_rwlock_unlock(&r->lock);
    *result = 0;
    return 1;
  }
  uint64_t end = offset + size < m->size ? offset + size : m->size;
  uint64_t first = offset / m->block_size, last = (end - 1) / m->block_size;
  if (last - first >= READ_BLOCKS_MAX) {
    pthread_rwlock_unlock(&r->lock);
    return 0;
  }
  for (uint64_t i = first; i <= last; i++) {
    if (!m->files[i]) {
      pthread_rwlock_unlock(&r->lock);
      return 0;
    }
  }
  int fds[READ_BLOCKS_MAX], owns[READ_BLOCKS_MAX];
  int64_t bad = -1;
  uint64_t opened = 0;
  for (uint64_t i = first; i <= last; i++, opened++) {
    fds[opened] = block_fd(m, i, &owns[opened]);
    if (fds[opened] < 0) {
      bad = (int64_t)i;
      break;
    }
  }
  int ahead[PREFETCH_BLOCKS];
  int nahead = bad < 0 && offset % m->block_size == 0 ? prefetch_plan(m, last, ahead) : 0;
  atomic_fetch_add(&m->refs, 1);
  pthread_rwlock_unlock(&r->lock);

  prefetch_run(ahead, nahead);
  for (uint64_t k = 0; k < opened; k++) {
    uint64_t i = first + k, start = i * m->block_size;
    uint64_t from = offset > start ? offset : start;
    uint64_t to = end < start + m->block_size ? end : start + m->block_size;
    if (bad < 0 && read_all(fds[k], buf + (from - offset), (size_t)(to - from), from - start) < 0) bad = (int64_t)i;
    put_block_fd(m, fds[k], owns[k]);
  }
  if (bad < 0) *woke = note_reached(m, (int64_t)last);
  unref_map(m);
  if (bad >= 0) {
    /* Evicted, removed or damaged behind the cache's back: JS reads (and verifies) it again. */
    block_registry_set(r, fh, (uint32_t)bad, NULL);
    return 0;
  }
  *result = (ssize_t)(end - offset);
  return 1;
}
