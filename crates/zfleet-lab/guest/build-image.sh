#!/bin/bash
# Builds the OpenZFS guest image from Debian packages.
#
#   build-image.sh CACHE_ROOT RECIPE_HASH ZFS_SUITE
#
# Produces CACHE_ROOT/RECIPE_HASH/{vmlinuz,initrd.img,rootfs.raw,id_ed25519,
# id_ed25519.pub,ssh_host_ed25519_key.pub,manifest}. The directory appears by a
# single rename once everything is in place, so a directory with that name is
# always a complete image; an interrupted build leaves only a .tmp-* directory
# that the next build removes. zfleet-lab hashes this file's text together with
# ZFS_SUITE into RECIPE_HASH, so editing anything here yields a new image.
#
# ZFS_SUITE picks OpenZFS: bookworm-backports (2.3.x on kernel 6.12) or
# bookworm (2.1.11 on kernel 6.1); the kernel comes from the same suite so DKMS
# builds the module exactly once.
set -euo pipefail

cache_root=$1
hash=$2
zfs_suite=$3
mirror=${ZFLEET_LAB_MIRROR:-http://deb.debian.org/debian}
security_mirror=${ZFLEET_LAB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

case $zfs_suite in
bookworm | bookworm-backports) ;;
*)
    echo "build-image: unknown ZFS_SUITE $zfs_suite" >&2
    exit 2
    ;;
esac

final=$cache_root/$hash
mkdir -p "$cache_root"

# One build at a time on this machine: two builds would only race for the same
# network and CPU, and the loser could remove the winner's work directory.
exec 9>"$cache_root/.lock"
flock 9
if [ -e "$final/manifest" ]; then
    echo "build-image: $final already complete" >&2
    exit 0
fi

# Work directories of interrupted builds. Their mounts lived in a private mount
# namespace that died with them, so nothing is mounted below them any more;
# --one-file-system still guards against anything that is.
for stale in "$cache_root"/.tmp-*; do
    [ -e "$stale" ] || continue
    echo "build-image: removing stale $stale" >&2
    rm -rf --one-file-system -- "$stale"
done

work=$cache_root/.tmp-$hash-$$
root=$work/root
out=$work/out
mkdir -p "$root" "$out"
cleanup() {
    rm -rf --one-file-system -- "$work"
}
trap cleanup EXIT

start=$(date +%s)
step() { echo "build-image: [$(($(date +%s) - start))s] $*" >&2; }

step "keys"
ssh-keygen -q -t ed25519 -N '' -C zfleet-lab-client -f "$out/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C zfleet-lab-guest -f "$work/ssh_host_ed25519_key"
cp "$work/ssh_host_ed25519_key.pub" "$out/"

# Everything that mounts runs in a private mount namespace: if this script is
# killed, the kernel drops the mounts with the namespace, so no half-built root
# ever keeps /proc or a /dev mounted, and removing it cannot reach the host.
export root mirror security_mirror zfs_suite work start
unshare --mount --propagation private bash -euo pipefail -c '
step() { echo "build-image: [$(($(date +%s) - start))s] $*" >&2; }

step "debootstrap"
debootstrap --variant=minbase --components=main,contrib \
    --include=systemd-sysv,udev,kmod,openssh-server,iproute2,procps,ca-certificates,e2fsprogs \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 50 "$work/debootstrap.log" >&2; exit 1; }

mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
# A tmpfs /dev with only the nodes a package build needs, instead of a bind
# mount of the host /dev that a stray rm could reach.
mount -t tmpfs -o mode=0755,size=16m devtmp "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
# DKMS uses <(...), which needs /dev/fd.
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"

cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main contrib
deb $mirror bookworm-updates main contrib
deb $mirror bookworm-backports main contrib
deb $security_mirror bookworm-security main contrib
SRC
# No daemon may start inside the chroot.
printf "#!/bin/sh\nexit 101\n" >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# Documentation is never read in the guest and only costs unpack time.
cat >"$root/etc/dpkg/dpkg.cfg.d/zfleet-lab-nodoc" <<CFG
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
# The initramfs would otherwise be rebuilt after the kernel, after DKMS and
# after every trigger; build it once at the end instead.
chroot "$root" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
ln -s /bin/true "$root/usr/sbin/update-initramfs"

in_root() {
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
apt_install() {
    in_root apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        >>"$work/apt.log" 2>&1 || { tail -n 80 "$work/apt.log" >&2; exit 1; }
}

step "apt-get update"
in_root apt-get update -q >>"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }

step "base packages"
apt_install initramfs-tools busybox dkms openssh-sftp-server
if [ ! -e "$root/usr/sbin/update-initramfs.distrib" ]; then
    echo "build-image: diverting update-initramfs did not take" >&2
    exit 1
fi

step "kernel and headers from $zfs_suite"
apt_install -t "$zfs_suite" linux-image-amd64 linux-headers-amd64

step "zfs-dkms and zfsutils-linux from $zfs_suite (DKMS build)"
apt_install -t "$zfs_suite" zfs-dkms zfsutils-linux

step "sanoid and syncoid (benchmarks run zfleet side by side with them)"
apt_install sanoid

# `zfleet disks apply` lays out blank disks the way an installer would: GPT by
# sfdisk (fdisk), the ESP by mkfs.vfat (dosfstools), LUKS by cryptsetup.
step "disk layout tools"
apt_install fdisk dosfstools cryptsetup-bin

kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n 1)")
if ! ls "$root/lib/modules/$kver/updates/dkms/zfs.ko"* >/dev/null 2>&1; then
    echo "build-image: DKMS built no zfs module for $kver" >&2
    exit 1
fi

step "guest configuration"
echo zfleet-guest >"$root/etc/hostname"
printf "127.0.0.1 localhost\n127.0.1.1 zfleet-guest\n" >"$root/etc/hosts"
echo "LABEL=zfleetguest / ext4 rw,errors=remount-ro 0 1" >"$root/etc/fstab"

mkdir -p "$root/etc/systemd/network"
# qemu user networking: the guest is 10.0.2.15, qemu answers on 10.0.2.2. No
# DNS server on purpose: nothing in the guest should look anything up.
cat >"$root/etc/systemd/network/10-qemu.network" <<NET
[Match]
Type=ether

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing in the guest waits for "online"; this unit would only stall boot.
in_root systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
# Pools are created by tests on blank disks, never imported at boot; the
# import units pull in udev-settle, which alone costs ≈13 s under TCG.
for unit in zfs-import-cache.service zfs-import-scan.service \
    zfs-volume-wait.service systemd-udev-settle.service; do
    in_root systemctl mask "$unit" >/dev/null 2>&1
done
in_root systemctl set-default multi-user.target >/dev/null 2>&1
# Timers that would wake up under emulation and compete with tests.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer man-db.timer dpkg-db-backup.timer \
    zfs-scrub-monthly@.timer zfs-trim-monthly@.timer; do
    in_root systemctl mask "$unit" >/dev/null 2>&1 || true
done

echo zfs >"$root/etc/modules-load.d/zfs.conf"
# A fixed hostid so pools created in any boot of this image agree on it.
in_root zgenhostid -f 0x5a464c54

rm -f "$root"/etc/ssh/ssh_host_*
cp "$work/ssh_host_ed25519_key" "$work/ssh_host_ed25519_key.pub" "$root/etc/ssh/"
chmod 600 "$root/etc/ssh/ssh_host_ed25519_key"
cat >"$root/etc/ssh/sshd_config.d/zfleet-lab.conf" <<SSHD
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxSessions 32
MaxStartups 32:50:64
SSHD

install -d -m 700 "$root/root/.ssh"
install -m 600 "$work/out/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
# The delegated backup account of the tests. Not "backup": Debian already has
# that system user, with a nologin shell.
in_root useradd --uid 1000 --user-group --create-home --shell /bin/bash zbackup
install -d -m 700 -o 1000 -g 1000 "$root/home/zbackup/.ssh"
install -m 600 -o 1000 -g 1000 "$work/out/id_ed25519.pub" "$root/home/zbackup/.ssh/authorized_keys"

# Only what a direct kernel boot from a virtio disk needs: a small initramfs
# loads faster under emulation.
sed -i "s/^MODULES=.*/MODULES=list/" "$root/etc/initramfs-tools/initramfs.conf"
printf "virtio_pci\nvirtio_blk\next4\n" >>"$root/etc/initramfs-tools/modules"
rm "$root/usr/sbin/update-initramfs"
chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
step "initramfs for $kver"
in_root update-initramfs -c -k "$kver" >>"$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"

in_root dpkg-query -W -f="\${Version}" zfsutils-linux >"$work/zfs-version"
echo "$kver" >"$work/kernel-version"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/out/initrd.img"
chmod 644 "$work/out/vmlinuz" "$work/out/initrd.img"

in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/*.log "$root"/var/log/apt/*

umount "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc"
'

# Outside the namespace nothing can be mounted below the root; check anyway,
# because mke2fs -d would copy whatever a mount showed.
if grep -qF " $root/" /proc/self/mountinfo; then
    echo "build-image: something is still mounted below $root" >&2
    exit 1
fi

step "rootfs.raw"
mke2fs -q -t ext4 -L zfleetguest -E root_owner=0:0 -d "$root" "$out/rootfs.raw" 4G

cat >"$out/manifest" <<MAN
recipe=$hash
zfs_suite=$zfs_suite
zfs_version=$(cat "$work/zfs-version")
kernel=$(cat "$work/kernel-version")
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$(($(date +%s) - start))
MAN

sync
mv -T "$out" "$final"
step "done: $final"
