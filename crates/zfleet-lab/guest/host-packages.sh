#!/bin/bash
# Installs what the host needs to build and boot the OpenZFS guest.
# Idempotent: does nothing (and touches no apt state) when the tools are there.
set -euo pipefail

# tool:package. Only packages of missing tools get installed: `apt-get install`
# of an installed package would upgrade it behind the machine owner's back.
need=(qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debootstrap:debootstrap
    mke2fs:e2fsprogs ssh:openssh-client ssh-keygen:openssh-client
    unshare:util-linux flock:util-linux)
missing=()
packages=()
for pair in "${need[@]}"; do
    tool=${pair%%:*}
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing+=("$tool")
        packages+=("${pair#*:}")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "host-packages: missing ${missing[*]}; installing ${packages[*]}" >&2

if [ "$(id -u)" -ne 0 ]; then
    echo "host-packages: need root to install ${missing[*]}" >&2
    exit 1
fi

# Our own sources file, so the machine's debian.sources stays untouched and a
# rerun rewrites the same content. bookworm and -updates main are already in
# the default sources; listing them again would make apt warn about duplicates.
sources=/etc/apt/sources.list.d/zfleet-lab.sources
want=$(cat <<'SRC'
# Written by zfleet-lab guest build (crates/zfleet-lab/guest/host-packages.sh).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
if [ "$(cat "$sources" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$sources"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# -t bookworm-backports: the machine may already carry qemu-utils 10 from
# backports, which conflicts with bookworm's qemu-system-common 7.2.
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    $(printf '%s\n' "${packages[@]}" | sort -u)
