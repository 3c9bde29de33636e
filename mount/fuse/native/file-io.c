/*
 * Whole-file reads and writes of the block cache in one libuv pool task each, and read-ahead
 * advice for the scanner's batches of small files. Through
 * fs/promises a block file cost three or four pool round trips (open, read or two writes of
 * 512 KiB, close), each a wake-up of a pool thread and of the event loop: on 2 vCPUs those
 * showed as ~0.2-0.3 ms of the JS thread per block (docs/read-pipeline.md, "Fresh memory").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "file-io.h"
#include "napi-args.h"

struct file_work {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buf_ref; /* keeps the buffer alive until the task is done */
  char *path;
  char *data;
  size_t len;
  int write; /* 1: create `path` (O_EXCL) with data[0..len); 0: read up to len bytes of it into data */
  mode_t mode;
  int64_t rc;
};

static int64_t read_file(const char *path, char *data, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  size_t got = 0;
  int64_t rc = 0;
  while (got < len) {
    ssize_t n = pread(fd, data + got, len - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -errno;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  return rc < 0 ? rc : (int64_t)got;
}

/* A partial file is left for the caller to unlink (it knows whether the name was its own). */
static int64_t write_file(const char *path, const char *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return -errno;
  size_t put = 0;
  int64_t rc = 0;
  while (put < len) {
    ssize_t n = write(fd, data + put, len - put);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (n == 0) {
      rc = -EIO;
      break;
    }
    put += (size_t)n;
  }
  if (close(fd) < 0 && rc == 0) rc = -errno;
  return rc;
}

static void file_execute(napi_env env, void *arg) {
  (void)env;
  struct file_work *w = arg;
  w->rc = w->write ? write_file(w->path, w->data, w->len, w->mode) : read_file(w->path, w->data, w->len);
}

static void file_complete(napi_env env, napi_status status, void *arg) {
  struct file_work *w = arg;
  napi_value v;
  if (status == napi_ok && napi_create_int64(env, w->rc, &v) == napi_ok) {
    napi_resolve_deferred(env, w->deferred, v);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, "vdfs-fuse: a block file task failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, w->deferred, err);
  }
  napi_delete_async_work(env, w->work);
  napi_delete_reference(env, w->buf_ref);
  free(w->path);
  free(w);
}

/* (path, buffer, n) for both; the third is the byte count to read, or the mode to create with. */
static napi_value queue_file_work(napi_env env, napi_callback_info info, int write) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  size_t plen;
  bool is_buf = false;
  void *data = NULL;
  size_t blen = 0;
  uint32_t third;
  napi_is_buffer(env, argv[1], &is_buf);
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok || !is_buf || napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok
      || napi_get_value_uint32(env, argv[2], &third) != napi_ok || (!write && third > blen)) {
    napi_throw_type_error(env, NULL, write ? "writeNewFile(path, buffer, mode)" : "readFileInto(path, buffer, length ≤ buffer.length)");
    return NULL;
  }
  struct file_work *w = calloc(1, sizeof *w);
  char *path = malloc(plen + 1);
  napi_value promise;
  if (!w || !path || napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w);
    free(path);
    napi_throw_error(env, NULL, "vdfs-fuse: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], path, plen + 1, &plen);
  w->path = path;
  w->data = data;
  w->write = write;
  w->len = write ? blen : third;
  w->mode = write ? (mode_t)(third & 07777) : 0;
  // Once the promise exists it is settled either way: a deferred never settled would leave its caller waiting forever.
  if (napi_create_reference(env, argv[1], 1, &w->buf_ref) != napi_ok) w->buf_ref = NULL;
  if (!w->buf_ref || !queue_async(env, "vdfs:blockFile", file_execute, file_complete, w, &w->work)) w->work = NULL;
  if (!w->work) {
    napi_value v;
    napi_create_int64(env, -ENOMEM, &v);
    napi_resolve_deferred(env, w->deferred, v);
    if (w->buf_ref) napi_delete_reference(env, w->buf_ref);
    free(path);
    free(w);
  }
  return promise;
}

/* readFileInto(path, buffer, length): up to `length` bytes of the file (O_NOFOLLOW) into buffer; bytes read, or -errno. */
static napi_value js_read_file_into(napi_env env, napi_callback_info info) { return queue_file_work(env, info, 0); }

/* writeNewFile(path, buffer, mode): creates the file (O_EXCL, O_NOFOLLOW) holding buffer; 0 or -errno (a partial file may stay). */
static napi_value js_write_new_file(napi_env env, napi_callback_info info) { return queue_file_work(env, info, 1); }

/*
 * adviseWillNeed(paths): posix_fadvise(WILLNEED) of each file (O_NOFOLLOW, O_NONBLOCK: a FIFO
 * swapped in is not waited for), so the disk reads a batch of small files at once instead of
 * one per blocking read (a cold tree of 4 KiB files here: ~2x faster). Synchronous: the scan's
 * worker threads call it. Returns how many were advised; a file that cannot be opened is skipped.
 */
static napi_value js_advise_will_need(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  uint32_t n;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "adviseWillNeed(paths: string[])");
    return NULL;
  }
  int64_t advised = 0;
  char path[4096];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || napi_get_value_string_utf8(env, v, path, sizeof path, &len) != napi_ok ||
        len >= sizeof path - 1)
      continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0) advised++;
    close(fd);
  }
  return make_int(env, advised);
}

void file_io_export(napi_env env, napi_value exports) {
  export_fn(env, exports, "adviseWillNeed", js_advise_will_need);
  export_fn(env, exports, "readFileInto", js_read_file_into);
  export_fn(env, exports, "writeNewFile", js_write_new_file);
}
