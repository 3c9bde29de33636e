/*
 * vdfs FUSE binding: speaks the kernel protocol over /dev/fuse. Native reader threads take
 * requests off the device; reads of registered local descriptors and xattr names vdfs never
 * has are answered right there, everything else is handed to JS through a threadsafe
 * function (non-blocking calls, unbounded queue: a blocking call from a full queue can
 * deadlock against the JS thread). JS answers by writing whole replies through reply().
 * Kernel notifications go through their own thread: an invalidation written from a thread
 * that the kernel is waiting on for another reply could deadlock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/fuse.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include "fd-registry.h"
#include "block-registry.h"
#include "native-meta.h"
#include "native-dirs.h"
#include "mounting.h"
#include "napi-args.h"
#include "posix-calls.h"
#include "file-io.h"
#include "fuse-uring.h"

#include <sys/ioctl.h>

/* Passthrough (kernel 7.40, Linux 6.9): not in Debian 12's linux/fuse.h (7.38), so defined here. */
struct vdfs_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define VDFS_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct vdfs_backing_map)
#define VDFS_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

#define MAX_THREADS 16
#define MAX_IO (1024 * 1024)
#define IN_BUF_SIZE (MAX_IO + 64 * 1024)
#define OP_SLOTS 64
/* A READ up to this size served from the page cache keeps the reader waiting on the device (see reader_main). */
#define LEAD_READ_MAX (128 * 1024)

struct notify_msg {
  struct notify_msg *next;
  size_t len;
  char data[];
};

struct session {
  int fd;
  int efd;
  int nthreads;
  pthread_t threads[MAX_THREADS];
  napi_threadsafe_function tsfn;
  atomic_int stopping;
  atomic_int closed_reported;
  atomic_ullong native_reads;
  atomic_ullong js_requests;
  atomic_ullong native_writes;
  /* Sequential runs of native writes handed to writeback early (registry_write_behind). */
  atomic_ullong write_behinds;
  /* Requests seen by opcode (diagnostics: what a workload costs), and how many were answered natively. */
  atomic_ullong op_seen[OP_SLOTS];
  atomic_ullong op_native[OP_SLOTS];
  /* Only one reader waits on the device at a time (see next_request). */
  pthread_mutex_t read_mu;
  /* READs answered by the waiting reader without handing the device to another thread (reader_main). */
  atomic_ullong lead_reads;
  struct fd_registry reg;
  struct block_registry breg;
  /* SETATTR, GETATTR and FLUSH of local files open for writing (native-meta.c). */
  struct meta_io meta;
  struct primed_attrs primed;
  /* OPENDIR and RELEASEDIR of folders whose listing the kernel keeps (native-dirs.c). */
  struct fresh_dirs dirs;
  /* FUSE over io_uring (fuse-uring.c): NULL when the kernel does not offer it or it could not be set up. */
  struct fuse_uring *uring;
  /* notifications */
  pthread_mutex_t nmu;
  pthread_cond_t ncv;
  struct notify_msg *nhead, *ntail;
  int nstop;
  int notify_fd;
  pthread_t nthread;
  int stopped;
};

/* Marks "the kernel ended the connection" in the JS queue. */
static char CLOSED_MARK;

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, NULL, "vdfs-fuse: N-API call failed: " #call); \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static int write_all(int fd, const struct iovec *iov, int cnt) {
  for (;;) {
    ssize_t n = writev(fd, iov, cnt);
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return -errno;
  }
}

static void reply_error(struct session *s, uint64_t unique, int err) {
  struct fuse_out_header out = {.len = sizeof out, .error = -err, .unique = unique};
  struct iovec iov = {.iov_base = &out, .iov_len = sizeof out};
  vdfs_send_reply(s->fd, &iov, 1);
}

static void hand_to_js(struct session *s, const char *buf, size_t len);

/* Opcode of the note "native READs of fh reached block N" (block_registry_wake) handed to JS. */
#define VDFS_OP_BLOCKS_READ 0x40000004u

static void note_blocks_read(struct session *s, const struct fuse_in_header *h, uint64_t fh, int64_t block) {
  char note[sizeof(struct fuse_in_header) + 16];
  struct fuse_in_header *nh = (struct fuse_in_header *)note;
  *nh = *h;
  nh->opcode = VDFS_OP_BLOCKS_READ;
  nh->len = sizeof note;
  uint64_t v[2] = {fh, (uint64_t)block};
  memcpy(nh + 1, v, sizeof v);
  hand_to_js(s, note, sizeof note);
}

/*
 * A READ of a registered descriptor: pread here, reply here, JS never sees it. 1 when answered.
 * `quick`: only a small read of a registered descriptor that the page cache holds whole
 * (RWF_NOWAIT), else 0 with nothing done.
 */
static int try_native_read(struct session *s, struct fuse_in_header *h, char *out_buf, int quick) {
  struct fuse_read_in *in = (struct fuse_read_in *)(h + 1);
  size_t size = in->size > MAX_IO ? MAX_IO : in->size;
  ssize_t got;
  int64_t woke = -1;
  if (quick) {
    if (size > LEAD_READ_MAX || registry_pread(&s->reg, in->fh, out_buf, size, in->offset, 1, &got) != 1) return 0;
  } else if (!registry_pread(&s->reg, in->fh, out_buf, size, in->offset, 0, &got) && !block_registry_pread(&s->breg, in->fh, out_buf, size, in->offset, &got, &woke)) {
    return 0;
  }
  struct fuse_out_header out = {.unique = h->unique};
  if (got < 0) {
    out.len = sizeof out;
    out.error = (int32_t)got;
    got = 0;
  } else {
    out.len = sizeof out + (uint32_t)got;
  }
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = out_buf, .iov_len = (size_t)got}};
  vdfs_send_reply(s->fd, iov, got > 0 ? 2 : 1);
  atomic_fetch_add(&s->native_reads, 1);
  if (woke >= 0) note_blocks_read(s, h, in->fh, woke);
  return 1;
}

/* getxattr of anything but user.vdfs.* (ls asks every file for ACLs and security labels). */
static int try_native_getxattr(struct session *s, struct fuse_in_header *h) {
  const char *name = (const char *)(h + 1) + sizeof(struct fuse_getxattr_in);
  if (h->len <= sizeof *h + sizeof(struct fuse_getxattr_in)) return 0;
  if (strncmp(name, "user.vdfs.", 10) == 0) return 0;
  /* Only user.* names exist here (no ACLs, no security labels): EOPNOTSUPP for the other
   * namespaces, as on a disk without them, lets ls -l and cp -a stop asking after the first
   * file (ls caches it per device), instead of two round trips per file. */
  reply_error(s, h->unique, strncmp(name, "user.", 5) == 0 ? ENODATA : EOPNOTSUPP);
  return 1;
}

/* LSEEK (SEEK_DATA/SEEK_HOLE) of a registered descriptor: the real file knows its holes. */
static int try_native_lseek(struct session *s, struct fuse_in_header *h) {
  struct fuse_lseek_in *in = (struct fuse_lseek_in *)(h + 1);
  int64_t res;
  if (!registry_lseek(&s->reg, in->fh, (int64_t)in->offset, (int)in->whence, &res)) return 0;
  if (res < 0) {
    reply_error(s, h->unique, (int)-res);
    return 1;
  }
  struct fuse_out_header out = {.len = sizeof out + sizeof(struct fuse_lseek_out), .unique = h->unique};
  struct fuse_lseek_out lo = {.offset = (uint64_t)res};
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &lo, .iov_len = sizeof lo}};
  vdfs_send_reply(s->fd, iov, 2);
  return 1;
}

/* Opcode of the note "this many bytes were written natively at fh/offset" handed to JS. */
#define VDFS_OP_WROTE 0x40000001u

static void hand_to_js(struct session *s, const char *buf, size_t len) {
  char *copy = malloc(len);
  if (!copy) {
    reply_error(s, ((struct fuse_in_header *)buf)->unique, ENOMEM);
    return;
  }
  memcpy(copy, buf, len);
  atomic_fetch_add(&s->js_requests, 1);
  if (napi_call_threadsafe_function(s->tsfn, copy, napi_tsfn_nonblocking) != napi_ok) {
    reply_error(s, ((struct fuse_in_header *)buf)->unique, EIO);
    free(copy);
  }
}

/*
 * The kernel's cached attributes of `nodeid` are dropped (not its pages: offset -1). Written on
 * the device by the thread answering a request of that node, before its reply: the kernel takes
 * only the node's spinlock for it, never the inode lock the requester may hold.
 */
static void inval_attrs(struct session *s, uint64_t nodeid) {
  struct fuse_out_header out = {.len = sizeof out + sizeof(struct fuse_notify_inval_inode_out), .error = FUSE_NOTIFY_INVAL_INODE};
  struct fuse_notify_inval_inode_out in = {.ino = nodeid, .off = -1, .len = 0};
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &in, .iov_len = sizeof in}};
  (void)write_all(s->fd, iov, 2); /* ENOENT: the kernel holds no such node; nothing to drop */
}

/*
 * WRITE to a descriptor registered writable: pwrite here. JS is told (for the handle's dirty
 * flag and live size) before the kernel gets the reply, so any later request JS sees comes
 * after its bookkeeping. A write that cleared a setuid/setgid bit (as a disk does for a writer
 * without CAP_FSETID) drops the kernel's cached mode first: with direct writes the kernel
 * changes no attribute itself, and showed the old mode until its timeout.
 */
static int try_native_write(struct session *s, struct fuse_in_header *h, size_t n) {
  struct fuse_write_in *in = (struct fuse_write_in *)(h + 1);
  size_t head = sizeof *h + sizeof *in;
  if (n < head || n - head < in->size) return 0;
  ssize_t done;
  struct priv_killer killer = {.pid = h->pid, .gid = h->gid, .killed = 0};
  int kill = (in->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
  if (!registry_pwrite(&s->reg, in->fh, (const char *)(in + 1), in->size, in->offset, kill ? &killer : NULL, &done)) return 0;
  if (killer.killed) inval_attrs(s, h->nodeid);
  if (done < 0) {
    reply_error(s, h->unique, (int)-done);
    return 1;
  }
  char note[sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in)];
  memcpy(note, h, sizeof note);
  struct fuse_in_header *nh = (struct fuse_in_header *)note;
  nh->opcode = VDFS_OP_WROTE;
  nh->len = sizeof note;
  ((struct fuse_write_in *)(nh + 1))->size = (uint32_t)done;
  hand_to_js(s, note, sizeof note);
  uint64_t wb_from, wb_len;
  int behind = registry_plan_write_behind(&s->reg, in->fh, in->offset, (size_t)done, &wb_from, &wb_len);
  struct fuse_out_header out = {.len = sizeof out + sizeof(struct fuse_write_out), .unique = h->unique};
  struct fuse_write_out wo = {.size = (uint32_t)done};
  struct iovec iov[2] = {{.iov_base = &out, .iov_len = sizeof out}, {.iov_base = &wo, .iov_len = sizeof wo}};
  vdfs_send_reply(s->fd, iov, 2);
  atomic_fetch_add(&s->native_writes, 1);
  /* After the reply: the writer goes on meanwhile (another reader takes its next request). */
  if (behind) {
    vdfs_reply_now();
    registry_write_behind(&s->reg, in->fh, wb_from, wb_len);
    atomic_fetch_add_explicit(&s->write_behinds, 1, memory_order_relaxed);
  }
  return 1;
}

static void note_to_js(void *arg, const char *buf, size_t len) {
  hand_to_js((struct session *)arg, buf, len);
}

static void report_closed(struct session *s) {
  if (atomic_exchange(&s->closed_reported, 1)) return;
  if (atomic_load(&s->stopping)) return;
  napi_call_threadsafe_function(s->tsfn, &CLOSED_MARK, napi_tsfn_nonblocking);
}

/*
 * Waits for the next request and reads it; 0 when the session stops or the connection ends.
 * One reader at a time waits (it holds read_mu: *leading): with every reader in poll() each
 * request woke them all and all but one read EAGAIN, doubling the context switches of
 * sequential workloads (ls -l: two getxattr round trips per file). The others meanwhile
 * answer the requests they took, so requests are still served in parallel. A reader may keep
 * read_mu across a request it answers quickly (reader_main): it comes back still *leading.
 */
static ssize_t next_request(struct session *s, char *in_buf, int *leading) {
  struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->efd, .events = POLLIN}};
  ssize_t got = 0;
  if (!*leading) pthread_mutex_lock(&s->read_mu);
  *leading = 1;
  while (!atomic_load(&s->stopping)) {
    int pr = poll(pfd, 2, -1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0 || (pfd[1].revents & POLLIN) || atomic_load(&s->stopping)) break;
    ssize_t n = read(s->fd, in_buf, IN_BUF_SIZE);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ENOENT) continue;
      if (errno == ENODEV) report_closed(s);
      else fprintf(stderr, "vdfs-fuse: read /dev/fuse: %s\n", strerror(errno));
      break;
    }
    if ((size_t)n < sizeof(struct fuse_in_header)) continue;
    got = n;
    break;
  }
  if (got <= 0) {
    pthread_mutex_unlock(&s->read_mu);
    *leading = 0;
  }
  return got;
}

static void count_op(atomic_ullong *slots, uint32_t opcode) {
  if (opcode < OP_SLOTS) atomic_fetch_add_explicit(&slots[opcode], 1, memory_order_relaxed);
}

/* Answers a request natively when it can: 1 when answered. */
static int answer_natively(struct session *s, struct fuse_in_header *h, size_t n, char *out_buf) {
  if (h->opcode == FUSE_READ && n >= sizeof *h + sizeof(struct fuse_read_in) && try_native_read(s, h, out_buf, 0)) return 1;
  if (h->opcode == FUSE_WRITE && try_native_write(s, h, n)) return 1;
  if (h->opcode == FUSE_GETXATTR && try_native_getxattr(s, h)) return 1;
  if (h->opcode == FUSE_LSEEK && n >= sizeof *h + sizeof(struct fuse_lseek_in) && try_native_lseek(s, h)) return 1;
  if (h->opcode == FUSE_SETATTR && meta_try_setattr(&s->meta, h, n)) return 1;
  if (h->opcode == FUSE_GETATTR && meta_try_getattr(&s->meta, h, n)) return 1;
  if (h->opcode == FUSE_FLUSH && meta_try_flush(&s->meta, h, n)) return 1;
  if (h->opcode == FUSE_OPENDIR && dirs_try_opendir(&s->dirs, s->fd, h, n)) return 1;
  if (h->opcode == FUSE_RELEASEDIR && dirs_try_releasedir(&s->dirs, s->fd, h, n)) return 1;
  /* A change by path after close (RELEASE is asynchronous) must not be noted to a handle JS is about to drop. */
  if (h->opcode == FUSE_RELEASE && n >= sizeof *h + sizeof(struct fuse_release_in)) registry_drop_meta(&s->reg, ((struct fuse_release_in *)(h + 1))->fh);
  return 0;
}

/* A request taken off a ring (fuse-uring.c), on the thread of its CPU's queue: answered natively or handed to JS. */
static void ring_request(void *arg, char *req, size_t len, char *out_buf) {
  struct session *s = arg;
  struct fuse_in_header *h = (struct fuse_in_header *)req;
  count_op(s->op_seen, h->opcode);
  if (answer_natively(s, h, len, out_buf)) {
    count_op(s->op_native, h->opcode);
    return;
  }
  hand_to_js(s, req, len);
}

static void *reader_main(void *arg) {
  struct session *s = arg;
  char *in_buf = malloc(IN_BUF_SIZE);
  char *out_buf = malloc(MAX_IO);
  if (!in_buf || !out_buf) {
    free(in_buf);
    free(out_buf);
    return NULL;
  }
  int leading = 0;
  for (;;) {
    ssize_t n = next_request(s, in_buf, &leading);
    if (n <= 0) break;
    struct fuse_in_header *h = (struct fuse_in_header *)in_buf;
    count_op(s->op_seen, h->opcode);
    /*
     * A small READ the page cache holds is answered by the reader that waits on the device,
     * which then goes on waiting: handing the device to another thread first cost a futex
     * wake-up per request (QD1 random reads: ~2 context switches of the daemon per request, now
     * ~1). Anything else (a READ that would wait for the disk, a large one, any other request)
     * hands the device over first, so the other readers take requests meanwhile.
     */
    if (h->opcode == FUSE_READ && (size_t)n >= sizeof *h + sizeof(struct fuse_read_in) && try_native_read(s, h, out_buf, 1)) {
      atomic_fetch_add_explicit(&s->lead_reads, 1, memory_order_relaxed);
      count_op(s->op_native, h->opcode);
      continue;
    }
    pthread_mutex_unlock(&s->read_mu);
    leading = 0;
    if (answer_natively(s, h, (size_t)n, out_buf)) {
      count_op(s->op_native, h->opcode);
      continue;
    }
    hand_to_js(s, in_buf, (size_t)n);
  }
  free(in_buf);
  free(out_buf);
  return NULL;
}

static void *notify_main(void *arg) {
  struct session *s = arg;
  pthread_mutex_lock(&s->nmu);
  for (;;) {
    while (!s->nhead && !s->nstop) pthread_cond_wait(&s->ncv, &s->nmu);
    if (s->nstop) break;
    struct notify_msg *m = s->nhead;
    s->nhead = m->next;
    if (!s->nhead) s->ntail = NULL;
    pthread_mutex_unlock(&s->nmu);
    struct iovec iov = {.iov_base = m->data, .iov_len = m->len};
    write_all(s->notify_fd, &iov, 1); /* ENOENT: the kernel did not cache it; nothing to do */
    free(m);
    pthread_mutex_lock(&s->nmu);
  }
  while (s->nhead) {
    struct notify_msg *m = s->nhead;
    s->nhead = m->next;
    free(m);
  }
  pthread_mutex_unlock(&s->nmu);
  close(s->notify_fd);
  /* The session itself is freed by stop(); this thread is joined there unless stuck. */
  return NULL;
}

static void free_request(napi_env env, void *data, void *hint) { free(data); }

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  if (!env) {
    if (data != &CLOSED_MARK) free(data);
    return;
  }
  napi_value arg, undef;
  napi_get_undefined(env, &undef);
  if (data == &CLOSED_MARK) {
    napi_get_null(env, &arg);
  } else {
    uint32_t len = ((struct fuse_in_header *)data)->len;
    if (napi_create_external_buffer(env, len, data, free_request, NULL, &arg) != napi_ok) {
      void *unused;
      napi_create_buffer_copy(env, len, data, &unused, &arg);
      free(data);
    }
  }
  if (napi_call_function(env, undef, cb, 1, &arg, NULL) == napi_pending_exception) {
    /* Never let an exception escape into Node here: it would kill the daemon and leave a dead mount. */
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    fprintf(stderr, "vdfs-fuse: exception in request handler (ignored)\n");
  }
}

static struct session *get_session(napi_env env, napi_value v) {
  struct session *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "vdfs-fuse: not a session");
    return NULL;
  }
  return s;
}



/* mount(mountpoint, fsname, allowOther, viaFusermount) -> fd; throws with .errno */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  char mnt[4096], fsname[64], err[512] = "";
  bool allow_other = false, via_fusermount = false;
  CHECK(napi_get_value_string_utf8(env, argv[0], mnt, sizeof mnt, NULL));
  CHECK(napi_get_value_string_utf8(env, argv[1], fsname, sizeof fsname, NULL));
  CHECK(napi_get_value_bool(env, argv[2], &allow_other));
  CHECK(napi_get_value_bool(env, argv[3], &via_fusermount));
  int fd = via_fusermount ? mount_fusermount(mnt, fsname, allow_other, err, sizeof err)
                          : mount_direct(mnt, fsname, allow_other, err, sizeof err);
  if (fd < 0) {
    napi_value msg, e;
    napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &e);
    napi_set_named_property(env, e, "errno", make_int(env, -fd));
    napi_throw(env, e);
    return NULL;
  }
  return make_int(env, fd);
}

static napi_value js_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char mnt[4096];
  CHECK(napi_get_value_string_utf8(env, argv[0], mnt, sizeof mnt, NULL));
  return make_int(env, unmount_detach(mnt));
}

/* start(fd, threads, onRequest(buf|null)) -> session */
static napi_value js_start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t fd, nthreads;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &nthreads));
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  struct session *s = calloc(1, sizeof *s);
  if (!s) { napi_throw_error(env, NULL, "vdfs-fuse: out of memory"); return NULL; }
  s->fd = fd;
  s->nthreads = nthreads;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->notify_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  registry_init(&s->reg);
  pthread_mutex_init(&s->read_mu, NULL);
  block_registry_init(&s->breg);
  pthread_mutex_init(&s->primed.mu, NULL);
  dirs_init(&s->dirs);
  s->meta = (struct meta_io){.reg = &s->reg, .primed = &s->primed, .devfd = fd, .attr_ttl_sec = 1, .note = note_to_js, .arg = s};
  pthread_mutex_init(&s->nmu, NULL);
  pthread_cond_init(&s->ncv, NULL);
  napi_value name;
  napi_create_string_utf8(env, "vdfs-fuse", NAPI_AUTO_LENGTH, &name);
  if (s->efd < 0 || s->notify_fd < 0 ||
      napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &s->tsfn) != napi_ok) {
    napi_throw_error(env, NULL, "vdfs-fuse: cannot start the session");
    return NULL;
  }
  pthread_create(&s->nthread, NULL, notify_main, s);
  for (int i = 0; i < nthreads; i++) pthread_create(&s->threads[i], NULL, reader_main, s);
  napi_value ext;
  CHECK(napi_create_external(env, s, NULL, NULL, &ext));
  return ext;
}

/* reply(session, buf) -> 0 or -errno (ENOENT: the request was interrupted or aborted). */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  void *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  if (s->stopped) return make_int(env, -EBADF);
  /* A reply to a request that came through a ring is committed through that ring's entry. */
  if (s->uring && uring_reply(s->uring, data, len)) return make_int(env, 0);
  struct iovec iov = {.iov_base = data, .iov_len = len};
  return make_int(env, write_all(s->fd, &iov, 1));
}

/* notify(session, buf): queued to the notification thread. */
static napi_value js_notify(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  void *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  struct notify_msg *m = malloc(sizeof *m + len);
  if (!m) return make_int(env, -ENOMEM);
  m->next = NULL;
  m->len = len;
  memcpy(m->data, data, len);
  pthread_mutex_lock(&s->nmu);
  if (s->nstop) {
    free(m);
  } else {
    if (s->ntail) s->ntail->next = m;
    else s->nhead = m;
    s->ntail = m;
    pthread_cond_signal(&s->ncv);
  }
  pthread_mutex_unlock(&s->nmu);
  return make_int(env, 0);
}

static int get_u64(napi_env env, napi_value v, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d < 0) return 0;
  *out = (uint64_t)d;
  return 1;
}

/*
 * registerFd(session, fh, fd, writable, nodeid = 0): READs (and WRITEs when writable) of fh are
 * answered by pread/pwrite(fd) from now on; with a nodeid (a local file open for writing) also
 * SETATTR, GETATTR and FLUSH of that node (native-meta.c).
 */
static napi_value js_register_fd(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "registerFd(session, fh, fd, writable, nodeid?)");
    return NULL;
  }
  bool writable;
  CHECK(napi_get_value_bool(env, argv[3], &writable));
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  int32_t fd;
  if (!get_u64(env, argv[1], &fh)) { napi_throw_type_error(env, NULL, "bad fh"); return NULL; }
  CHECK(napi_get_value_int32(env, argv[2], &fd));
  uint64_t nodeid = 0;
  if (argc >= 5 && !get_u64(env, argv[4], &nodeid)) { napi_throw_type_error(env, NULL, "bad nodeid"); return NULL; }
  return make_int(env, registry_put(&s->reg, fh, fd, writable, nodeid));
}

/* setAttrTtl(session, seconds): how long the kernel may cache attributes the addon answers (as JS's replies say). */
static napi_value js_set_attr_ttl(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  double secs;
  if (napi_get_value_double(env, argv[1], &secs) != napi_ok || !(secs >= 0) || secs > 1e9) {
    napi_throw_type_error(env, NULL, "setAttrTtl(session, seconds) takes a number of seconds");
    return NULL;
  }
  s->meta.attr_ttl_sec = (uint64_t)secs;
  s->meta.attr_ttl_nsec = (uint32_t)((secs - (double)(uint64_t)secs) * 1e9 + 0.5);
  if (s->meta.attr_ttl_nsec >= 1000000000u) s->meta.attr_ttl_nsec = 999999999u;
  return make_int(env, 0);
}

/* unregisterFd(session, fh): returns once no native read uses the descriptor any more. */
static napi_value js_unregister_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  if (!get_u64(env, argv[1], &fh)) { napi_throw_type_error(env, NULL, "bad fh"); return NULL; }
  registry_remove(&s->reg, fh);
  return make_int(env, 0);
}

/* registerBlocks(session, fh, blockSize, size): READs of fh inside blocks given by setBlockFile are answered natively. 0 or -errno. */
static napi_value js_register_blocks(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh, size;
  uint32_t bs;
  if (!get_u64(env, argv[1], &fh) || !get_u64(env, argv[3], &size) || napi_get_value_uint32(env, argv[2], &bs) != napi_ok) {
    napi_throw_type_error(env, NULL, "registerBlocks(session, fh, blockSize, size) takes numbers");
    return NULL;
  }
  return make_int(env, block_registry_add(&s->breg, fh, bs, size));
}

/* setBlockFile(session, fh, index, path|null): block `index` of fh is read from that (verified) file. 0 or -errno. */
static napi_value js_set_block_file(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  uint32_t index;
  if (!get_u64(env, argv[1], &fh) || napi_get_value_uint32(env, argv[2], &index) != napi_ok) {
    napi_throw_type_error(env, NULL, "setBlockFile(session, fh, index, path) takes numbers");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_string) return make_int(env, block_registry_set(&s->breg, fh, index, NULL));
  char path[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[3], path, sizeof path, &len));
  if (len >= sizeof path - 1) return make_int(env, -ENAMETOOLONG);
  return make_int(env, block_registry_set(&s->breg, fh, index, path));
}

/* blockWake(session, fh, index): see block_registry_wake. The highest block read natively, -1 (armed) or -errno. */
static napi_value js_block_wake(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  int64_t index;
  if (!get_u64(env, argv[1], &fh) || napi_get_value_int64(env, argv[2], &index) != napi_ok || index < 0) {
    napi_throw_type_error(env, NULL, "blockWake(session, fh, index) takes numbers");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int64(env, block_registry_wake(&s->breg, fh, index), &out));
  return out;
}

/* primeAttr(session, nodeid, fuse_attr_out bytes | null): the next GETATTR of nodeid is answered with them (null: not any more). 0 or -errno. */
static napi_value js_prime_attr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t nodeid;
  if (!get_u64(env, argv[1], &nodeid)) {
    napi_throw_type_error(env, NULL, "primeAttr(session, nodeid, attr) takes a node id");
    return NULL;
  }
  bool isbuf = false;
  napi_is_buffer(env, argv[2], &isbuf);
  if (!isbuf) {
    meta_unprime(&s->primed, nodeid);
    return make_int(env, 0);
  }
  void *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[2], &data, &len));
  if (len != sizeof(struct fuse_attr_out)) return make_int(env, -EINVAL);
  meta_prime(&s->primed, nodeid, (const struct fuse_attr_out *)data);
  return make_int(env, 0);
}

/* freshDir(session, nodeid, ms): the folder's OPENDIRs within ms are answered natively (0: not any more). */
static napi_value js_fresh_dir(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t nodeid;
  uint32_t ms;
  if (!get_u64(env, argv[1], &nodeid) || napi_get_value_uint32(env, argv[2], &ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "freshDir(session, nodeid, ms) takes numbers");
    return NULL;
  }
  dirs_fresh(&s->dirs, nodeid, ms);
  return make_int(env, 0);
}

/* dirsChanged(session): no folder is fresh any more. */
static napi_value js_dirs_changed(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  dirs_changed(&s->dirs);
  return make_int(env, 0);
}

/* adoptDir(session, fh): the RELEASEDIR of a handle opened natively goes to JS. 0 or -ENOMEM. */
static napi_value js_adopt_dir(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  if (!get_u64(env, argv[1], &fh)) {
    napi_throw_type_error(env, NULL, "adoptDir(session, fh) takes a handle");
    return NULL;
  }
  return make_int(env, dirs_adopt(&s->dirs, fh));
}

/* unregisterBlocks(session, fh): returns once no native read uses fh's block files. */
static napi_value js_unregister_blocks(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint64_t fh;
  if (!get_u64(env, argv[1], &fh)) { napi_throw_type_error(env, NULL, "bad fh"); return NULL; }
  block_registry_remove(&s->breg, fh);
  return make_int(env, 0);
}

/* backingOpen(session, fd) -> backing id for FOPEN_PASSTHROUGH, or -errno (root, Linux >= 6.9). */
static napi_value js_backing_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  struct vdfs_backing_map map = {.fd = fd};
  int id = ioctl(s->fd, VDFS_DEV_IOC_BACKING_OPEN, &map);
  return make_int(env, id < 0 ? -errno : id);
}

/* backingClose(session, id) -> 0 or -errno. */
static napi_value js_backing_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  uint32_t id;
  CHECK(napi_get_value_uint32(env, argv[1], &id));
  if (s->stopped) return make_int(env, -EBADF);
  return make_int(env, ioctl(s->fd, VDFS_DEV_IOC_BACKING_CLOSE, &id) < 0 ? -errno : 0);
}

/* setRef(session, bool): whether the session keeps the event loop alive. */
static napi_value js_set_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  bool ref;
  CHECK(napi_get_value_bool(env, argv[1], &ref));
  if (!s->stopped) {
    if (ref) napi_ref_threadsafe_function(env, s->tsfn);
    else napi_unref_threadsafe_function(env, s->tsfn);
  }
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "nativeReads", make_int(env, (int64_t)atomic_load(&s->native_reads)));
  napi_set_named_property(env, o, "jsRequests", make_int(env, (int64_t)atomic_load(&s->js_requests)));
  napi_set_named_property(env, o, "nativeWrites", make_int(env, (int64_t)atomic_load(&s->native_writes)));
  napi_set_named_property(env, o, "leadReads", make_int(env, (int64_t)atomic_load(&s->lead_reads)));
  napi_set_named_property(env, o, "writeBehinds", make_int(env, (int64_t)atomic_load(&s->write_behinds)));
  napi_set_named_property(env, o, "ringQueues", make_int(env, uring_queues(s->uring)));
  napi_set_named_property(env, o, "ringRequests", make_int(env, (int64_t)uring_requests(s->uring)));
  napi_set_named_property(env, o, "ringSpinHits", make_int(env, (int64_t)uring_spin_hits(s->uring)));
  napi_set_named_property(env, o, "ringQuietReplies", make_int(env, (int64_t)uring_quiet_replies(s->uring)));
  napi_value per_queue;
  int nq = uring_queues(s->uring);
  napi_create_array_with_length(env, (size_t)nq, &per_queue);
  for (int i = 0; i < nq; i++) napi_set_element(env, per_queue, (uint32_t)i, make_int(env, (int64_t)uring_queue_requests(s->uring, i)));
  napi_set_named_property(env, o, "ringQueueRequests", per_queue);
  napi_value seen, native;
  napi_create_array_with_length(env, OP_SLOTS, &seen);
  napi_create_array_with_length(env, OP_SLOTS, &native);
  for (uint32_t i = 0; i < OP_SLOTS; i++) {
    napi_set_element(env, seen, i, make_int(env, (int64_t)atomic_load(&s->op_seen[i])));
    napi_set_element(env, native, i, make_int(env, (int64_t)atomic_load(&s->op_native[i])));
  }
  napi_set_named_property(env, o, "opsSeen", seen);
  napi_set_named_property(env, o, "opsNative", native);
  return o;
}

/*
 * stop(session): wakes and joins the reader threads, stops the notification thread and
 * closes the device (which aborts the connection once nothing else holds it). Idempotent.
 */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s || s->stopped) return NULL;
  atomic_store(&s->stopping, 1);
  uint64_t one = 1;
  ssize_t ignored = write(s->efd, &one, sizeof one);
  (void)ignored;
  for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
  uring_stop(s->uring);
  s->uring = NULL;
  pthread_mutex_lock(&s->nmu);
  s->nstop = 1;
  pthread_cond_signal(&s->ncv);
  pthread_mutex_unlock(&s->nmu);
  /* A notification stuck in the kernel must not hang shutdown: leave that thread behind. */
  pthread_detach(s->nthread);
  s->stopped = 1;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  close(s->fd);
  close(s->efd);
  /* The session struct is kept (a few KiB): the detached notification thread may still read it. */
  return NULL;
}

/*
 * uringPrepare(session) -> number of queues, or -errno: sets up FUSE over io_uring (one ring per
 * possible CPU) before INIT is answered with FUSE_OVER_IO_URING; uringStart(session) after that
 * reply registers the entries. See fuse-uring.c.
 */
static napi_value js_uring_prepare(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  if (s->stopped) return make_int(env, -EBADF);
  if (s->uring) return make_int(env, uring_queues(s->uring));
  int err = 0;
  s->uring = uring_prepare(s->fd, ring_request, s, &err);
  return make_int(env, s->uring ? uring_queues(s->uring) : -err);
}

static napi_value js_uring_start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  if (s->stopped || !s->uring) return make_int(env, -EBADF);
  return make_int(env, uring_run(s->uring));
}

/* trimMemory(): gives the allocator's free pages back to the system (after a burst; see FuseServer). */
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  return make_int(env, malloc_trim(0));
}

#define EXPORT(name, fn)                                               \
  do {                                                                 \
    napi_value f;                                                      \
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);   \
    napi_set_named_property(env, exports, name, f);                    \
  } while (0)

static napi_value init(napi_env env, napi_value exports) {
  EXPORT("mount", js_mount);
  EXPORT("unmount", js_unmount);
  EXPORT("start", js_start);
  EXPORT("reply", js_reply);
  EXPORT("notify", js_notify);
  EXPORT("registerFd", js_register_fd);
  EXPORT("unregisterFd", js_unregister_fd);
  EXPORT("setAttrTtl", js_set_attr_ttl);
  EXPORT("registerBlocks", js_register_blocks);
  EXPORT("setBlockFile", js_set_block_file);
  EXPORT("unregisterBlocks", js_unregister_blocks);
  EXPORT("blockWake", js_block_wake);
  EXPORT("primeAttr", js_prime_attr);
  EXPORT("freshDir", js_fresh_dir);
  EXPORT("dirsChanged", js_dirs_changed);
  EXPORT("adoptDir", js_adopt_dir);
  EXPORT("setRef", js_set_ref);
  EXPORT("backingOpen", js_backing_open);
  EXPORT("backingClose", js_backing_close);
  EXPORT("stats", js_stats);
  EXPORT("stop", js_stop);
  EXPORT("trimMemory", js_trim_memory);
  EXPORT("uringPrepare", js_uring_prepare);
  EXPORT("uringStart", js_uring_start);
  posix_calls_export(env, exports);
  file_io_export(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
