{
  "targets": [
    {
      "target_name": "vdfs_fuse",
      "sources": ["vdfs-fuse.c", "fd-registry.c", "block-registry.c", "mounting.c", "posix-calls.c", "native-meta.c", "native-dirs.c", "fuse-uring.c", "file-io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "libraries": ["-lpthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
