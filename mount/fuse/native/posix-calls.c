/*
 * The few POSIX calls Node has no form of (nanosecond utimensat with UTIME_NOW/UTIME_OMIT,
 * mknod, openat2): the local writer runs them on `/proc/self/fd/N/name` paths it opened without
 * following symlinks. Synchronous on the JS thread: metadata-only calls on an open parent
 * (openDirBeneath: a path walk of a local location, answered from the dentry cache).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/openat2.h>
#include <string.h>
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
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return NULL;
  }
  for (int i = 0; i < 4; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "times must be numbers");
      return NULL;
    }
  }
  struct timespec ts[2] = {{.tv_sec = v[0], .tv_nsec = v[1]}, {.tv_sec = v[2], .tv_nsec = v[3]}};
  return make_int(env, futimens(fd, ts) < 0 ? -errno : 0);
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

void posix_calls_export(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "utimens", NAPI_AUTO_LENGTH, js_utimens, NULL, &f);
  napi_set_named_property(env, exports, "utimens", f);
  napi_create_function(env, "futimens", NAPI_AUTO_LENGTH, js_futimens, NULL, &f);
  napi_set_named_property(env, exports, "futimens", f);
  napi_create_function(env, "mknod", NAPI_AUTO_LENGTH, js_mknod, NULL, &f);
  napi_set_named_property(env, exports, "mknod", f);
  napi_create_function(env, "fallocate", NAPI_AUTO_LENGTH, js_fallocate, NULL, &f);
  napi_set_named_property(env, exports, "fallocate", f);
  napi_create_function(env, "openDirBeneath", NAPI_AUTO_LENGTH, js_open_dir_beneath, NULL, &f);
  napi_set_named_property(env, exports, "openDirBeneath", f);
  napi_create_function(env, "renameExchange", NAPI_AUTO_LENGTH, js_rename_exchange, NULL, &f);
  napi_set_named_property(env, exports, "renameExchange", f);
}
