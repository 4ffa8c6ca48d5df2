//! Where syncoid jobs are written down: command lines (one per line),
//! crontabs, and systemd service units with their timers. Each becomes a
//! [`Job`]: syncoid's arguments, where they were found, who ran them and when.

use serde::Serialize;

use super::command_line;

/// One syncoid invocation found somewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// `file:line`, or `file:line (unit)`.
    pub origin: String,
    /// syncoid's arguments, without the program.
    pub args: Vec<String>,
    /// The account it ran as (a unit's `User=`, a system crontab's user):
    /// ssh logs in as this user when the operand names none.
    pub run_as: Option<String>,
    /// When it ran, as written (`daily`, `0 3 * * *`).
    pub schedule: Option<String>,
}

/// The jobs in one file, and what was seen but could not be read as one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Found {
    pub jobs: Vec<Job>,
    pub notes: Vec<String>,
}

impl Found {
    pub fn extend(&mut self, other: Found) {
        self.jobs.extend(other.jobs);
        self.notes.extend(other.notes);
    }
}

/// Lines with the backslash continuations of shells, crontabs and units
/// joined, each with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (n, mut acc) = cur.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                cur = Some((n, acc));
            }
            None => {
                acc.push_str(line);
                out.push((n, acc));
            }
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

/// A file of any of the kinds: a unit when it has a `[Service]` section,
/// otherwise lines that are crontab entries or plain command lines. `label`
/// names it in origins; a label of `/etc/crontab` or one under `cron.d/` is
/// read as a system crontab (a user before the command).
pub fn from_text(label: &str, text: &str) -> Found {
    if text.lines().any(|l| l.trim() == "[Service]") {
        return from_unit(label, text, None);
    }
    let system = label == "/etc/crontab" || label.contains("/cron.d/");
    let mut found = Found::default();
    for (n, line) in logical_lines(text) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || !trimmed.contains("syncoid") {
            continue;
        }
        let origin = format!("{label}:{n}");
        let (schedule, user, command) = match cron_fields(trimmed, system) {
            Some((s, u, c)) => (Some(s), u, c),
            None => (None, None, trimmed.to_string()),
        };
        push_command(&mut found, origin, &command, user, schedule);
    }
    found
}

fn push_command(
    found: &mut Found,
    origin: String,
    command: &str,
    run_as: Option<String>,
    schedule: Option<String>,
) {
    match command_line::find(command) {
        Ok(Some(f)) => {
            if f.expands_variables {
                found.notes.push(format!(
                    "{origin}: the line uses shell or systemd variables (`$…`), which are not expanded here; the arguments are read as written"
                ));
            }
            if !f.after.is_empty() {
                found.notes.push(format!(
                    "{origin}: `{}` after syncoid's arguments is not carried over",
                    f.after.join(" ")
                ));
            }
            found.jobs.push(Job {
                origin,
                args: f.args,
                run_as,
                schedule,
            });
        }
        Ok(None) => {}
        Err(e) => found
            .notes
            .push(format!("{origin}: cannot split the line: {e}")),
    }
}

/// `MIN HOUR DOM MON DOW [USER] COMMAND` or `@daily [USER] COMMAND`.
fn cron_fields(line: &str, system: bool) -> Option<(String, Option<String>, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = if words.first()?.starts_with('@') {
        1
    } else {
        5
    };
    if words.len() <= n || !words[..n].iter().all(|w| cron_field(w)) {
        return None;
    }
    let schedule = words[..n].join(" ");
    let mut rest = &words[n..];
    let mut user = None;
    if system && rest.len() > 1 {
        user = Some(rest[0].to_string());
        rest = &rest[1..];
    }
    if rest.is_empty() {
        return None;
    }
    // The command is the rest of the line as written (quotes and all).
    let skip = n + usize::from(user.is_some());
    let mut pos = 0;
    for w in &words[..skip] {
        pos = line[pos..].find(w).map(|i| pos + i + w.len())?;
    }
    Some((schedule, user, line[pos..].trim().to_string()))
}

fn cron_field(w: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "@reboot",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    if w.starts_with('@') {
        return SPECIAL.contains(&w);
    }
    w.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/'))
        && !w.contains("syncoid")
}

/// A service unit (and its timer, if there is one): each `ExecStart=` that
/// runs syncoid is a job, run as the unit's `User=` (root without one), when
/// the timer's `OnCalendar=` says.
pub fn from_unit(label: &str, service: &str, timer: Option<&str>) -> Found {
    let mut found = Found::default();
    let mut section = String::new();
    let mut execs: Vec<(usize, String)> = Vec::new();
    let mut user = None;
    for (n, line) in logical_lines(service) {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') {
            section = l.to_string();
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k.trim() {
            // An empty assignment resets the list, as in systemd.
            "ExecStart" if v.trim().is_empty() => execs.clear(),
            "ExecStart" => {
                let v = v.trim().trim_start_matches(['-', '@', ':', '+', '!']);
                execs.push((n, v.to_string()));
            }
            "User" => user = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let schedule = timer.and_then(timer_schedule);
    for (n, cmd) in execs {
        let origin = format!("{label}:{n}");
        push_command(
            &mut found,
            origin,
            &cmd,
            Some(user.clone().unwrap_or_else(|| "root".into())),
            schedule.clone(),
        );
    }
    found
}

/// `OnCalendar=` values of a timer, joined; `OnUnitActiveSec=` and the like
/// as `every …`.
fn timer_schedule(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut section = String::new();
    for (_, line) in logical_lines(text) {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.to_string();
            continue;
        }
        if section != "[Timer]" {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            match k.trim() {
                "OnCalendar" if !v.trim().is_empty() => parts.push(v.trim().to_string()),
                "OnUnitActiveSec" | "OnUnitInactiveSec" | "OnActiveSec" => {
                    parts.push(format!("every {}", v.trim()))
                }
                _ => {}
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_crontabs_and_continuations() {
        let text = "# nightly\nsyncoid -r tank/a root@b:bk/a\n\n0 3 * * * /usr/sbin/syncoid --quiet \\\n  tank/c b:bk/c >> /var/log/s.log 2>&1\n@daily syncoid x/y z/w\n";
        let f = from_text("jobs.txt", text);
        assert_eq!(f.jobs.len(), 3, "{f:?}");
        assert_eq!(f.jobs[0].origin, "jobs.txt:2");
        assert_eq!(f.jobs[0].args, ["-r", "tank/a", "root@b:bk/a"]);
        assert_eq!(f.jobs[0].schedule, None);
        assert_eq!(f.jobs[1].origin, "jobs.txt:4");
        assert_eq!(f.jobs[1].args, ["--quiet", "tank/c", "b:bk/c"]);
        assert_eq!(f.jobs[1].schedule.as_deref(), Some("0 3 * * *"));
        assert_eq!(f.jobs[2].schedule.as_deref(), Some("@daily"));
        assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
        assert!(
            f.notes[0].contains("`>> /var/log/s.log 2>&1`"),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn a_system_crontab_has_a_user() {
        let f = from_text(
            "/etc/cron.d/syncoid",
            "SHELL=/bin/sh\n15 2 * * 1-5 backup syncoid --no-sync-snap b@c:d/e f/g\n",
        );
        assert_eq!(f.jobs.len(), 1);
        assert_eq!(f.jobs[0].run_as.as_deref(), Some("backup"));
        assert_eq!(f.jobs[0].schedule.as_deref(), Some("15 2 * * 1-5"));
        assert_eq!(f.jobs[0].args, ["--no-sync-snap", "b@c:d/e", "f/g"]);
    }

    #[test]
    fn a_unit_with_its_timer() {
        let service = "[Unit]\nDescription=x\n[Service]\nType=oneshot\nUser=syncoid\nExecStart=\nExecStart=-/usr/bin/syncoid \\\n  --no-sync-snap a@b:c/d e/f\n";
        let timer = "[Timer]\nOnCalendar=daily\nPersistent=true\n";
        let f = from_unit(
            "/etc/systemd/system/syncoid-x.service",
            service,
            Some(timer),
        );
        assert_eq!(f.jobs.len(), 1, "{f:?}");
        let j = &f.jobs[0];
        assert_eq!(j.origin, "/etc/systemd/system/syncoid-x.service:7");
        assert_eq!(j.args, ["--no-sync-snap", "a@b:c/d", "e/f"]);
        assert_eq!(j.run_as.as_deref(), Some("syncoid"));
        assert_eq!(j.schedule.as_deref(), Some("daily"));
        // from_text recognises a unit.
        assert_eq!(from_text("u.service", service).jobs.len(), 1);
    }
}
