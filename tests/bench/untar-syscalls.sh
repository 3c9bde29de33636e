#!/usr/bin/env bash
# System calls of the daemon's JS thread while `tar x` unpacks TARBALL into a fresh mounted local
# location (issue #15, fuse.untar): `strace -c` of that one thread, so the count does not depend
# on the machine's load the way times do. A bench, not a test: run as root.
#
#   tests/bench/untar-syscalls.sh VDFS_ROOT TARBALL WORKDIR [mount args...]
#
# VDFS_ROOT is a built tree (bin/vdfs, dist/). Make a tarball with tests/bench/untar.sh --make.
set -euo pipefail
ROOT=$1 TARBALL=$2 WORK=$3
shift 3
mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/sys.XXXXXX")
H="$RUN/home" D="$RUN/data" MNT="$RUN/mnt"
mkdir -p "$H" "$D" "$MNT"
node "$ROOT/bin/vdfs" --home "$H" init >/dev/null
node "$ROOT/bin/vdfs" --home "$H" location add loc "$D" >/dev/null
node "$ROOT/bin/vdfs" --home "$H" mount "$MNT" "$@" >"$RUN/daemon.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; mountpoint -q "$MNT" && fusermount -uz "$MNT"' EXIT
for _ in $(seq 600); do grep -q 'start-up rescan done' "$RUN/daemon.log" && break; sleep 0.1; done
# Without -f: the thread whose tid is the PID, i.e. the JS thread only.
strace -c -p "$PID" -o "$RUN/strace.txt" &
SPID=$!
sleep 0.5
tar xf "$TARBALL" -C "$MNT/loc"
sleep 0.3 # the last RELEASEs
kill -INT $SPID
wait $SPID 2>/dev/null || true
files=$(tar tf "$TARBALL" | grep -vc '/$')
total=$(awk '$NF == "total" {print $(NF-2)}' "$RUN/strace.txt")
echo "files $files  js-thread syscalls $total  per file $(echo "scale=1; $total / $files" | bc)"
awk 'NR > 2 && $NF != "total" && $0 !~ /^-/ {print "  " $NF, $4}' "$RUN/strace.txt" | sort -k2 -nr | head -15
