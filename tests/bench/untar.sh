#!/usr/bin/env bash
# `tar x` of small files into a mounted local location against the same `tar x` onto the disk
# (issue #15, fuse.untar), back to back: wall seconds of each, the daemon's CPU time
# (utime+stime from /proc, which other load barely changes) and the requests by opcode that
# reached the mount (op.*), how many the addon answered itself (native.*) and the microseconds JS
# spent on the others (js.*, from each request reaching JS to its reply). A bench, not a
# test: run as root.
#
#   tests/bench/untar.sh VDFS_ROOT TARBALL WORKDIR [mount args...]
#
# VDFS_ROOT is a built tree (bin/vdfs, dist/). Each run makes a fresh home and location in a new
# folder under WORKDIR (same filesystem as the disk figure), mounts it, unpacks TARBALL into it,
# unmounts.
# VDFS_NODE_FLAGS: extra node flags for the daemon (e.g. --cpu-prof --cpu-prof-dir=DIR).
# Make a tarball of N files of 100 B-4 KiB with: tests/bench/untar.sh --make N FILE
set -euo pipefail
if [ "${1:-}" = "--make" ]; then
  N=$2 OUT=$3 SRC=$(mktemp -d)
  for i in $(seq 1 "$N"); do
    d="$SRC/t/d$((i / 500))"
    mkdir -p "$d"
    head -c $((100 + (i * 2654435761) % 4000)) /dev/urandom >"$d/f$i"
  done
  tar cf "$OUT" -C "$SRC" t
  rm -rf "$SRC"
  exit 0
fi
ROOT=$1 TARBALL=$2 WORK=$3
shift 3
# A new folder per run, and nothing removed: on ext4 without a journal (this machine's disk),
# inode allocation skips inodes freed in the last 60-360 s and reads each one's inode-table
# block to find out, so a run right after removing an earlier run's files would measure that
# (both targets, unevenly). Remove WORK's run.* folders when done measuring.
mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
H="$RUN/home" D="$RUN/data" MNT="$RUN/mnt" DISK="$RUN/disk"
mkdir -p "$H" "$D" "$MNT" "$DISK"
node "$ROOT/bin/vdfs" --home "$H" init >/dev/null
node "$ROOT/bin/vdfs" --home "$H" location add loc "$D" >/dev/null
node ${VDFS_NODE_FLAGS:-} "$ROOT/bin/vdfs" --home "$H" mount "$MNT" "$@" >"$RUN/untar.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; mountpoint -q "$MNT" && fusermount -uz "$MNT"' EXIT
for _ in $(seq 600); do grep -q 'start-up rescan done' "$RUN/untar.log" && break; sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
# CPU ticks of each live thread (tid:ticks; the JS thread's tid is the PID; Node 20 names no thread).
threads() { for f in /proc/$PID/task/*/stat; do awk '{print $1 ":" $14+$15}' "$f" 2>/dev/null; done; }
# The JS thread's share of the ticks between two thread snapshots, and the busiest other threads.
thread_delta() { join -t: -a2 -e0 -o '2.1,1.2,2.2' <(echo "$1" | sort) <(echo "$2" | sort) | awk -F: -v pid=$PID '{d=$3-$2; if ($1==pid) m=d; else {o+=d; if (d>0) l=l " " d}} END {printf "js-thread %d ticks, other threads %d (%s)", m, o, l}'; }
ops() { getfattr -n user.vdfs.fuse --only-values "$MNT" 2>/dev/null | tr -d '{}"' | tr ',' '\n' | { grep -E '^(op|native|js)\.|^(sweeps|swept|invalidations)' || true; } | sort; }
sync
o0=$(ops)
th0=$(threads)
c0=$(cpu)
t0=$(date +%s.%N)
${UNTAR_WRAP:-} tar xf "$TARBALL" -C "$MNT/loc"
t1=$(date +%s.%N)
c1=$(cpu)
th1=$(threads)
o1=$(ops)
delta=$(join -t: -a2 -e0 -o '2.1,1.2,2.2' <(echo "$o0") <(echo "$o1") | awk -F: '$3-$2>0 {printf "%s=%d ", $1, $3-$2}')
files=$(tar tf "$TARBALL" | grep -vc '/$')
got=$(find "$D" -type f | wc -l)
[ "$got" -ge "$files" ] || { echo "only $got of $files files reached the disk" >&2; exit 1; }
sync
t2=$(date +%s.%N)
tar xf "$TARBALL" -C "$DISK"
t3=$(date +%s.%N)
printf 'mount %.3f s  disk %.3f s  ratio %.2f  daemon-cpu %.2f s  load %s  %s\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)" \
  "$(echo "($t1 - $t0) / ($t3 - $t2)" | bc -l)" "$(echo "($c1 - $c0)/100" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)" "$delta"
echo "  $(thread_delta "$th0" "$th1")"
