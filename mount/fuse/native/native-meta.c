/*
 * SETATTR (owner, mode, times), GETATTR and FLUSH of a local file open for writing (SETATTR of
 * owner and mode, and FLUSH, also of one open only for reading), answered
 * in the reader thread through the descriptor JS registered with the file's node id
 * (registry_put): fchown/fchmod/futimens and fstat on it, and the reply built from that fstat
 * exactly as JS builds it from the same stat (mount/vfs/attrs.ts entryAttr for a local file:
 * 2^50 + the disk inode, size in 512-byte blocks, ctime never older than mtime). JS is told
 * afterwards (VDFS_OP_SETATTR_DONE, VDFS_OP_FLUSHED: the handle's dirty flag, live mode and
 * mtime, the index commit), the note queued before the reply, so every later request JS sees
 * comes after its bookkeeping (as for native writes). FLUSH of a read-only registered handle
 * has nothing to do and is answered 0 without a note.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "native-meta.h"
#include "fuse-uring.h"

#define LINKED_INO_BASE (1ull << 50)
#define ATTR_BLKSIZE (128 * 1024)
#define META_TIMES (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)
/* What SETATTR may change here; anything else (size above all) goes to JS. */
#define META_OK (FATTR_MODE | FATTR_UID | FATTR_GID | META_TIMES | FATTR_FH | FATTR_LOCKOWNER | FATTR_CTIME)

/* Through /dev/fuse, or into the ring entry of the request (fuse-uring.c). */
static void send(const struct meta_io *io, const struct iovec *iov, int cnt) { vdfs_send_reply(io->devfd, iov, cnt); }

static void reply_status(const struct meta_io *io, uint64_t unique, int err) {
  struct fuse_out_header out = {.len = sizeof out, .error = -err, .unique = unique};
  struct iovec iov = {.iov_base = &out, .iov_len = sizeof out};
  send(io, &iov, 1);
}

static void fill_attr(struct fuse_attr *a, const struct stat *st) {
  memset(a, 0, sizeof *a);
  a->ino = LINKED_INO_BASE + (uint64_t)st->st_ino % LINKED_INO_BASE;
  a->size = (uint64_t)st->st_size;
  a->blocks = ((uint64_t)st->st_size + 511) / 512;
  a->atime = (uint64_t)st->st_atim.tv_sec;
  a->atimensec = (uint32_t)st->st_atim.tv_nsec;
  a->mtime = (uint64_t)st->st_mtim.tv_sec;
  a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
  /* The file's own ctime: an mtime set ahead by utimens is no status change (it was shown as one). */
  a->ctime = (uint64_t)st->st_ctim.tv_sec;
  a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
  a->mode = S_IFREG | (st->st_mode & 07777);
  a->nlink = (uint32_t)st->st_nlink;
  a->uid = st->st_uid;
  a->gid = st->st_gid;
  a->blksize = ATTR_BLKSIZE;
}

static void reply_attr(const struct meta_io *io, uint64_t unique, const struct stat *st) {
  struct fuse_out_header out = {.len = sizeof out + sizeof(struct fuse_attr_out), .unique = unique};
  struct fuse_attr_out ao;
  memset(&ao, 0, sizeof ao);
  ao.attr_valid = io->attr_ttl_sec;
  ao.attr_valid_nsec = io->attr_ttl_nsec;
  fill_attr(&ao.attr, st);
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &ao, .iov_len = sizeof ao}};
  send(io, iov, 2);
}

static struct timespec time_of(uint32_t valid, uint32_t now_bit, uint32_t set_bit, uint64_t sec, uint32_t nsec) {
  if (valid & now_bit) return (struct timespec){.tv_sec = 0, .tv_nsec = UTIME_NOW};
  if (valid & set_bit) return (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = nsec};
  return (struct timespec){.tv_sec = 0, .tv_nsec = UTIME_OMIT};
}

/* The same calls in the same order as JS (native-paths.ts setattrThroughFd): times, owner, mode. 0 or -errno. */
static int apply(int fd, const struct fuse_setattr_in *in) {
  if (in->valid & META_TIMES) {
    struct timespec ts[2] = {time_of(in->valid, FATTR_ATIME_NOW, FATTR_ATIME, in->atime, in->atimensec),
                             time_of(in->valid, FATTR_MTIME_NOW, FATTR_MTIME, in->mtime, in->mtimensec)};
    if (futimens(fd, ts) < 0) return -errno;
  }
  if (in->valid & (FATTR_UID | FATTR_GID)) {
    if (fchown(fd, in->valid & FATTR_UID ? in->uid : (uid_t)-1, in->valid & FATTR_GID ? in->gid : (gid_t)-1) < 0) return -errno;
  }
  if ((in->valid & FATTR_MODE) && fchmod(fd, in->mode & 07777) < 0) return -errno;
  return 0;
}

int meta_try_setattr(const struct meta_io *io, struct fuse_in_header *h, size_t n) {
  if (n < sizeof *h + sizeof(struct fuse_setattr_in)) return 0;
  struct fuse_setattr_in *in = (struct fuse_setattr_in *)(h + 1);
  if (in->valid & ~(uint32_t)META_OK) return 0;
  uint64_t fh;
  int fd;
  struct stat st;
  if (!registry_hold_writer(io->reg, h->nodeid, &fh, &fd)) {
    /*
     * Owner and mode through a read-only handle (`rsync -a` opens each file it wrote O_RDONLY
     * to fchmod it). Not times (JS keeps a hash across its own utimens), and not a file that
     * was replaced on the disk since the open (unlinked: the name now holds another one).
     */
    if ((in->valid & META_TIMES) || !registry_hold_reader(io->reg, h->nodeid, &fh, &fd)) return 0;
    if (fstat(fd, &st) < 0 || st.st_nlink == 0 || !S_ISREG(st.st_mode)) {
      registry_unhold(io->reg);
      return 0;
    }
  }
  int err = apply(fd, in);
  int stat_ok = fstat(fd, &st) == 0;
  if (!stat_ok && err == 0) err = -errno;
  registry_unhold(io->reg);
  /* The note names the handle used; JS records what changed even when a later call failed. */
  char note[sizeof(struct fuse_in_header) + sizeof(struct fuse_setattr_in) + sizeof(struct vdfs_noted_stat)];
  memcpy(note, h, sizeof(struct fuse_in_header) + sizeof(struct fuse_setattr_in));
  struct fuse_in_header *nh = (struct fuse_in_header *)note;
  nh->opcode = VDFS_OP_SETATTR_DONE;
  nh->len = sizeof note;
  struct fuse_setattr_in *nin = (struct fuse_setattr_in *)(nh + 1);
  nin->fh = fh;
  nin->valid |= FATTR_FH;
  struct vdfs_noted_stat ns = {.ok = (uint32_t)stat_ok};
  if (stat_ok) {
    ns = (struct vdfs_noted_stat){.dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino, .size = (uint64_t)st.st_size,
                                  .atime_sec = st.st_atim.tv_sec, .mtime_sec = st.st_mtim.tv_sec, .ctime_sec = st.st_ctim.tv_sec,
                                  .atime_nsec = (uint32_t)st.st_atim.tv_nsec, .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
                                  .ctime_nsec = (uint32_t)st.st_ctim.tv_nsec, .mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid,
                                  .nlink = (uint32_t)st.st_nlink, .ok = 1};
  }
  memcpy(nin + 1, &ns, sizeof ns);
  io->note(io->arg, note, sizeof note);
  if (err < 0) reply_status(io, h->unique, -err);
  else reply_attr(io, h->unique, &st);
  return 1;
}

/* A primed folder attribute is good for this long: a GETATTR that comes later goes to JS. */
#define PRIMED_NS 50000000ull

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void meta_prime(struct primed_attrs *p, uint64_t nodeid, const struct fuse_attr_out *out) {
  struct primed_attr *s = &p->slot[nodeid % PRIMED_SLOTS];
  pthread_mutex_lock(&p->mu);
  s->nodeid = nodeid;
  s->expires_ns = mono_ns() + PRIMED_NS;
  s->out = *out;
  pthread_mutex_unlock(&p->mu);
}

void meta_unprime(struct primed_attrs *p, uint64_t nodeid) {
  struct primed_attr *s = &p->slot[nodeid % PRIMED_SLOTS];
  pthread_mutex_lock(&p->mu);
  if (s->nodeid == nodeid) s->nodeid = 0;
  pthread_mutex_unlock(&p->mu);
}

/* A GETATTR of a folder JS primed: answered once with what JS said. */
static int try_primed(const struct meta_io *io, struct fuse_in_header *h) {
  struct primed_attrs *p = io->primed;
  if (!p || h->nodeid == 0) return 0;
  struct primed_attr *s = &p->slot[h->nodeid % PRIMED_SLOTS];
  struct fuse_attr_out ao;
  int hit = 0;
  pthread_mutex_lock(&p->mu);
  if (s->nodeid == h->nodeid) {
    hit = mono_ns() <= s->expires_ns;
    ao = s->out;
    s->nodeid = 0;
  }
  pthread_mutex_unlock(&p->mu);
  if (!hit) return 0;
  struct fuse_out_header out = {.len = sizeof out + sizeof ao, .unique = h->unique};
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &ao, .iov_len = sizeof ao}};
  send(io, iov, 2);
  return 1;
}

int meta_try_getattr(const struct meta_io *io, struct fuse_in_header *h, size_t n) {
  uint64_t fh;
  int fd;
  if (!registry_hold_writer(io->reg, h->nodeid, &fh, &fd)) return try_primed(io, h);
  struct stat st;
  int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  registry_unhold(io->reg);
  if (!ok) return 0;
  reply_attr(io, h->unique, &st);
  return 1;
}

int meta_try_flush(const struct meta_io *io, struct fuse_in_header *h, size_t n) {
  if (n < sizeof *h + sizeof(struct fuse_flush_in)) return 0;
  struct fuse_flush_in *in = (struct fuse_flush_in *)(h + 1);
  int kind = registry_kind(io->reg, in->fh);
  if (kind != REG_READ && kind != REG_READ_META && kind != REG_WRITE_META) return 0;
  if (kind == REG_WRITE_META) {
    /* The bytes are in the file already (native pwrite); JS commits the index after this reply. */
    char note[sizeof(struct fuse_in_header) + sizeof(struct fuse_flush_in)];
    memcpy(note, h, sizeof note);
    ((struct fuse_in_header *)note)->opcode = VDFS_OP_FLUSHED;
    ((struct fuse_in_header *)note)->len = sizeof note;
    io->note(io->arg, note, sizeof note);
  }
  reply_status(io, h->unique, 0);
  return 1;
}
