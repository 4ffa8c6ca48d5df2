#![allow(clippy::unwrap_used)]

//! `[daemon]`, `[notify.NAME]` and the schedule keys: what they mean, and the
//! exact message for each mistake.

use std::path::Path;
use std::time::Duration;

use zfleet_core::config::{self, Fleet, NotifyKind, UrlRef};
use zfleet_core::daemon::notify::EventKind;
use zfleet_core::daemon::Schedule;

const HOSTS: &str = r#"
[hosts.alpha]
[hosts.alpha.backup]
[hosts.vault]
[hosts.vault.server]
target_root = "tank/backups"
"#;

fn parse(extra: &str) -> Result<Fleet, String> {
    config::parse(&format!("{extra}\n{HOSTS}"), Path::new("fleet.toml")).map_err(|e| e.to_string())
}

#[test]
fn defaults_without_any_key() {
    let f = parse("").unwrap();
    assert_eq!(f.daemon.listen, None);
    assert_eq!(f.daemon.stall_timeout, Duration::from_secs(600));
    assert_eq!(f.daemon.backoff.retries, 5);
    assert!(f.notify.is_empty());
    let s = f.host("vault").unwrap().server.as_ref().unwrap();
    assert_eq!(s.schedule.schedule, Schedule::Daily { hour: 2, minute: 0 });
    assert_eq!(s.schedule.jitter, 0);
    assert_eq!(s.late_after, None);
    assert_eq!(f.zfleet_path, "zfleet");
}

#[test]
fn every_key() {
    let f = config::parse(
        r#"
[fleet]
zfleet_path = "/usr/local/bin/zfleet"

[daemon]
listen = "127.0.0.1:9811"
stall_timeout = "2m"
retries = 2
retry_delay = "10s"
retry_max = "1m"
shutdown_timeout = "20s"
watch_interval = "1m"
rate_limit = "10M"

[notify.phone]
ntfy = "https://ntfy.sh/zfleet-example"
token = "env:NTFY_TOKEN"
events = ["failed", "recovered"]

[notify.hook]
webhook = "file:/etc/zfleet/webhook-url"
timeout = "3s"

[notify.hc]
healthchecks = "https://hc-ping.com/0d1b9e8a-0000-4000-8000-000000000000"

[notify.pager]
command = ["/usr/local/bin/page", "--urgent"]

[hosts.alpha]
[hosts.alpha.backup]
late_after = "26h"
[hosts.vault]
[hosts.vault.server]
target_root = "tank/backups"
schedule = "every 15m"
jitter = "5m"
late_after = "2h"
"#,
        Path::new("fleet.toml"),
    )
    .unwrap();
    assert_eq!(f.zfleet_path, "/usr/local/bin/zfleet");
    let d = &f.daemon;
    assert_eq!(d.listen, Some("127.0.0.1:9811".parse().unwrap()));
    assert_eq!(d.stall_timeout, Duration::from_secs(120));
    assert_eq!(
        (d.backoff.first, d.backoff.max, d.backoff.retries),
        (10, 60, 2)
    );
    assert_eq!(d.shutdown_timeout, Duration::from_secs(20));
    assert_eq!(d.watch_interval, Duration::from_secs(60));
    assert_eq!(d.rate_limit, Some(10 << 20));
    let phone = &f.notify["phone"];
    assert!(
        matches!(&phone.kind, NotifyKind::Ntfy { url: UrlRef::Plain(u) } if u == "https://ntfy.sh/zfleet-example")
    );
    assert_eq!(phone.token.as_ref().unwrap().to_string(), "env:NTFY_TOKEN");
    assert!(phone.wants(EventKind::Failed) && !phone.wants(EventKind::Late));
    let hook = &f.notify["hook"];
    assert!(
        matches!(&hook.kind, NotifyKind::Webhook { url: UrlRef::Secret(r) } if r.to_string() == "file:/etc/zfleet/webhook-url")
    );
    assert_eq!(hook.timeout, Duration::from_secs(3));
    assert!(hook.wants(EventKind::UnlockNeeded));
    assert!(matches!(
        &f.notify["hc"].kind,
        NotifyKind::Healthchecks { .. }
    ));
    assert!(
        matches!(&f.notify["pager"].kind, NotifyKind::Command { argv } if argv == &["/usr/local/bin/page", "--urgent"])
    );
    let s = f.host("vault").unwrap().server.as_ref().unwrap();
    assert_eq!(s.schedule.schedule, Schedule::Every { seconds: 900 });
    assert_eq!(s.schedule.jitter, 300);
    assert_eq!(s.late_after, Some(7200));
    assert_eq!(
        f.host("alpha").unwrap().client.as_ref().unwrap().late_after,
        Some(26 * 3600)
    );
    // `zfleet check --json` shows where a secret URL comes from, never a value.
    let json = serde_json::to_string(&f.notify).unwrap();
    assert!(
        json.contains("\"url\":\"file:/etc/zfleet/webhook-url\""),
        "{json}"
    );
}

#[test]
fn mistakes_name_file_line_and_key() {
    let cases = [
        (
            "[daemon]\nlisten = \"localhost\"\n",
            "fleet.toml:2:10: daemon.listen: `localhost` is not an address and port\n  hint: write it like \"127.0.0.1:9811\" or \"[::1]:9811\"",
        ),
        (
            "[daemon]\nstall_timeout = \"soon\"\n",
            "fleet.toml:2:17: daemon.stall_timeout: `soon` is not a duration; write it like \"10s\", \"2m\" or \"1m 30s\"",
        ),
        (
            "[daemon]\nretry_delay = \"10m\"\nretry_max = \"1m\"\n",
            "fleet.toml:3:13: daemon.retry_max: is shorter than `retry_delay`",
        ),
        (
            "[daemon]\nlisen = \"x\"\n",
            "fleet.toml:2:1: daemon.lisen: unknown key; expected one of `listen`, `stall_timeout`, `retries`, `retry_delay`, `retry_max`, `shutdown_timeout`, `watch_interval`, `rate_limit`, `verify_after_backup`, `verify_content_every`, `verify_drill_every`\n  hint: did you mean `listen`?",
        ),
        (
            "[notify.phone]\nevents = [\"failed\"]\n",
            "fleet.toml:1:9: notify.phone: says nowhere to send notifications\n  hint: set exactly one of `ntfy`, `webhook`, `healthchecks` (URLs) or `command` (a program and its arguments)",
        ),
        (
            "[notify.phone]\nntfy = \"https://ntfy.sh/x\"\nwebhook = \"https://example.org/h\"\n",
            "fleet.toml:1:9: notify.phone: gives ntfy and webhook targets; one per [notify.NAME]\n  hint: set exactly one of `ntfy`, `webhook`, `healthchecks` (URLs) or `command` (a program and its arguments)",
        ),
        (
            "[notify.phone]\nntfy = \"ntfy.sh/x\"\n",
            "fleet.toml:2:8: notify.phone.ntfy: `ntfy.sh/x` is neither an http(s) URL nor a secret reference\n  hint: a URL that holds a token can be read from `op://vault/item/field`, `pass:NAME`, `file:/PATH`, `env:NAME` or `cmd:PROGRAM ARGS`",
        ),
        (
            "[notify.phone]\nntfy = \"https://ntfy.sh/x\"\ntoken = \"tk_abc\"\n",
            "fleet.toml:3:9: notify.phone.token: `tk_abc` is not a secret reference; expected `op://vault/item/field`, `pass:NAME`, `file:/PATH`, `env:NAME` or `cmd:PROGRAM ARGS`\n  hint: a token is never written in the fleet file, only where to read it",
        ),
        (
            "[notify.phone]\nntfy = \"https://ntfy.sh/x\"\nevents = [\"broken\"]\n",
            "fleet.toml:3:11: notify.phone.events[0]: `broken` is not an event\n  hint: events: failed, recovered, late, pool_degraded, pool_healthy, unlock_needed",
        ),
        (
            "[notify.pager]\ncommand = []\n",
            "fleet.toml:2:11: notify.pager.command: needs a program\n  hint: write it like [\"/usr/local/bin/page-me\", \"--urgent\"]",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(parse(src).unwrap_err(), want, "{src}");
    }
}

#[test]
fn schedule_mistakes() {
    let server = |keys: &str| {
        config::parse(
            &format!("[hosts.vault]\n[hosts.vault.server]\ntarget_root = \"tank/b\"\n{keys}"),
            Path::new("fleet.toml"),
        )
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        server("schedule = \"nightly\"\n").unwrap_err(),
        "fleet.toml:4:12: hosts.vault.server.schedule: `nightly` is not a schedule; write \"daily HH:MM\", \"hourly\", \"hourly :MM\", \"every 15m\" or \"manual\""
    );
    assert_eq!(
        server("schedule = \"hourly\"\njitter = \"2h\"\n").unwrap_err(),
        "fleet.toml:5:10: hosts.vault.server.jitter: is not shorter than the schedule's interval (3600 s)"
    );
    assert_eq!(
        server("late_after = \"-1h\"\n").unwrap_err(),
        "fleet.toml:4:14: hosts.vault.server.late_after: `-1h` must be a positive duration"
    );
    let f = server("schedule = \"manual\"\n").unwrap();
    assert_eq!(
        f.host("vault")
            .unwrap()
            .server
            .as_ref()
            .unwrap()
            .schedule
            .schedule,
        Schedule::Manual
    );
}
