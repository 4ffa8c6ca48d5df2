# Shared by scripts/demo and scripts/test: root check, Debian packages, Rust.
# shellcheck shell=bash

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: run this as root: the lab uses network and mount namespaces and FUSE" >&2
        echo "  hint: sudo -E env \"PATH=\$PATH\" $0" >&2
        exit 2
    fi
}

# Installs Debian/Ubuntu packages that are missing; quiet when all are there.
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# cargo from rustup; installed with rustup's own installer when absent.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "== installing Rust with rustup"
        install_packages curl ca-certificates gcc libc6-dev
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
}

# What the simulated-host lab needs.
LAB_PACKAGES=(zfs-fuse openssh-server openssh-client faketime iproute2 util-linux procps sqlite3 zstd sudo)

# The peers `zfleet-lab bench fleet` compares against: syncoid (Debian's
# sanoid package, with what it pipes through) and zfs-autobackup 3.3 from
# PyPI, where the bench looks for it (it installs it there itself otherwise);
# and b3sum, which `bench drill` compares content verification's walk with.
BENCH_PACKAGES=(sanoid mbuffer lzop pv python3-pip b3sum)
ZFS_AUTOBACKUP_VERSION=3.3
ZFS_AUTOBACKUP_DIR=/var/cache/zfleet-lab/zfs-autobackup-$ZFS_AUTOBACKUP_VERSION
install_bench_peers() {
    install_packages "${BENCH_PACKAGES[@]}"
    if [ ! -x "$ZFS_AUTOBACKUP_DIR/bin/zfs-autobackup" ]; then
        echo "== installing zfs-autobackup $ZFS_AUTOBACKUP_VERSION from PyPI into $ZFS_AUTOBACKUP_DIR"
        /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$ZFS_AUTOBACKUP_DIR" "zfs-autobackup==$ZFS_AUTOBACKUP_VERSION" colorama
    fi
}
