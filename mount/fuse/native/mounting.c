#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mounting.h"

extern char **environ;

int mount_direct(const char *mnt, const char *fsname, int allow_other, char *err, size_t errlen) {
  struct stat st;
  if (stat(mnt, &st) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot stat mount point: %s", strerror(e));
    return -e;
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(e));
    return -e;
  }
  char opts[256];
  snprintf(opts, sizeof opts, "fd=%d,rootmode=%o,user_id=%u,group_id=%u,default_permissions%s", fd,
           st.st_mode & S_IFMT, getuid(), getgid(), allow_other ? ",allow_other" : "");
  char type[64];
  snprintf(type, sizeof type, "fuse.%s", fsname);
  if (mount(fsname, mnt, type, MS_NOSUID | MS_NODEV, opts) < 0) {
    int e = errno;
    snprintf(err, errlen, "mount(2) failed: %s", strerror(e));
    close(fd);
    return -e;
  }
  return fd;
}

/* Receives the descriptor fusermount sends over the socket (SCM_RIGHTS). */
static int receive_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

int mount_fusermount(const char *mnt, const char *fsname, int allow_other, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
    int e = errno;
    snprintf(err, errlen, "socketpair: %s", strerror(e));
    return -e;
  }
  fcntl(sv[1], F_SETFD, FD_CLOEXEC);
  char opts[256], commfd[32];
  snprintf(opts, sizeof opts, "fsname=%s,subtype=%s,default_permissions%s", fsname, fsname, allow_other ? ",allow_other" : "");
  snprintf(commfd, sizeof commfd, "_FUSE_COMMFD=%d", sv[0]);
  /* The child's environment: ours plus _FUSE_COMMFD. */
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof(char *));
  if (!env) { close(sv[0]); close(sv[1]); snprintf(err, errlen, "out of memory"); return -ENOMEM; }
  for (size_t i = 0; i < n; i++) env[i] = environ[i];
  env[n] = commfd;
  const char *progs[] = {"fusermount3", "fusermount"};
  pid_t pid = -1;
  int spawned = -1;
  for (int i = 0; i < 2 && spawned != 0; i++) {
    char *argv[] = {(char *)progs[i], "-o", opts, "--", (char *)mnt, NULL};
    spawned = posix_spawnp(&pid, progs[i], NULL, NULL, argv, env);
  }
  free(env);
  close(sv[0]);
  if (spawned != 0) {
    close(sv[1]);
    snprintf(err, errlen, "cannot run fusermount: %s (Debian: apt-get install fuse)", strerror(spawned));
    return -spawned;
  }
  int fd = receive_fd(sv[1]);
  close(sv[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (fd < 0) {
    snprintf(err, errlen, "fusermount did not pass a descriptor (exit status %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -EIO;
  }
  return fd;
}

int unmount_detach(const char *mnt) {
  return umount2(mnt, MNT_DETACH) < 0 ? -errno : 0;
}
