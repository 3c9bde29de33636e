#pragma once
#include <node_api.h>
/* Adds readFileInto() and writeNewFile() (the block cache's whole-file I/O, one pool task each) to the addon's exports. */
void file_io_export(napi_env env, napi_value exports);
