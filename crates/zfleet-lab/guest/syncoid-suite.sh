#!/bin/bash
# By hand, inside the OpenZFS guest: sanoid's tests/syncoid/*/run.sh unchanged,
# once per implementation named on the command line, with `syncoid` in the
# tree replaced: upstream = the tree's own syncoid, zfleet = a symbolic link
# to /usr/local/bin/zfleet (zfleet takes syncoid's command line by its name),
# debian = a link to /usr/sbin/syncoid. Expects the sanoid tree unpacked in
# /root/sanoid (the guest has no network: `git archive` it on the host and
# pipe it in over the ssh line `zfleet-lab guest up` prints). Prints one line
# per test: implementation, test, PASS/SKIPPED/FAILED(status), seconds; the
# logs stay in /tmp/suite-IMPL-TEST.log.
set -u
root=/root/sanoid
cd $root/tests/syncoid
cp -n $root/syncoid $root/syncoid.upstream 2>/dev/null || true
for impl in "$@"; do
  rm -f $root/syncoid
  case $impl in
    upstream) cp $root/syncoid.upstream $root/syncoid; chmod +x $root/syncoid ;;
    zfleet) ln -s /usr/local/bin/zfleet $root/syncoid ;;
    debian) ln -s /usr/sbin/syncoid $root/syncoid ;;
  esac
  for t in */; do
    t=${t%/}
    [ -x "$t/run.sh" ] || continue
    log=/tmp/suite-$impl-$t.log
    start=$(date +%s)
    (cd $t && echo | timeout 900 bash run.sh >"$log" 2>&1)
    rc=$?
    secs=$(( $(date +%s) - start ))
    case $rc in 0) r=PASS ;; 130) r=SKIPPED ;; *) r="FAILED($rc)" ;; esac
    echo "$impl $t $r ${secs}s"
    for p in $(zpool list -H -o name 2>/dev/null | grep syncoid-test); do zpool destroy -f $p; done
    rm -f /tmp/syncoid-test-*.zpool
  done
done
