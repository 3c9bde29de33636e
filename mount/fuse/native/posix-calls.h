#pragma once
#include <node_api.h>
/* Adds utimens() and mknod() to the addon's exports. */
void posix_calls_export(napi_env env, napi_value exports);
