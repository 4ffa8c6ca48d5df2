//! The status page the daemon serves at `/`: plain HTML rendered here, one
//! table per backup server, a colour per state, the age of every backup.
//! It reloads itself (a `<meta http-equiv="refresh">`, no script) and has no
//! form, button or link that changes anything: the listener only reads.

use std::fmt::Write;

use jiff::tz::TimeZone;

use super::model::{BackupRow, HostStatus, StatusReport};
use crate::progress::human_bytes;

/// Seconds between reloads of the page.
pub const REFRESH_SECONDS: u32 = 30;

pub fn render(report: &StatusReport, this_host: &str, tz: &TimeZone) -> String {
    let now = report.generated;
    let mut h = String::with_capacity(16 * 1024);
    let worst = report.worst().map_or("none", |s| s.as_str());
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zfleet on {host}: {worst}</title>
<style>{CSS}</style>
</head>
<body data-worst="{worst}">
<header><h1>zfleet on {host}</h1><p class="generated">as of <time datetime="{iso}">{local}</time>; this page reloads every {REFRESH_SECONDS} s</p></header>
"#,
        host = esc(this_host),
        iso = iso(now),
        local = esc(&local(now, tz)),
    );
    if !report.errors.is_empty() {
        h.push_str("<section class=\"errors\"><h2>Not reachable</h2><ul>\n");
        for e in &report.errors {
            let _ = writeln!(
                h,
                "<li data-host=\"{}\"><b>{}</b>: {}</li>",
                esc(&e.host),
                esc(&e.host),
                esc(&e.error)
            );
        }
        h.push_str("</ul></section>\n");
    }
    for s in &report.servers {
        let _ = write!(
            h,
            r#"<section class="server" id="server-{id}" data-server="{name}">
<h2>{name} <small>backups {sched}</small></h2>
"#,
            id = esc(&s.server),
            name = esc(&s.server),
            sched = esc(&s.schedule),
        );
        if s.rows.is_empty() {
            h.push_str("<p class=\"empty\">No clients.</p></section>\n");
            continue;
        }
        h.push_str(
            "<table class=\"backups\"><thead><tr><th>client</th><th>dataset</th><th>state</th>\
             <th>last success</th><th>newest on client</th><th>newest on server</th><th>lag</th>\
             <th>last run</th><th>next run</th><th>last failure</th></tr></thead>\n<tbody>\n",
        );
        for r in &s.rows {
            row(&mut h, r, now, tz);
        }
        h.push_str("</tbody></table></section>\n");
    }
    if !report.hosts.is_empty() {
        h.push_str("<section class=\"hosts\"><h2>Hosts</h2>\n");
        for host in &report.hosts {
            host_block(&mut h, host, now);
        }
        h.push_str("</section>\n");
    }
    h.push_str("<footer>read-only; <a href=\"/metrics\">metrics</a></footer>\n</body>\n</html>\n");
    h
}

fn row(h: &mut String, r: &BackupRow, now: i64, tz: &TimeZone) {
    let state = r.state.as_str();
    let mut state_cell = esc(r.state.describe());
    if let Some(t) = &r.transfer {
        let _ = write!(state_cell, ", sending {}", human_bytes(t.bytes));
        if let Some(total) = t.total {
            let _ = write!(state_cell, " of {}", human_bytes(total));
        }
    }
    if let Some(retry) = &r.retry {
        let _ = write!(
            state_cell,
            " (retry {} {})",
            retry.attempt,
            esc(&relative(now, retry.at))
        );
    }
    let snap = |s: &Option<super::model::SnapAt>| match s {
        Some(s) => format!(
            "<span title=\"{}\">{}</span>",
            esc(&s.name),
            esc(&ago(now, s.time))
        ),
        None => "—".to_string(),
    };
    let lag = match (r.lag_seconds, r.lag_snapshots) {
        (Some(s), Some(n)) => format!("{} / {n} snap", span(s)),
        (Some(s), None) => span(s),
        (None, Some(n)) => format!("{n} snap"),
        (None, None) => "—".to_string(),
    };
    let failure = match &r.last_failure {
        Some(f) => format!(
            "<span class=\"kind\">{}</span> {}: {}",
            esc(&f.kind),
            esc(&ago(now, f.time)),
            esc(&f.message)
        ),
        None => "—".to_string(),
    };
    let _ = writeln!(
        h,
        "<tr class=\"row state-{state}\" data-client=\"{client}\" data-dataset=\"{ds}\" data-state=\"{state}\">\
         <td>{client}</td><td>{ds}</td><td class=\"state\"><span class=\"badge\">{state_cell}</span></td>\
         <td class=\"age\" data-age=\"{age_secs}\">{success}</td><td>{cn}</td><td>{sn}</td><td>{lag}</td>\
         <td>{bytes}</td><td>{next}</td><td class=\"failure\">{failure}</td></tr>",
        client = esc(&r.client),
        ds = esc(&r.dataset),
        age_secs = r.last_success.map_or(String::new(), |t| (now - t).to_string()),
        success = r
            .last_success
            .map_or("never".to_string(), |t| format!(
                "<time datetime=\"{}\" title=\"{}\">{}</time>",
                iso(t),
                esc(&local(t, tz)),
                esc(&ago(now, t))
            )),
        cn = snap(&r.client_newest),
        sn = snap(&r.server_newest),
        bytes = r.bytes_last_run.map_or("—".to_string(), human_bytes),
        next = r
            .next_run
            .map_or("—".to_string(), |t| esc(&relative(now, t))),
    );
}

fn host_block(h: &mut String, host: &HostStatus, now: i64) {
    let _ = write!(
        h,
        "<div class=\"host\" data-host=\"{n}\"><h3>{n}</h3>",
        n = esc(&host.host)
    );
    if !host.pools.is_empty() {
        h.push_str("<table class=\"pools\"><thead><tr><th>pool</th><th>health</th><th>used</th></tr></thead><tbody>");
        for p in &host.pools {
            let cls = match p.health_code() {
                0 => "ok",
                1 => "late",
                _ => "failing",
            };
            let _ = write!(
                h,
                "<tr class=\"pool state-{cls}\" data-pool=\"{n}\" data-health=\"{hl}\"><td>{n}</td><td class=\"state\"><span class=\"badge\">{hl}</span></td><td>{cap}</td></tr>",
                n = esc(&p.name),
                hl = esc(&p.health),
                cap = p.capacity.map_or("—".to_string(), |c| format!("{c}%")),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !host.snapshots.is_empty() {
        h.push_str("<table class=\"snapshots\"><thead><tr><th>dataset</th><th>period</th><th>newest</th></tr></thead><tbody>");
        for s in &host.snapshots {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.dataset),
                s.period.as_str(),
                s.newest.as_ref().map_or("none".to_string(), |n| format!(
                    "<span title=\"{}\">{}</span>",
                    esc(&n.name),
                    esc(&ago(now, n.time))
                )),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !host.jobs.is_empty() {
        h.push_str("<p class=\"jobs\">");
        for (i, j) in host.jobs.iter().enumerate() {
            if i > 0 {
                h.push_str(" · ");
            }
            let when = if j.running {
                "running".to_string()
            } else {
                j.next_run.map_or("not scheduled".to_string(), |t| {
                    format!("next {}", relative(now, t))
                })
            };
            let _ = write!(h, "{}: {}", esc(&j.job), esc(&when));
        }
        h.push_str("</p>");
    }
    h.push_str("</div>\n");
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.15em;margin:1.4em 0 .4em}h2 small{font-weight:normal;color:#666}\
.generated{color:#666;margin:.2em 0 1em}\
table{border-collapse:collapse;width:100%;margin-bottom:.8em}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f4f4f4;font-weight:600}\
.badge{display:inline-block;padding:.05em .5em;border-radius:.7em;font-weight:600}\
.state-ok .badge{background:#d6f5d6;color:#145214}.state-never .badge{background:#e4e8f7;color:#243b80}\
.state-paused .badge{background:#eee;color:#555}.state-failing .badge{background:#ffe2b8;color:#7a4100}\
.state-late .badge{background:#ffcccc;color:#8a0000}\
tr.state-late td,tr.state-failing td{background:#fffaf3}\
.failure{max-width:30em;color:#7a4100}.kind{font-family:monospace}\
.errors{background:#ffeeee;padding:.4em 1em;border-radius:.4em}\
.host{display:inline-block;vertical-align:top;margin:0 2em 1em 0;min-width:20em}.host h3{margin:.2em 0}\
footer{margin-top:2em;color:#888}";

/// `&`, `<`, `>`, `"` and `'` made harmless in text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn iso(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

fn local(t: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_second(t).map_or_else(
        |_| t.to_string(),
        |ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        },
    )
}

/// `3h 5m`, `2d 4h`, `40s`: two units at most.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn ago(now: i64, then: i64) -> String {
    format!("{} ago", span(now - then))
}

/// `in 2h 10m`, or `due` when it has passed.
pub fn relative(now: i64, at: i64) -> String {
    if at <= now {
        "due".to_string()
    } else {
        format!("in {}", span(at - now))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::judge::BackupState;
    use super::super::model::*;
    use super::*;

    pub(crate) fn sample() -> StatusReport {
        let now = 1_780_000_000;
        let row = |client: &str, state, success: Option<i64>| BackupRow {
            server: "vault".into(),
            client: client.into(),
            dataset: "zroot/persistSave".into(),
            target: format!("zstorage/backups/{client}/zroot/persistSave"),
            push: false,
            state,
            client_newest: Some(SnapAt {
                name: "autosnap_2026-05-28_21:00:00_hourly".into(),
                time: now - 1200,
            }),
            server_newest: success.map(|t| SnapAt {
                name: "autosnap_2026-05-28_02:00:00_hourly".into(),
                time: t - 60,
            }),
            lag_seconds: success.map(|t| now - 1200 - (t - 60)),
            lag_snapshots: Some(3),
            last_success: success,
            last_attempt: Some(now - 600),
            last_failure: (state == BackupState::Failing).then(|| FailureNote {
                time: now - 600,
                kind: "unreachable".into(),
                message: "bravo <did not answer> & went away".into(),
            }),
            bytes_last_run: Some(12 << 20),
            bytes_total: 40 << 20,
            failures: Vec::new(),
            next_run: Some(now + 3600),
            retry: (state == BackupState::Failing).then_some(RetryNote {
                attempt: 1,
                at: now + 60,
            }),
            transfer: None,
            late_after: 172_800,
        };
        StatusReport {
            generated: now,
            servers: vec![ServerStatus {
                server: "vault".into(),
                schedule: "daily 02:00".into(),
                rows: vec![
                    row("alpha", BackupState::Ok, Some(now - 7200)),
                    row("bravo", BackupState::Failing, Some(now - 90_000)),
                    row("laptop", BackupState::Never, None),
                ],
            }],
            hosts: vec![HostStatus {
                host: "vault".into(),
                pools: vec![PoolStatus {
                    name: "zstorage".into(),
                    health: "DEGRADED".into(),
                    capacity: Some(41),
                }],
                snapshots: Vec::new(),
                jobs: vec![JobStatus {
                    job: "backup".into(),
                    running: false,
                    next_run: Some(now + 3600),
                    retry: None,
                }],
            }],
            errors: vec![HostError {
                host: "laptop".into(),
                error: "ssh: connect timed out".into(),
            }],
        }
    }

    #[test]
    fn one_table_per_server_with_a_row_per_dataset() {
        let html = render(&sample(), "vault", &TimeZone::UTC);
        assert_eq!(html.matches("<table class=\"backups\"").count(), 1);
        assert_eq!(html.matches("<tr class=\"row ").count(), 3);
        assert!(html.contains(
            "data-client=\"bravo\" data-dataset=\"zroot/persistSave\" data-state=\"failing\""
        ));
        assert!(html.contains("never backed up"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(html.contains("data-worst=\"failing\""));
        assert!(html.contains("2h ago"));
        assert!(html.contains("(retry 1 in 1m)"));
    }

    #[test]
    fn text_is_escaped_and_nothing_acts() {
        let html = render(&sample(), "vault<script>", &TimeZone::UTC);
        assert!(html.contains("bravo &lt;did not answer&gt; &amp; went away"));
        assert!(html.contains("zfleet on vault&lt;script&gt;"));
        // Read-only: no scripts, forms or buttons.
        for tag in ["<script", "<form", "<button", "<input", "method="] {
            assert!(!html.contains(tag), "{tag}");
        }
    }

    #[test]
    fn spans() {
        assert_eq!(span(40), "40s");
        assert_eq!(span(600), "10m");
        assert_eq!(span(7200), "2h");
        assert_eq!(span(7260), "2h 1m");
        assert_eq!(span(90_000), "1d 1h");
        assert_eq!(span(172_800), "2d");
        assert_eq!(relative(10, 5), "due");
    }
}
