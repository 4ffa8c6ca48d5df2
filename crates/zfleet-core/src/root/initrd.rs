//! What runs `zfleet root rollback` at boot: a systemd unit for initrds run
//! by systemd, and for NixOS the same as a module (systemd initrd) or the
//! seed's `postDeviceCommands` line (scripted initrd). Pure text.

use crate::layout::facts::nix_str;
use crate::layout::plan::BLANK_SNAPSHOT;

/// The command line the initrd runs.
pub fn command(zfleet: &str, dataset: &str) -> String {
    format!("{zfleet} root rollback --dataset {dataset} --snapshot {BLANK_SNAPSHOT}")
}

/// A unit for a systemd initrd. It runs after the pool is imported and
/// before the root is mounted; it is wanted, not required, so a refusal
/// leaves the root as it is and the boot goes on, with the reason on the
/// console.
pub fn systemd_unit(zfleet: &str, pool: &str, dataset: &str) -> String {
    format!(
        "# zfleet-root-rollback.service: roll {dataset} back to @{BLANK_SNAPSHOT} at every boot.\n\
         # Printed by `zfleet export initrd-rollback`. Refuses (and boots with the\n\
         # root as it is) when the blank snapshot is missing, not held, or not the\n\
         # one recorded when the disks were laid out.\n\
         [Unit]\n\
         Description=Roll back the ephemeral root {dataset} (zfleet)\n\
         DefaultDependencies=no\n\
         After=zfs-import-{pool}.service zfs-import.target\n\
         Before=sysroot.mount\n\
         ConditionKernelCommandLine=!zfleet.keep-root\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=initrd.target\n",
        command(zfleet, dataset)
    )
}

/// A NixOS module for `boot.initrd.systemd.enable = true`.
pub fn nixos_systemd(zfleet: Option<&str>, pool: &str, dataset: &str) -> String {
    let bin = match zfleet {
        Some(p) => nix_str(p),
        None => "\"${pkgs.zfleet}/bin/zfleet\"".to_string(),
    };
    format!(
        "# Printed by `zfleet export initrd-rollback --format nixos`: roll {dataset} back\n\
         # to @{BLANK_SNAPSHOT} at every boot, from the systemd initrd. `pkgs.zfleet` comes from\n\
         # an overlay; or pass --zfleet PATH. Boot with `zfleet.keep-root` to skip it.\n\
         {{ pkgs, ... }}:\n\
         let\n  zfleet = {bin};\nin\n{{\n\
         \x20 boot.initrd.systemd.storePaths = [ zfleet ];\n\
         \x20 boot.initrd.systemd.services.zfleet-root-rollback = {{\n\
         \x20   description = {};\n\
         \x20   wantedBy = [ \"initrd.target\" ];\n\
         \x20   after = [ {} ];\n\
         \x20   before = [ \"sysroot.mount\" ];\n\
         \x20   unitConfig.DefaultDependencies = \"no\";\n\
         \x20   unitConfig.ConditionKernelCommandLine = \"!zfleet.keep-root\";\n\
         \x20   serviceConfig.Type = \"oneshot\";\n\
         \x20   serviceConfig.StandardOutput = \"journal+console\";\n\
         \x20   script = \"${{zfleet}} root rollback --dataset {dataset} --snapshot {BLANK_SNAPSHOT}\";\n\
         \x20 }};\n\
         }}\n",
        nix_str(&format!("Roll back the ephemeral root {dataset} (zfleet)")),
        nix_str(&format!("zfs-import-{pool}.service")),
    )
}

/// The seed's way, for the scripted initrd: after the pools are imported
/// (`mkAfter`), instead of `zfs rollback -r {dataset}@empty`.
pub fn nixos_postdevice(zfleet: Option<&str>, dataset: &str) -> String {
    let bin = match zfleet {
        Some(p) => nix_str(p),
        None => "\"${pkgs.zfleet}/bin/zfleet\"".to_string(),
    };
    format!(
        "# Printed by `zfleet export initrd-rollback --format postdevice`: the seed's\n\
         # `zfs rollback -r {dataset}@{BLANK_SNAPSHOT}`, but checked first.\n\
         {{ pkgs, lib, ... }}:\n\
         let\n  zfleet = {bin};\nin\n{{\n\
         \x20 boot.initrd.extraUtilsCommands = ''\n    copy_bin_and_libs ${{zfleet}}\n  '';\n\
         \x20 boot.initrd.postDeviceCommands = lib.mkAfter ''\n    zfleet root rollback --dataset {dataset} --snapshot {BLANK_SNAPSHOT} || echo \"zfleet: {dataset} was NOT rolled back\"\n  '';\n\
         }}\n"
    )
}
