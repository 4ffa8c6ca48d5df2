#!/bin/bash
# By hand, inside the OpenZFS guest: `zfleet sync` (/usr/local/bin/zfleet, a
# release build) against Debian's syncoid, locally, with the same flags on the
# same data: a full copy of 8 MiB, then an incremental of 2 MiB, three rounds,
# alternating; each copy is checked by checksum. See docs/benchmarks.md.
set -eu
P=zfleet-bench; truncate -s 1G /tmp/$P.img; zpool create -f -m /tmp/$P $P /tmp/$P.img
trap 'zpool destroy -f $P; rm -f /tmp/$P.img' EXIT
dd if=/dev/urandom of=/tmp/bench-8m bs=1M count=8 status=none
for impl in debian zfleet; do
  zfs create $P/src-$impl
  cp /tmp/bench-8m /tmp/$P/src-$impl/data
done
run() { # impl args...
  local impl=$1; shift
  local s e
  s=$(date +%s%N)
  local rc=0
  if [ $impl = debian ]; then /usr/sbin/syncoid "$@" >>/tmp/bench-$impl.log 2>&1 || rc=$?; else /usr/local/bin/zfleet sync "$@" >>/tmp/bench-$impl.log 2>&1 || rc=$?; fi
  e=$(date +%s%N)
  local ms=$(( (e - s) / 1000000 ))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
  [ $rc = 0 ] || printf '(exit %d)' $rc
}
echo "zfleet $(/usr/local/bin/zfleet --version 2>/dev/null | head -1); syncoid $(dpkg-query -W -f='${Version}' sanoid)"
for round in 1 2 3; do
  for impl in debian zfleet; do
    zfs destroy -r $P/dst-$impl 2>/dev/null || true
    full=$(run $impl --compress=none $P/src-$impl $P/dst-$impl)
    dd if=/dev/urandom of=/tmp/$P/src-$impl/data bs=1M count=2 seek=3 conv=notrunc status=none
    incr=$(run $impl --compress=none $P/src-$impl $P/dst-$impl)
    a=$(sha256sum < /tmp/$P/src-$impl/data); b=$(sha256sum < /tmp/$P/dst-$impl/data)
    [ "$a" = "$b" ] || { echo "$impl round $round: copy differs"; exit 1; }
    echo "round $round $impl full=${full}s incremental=${incr}s guest-load=$(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
