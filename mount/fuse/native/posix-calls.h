#pragma once
#include <node_api.h>
/* Adds utimens(), mknod(), fallocate() and openDirBeneath() and statDir() to the addon's exports. */
void posix_calls_export(napi_env env, napi_value exports);
