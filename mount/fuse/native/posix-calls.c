/*
 * The few POSIX calls Node has no form of (nanosecond utimensat with UTIME_NOW/UTIME_OMIT,
 * mknod, openat2, a batched fstatat of a whole directory for the scanner): the local writer runs them on `/proc/self/fd/N/name` paths it opened without
 * following symlinks. Synchronous on the JS thread: metadata-only calls on an open parent
 * (openDirBeneath: a path walk of a local location, answered from the dentry cache), except
 * statDirAsync, whose cold inodes may need the disk.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <sys/types.h>
#include "napi-args.h"
#include "posix-calls.h"

static char *get_path(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *p = malloc(len + 1);
  if (!p) return NULL;
  napi_get_value_string_utf8(env, v, p, len + 1, &len);
  return p;
}

/* utimensat(path, aSec, aNsec, mSec, mNsec) with AT_SYMLINK_NOFOLLOW; nsec may be UTIME_NOW/UTIME_OMIT. 0 or -errno. */
static napi_value js_utimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int64_t v[4];
  for (int i = 0; i < 4; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "times must be numbers");
      return NULL;
    }
  }
  char *p = get_path(env, argv[0]);
  if (!p) { napi_throw_type_error(env, NULL, "path must be a string"); return NULL; }
  struct timespec ts[2] = {{.tv_sec = v[0], .tv_nsec = v[1]}, {.tv_sec = v[2], .tv_nsec = v[3]}};
  int rc = utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
  free(p);
  return make_int(env, rc);
}

/* futimens(fd, aSec, aNsec, mSec, mNsec): the times of an open file; nsec may be UTIME_NOW/UTIME_OMIT. 0 or -errno. */
static napi_value js_futimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int32_t fd;
  int64_t v[4];
  if (!get_int32(env, argv[0], &fd, "fd must be a number")) return NULL;
  for (int i = 0; i < 4; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "times must be numbers");
      return NULL;
    }
  }
  struct timespec ts[2] = {{.tv_sec = v[0], .tv_nsec = v[1]}, {.tv_sec = v[2], .tv_nsec = v[3]}};
  return make_int(env, futimens(fd, ts) < 0 ? -errno : 0);
}

/*
 * noAtime(fd): reads through this open descriptor no longer touch the file's atime (F_SETFL
 * O_NOATIME), so the daemon can hash a file it wrote through the writer's own descriptor
 * instead of reopening it. 0; -EBADF when it was not opened for reading; -EPERM when neither
 * owner nor CAP_FOWNER.
 */
static napi_value js_no_atime(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (!get_int32(env, argv[0], &fd, "fd must be a number")) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return make_int(env, -errno);
  if ((fl & O_ACCMODE) == O_WRONLY || (fl & O_PATH)) return make_int(env, -EBADF);
  if (!(fl & O_NOATIME) && fcntl(fd, F_SETFL, fl | O_NOATIME) < 0) return make_int(env, -errno);
  return make_int(env, 0);
}

/* mknod(path, mode, major, minor): FIFOs, sockets, devices. 0 or -errno. */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  uint32_t mode, maj, min;
  if (napi_get_value_uint32(env, argv[1], &mode) != napi_ok || napi_get_value_uint32(env, argv[2], &maj) != napi_ok
      || napi_get_value_uint32(env, argv[3], &min) != napi_ok) {
    napi_throw_type_error(env, NULL, "mode and device must be numbers");
    return NULL;
  }
  char *p = get_path(env, argv[0]);
  if (!p) { napi_throw_type_error(env, NULL, "path must be a string"); return NULL; }
  int rc = mknod(p, (mode_t)mode, makedev(maj, min)) < 0 ? -errno : 0;
  free(p);
  return make_int(env, rc);
}

/* fallocate(fd, mode, offset, len): the disk's own allocation, holes and zero ranges. 0 or -errno. */
static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t fd, mode;
  int64_t off, len;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &mode) != napi_ok
      || napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, len) takes numbers");
    return NULL;
  }
  return make_int(env, fallocate(fd, mode, off, len) < 0 ? -errno : 0);
}

/* Transparent huge pages are 2 MiB on x86-64 and arm64 (4 KiB base pages). */
#define HUGE_ALIGN ((size_t)2 << 20)

static void unmap_buffer(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/*
 * hugePageBuffer(bytes): an ArrayBuffer of at least `bytes` zero bytes in its own mapping,
 * 2 MiB-aligned and advised MADV_HUGEPAGE (unmapped when collected), or -errno. Memory is faulted
 * in 2 MiB at a time when the kernel has a huge page to give, else 4 KiB as usual. Measured on
 * this project's VMs: the first use of a fresh 1 MiB of 4 KiB pages cost ~5 ms in the read that
 * filled it and ~3 ms more in the first user-space pass over it (a fault per page twice), against
 * under 1 ms per 2 MiB here (docs/read-pipeline.md, "Fresh memory").
 */
void *map_huge(size_t len) {
  char *raw = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *at = (char *)(((uintptr_t)raw + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
  size_t head = (size_t)(at - raw);
  if (head) munmap(raw, head);
  if (HUGE_ALIGN - head) munmap(at + len, HUGE_ALIGN - head);
  (void)madvise(at, len, MADV_HUGEPAGE); /* best effort: THP "never" leaves 4 KiB pages */
  return at;
}

static napi_value js_huge_page_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int64_t want;
  if (napi_get_value_int64(env, argv[0], &want) != napi_ok || want <= 0 || want > ((int64_t)1 << 36)) {
    napi_throw_type_error(env, NULL, "hugePageBuffer(bytes) takes a positive size");
    return NULL;
  }
  size_t len = ((size_t)want + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
  void *at = map_huge(len);
  if (!at) return make_int(env, -errno);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, at, len, unmap_buffer, (void *)(uintptr_t)len, &ab) != napi_ok) {
    munmap(at, len);
    return make_int(env, -ENOMEM);
  }
  return ab;
}

/* Component by component with O_NOFOLLOW: kernels without openat2 (before 5.6). */
static int open_dir_walk(int dir, char *rel) {
  int cur = dir;
  for (char *save = NULL, *part = strtok_r(rel, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    int next = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    if (cur != dir) close(cur);
    if (next < 0) return -err;
    cur = next;
  }
  return cur == dir ? dup(dir) : cur;
}

/*
 * openDirBeneath(root, rel): the directory `rel` under `root` without following any symlink
 * below the root (the root itself is followed: a location may be a link). One openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS instead of one open per component. The fd (O_CLOEXEC;
 * the caller closes it) or -errno: ELOOP for a symlink on the way, ENOTDIR, ENOENT, EACCES.
 */
static napi_value js_open_dir_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *root = get_path(env, argv[0]);
  char *rel = root ? get_path(env, argv[1]) : NULL;
  if (!root || !rel) { free(root); napi_throw_type_error(env, NULL, "root and rel must be strings"); return NULL; }
  int rc, dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) rc = -errno;
  else if (rel[0] == 0) rc = dir;
  else {
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    rc = -EAGAIN;
    /* EAGAIN: a concurrent rename on the way (the kernel asks to retry). */
    for (int i = 0; i < 8 && rc == -EAGAIN; i++) {
      long fd = syscall(SYS_openat2, dir, rel, &how, sizeof how);
      rc = fd < 0 ? -errno : (int)fd;
    }
    if (rc == -ENOSYS) rc = open_dir_walk(dir, rel);
    close(dir);
  }
  free(root);
  free(rel);
  return make_int(env, rc);
}

/*
 * renameat2(from, to, RENAME_EXCHANGE): swaps two names atomically. Both are `/proc/self/fd/N/name`
 * paths of parents opened without following symlinks; the last components are not followed
 * either (rename never follows them). 0 or -errno.
 */
static napi_value js_rename_exchange(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *from = get_path(env, argv[0]);
  char *to = get_path(env, argv[1]);
  int rc = -EINVAL;
  if (!from || !to) napi_throw_type_error(env, NULL, "paths must be strings");
  else rc = syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) < 0 ? -errno : 0;
  free(from);
  free(to);
  return make_int(env, rc);
}

/* One name of a listing: where its bytes start in the names buffer, and what fstatat said. */
struct dir_item {
  size_t off;
  int err;
  struct stat st;
};

/* A growing array of dir_item and the NUL-terminated names they point into. */
struct dir_items {
  struct dir_item *v;
  size_t n, cap;
  char *names;
  size_t used, room;
};

static int dir_items_add(struct dir_items *d, const char *name) {
  size_t len = strlen(name) + 1;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    struct dir_item *v = realloc(d->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    d->v = v, d->cap = cap;
  }
  if (d->used + len > d->room) {
    size_t room = d->room ? d->room * 2 : 8192;
    while (room < d->used + len) room *= 2;
    char *p = realloc(d->names, room);
    if (!p) return -ENOMEM;
    d->names = p, d->room = room;
  }
  memcpy(d->names + d->used, name, len);
  d->v[d->n].off = d->used;
  d->v[d->n].err = 0;
  d->n++;
  d->used += len;
  return 0;
}

/* Reads every name of the open directory `fd` (through a fresh open of "." so the caller's offset is untouched). 0 or -errno. */
static int read_names(int fd, struct dir_items *d) {
  int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return -errno;
  DIR *dir = fdopendir(own);
  if (!dir) {
    int err = errno;
    close(own);
    return -err;
  }
  int rc = 0;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dir);
    if (!e) {
      rc = errno ? -errno : 0;
      break;
    }
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    if ((rc = dir_items_add(d, e->d_name)) < 0) break;
  }
  closedir(dir);
  return rc;
}

/* Every name of `fd` with fstatat(AT_SYMLINK_NOFOLLOW); a name whose fstatat failed keeps its errno. 0 or -errno. */
static int stat_names(int fd, struct dir_items *d) {
  int rc = read_names(fd, d);
  for (size_t i = 0; rc == 0 && i < d->n; i++)
    if (fstatat(fd, d->names + d->v[i].off, &d->v[i].st, AT_SYMLINK_NOFOLLOW) < 0) d->v[i].err = errno;
  return rc;
}

#define STAT_FIELDS 6

/* The JS answer: {names, versions, nums}; nums has STAT_FIELDS numbers per name (see statDir in core/native-addon.ts). */
static napi_value stat_dir_result(napi_env env, const struct dir_items *d) {
  napi_value names, versions, ab, nums, out;
  void *data;
  if (napi_create_array_with_length(env, d->n, &names) != napi_ok || napi_create_array_with_length(env, d->n, &versions) != napi_ok
      || napi_create_arraybuffer(env, d->n * STAT_FIELDS * sizeof(double), &data, &ab) != napi_ok
      || napi_create_typedarray(env, napi_float64_array, d->n * STAT_FIELDS, ab, 0, &nums) != napi_ok)
    return NULL;
  double *f = data;
  char ver[96];
  for (size_t i = 0; i < d->n; i++) {
    const struct dir_item *it = &d->v[i];
    napi_value s, v;
    if (napi_create_string_utf8(env, d->names + it->off, NAPI_AUTO_LENGTH, &s) != napi_ok) return NULL;
    napi_set_element(env, names, (uint32_t)i, s);
    const struct stat *st = &it->st;
    double *r = f + i * STAT_FIELDS;
    if (it->err) {
      r[0] = 0, r[1] = 0, r[2] = 0, r[3] = 0, r[4] = 0, r[5] = it->err;
      ver[0] = 0;
    } else {
      /* The local version token `ino:size:mtimeNs`, exact (64-bit inode numbers do not fit a double). */
      snprintf(ver, sizeof ver, "%llu:%lld:%lld", (unsigned long long)st->st_ino, (long long)st->st_size,
               (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec);
      r[0] = st->st_mode, r[1] = (double)st->st_size, r[2] = (double)st->st_mtim.tv_sec, r[3] = st->st_mtim.tv_nsec;
      r[4] = (double)st->st_rdev, r[5] = 0;
    }
    if (napi_create_string_latin1(env, ver, NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
    napi_set_element(env, versions, (uint32_t)i, v);
  }
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  napi_set_named_property(env, out, "names", names);
  napi_set_named_property(env, out, "versions", versions);
  napi_set_named_property(env, out, "nums", nums);
  return out;
}

/*
 * statDir(fd): every name of the open directory `fd` with fstatat(fd, name, AT_SYMLINK_NOFOLLOW),
 * in one call. The scanner's listing: the same no-follow guarantee as lstat of
 * `/proc/self/fd/N/name` (the name is looked up in the open directory, a symlink is never
 * followed) without the /proc path walk, which cost 2.3x a plain lstat per name.
 * Returns {names, versions, nums} or -errno when the directory cannot be read; a name whose
 * fstatat fails has its errno in nums (ENOENT: removed since it was listed).
 */
static napi_value js_stat_dir(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (!get_int32(env, argv[0], &fd, "statDir(fd) takes a directory descriptor")) return NULL;
  struct dir_items d = {0};
  int rc = stat_names(fd, &d);
  napi_value out = rc < 0 ? make_int(env, rc) : stat_dir_result(env, &d);
  free(d.v);
  free(d.names);
  return out;
}

/*
 * statDirAsync(fd): statDir off the JS thread (one libuv pool task for the whole directory),
 * for the VFS's first listing of a local folder: lstat'ing each cold inode on the pool cost
 * one round trip and a BigIntStats per name. Resolves {names, stats} or -errno; `stats` is a
 * BigInt64Array of STAT_ASYNC_FIELDS per name: errno of that name's fstatat (0 when it
 * succeeded), st_mode, st_uid, st_gid, st_nlink, st_size, st_ino, st_dev, atime, mtime and
 * ctime in nanoseconds. The caller keeps `fd` open until it settles.
 */
#define STAT_ASYNC_FIELDS 11

struct stat_dir_work {
  napi_async_work work;
  napi_deferred deferred;
  int fd, rc;
  struct dir_items d;
};

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static void stat_dir_execute(napi_env env, void *data) {
  (void)env;
  struct stat_dir_work *w = data;
  w->rc = stat_names(w->fd, &w->d);
}

static napi_value stat_dir_async_result(napi_env env, const struct dir_items *d) {
  napi_value names, ab, stats, out;
  void *data;
  if (napi_create_array_with_length(env, d->n, &names) != napi_ok || napi_create_arraybuffer(env, d->n * STAT_ASYNC_FIELDS * sizeof(int64_t), &data, &ab) != napi_ok
      || napi_create_typedarray(env, napi_bigint64_array, d->n * STAT_ASYNC_FIELDS, ab, 0, &stats) != napi_ok)
    return NULL;
  int64_t *f = data;
  for (size_t i = 0; i < d->n; i++) {
    const struct dir_item *it = &d->v[i];
    napi_value s;
    if (napi_create_string_utf8(env, d->names + it->off, NAPI_AUTO_LENGTH, &s) != napi_ok) return NULL;
    napi_set_element(env, names, (uint32_t)i, s);
    const struct stat *st = &it->st;
    int64_t *r = f + i * STAT_ASYNC_FIELDS;
    memset(r, 0, STAT_ASYNC_FIELDS * sizeof *r);
    r[0] = it->err;
    if (it->err) continue;
    r[1] = st->st_mode, r[2] = st->st_uid, r[3] = st->st_gid, r[4] = (int64_t)st->st_nlink, r[5] = st->st_size;
    r[6] = (int64_t)st->st_ino, r[7] = (int64_t)st->st_dev;
    r[8] = ns_of(st->st_atim), r[9] = ns_of(st->st_mtim), r[10] = ns_of(st->st_ctim);
  }
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  napi_set_named_property(env, out, "names", names);
  napi_set_named_property(env, out, "stats", stats);
  return out;
}

static void reject_with(napi_env env, napi_deferred deferred, const char *text) {
  napi_value msg, err;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_reject_deferred(env, deferred, err);
}

static void stat_dir_complete(napi_env env, napi_status status, void *data) {
  struct stat_dir_work *w = data;
  napi_value v = NULL;
  if (status == napi_ok) v = w->rc < 0 ? make_int(env, w->rc) : stat_dir_async_result(env, &w->d);
  if (v) napi_resolve_deferred(env, w->deferred, v);
  else reject_with(env, w->deferred, "vdfs-fuse: statDirAsync failed");
  napi_delete_async_work(env, w->work);
  free(w->d.v);
  free(w->d.names);
  free(w);
}

static napi_value js_stat_dir_async(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (!get_int32(env, argv[0], &fd, "statDirAsync(fd) takes a directory descriptor")) return NULL;
  struct stat_dir_work *w = calloc(1, sizeof *w);
  napi_value promise;
  if (!w) {
    napi_throw_error(env, NULL, "vdfs-fuse: out of memory");
    return NULL;
  }
  w->fd = fd;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w);
    napi_throw_error(env, NULL, "vdfs-fuse: statDirAsync could not make its promise");
    return NULL;
  }
  // Once the promise exists it is returned and settled either way: a deferred never settled
  // would leave its caller waiting forever.
  if (!queue_async(env, "vdfs:statDirAsync", stat_dir_execute, stat_dir_complete, w, &w->work)) {
    reject_with(env, w->deferred, "vdfs-fuse: statDirAsync could not be queued");
    free(w);
  }
  return promise;
}

void posix_calls_export(napi_env env, napi_value exports) {
  export_fn(env, exports, "utimens", js_utimens);
  export_fn(env, exports, "futimens", js_futimens);
  export_fn(env, exports, "noAtime", js_no_atime);
  export_fn(env, exports, "mknod", js_mknod);
  export_fn(env, exports, "fallocate", js_fallocate);
  export_fn(env, exports, "openDirBeneath", js_open_dir_beneath);
  export_fn(env, exports, "renameExchange", js_rename_exchange);
  export_fn(env, exports, "statDir", js_stat_dir);
  export_fn(env, exports, "statDirAsync", js_stat_dir_async);
  export_fn(env, exports, "hugePageBuffer", js_huge_page_buffer);
}
