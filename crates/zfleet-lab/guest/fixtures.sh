#!/bin/bash
# Runs inside the OpenZFS guest (as root, pools zroot and zstorage freshly
# created, user zbackup present) and captures the real output of the commands
# zfleet parses, one file per command, plus README.md naming each command.
#
#   fixtures.sh OUT_DIR
#
# Data is kept to a few MB: everything here runs on an emulated CPU.
set -euo pipefail

out=$1
rm -rf "$out"
mkdir -p "$out"
readme=$out/README.md
export LC_ALL=C
pass=correct-horse-battery
bad_pass=wrong-horse-battery

cat >"$readme" <<EOF
# Real OpenZFS output: $(zfs version | head -n 1)

Captured by \`zfleet-lab guest fixtures\` (script: \`crates/zfleet-lab/guest/fixtures.sh\`)
in the zfleet-lab qemu guest: Debian bookworm, kernel $(uname -r),
\`LC_ALL=C\`, $(date -u +%Y-%m-%d).

Pools: \`zroot\` plays a client, \`zstorage\` a backup server (separate pools
in one guest). \`zbackup\` is an unprivileged user with \`zfs allow\`
delegations. The encryption passphrase is \`$pass\`.

Each file holds the **stdout** of one command; a \`.stderr\` file beside it
holds its stderr when there was any. Files named \`err-*.stderr\` are stderr of
commands that fail on purpose. Exit statuses are listed below.

EOF

# cap FILE COMMAND: the command must succeed; stdout is the fixture.
# capfail FILE COMMAND: the command must fail; its stderr is the fixture.
run_cap() {
    local expect=$1 file=$2 cmd=$3 rc=0
    bash -c "$cmd" >"$out/$file.stdout-tmp" 2>"$out/$file.stderr-tmp" || rc=$?
    if [ "$expect" = ok ] && [ $rc -ne 0 ]; then
        echo "fixtures: '$cmd' failed ($rc):" >&2
        cat "$out/$file.stderr-tmp" >&2
        exit 1
    fi
    if [ "$expect" = fail ] && [ $rc -eq 0 ]; then
        echo "fixtures: '$cmd' was expected to fail but succeeded" >&2
        exit 1
    fi
    if [ "$expect" != fail ]; then
        mv "$out/$file.stdout-tmp" "$out/$file"
        if [ -s "$out/$file.stderr-tmp" ]; then
            mv "$out/$file.stderr-tmp" "$out/$file.stderr"
        else
            rm "$out/$file.stderr-tmp"
        fi
    else
        mv "$out/$file.stderr-tmp" "$out/$file"
        if [ -s "$out/$file.stdout-tmp" ]; then
            mv "$out/$file.stdout-tmp" "$out/$file.stdout"
        else
            rm "$out/$file.stdout-tmp"
        fi
    fi
    {
        echo "## \`$file\`"
        echo
        echo '```sh'
        echo "$cmd"
        echo '```'
        echo
        echo "exit status $rc"
        echo
    } >>"$readme"
}
cap() { run_cap ok "$@"; }
capfail() { run_cap fail "$@"; }
# capany FILE COMMAND: for options not every OpenZFS version has; stdout and
# stderr are kept whatever the exit status (the README records it).
capany() { run_cap any "$@"; }
note() { printf '%s\n\n' "$*" >>"$readme"; }
as_zbackup() { su zbackup -s /bin/sh -c "$1"; }

echo "# Setup (not captured)" >/dev/null
zfs create -o compression=off zroot/data
zfs create zroot/data/sub
head -c 2M /dev/urandom >/zroot/data/a
zfs snapshot -r zroot/data@autosnap_2025-01-01_00:00:00_daily
head -c 2M /dev/urandom >/zroot/data/b
zfs snapshot zroot/data@autosnap_2025-01-01_01:00:00_hourly
zfs bookmark zroot/data@autosnap_2025-01-01_00:00:00_daily zroot/data#autosnap_2025-01-01_00:00:00_daily
zfs set zfleet:managed=yes zroot/data
printf '%s' "$pass" | zfs create -o encryption=on -o keyformat=passphrase \
    -o keylocation=prompt -o compression=off zroot/secret
head -c 1M /dev/urandom >/zroot/secret/s
zfs snapshot zroot/secret@s1
zfs create -V 16M zroot/vol
zfs clone zroot/data@autosnap_2025-01-01_00:00:00_daily zroot/clone
zfs hold zfleet zroot/data@autosnap_2025-01-01_00:00:00_daily
zfs hold keep zroot/data@autosnap_2025-01-01_00:00:00_daily zroot/data@autosnap_2025-01-01_01:00:00_hourly
zfs create -o mountpoint=none zstorage/backup

# Replicate: the plain dataset by an interrupted, then resumed, stream; the
# encrypted one raw.
daily=zroot/data@autosnap_2025-01-01_00:00:00_daily
hourly=zroot/data@autosnap_2025-01-01_01:00:00_hourly
note "Setup: \`zroot/data\` (2 snapshots with sanoid names, a bookmark, a user property, holds), \`zroot/data/sub\`, \`zroot/secret\` (encrypted, passphrase), \`zroot/vol\` (volume), \`zroot/clone\`; \`zstorage/backup/data\` received from \`zroot/data\`, \`zstorage/backup/secret\` received raw."

zfs send "$daily" | zfs recv -u -o mountpoint=/srv/backup-data zstorage/backup/data
capfail err-recv-interrupted.stderr \
    "zfs send -i $daily $hourly | head -c 1000000 | zfs recv -s -u zstorage/backup/data"
cap zfs-get-receive-resume-token.txt \
    "zfs get -H -p receive_resume_token zstorage/backup/data"
token=$(zfs get -H -p -o value receive_resume_token zstorage/backup/data)
cap zfs-send-nvP-resume-token.txt "zfs send -nvP -t $token"
cap zfs-list-interrupted.txt \
    "zfs list -H -p -t all -o name,type,guid,createtxg,creation,used,referenced,written,userrefs,receive_resume_token -r zstorage"
zfs send -t "$token" | zfs recv -s -u zstorage/backup/data
zfs send -w zroot/secret@s1 | zfs recv -u -o mountpoint=/srv/backup-secret zstorage/backup/secret

# Listings
cap zfs-version.txt "zfs version"
cap zfs-list-client.txt \
    "zfs list -H -p -t all -o name,type,guid,createtxg,creation,used,referenced,written,userrefs -r zroot"
cap zfs-list-server.txt \
    "zfs list -H -p -t all -o name,type,guid,createtxg,creation,used,referenced,written,userrefs -r zstorage"
cap zfs-list-snapshots-sorted.txt \
    "zfs list -H -p -t snapshot,bookmark -o name,guid,createtxg -s createtxg -r zroot/data"
cap zfs-get-all-filesystem.txt "zfs get -H -p -o name,property,value,source all zroot/data"
cap zfs-get-all-encrypted.txt "zfs get -H -p -o name,property,value,source all zroot/secret"
cap zfs-get-all-snapshot.txt "zfs get -H -p -o name,property,value,source all $daily"
cap zfs-get-all-bookmark.txt \
    "zfs get -H -p -o name,property,value,source all zroot/data#autosnap_2025-01-01_00:00:00_daily"
cap zfs-get-all-volume.txt "zfs get -H -p -o name,property,value,source all zroot/vol"
cap zfs-get-all-received-raw.txt \
    "zfs get -H -p -o name,property,value,source all zstorage/backup/secret"
cap zfs-get-encryption-props.txt \
    "zfs get -H -p -o name,property,value,source -r encryption,keystatus,keyformat,keylocation,encryptionroot zroot/secret zstorage/backup/secret"
cap zfs-holds.txt "zfs holds -H $daily $hourly"
# -p is new in 2.2 (2.1 answers "invalid option 'p'").
capany zfs-holds-p.txt "zfs holds -H -p $daily $hourly"
cap zfs-holds-recursive.txt "zfs holds -H -r zroot/data@autosnap_2025-01-01_00:00:00_daily"

# Send size estimates
cap zfs-send-nvP-full.txt "zfs send -nvP $daily"
cap zfs-send-nvP-incremental.txt "zfs send -nvP -i $daily $hourly"
cap zfs-send-nvP-intermediary.txt "zfs send -nvP -I $daily $hourly"
cap zfs-send-nvP-from-bookmark.txt \
    "zfs send -nvP -i zroot/data#autosnap_2025-01-01_00:00:00_daily $hourly"
cap zfs-send-nvP-raw.txt "zfs send -nvP -w zroot/secret@s1"
cap zfs-send-nvP-replicate.txt "zfs send -nvP -R $daily"

# Delegation
zfs allow -u zbackup send,snapshot,hold,bookmark zroot/data
zfs allow -d -u zbackup mount zroot/data
zfs allow -s @pull send,hold,release zroot/data
zfs allow -g zbackup @pull zroot/data
zfs allow -u zbackup create,receive,mount,hold,release zstorage/backup
zfs allow -e userprop zstorage/backup
note "Delegation: \`zfs allow -u zbackup send,snapshot,hold,bookmark zroot/data\`; \`zfs allow -d -u zbackup mount zroot/data\`; \`zfs allow -s @pull send,hold,release zroot/data\`; \`zfs allow -g zbackup @pull zroot/data\`; \`zfs allow -u zbackup create,receive,mount,hold,release zstorage/backup\`; \`zfs allow -e userprop zstorage/backup\`."
cap zfs-allow-client.txt "zfs allow zroot/data"
cap zfs-allow-client-child.txt "zfs allow zroot/data/sub"
cap zfs-allow-server.txt "zfs allow zstorage/backup"

# Pools
cap zpool-list.txt "zpool list -H -p"
cap zpool-list-columns.txt "zpool list -H -p -o name,size,allocated,free,health,guid"
cap zpool-get-all.txt "zpool get -H -p all zroot"
cap zpool-status.txt "zpool status zroot"
cap zpool-status-p.txt "zpool status -p -P zroot"
cap zpool-status-x.txt "zpool status -x"

# Failures
capfail err-dataset-does-not-exist.stderr "zfs list -H -p zroot/nope"
capfail err-get-dataset-does-not-exist.stderr "zfs get -H -p all zroot/nope"
capfail err-snapshot-does-not-exist.stderr "zfs destroy zroot/data@nope"
capfail err-permission-denied-destroy.stderr "su zbackup -s /bin/sh -c 'zfs destroy $hourly'"
capfail err-permission-denied-snapshot.stderr "su zbackup -s /bin/sh -c 'zfs snapshot zroot/secret@denied'"
capfail err-permission-denied-rename.stderr "su zbackup -s /bin/sh -c 'zfs rename zroot/data/sub zroot/data/sub2'"
capfail err-destroy-held.stderr "zfs destroy $hourly"
capfail err-destroy-has-children.stderr "zfs destroy zroot/data"
capfail err-release-no-such-tag.stderr "zfs release nosuchtag $hourly"
capfail err-hold-tag-exists.stderr "zfs hold keep $hourly"

# Receive failures. The target holds ..._01:00:00_hourly as its newest snapshot.
zfs snapshot zroot/data@autosnap_2025-01-01_02:00:00_hourly
zfs snapshot zroot/data@autosnap_2025-01-01_03:00:00_hourly
capfail err-recv-wrong-base.stderr \
    "zfs send -i zroot/data@autosnap_2025-01-01_02:00:00_hourly zroot/data@autosnap_2025-01-01_03:00:00_hourly | zfs recv zstorage/backup/data"
capfail err-recv-destination-exists.stderr \
    "zfs send $daily | zfs recv zstorage/backup/data"
zfs mount zstorage/backup/data
head -c 64k /dev/urandom >/srv/backup-data/changed-on-server
capfail err-recv-destination-modified.stderr \
    "zfs send -i $hourly zroot/data@autosnap_2025-01-01_02:00:00_hourly | zfs recv zstorage/backup/data"
zfs create -o quota=1M -o mountpoint=none zstorage/small
capfail err-recv-out-of-space.stderr "zfs send $hourly | zfs recv zstorage/small/data"

# Keys
capfail err-mount-key-not-loaded.stderr "zfs mount zstorage/backup/secret"
capfail err-load-key-bad-passphrase.stderr \
    "printf '%s' '$bad_pass' | zfs load-key zstorage/backup/secret"
cap zfs-load-key.txt "printf '%s' '$pass' | zfs load-key zstorage/backup/secret"
capfail err-load-key-already-loaded.stderr \
    "printf '%s' '$pass' | zfs load-key zstorage/backup/secret"
zfs unmount zroot/secret
zfs unload-key zroot/secret
capfail err-send-key-not-loaded.stderr "set -o pipefail; zfs send zroot/secret@s1 | cat >/dev/null"
printf '%s' "$pass" | zfs load-key zroot/secret
zfs mount zroot/secret

echo "fixtures: $(ls "$out" | wc -l) files in $out" >&2
