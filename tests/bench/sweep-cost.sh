#!/usr/bin/env bash
# The invalidator's cost (docs/fuse.md, "Caching and invalidation"): a location of DIRS folders
# of PER empty files is walked through the mount (`find -printf`, so the kernel holds a node per
# name), then a program outside the mount writes a file every 0.1 s for 10 s. Prints the
# invalidator's counters before and after, and the daemon's CPU ticks (utime+stime) meanwhile.
# A bench, not a test: run as root.
#
#   tests/bench/sweep-cost.sh VDFS_ROOT WORKDIR [PER [DIRS]]
set -euo pipefail
ROOT=$1 WORK=$2 PER=${3:-300} DIRS=${4:-100}
mkdir -p "$WORK"; RUN=$(mktemp -d "$WORK/run.XXXXXX")
H="$RUN/home" D="$RUN/data" MNT="$RUN/mnt"; mkdir -p "$D/bg" "$MNT"
for d in $(seq 1 $DIRS); do mkdir "$D/d$d"; (cd "$D/d$d" && seq 1 $PER | sed 's/^/f/' | xargs touch); done
node "$ROOT/bin/vdfs" --home "$H" init >/dev/null
node "$ROOT/bin/vdfs" --home "$H" location add loc "$D" >/dev/null
node "$ROOT/bin/vdfs" --home "$H" scan >/dev/null
node "$ROOT/bin/vdfs" --home "$H" mount "$MNT" >"$RUN/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; mountpoint -q "$MNT" && fusermount -uz "$MNT"; rm -rf "$RUN"' EXIT
for _ in $(seq 600); do grep -q 'start-up rescan done' "$RUN/log" && break; sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
st() { getfattr -n user.vdfs.fuse --only-values "$MNT" 2>/dev/null | tr -d '{}"' | tr ',' '\n' | grep -E '^(nodes|sweeps|swept|invalidations):' | tr '\n' ' '; }
find "$MNT/loc" -printf '%s %T@\n' >/dev/null
sleep 3
echo "after find: $(st)"
c0=$(cpu); s0=$(st)
for i in $(seq 1 100); do echo "$i" > "$D/bg/f$((i % 10))"; sleep 0.1; done
c1=$(cpu)
sleep 6
c2=$(cpu)
echo "before: $s0"
echo "after:  $(st)"
echo "daemon cpu ticks: during writes $((c1 - c0)), incl. 6 s after $((c2 - c0))"
