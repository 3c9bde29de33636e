#pragma once
#include <node_api.h>
#include <stddef.h>
/* Adds utimens(), futimens(), noAtime(), mknod(), fallocate(), openDirBeneath(), renameExchange(), statDir() and hugePageBuffer() to the addon's exports. */
void posix_calls_export(napi_env env, napi_value exports);
/*
 * `len` bytes (a multiple of 2 MiB) of zeroed anonymous memory, 2 MiB-aligned and advised
 * MADV_HUGEPAGE, or NULL with errno set. Freed with munmap(p, len).
 */
void *map_huge(size_t len);
