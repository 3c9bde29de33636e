#!/usr/bin/env bash
# Metadata figures of one vdfs build against the disk, back to back (issue #15): cold and warm
# `ls -l` of a big folder, cold and warm `find -printf '%s %T@'` over a tree, the daemon's CPU
# time (utime+stime from /proc, which other load barely changes) and requests by opcode for each,
# and its RSS 10 s after start and after the walks. A bench, not a test: run as root.
#
#   tests/bench/meta-walk.sh VDFS_ROOT HOME MOUNTPOINT LOCATION_DIR LS_REL FIND_REL [mount args...]
#
# VDFS_ROOT is a built tree (bin/vdfs, dist/); HOME a vdfs home with one scanned location whose
# folder is LOCATION_DIR and whose name is the first path component of LS_REL/FIND_REL.
# VDFS_NODE_FLAGS: extra node flags for the daemon (e.g. --cpu-prof).
set -euo pipefail
ROOT=$1 HOME_DIR=$2 MNT=$3 DATA=$4 LS_REL=$5 FIND_REL=$6
shift 6
LOC=${LS_REL%%/*}
mkdir -p "$MNT"
node ${VDFS_NODE_FLAGS:-} "$ROOT/bin/vdfs" --home "$HOME_DIR" mount "$MNT" "$@" >"$HOME_DIR/meta-walk.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; mountpoint -q "$MNT" && fusermount -uz "$MNT"' EXIT
for _ in $(seq 600); do grep -q 'start-up rescan done' "$HOME_DIR/meta-walk.log" && break; sleep 0.1; done
sleep 10
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$PID/status; }
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
ops() { getfattr -n user.vdfs.fuse --only-values "$MNT" 2>/dev/null | tr -d '{}"' | tr ',' '\n' | { grep -E '^(op|native)\.' || true; } | sort; }
echo "rss.idle $(rss) MiB (10 s after the start-up rescan)"
sleep 10
echo "rss.idle20 $(rss) MiB (20 s after)"
# run NAME CMD: wall seconds, daemon CPU seconds, and the requests it caused by opcode
run() {
  local name=$1 cmd=$2 c0 c1 t0 t1 o0 o1
  o0=$(ops)
  c0=$(cpu)
  t0=$(date +%s.%N)
  bash -c "$cmd" >/dev/null
  t1=$(date +%s.%N)
  c1=$(cpu)
  o1=$(ops)
  local delta
  delta=$(join -t: -a2 -e0 -o '2.1,1.2,2.2' <(echo "$o0") <(echo "$o1") | awk -F: '$3-$2>0 {printf "%s=%d ", $1, $3-$2}')
  printf '%s wall %.3f s daemon-cpu %.2f s  %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(echo "($c1 - $c0)/100" | bc -l)" "$delta"
}
disk() {
  local name=$1 cmd=$2 t0 t1
  t0=$(date +%s.%N)
  bash -c "$cmd" >/dev/null
  t1=$(date +%s.%N)
  printf '%s wall %.3f s\n' "$name" "$(echo "$t1 - $t0" | bc)"
}
drop='sync; echo 3 > /proc/sys/vm/drop_caches'
M="$MNT/$LS_REL" D="$DATA/${LS_REL#"$LOC"/}"
MF="$MNT/$FIND_REL" DF="$DATA/${FIND_REL#"$LOC"/}"
eval "$drop"; run mnt.ls.first "ls -l $M"
eval "$drop"; run mnt.ls.cold "ls -l $M"
run mnt.ls.warm "ls -l $M"
eval "$drop"; disk disk.ls.cold "ls -l $D"
disk disk.ls.warm "ls -l $D"
eval "$drop"; run mnt.find.cold "find $MF -printf '%s %T@\n'"
run mnt.find.warm "find $MF -printf '%s %T@\n'"
eval "$drop"; run mnt.find.cold2 "find $MF -printf '%s %T@\n'"
run mnt.find.warm2 "find $MF -printf '%s %T@\n'"
eval "$drop"; disk disk.find.cold "find $DF -printf '%s %T@\n'"
disk disk.find.warm "find $DF -printf '%s %T@\n'"
echo "rss.after-walks $(rss) MiB"
sleep 20
echo "rss.after-walks20 $(rss) MiB (20 s later)"
uptime
