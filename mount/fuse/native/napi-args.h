/* The N-API helpers the addon's exported functions share. */
#ifndef VDFS_NAPI_ARGS_H
#define VDFS_NAPI_ARGS_H
#include <node_api.h>
#include <stdint.h>

/* Fills argv with `want` arguments; throws a TypeError and returns 0 when fewer were given. */
static inline int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "vdfs-fuse: missing arguments");
    return 0;
  }
  return 1;
}

/* *out = the int32 in v; throws a TypeError saying `what` and returns 0 when v is no number. */
static inline int get_int32(napi_env env, napi_value v, int32_t *out, const char *what) {
  if (napi_get_value_int32(env, v, out) == napi_ok) return 1;
  napi_throw_type_error(env, NULL, what);
  return 0;
}

static inline napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

/* exports[name] = fn. */
static inline void export_fn(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

/* Creates and queues an async work item named `name`: 1 when queued (*work set), 0 when not (nothing left to free). */
static inline int queue_async(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data,
                              napi_async_work *work) {
  napi_value n;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n) != napi_ok || napi_create_async_work(env, NULL, n, execute, complete, data, work) != napi_ok)
    return 0;
  if (napi_queue_async_work(env, *work) != napi_ok) {
    napi_delete_async_work(env, *work);
    return 0;
  }
  return 1;
}
#endif
