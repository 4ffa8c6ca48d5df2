#![allow(clippy::unwrap_used)]

//! The snapshot-related keys of the fleet file: sanoid's hooks and monitoring
//! limits, layered like every other policy key, and their mistakes.

use std::path::Path;
use std::time::Duration;

use zfleet_core::config::{self, HookCommand, Period};

const FLEET: &str = r#"
[templates.default]
hourly_warn = "2h"
capacity_crit = 90

[templates.db]
pre_snapshot_script = "/usr/local/bin/db-freeze --all"
post_snapshot_script = ["/usr/local/bin/db-thaw", "--all"]
pruning_script = "logger -t zfleet pruned $SANOID_TARGET@$SANOID_SNAPNAME"
script_timeout = 30
no_inconsistent_snapshot = true
daily_crit = 48

[hosts.alpha.snapshots."zroot/db"]
use_template = ["db"]
monitor_dont_warn = true

[hosts.alpha.snapshots."zroot/home"]
script_timeout = 0
monitor = false
"#;

#[test]
fn hooks_and_monitoring_layer_like_sanoid() {
    let fleet = config::parse(FLEET, Path::new("fleet.toml")).unwrap();
    let alpha = &fleet.hosts["alpha"];
    let db = &alpha.snapshots[0].policy;
    assert_eq!(
        db.hooks.pre_snapshot,
        Some(HookCommand::Line("/usr/local/bin/db-freeze --all".into()))
    );
    assert_eq!(
        db.hooks.post_snapshot.as_ref().unwrap().argv(),
        ["/usr/local/bin/db-thaw", "--all"]
    );
    assert!(db.hooks.pruning.as_ref().unwrap().uses_shell());
    assert_eq!(db.hooks.timeout, Some(Duration::from_secs(30)));
    assert!(db.hooks.no_inconsistent_snapshot);
    // From the default template, over sanoid's defaults.
    assert_eq!(db.monitor.warn[Period::Hourly as usize], 7200);
    assert_eq!(db.monitor.crit[Period::Hourly as usize], 360 * 60);
    // A bare number is in units of the next shorter period: hours for daily.
    assert_eq!(db.monitor.crit[Period::Daily as usize], 48 * 3600);
    assert_eq!(db.monitor.capacity_crit, 90);
    assert!(db.monitor.dont_warn);
    let home = &alpha.snapshots[1].policy;
    assert_eq!(home.hooks.timeout, None, "script_timeout = 0 is no limit");
    assert!(!home.monitor.enabled);
    assert!(home.hooks.pre_snapshot.is_none());
}

#[test]
fn bad_hook_and_monitor_values_are_reported() {
    let src = r#"
[templates.t]
hourly_warn = "90 minutes"
script_timeout = "soon"
capacity_warn = 180
pre_snapshot_script = []

[hosts.alpha.snapshots."zroot/x"]
use_template = ["t"]
"#;
    let e = config::parse(src, Path::new("fleet.toml"))
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(e, @r#"
    fleet.toml:3:15: templates.t.hourly_warn: `90 minutes` is not an age; write a number with s, m, h, d, w or y ("90m", "28h")
    fleet.toml:4:18: templates.t.script_timeout: `soon` is not a duration; write seconds (5) or a duration ("30s", "2m")
    fleet.toml:5:17: templates.t.capacity_warn: 180 is out of range; expected a percentage, 0 to 100 (0: not checked)
    fleet.toml:6:23: templates.t.pre_snapshot_script: names no program
      hint: give the program as the first word, or remove the key
    "#);
}
