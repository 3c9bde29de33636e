/* The two N-API helpers every exported function of the addon needs. */
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

static inline napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}
#endif
