/* Getting a /dev/fuse descriptor mounted: mount(2) as root, fusermount's fd passing otherwise. */
#ifndef VDFS_MOUNTING_H
#define VDFS_MOUNTING_H
#include <stddef.h>
/* Both return the /dev/fuse descriptor, or -errno with a message in err. */
int mount_direct(const char *mnt, const char *fsname, int allow_other, char *err, size_t errlen);
int mount_fusermount(const char *mnt, const char *fsname, int allow_other, char *err, size_t errlen);
/* Lazy unmount (MNT_DETACH). Returns 0 or -errno. */
int unmount_detach(const char *mnt);
#endif
