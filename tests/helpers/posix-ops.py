#!/usr/bin/env python3
"""Applies filesystem operations read as JSON lines on stdin under the directory argv[1]; answers
one JSON line each: the result ("ok", a value, or the errno name) and, for "snap", the full lstat
and content hash of every entry. Used by tests/fuse-posix-model.test.ts on a mount and on a
real directory, run as root or as another user (setpriv), so both sides see the same caller."""
import ctypes, errno, hashlib, json, os, stat, sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def check(rc):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def data(n, seed):
    return bytes((i * 131 + seed * 7) & 0xFF for i in range(n))


def utimens(p, a, m, nofollow):
    ts = (Timespec * 2)(Timespec(*a), Timespec(*m))
    check(libc.utimensat(AT_FDCWD, p.encode(), ts, 0x100 if nofollow else 0))


# Every open is O_NONBLOCK: on a FIFO without a peer a write-open fails with ENXIO at once and a
# read-open sees EOF, on both sides, instead of blocking the sequence (no effect on files).
NB = os.O_NONBLOCK
OPENS = {"write", "append", "writeAt", "read", "fallocate", "copy", "seek", "hold"}
# Descriptors kept open across operations by slot ("hold"): a logger or a database holds its file
# open for writing while other calls rename, link, truncate or replace its name.
HELD = {}


def is_device(p):
    # stat, not lstat: the opens follow symlinks, so a symlink to a device opens the device.
    try: m = os.stat(p).st_mode
    except OSError: return False
    return stat.S_ISCHR(m) or stat.S_ISBLK(m)


def seek_data(fd, off):
    size = os.fstat(fd).st_size
    if off >= size:
        os.lseek(fd, off, os.SEEK_DATA)  # raises ENXIO, as it must on both sides
        return "past the end answered"
    content = os.pread(fd, size - off, off)
    first = next((i for i, b in enumerate(content) if b), None)
    try: r = os.lseek(fd, off, os.SEEK_DATA)
    except OSError as e:
        if e.errno != errno.ENXIO: raise
        return {"firstNonZero": first, "skipped": first is not None}
    return {"firstNonZero": None if first is None else off + first, "skipped": r < off or (first is not None and r > off + first)}


def run(root, o):
    p = os.path.join(root, o.get("p", ""))
    to = os.path.join(root, o["to"]) if "to" in o else None
    k = o["op"]
    # The mount is nodev (docs/vfs.md): opening a device node there is EACCES by design, while
    # the disk opens the device. Opens of device nodes are therefore not compared here;
    # tests/fuse-special-files.test.ts checks the mount's answer.
    if k in OPENS and (is_device(p) or (to is not None and is_device(to))): return "device"
    if k == "write":
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NB, o.get("mode", 0o666))
        try: os.write(fd, data(o["n"], o["seed"]))
        finally: os.close(fd)
    elif k == "append":
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND | NB, 0o666)
        try: os.write(fd, data(o["n"], o["seed"]))
        finally: os.close(fd)
    elif k == "writeAt":
        fd = os.open(p, os.O_WRONLY | NB)
        try: os.pwrite(fd, data(o["n"], o["seed"]), o["at"])
        finally: os.close(fd)
    elif k == "read":
        fd = os.open(p, os.O_RDONLY | NB)
        try:
            out = b""
            while True:
                b = os.read(fd, 1 << 20)
                if not b: break
                out += b
            return hashlib.sha256(out).hexdigest()[:16]
        finally: os.close(fd)
    elif k == "mkdir": os.mkdir(p, o["mode"])
    elif k == "rmdir": os.rmdir(p)
    elif k == "unlink": os.unlink(p)
    elif k == "rename": os.rename(p, to)
    elif k == "rename2":
        check(libc.renameat2(AT_FDCWD, p.encode(), AT_FDCWD, to.encode(), o["flags"]))
    elif k == "truncate": os.truncate(p, o["size"])
    elif k == "chmod": os.chmod(p, o["mode"])
    elif k == "chown": os.lchown(p, o["uid"], o["gid"])
    elif k == "utimens":
        t = lambda v: (0, UTIME_NOW) if v == "now" else (0, UTIME_OMIT) if v == "omit" else tuple(v)
        utimens(p, t(o["a"]), t(o["m"]), o.get("nofollow", True))
    elif k == "link": os.link(p, to, follow_symlinks=False)
    elif k == "symlink": os.symlink(o["target"], p)
    elif k == "mkfifo": os.mkfifo(p, o["mode"])
    elif k == "mknod":
        kind = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "sock": stat.S_IFSOCK, "fifo": stat.S_IFIFO}[o["kind"]]
        os.mknod(p, kind | o["mode"], os.makedev(o.get("major", 0), o.get("minor", 0)))
    elif k == "fallocate":
        fd = os.open(p, os.O_WRONLY | NB)
        try: os.posix_fallocate(fd, o["off"], o["len"])
        finally: os.close(fd)
    elif k == "copy":
        src = os.open(p, os.O_RDONLY | NB)
        try:
            dst = os.open(to, os.O_WRONLY | os.O_CREAT | NB, 0o644)
            try:
                done = 0
                while done < o["len"]:
                    n = os.copy_file_range(src, dst, o["len"] - done, o["off"] + done, o["at"] + done)
                    if n == 0: break
                    done += n
                return done
            finally: os.close(dst)
        finally: os.close(src)
    elif k == "seek":
        fd = os.open(p, os.O_RDONLY | NB)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                return "dir"  # seek offsets of directories are the filesystem's own cookies
            # A filesystem may report a hole as data (lseek(2)), and ext4 does so for an allocated,
            # never written range (fallocate) once its pages are in the page cache: after any
            # reader, such as the daemon hashing the file. So SEEK_DATA is compared by what the
            # content decides: the first non-zero byte at or after the offset, and whether the
            # answer skipped none (nothing but zeros before it). SEEK_HOLE may be the end or an
            # earlier hole, so only "a hole at or before the end" is compared.
            if o["whence"] == "hole":
                r = os.lseek(fd, o["off"], os.SEEK_HOLE)
                return "hole<=end" if r <= os.fstat(fd).st_size else r
            return seek_data(fd, o["off"])
        finally: os.close(fd)
    elif k == "hold":
        if o["h"] in HELD: os.close(HELD.pop(o["h"]))
        HELD[o["h"]] = os.open(p, os.O_RDWR | os.O_CREAT | NB | (os.O_TRUNC if o["trunc"] else 0), 0o644)
    elif k in ("hwrite", "hstat", "hclose"):
        fd = HELD.get(o["h"])
        if fd is None: return "none held"
        if k == "hwrite": os.pwrite(fd, data(o["n"], o["seed"]), o["at"])
        elif k == "hclose": os.close(HELD.pop(o["h"]))
        else:
            s = os.fstat(fd)
            return [s.st_size, stat.S_IMODE(s.st_mode), s.st_nlink]
    elif k == "readdir": return sorted(os.listdir(p))
    elif k == "umask": os.umask(o["mask"])
    elif k == "snap": return snap(p)
    else: raise ValueError(k)
    return "ok"


def snap(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            full = os.path.join(dirpath, n)
            s = os.lstat(full)
            e = {"type": stat.S_IFMT(s.st_mode), "mode": stat.S_IMODE(s.st_mode), "nlink": s.st_nlink,
                 "uid": s.st_uid, "gid": s.st_gid, "atime": str(s.st_atime_ns), "mtime": str(s.st_mtime_ns), "ctime": str(s.st_ctime_ns), "ino": s.st_ino}
            if stat.S_ISREG(s.st_mode):
                e["size"] = s.st_size
                with open(full, "rb") as f: e["sha"] = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(s.st_mode):
                e["size"] = s.st_size
                e["target"] = os.readlink(full)
            elif stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
                e["rdev"] = s.st_rdev
            out[os.path.relpath(full, root)] = e
    return out


def main():
    root = sys.argv[1]
    for line in sys.stdin:
        o = json.loads(line)
        try:
            r = {"r": run(root, o)}
        except OSError as e:
            r = {"r": errno.errorcode.get(e.errno, str(e.errno))}
        except Exception as e:  # a bug in the op itself: said, never hidden
            r = {"r": "ERR " + repr(e)}
        sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.flush()


main()
