#!/usr/bin/env bash
# A/B of one shell command on two vdfs builds side by side: a fresh local location per build,
# both mounted, then CMD run on the disk, build A and build B in turn, N rounds (a bench helper,
# not a test; run as root). In CMD, %f is the folder to work in (the disk folder or the mount's
# location); CMD's last output line is printed.
#
#   tests/bench/ab.sh WORKDIR ROOT_A ROOT_B CMD [N]
#   tests/bench/ab.sh /tmp/ab /work/base /work/main 'dd if=/dev/zero of=%f/x bs=1M count=1024 conv=fsync 2>&1; rm %f/x' 5
W=$1 RA=$2 RB=$3 CMD=$4 N=${5:-4}
for v in A B; do
  fusermount -uz $W/$v/mnt 2>/dev/null
  rm -rf $W/$v; mkdir -p $W/$v/home $W/$v/data $W/$v/mnt
  R=$RA; [ $v = B ] && R=$RB
  node $R/bin/vdfs --home $W/$v/home init >/dev/null; node $R/bin/vdfs --home $W/$v/home location add loc $W/$v/data >/dev/null
  node $R/bin/vdfs --home $W/$v/home mount $W/$v/mnt > $W/$v/log 2>&1 &
  echo $! > $W/$v/pid
done
rm -rf $W/disk; mkdir -p $W/disk
sleep 3
for i in $(seq $N); do
  for v in disk A B; do
    if [ $v = disk ]; then f=$W/disk; else f=$W/$v/mnt/loc; fi
    r=$(bash -c "${CMD//%f/$f}" 2>&1 | tail -1)
    echo -n "$v $r | "; sleep 0.5
  done; echo " load $(cut -d' ' -f1 /proc/loadavg)"
done
# Only the two daemons this script started (by pid: a pattern could match someone else's).
kill $(cat $W/A/pid) $(cat $W/B/pid); wait
