//! syncoid's own test scenarios that need OpenZFS (bookmarks, resume tokens,
//! zvols, `zfs get -t`, `@%` ranges), against `zfleet sync` on the guest.
//! Each is named after the syncoid test it mirrors (`tests/syncoid/NNN_*` in
//! jimsalterjrs/sanoid) and is that script with the same setup and the same
//! assertions (the same checksums), `syncoid` on PATH being zfleet under that
//! name. The guest has no network, so the scripts are zfleet's own copies.
//!
//! Not here: 003, 008 and 010 run on zfs-fuse (`lab_sync.rs`, and 007's
//! file systems too); 011 changes the system clock, which syncoid's own
//! runner skips unless `INVASIVE_TESTS=1` (zfleet orders by createtxg, never
//! by creation time).

use zfleet_lab::guest::{guest_or_skip, Guest};

/// The thin wrapper: zfleet under the name `syncoid`, first on PATH, and
/// syncoid's `lib.sh` helpers the scripts use, with `set -e` as they have.
const PRELUDE: &str = r#"set -e
mkdir -p /usr/local/lib/zfleet-syncoid
ln -sf /usr/local/bin/zfleet /usr/local/lib/zfleet-syncoid/syncoid
export PATH=/usr/local/lib/zfleet-syncoid:$PATH
export ZFLEET_CONFIG=/nonexistent/fleet.toml
export LANG=C LC_ALL=C
"#;

/// Runs one scenario; its own assertions end it with a non-zero status.
fn scenario(test: &str, script: &str) {
    let Some(guest) = guest_or_skip(test) else {
        return;
    };
    run(guest, test, script);
}

fn run(guest: &Guest, test: &str, script: &str) {
    crate::support::install(guest);
    let s = guest.scenario().unwrap();
    let out = s
        .output(&format!(
            "bash -c {}",
            shell_quote(&format!("{PRELUDE}{script}"))
        ))
        .unwrap();
    assert!(
        out.status.success(),
        "{test} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn syncoid_001_bookmark_replication_intermediate() {
    scenario(
        "syncoid_001_bookmark_replication_intermediate",
        r#"
P=syncoid-test-1; truncate -s 200M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs snapshot $P/src@snap1
zfs bookmark $P/src@snap1 $P/src#snap1
syncoid --no-sync-snap --debug --compress=none $P/src $P/dst
zfs destroy $P/src@snap1
sleep 1; zfs snapshot $P/src@snap2
sleep 1; zfs snapshot $P/src@snap3
sleep 1; zfs snapshot $P/src@snap4
sleep 1; zfs snapshot $P/src@snap5
syncoid --debug --compress=none $P/src $P/dst
checksum=$(zfs list -t snapshot -r -H -o name $P | grep -v syncoid_ | sha256sum)
[ "$checksum" = "a23564d5bb8a2babc3ac8936fd82825ad9fff9c82d4924f5924398106bbda9f0  -" ]
"#,
    );
}

#[test]
fn syncoid_002_bookmark_replication_no_intermediate() {
    scenario(
        "syncoid_002_bookmark_replication_no_intermediate",
        r#"
P=syncoid-test-2; truncate -s 200M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs snapshot $P/src@snap1
zfs bookmark $P/src@snap1 $P/src#snap1
syncoid --no-sync-snap --debug --compress=none $P/src $P/dst
zfs destroy $P/src@snap1
sleep 1; zfs snapshot $P/src@snap2
sleep 1; zfs snapshot $P/src@snap3
sleep 1; zfs snapshot $P/src@snap4
sleep 1; zfs snapshot $P/src@snap5
syncoid --no-stream --no-sync-snap --debug --compress=none $P/src $P/dst
checksum=$(zfs list -t snapshot -r -H -o name $P | sha256sum)
[ "$checksum" = "2460d4d4417793d2c7a5c72cbea4a8a584c0064bf48d8b6daa8ba55076cba66d  -" ]
"#,
    );
}

#[test]
fn syncoid_004_bookmark_replication_edge_case() {
    scenario(
        "syncoid_004_bookmark_replication_edge_case",
        r#"
P=syncoid-test-4; truncate -s 200M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs snapshot $P/src@snap1
zfs bookmark $P/src@snap1 $P/src#snap1
syncoid --no-sync-snap --debug --compress=none $P/src $P/dst
zfs destroy $P/src@snap1
zfs snapshot $P/src@snap2
syncoid --no-sync-snap --debug --compress=none $P/src $P/dst
checksum=$(zfs list -t snapshot -r -H -o name $P | grep -v syncoid_ | sha256sum)
[ "$checksum" = "ad383b157b01635ddcf13612ac55577ad9c8dcf3fbfc9eb91792e27ec8db739b  -" ]
"#,
    );
}

/// A send killed halfway leaves a resumable receive; `--no-resume` resets it
/// (and says so, in syncoid's words, under `--debug`), and the next copy works.
#[test]
fn syncoid_005_reset_resume_state() {
    scenario(
        "syncoid_005_reset_resume_state",
        r#"
P=syncoid-test-5; M=/tmp/syncoid-test-5.mount
truncate -s 1000M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create -o mountpoint=$M $P/src
syncoid --debug --compress=none $P/src $P/dst
dd if=/dev/urandom of=$M/big_file bs=1M count=200
sleep 1
syncoid --debug --compress=none --source-bwlimit=2m $P/src $P/dst &
sleep 5
getcpid() { for c in $(pgrep -P "$1" | xargs); do echo "$c"; getcpid "$c"; done; }
kill $(getcpid $$) || true
wait || true
sleep 1
[ -n "$(zfs get -H -o value receive_resume_token $P/dst | grep -v '^-$')" ]
syncoid --debug --compress=none --no-resume $P/src $P/dst | grep "reset partial receive state of syncoid"
sleep 1
syncoid --debug --compress=none $P/src $P/dst
"#,
    );
}

/// The snapshot a partial receive continues is destroyed on the source: the
/// stale state is reset without being asked, and the copies go on.
#[test]
fn syncoid_006_reset_resume_state2() {
    scenario(
        "syncoid_006_reset_resume_state2",
        r#"
P=syncoid-test-6; M=/tmp/syncoid-test-6.mount
truncate -s 1000M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create -o mountpoint=$M $P/src
syncoid --debug --compress=none $P/src $P/dst
dd if=/dev/urandom of=$M/big_file bs=1M count=200
sleep 1
zfs snapshot $P/src@big
syncoid --debug --no-sync-snap --compress=none --source-bwlimit=2m $P/src $P/dst &
sleep 5
getcpid() { for c in $(pgrep -P "$1" | xargs); do echo "$c"; getcpid "$c"; done; }
kill $(getcpid $$) || true
wait || true
sleep 1
zfs destroy $P/src@big
syncoid --debug --compress=none $P/src $P/dst
sleep 1
syncoid --debug --compress=none $P/src $P/dst
"#,
    );
}

#[test]
fn syncoid_007_preserve_recordsize() {
    scenario(
        "syncoid_007_preserve_recordsize",
        r#"
P=syncoid-test-7
truncate -s 1000M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs create -V 100M -o volblocksize=4k $P/src/zvol4
zfs create -V 100M -o volblocksize=16k $P/src/zvol16
zfs create -V 100M -o volblocksize=64k $P/src/zvol64
zfs create -o recordsize=16k $P/src/16
zfs create -o recordsize=32k $P/src/32
zfs create -o recordsize=128k $P/src/128
syncoid --preserve-recordsize --recursive --debug --compress=none $P/src $P/dst
zfs get -t filesystem -r recordsize $P/dst
zfs get -t volume -r volblocksize $P/dst
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst/16)" = "16K" ]
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst/32)" = "32K" ]
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst/128)" = "128K" ]
"#,
    );
}

/// syncoid's assertions, but `xattr`: OpenZFS 2.3.2 reports `xattr=sa` as
/// `on`, on the source too (syncoid fails this test there for that reason),
/// so the copy is compared with the source's own value.
#[test]
fn syncoid_009_preserve_properties() {
    scenario(
        "syncoid_009_preserve_properties",
        r#"
P=syncoid-test-9
truncate -s 1000M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create -o recordsize=16k -o xattr=sa -o mountpoint=none -o primarycache=none $P/src
zfs create -V 100M -o volblocksize=8k $P/src/zvol8
zfs create -V 100M -o volblocksize=16k -o primarycache=all $P/src/zvol16
zfs create -V 100M -o volblocksize=64k $P/src/zvol64
zfs create -o recordsize=16k -o primarycache=none $P/src/16
zfs create -o recordsize=32k -o acltype=posixacl $P/src/32
zfs set 'net.openoid:var-name'='with whitespace and !"§$%&/()= symbols' $P/src/32
syncoid --preserve-properties --recursive --debug --compress=none $P/src $P/dst
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst)" = "16K" ]
[ "$(zfs get -H -o value -t filesystem mountpoint $P/dst)" = "none" ]
[ "$(zfs get -H -o value -t filesystem xattr $P/dst)" = "$(zfs get -H -o value xattr $P/src)" ]
[ "$(zfs get -H -o value -t filesystem primarycache $P/dst)" = "none" ]
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst/16)" = "16K" ]
[ "$(zfs get -H -o value -t filesystem primarycache $P/dst/16)" = "none" ]
[ "$(zfs get -H -o value -t filesystem recordsize $P/dst/32)" = "32K" ]
[ "$(zfs get -H -o value -t filesystem acltype $P/dst/32)" = "posix" ]
[ "$(zfs get -H -o value -t filesystem 'net.openoid:var-name' $P/dst/32)" = 'with whitespace and !"§$%&/()= symbols' ]
"#,
    );
}

#[test]
fn syncoid_012_receive_resume_token() {
    scenario(
        "syncoid_012_receive_resume_token",
        r#"
P=syncoid-test-012; M=/tmp/syncoid-test-012.mount
truncate -s 128M /tmp/$P.zpool; zpool create -O mountpoint=$M -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/source
zfs snap $P/source@empty
dd if=/dev/urandom of=$M/source/garbage.bin bs=1M count=16
zfs snap $P/source@something
zfs send -pwR $P/source@something | head --bytes=8M | zfs recv -s $P/destination || true
syncoid --sendoptions="pw" $P/source $P/destination
[ "$(sha256sum $M/source/garbage.bin | cut -d ' ' -f 1)" = "$(sha256sum $M/destination/garbage.bin | cut -d ' ' -f 1)" ]
"#,
    );
}

#[test]
fn syncoid_013_bookmark_replication_0_named() {
    scenario(
        "syncoid_013_bookmark_replication_0_named",
        r#"
P=syncoid-test-013; truncate -s 200M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs snapshot $P/src@0
syncoid --no-sync-snap --create-bookmark --debug --compress=none $P/src $P/dst
zfs destroy $P/src@0
zfs snapshot $P/src@1
syncoid --no-sync-snap --create-bookmark --debug --compress=none $P/src $P/dst
checksum=$( (zfs list -t snapshot -r -H -o name $P; zfs list -t bookmark -r -H -o name $P) | grep -v syncoid_ | sha256sum)
[ "$checksum" = "b927125d2113c8da1a7f0181516e8f57fee5d268bdd5386d6ff7ddf31d6d6a35  -" ]
"#,
    );
}

/// `--create-bookmark` where the name is taken: syncoid's fallback name, and
/// when that is taken too, a refusal before anything runs.
#[test]
fn syncoid_014_bookmark_check_guid_on_existing() {
    scenario(
        "syncoid_014_bookmark_check_guid_on_existing",
        r#"
P=syncoid-test-014; truncate -s 128M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy $P; rm -f /tmp/$P.zpool' EXIT
getGuid() { zfs get -H guid "$1" | awk '{print $3}'; }
zfs create $P/a
zfs snapshot $P/a@s0
syncoid --debug --no-sync-snap --no-rollback --create-bookmark $P/a $P/b
syncoid --debug --no-sync-snap --no-rollback --create-bookmark $P/a $P/c
bookmark_guid=$(getGuid $P/a#s0)
[ "$bookmark_guid" = "$(getGuid $P/a@s0)" ] && [ "$bookmark_guid" = "$(getGuid $P/b@s0)" ] && [ "$bookmark_guid" = "$(getGuid $P/c@s0)" ]
! zfs get guid "$P/a#s0${bookmark_guid:0:6}"
zfs snapshot $P/a@s1
zfs bookmark $P/a@s0 $P/a#s1
syncoid --debug --no-sync-snap --no-rollback --create-bookmark $P/a $P/b
snap_guid=$(getGuid $P/a@s1)
[ "$(getGuid "$P/a#s1${snap_guid:0:6}")" = "$snap_guid" ]
zfs snapshot $P/a@s2
snap_guid=$(getGuid $P/a@s2)
zfs bookmark $P/a@s0 $P/a#s2
zfs bookmark $P/a@s0 "$P/a#s2${snap_guid:0:6}"
before=$(zfs list -t all -r -H -o name,guid $P)
if syncoid --debug --no-sync-snap --no-rollback --create-bookmark $P/a $P/b 2>/tmp/014.err; then exit 1; fi
grep -q "cannot bookmark @s2" /tmp/014.err
[ "$(zfs list -t all -r -H -o name,guid $P)" = "$before" ]
"#,
    );
}

/// What the issue found by trying it: after an ad-hoc copy no snapshot is
/// held, so destroying one by hand works; a stale resume token goes even
/// when the source has no snapshot left.
#[test]
fn sync_holds_nothing_and_clears_a_stale_token_without_source_snapshots() {
    scenario(
        "sync_holds_nothing_and_clears_a_stale_token_without_source_snapshots",
        r#"
P=zfleet-sync-holds; truncate -s 128M /tmp/$P.zpool; zpool create -m none -f $P /tmp/$P.zpool
trap 'zpool destroy -f $P; rm -f /tmp/$P.zpool' EXIT
zfs create $P/src
zfs snapshot $P/src@a
zfs snapshot $P/src@b
syncoid --no-sync-snap $P/src $P/dst
[ -z "$(zfs holds -H $P/src@b $P/dst@b)" ]
zfs destroy $P/dst@a
zfs destroy $P/src@a
# A partial receive, then the source loses every snapshot.
zfs create $P/src2
dd if=/dev/urandom of=/tmp/$P.blob bs=1M count=8 2>/dev/null
zfs set mountpoint=/tmp/$P.src2 $P/src2 && cp /tmp/$P.blob /tmp/$P.src2/
zfs snapshot $P/src2@x
zfs send $P/src2@x | head --bytes=2M | zfs recv -s $P/dst2 || true
[ "$(zfs get -H -o value receive_resume_token $P/dst2)" != "-" ]
zfs destroy $P/src2@x
out=$(syncoid --no-sync-snap $P/src2 $P/dst2)
echo "$out" | grep -q "nothing to send"
! zfs list $P/dst2
"#,
    );
}
