//! `[daemon]`, `[notify.NAME]` and the schedule keys of the roles.

use std::net::SocketAddr;
use std::time::Duration;

use indexmap::IndexMap;

use super::super::daemon::*;
use super::super::raw_daemon::{RawDaemon, RawNotify};
use super::super::{KeyPath, SecretRef};
use super::{parse_duration, Ctx};
use crate::daemon::schedule::{parse_span, Schedule, Timing};
use crate::daemon::Backoff;

impl Ctx<'_> {
    pub(super) fn daemon(&mut self, d: Option<&RawDaemon>) -> DaemonConfig {
        let Some(d) = d else {
            return DaemonConfig::default();
        };
        let p = KeyPath::root().key("daemon");
        let listen = d
            .listen
            .as_ref()
            .and_then(|l| match l.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.err_at_value(
                        &p.key("listen"),
                        format!("`{l}` is not an address and port"),
                        Some("write it like \"127.0.0.1:9811\" or \"[::1]:9811\"".into()),
                    );
                    None
                }
            });
        let mut dur = |key: &str, v: &Option<String>, default: Duration| match v {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|m| {
                self.err_at_value(&p.key(key), m, None);
                default
            }),
        };
        let stall_timeout = dur("stall_timeout", &d.stall_timeout, DEFAULT_STALL_TIMEOUT);
        let shutdown_timeout = dur(
            "shutdown_timeout",
            &d.shutdown_timeout,
            DEFAULT_SHUTDOWN_TIMEOUT,
        );
        let watch_interval = dur("watch_interval", &d.watch_interval, DEFAULT_WATCH_INTERVAL);
        let def = Backoff::default();
        let first = dur(
            "retry_delay",
            &d.retry_delay,
            Duration::from_secs(def.first as u64),
        );
        let max = dur(
            "retry_max",
            &d.retry_max,
            Duration::from_secs(def.max as u64),
        );
        if max < first {
            self.err_at_value(&p.key("retry_max"), "is shorter than `retry_delay`", None);
        }
        let rate_limit = d.rate_limit.as_ref().and_then(|r| match parse_rate(r) {
            Some(n) => Some(n),
            None => {
                self.err_at_value(
                    &p.key("rate_limit"),
                    format!(
                        "`{r}` is not a rate; write it like \"10M\" or \"500K\" (bytes per second)"
                    ),
                    None,
                );
                None
            }
        });
        DaemonConfig {
            listen,
            rate_limit,
            stall_timeout,
            backoff: Backoff {
                first: first.as_secs() as i64,
                max: max.as_secs() as i64,
                retries: d.retries.unwrap_or(def.retries),
            },
            shutdown_timeout,
            watch_interval,
        }
    }

    pub(super) fn notify_targets(
        &mut self,
        raw: &IndexMap<String, RawNotify>,
    ) -> IndexMap<String, NotifyTarget> {
        let mut out = IndexMap::new();
        for (name, n) in raw {
            let p = KeyPath::root().key("notify").key(name);
            if let Err(m) = super::valid_host_name(name) {
                self.err_at_key(
                    &p,
                    format!("invalid notification name `{}`: {m}", name.escape_default()),
                    None,
                );
                continue;
            }
            let given: Vec<&str> = [
                ("ntfy", n.ntfy.is_some()),
                ("webhook", n.webhook.is_some()),
                ("healthchecks", n.healthchecks.is_some()),
                ("command", n.command.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect();
            if given.len() != 1 {
                self.err_at_key(&p, if given.is_empty() {
                        "says nowhere to send notifications".to_string()
                    } else {
                        format!("gives {} targets; one per [notify.NAME]", given.join(" and "))
                    },
                    Some("set exactly one of `ntfy`, `webhook`, `healthchecks` (URLs) or `command` (a program and its arguments)".into()),
                );
                continue;
            }
            let mut url = |key: &str, v: &String| self.url_ref(&p.key(key), v);
            let kind = if let Some(u) = &n.ntfy {
                url("ntfy", u).map(|url| NotifyKind::Ntfy { url })
            } else if let Some(u) = &n.webhook {
                url("webhook", u).map(|url| NotifyKind::Webhook { url })
            } else if let Some(u) = &n.healthchecks {
                url("healthchecks", u).map(|url| NotifyKind::Healthchecks { url })
            } else {
                let argv = n.command.clone().unwrap_or_default();
                if argv.first().map_or(true, |s| s.trim().is_empty()) {
                    self.err_at_value(
                        &p.key("command"),
                        "needs a program",
                        Some("write it like [\"/usr/local/bin/page-me\", \"--urgent\"]".into()),
                    );
                    None
                } else {
                    Some(NotifyKind::Command { argv })
                }
            };
            let token = n.token.as_ref().and_then(|t| match SecretRef::parse(t) {
                Ok(r) => Some(r),
                Err(m) => {
                    self.err_at_value(
                        &p.key("token"),
                        m,
                        Some(
                            "a token is never written in the fleet file, only where to read it"
                                .into(),
                        ),
                    );
                    None
                }
            });
            let mut events = Vec::new();
            for (i, e) in n.events.iter().flatten().enumerate() {
                match NOTIFY_EVENTS.iter().find(|(w, _)| w == e) {
                    Some((_, k)) => events.push(*k),
                    None => self.err_at_value(
                        &p.key("events").index(i),
                        format!("`{e}` is not an event"),
                        Some(format!(
                            "events: {}",
                            NOTIFY_EVENTS
                                .iter()
                                .map(|(w, _)| *w)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ),
                }
            }
            let timeout = match &n.timeout {
                None => DEFAULT_NOTIFY_TIMEOUT,
                Some(t) => parse_duration(t).unwrap_or_else(|m| {
                    self.err_at_value(&p.key("timeout"), m, None);
                    DEFAULT_NOTIFY_TIMEOUT
                }),
            };
            if let Some(kind) = kind {
                out.insert(
                    name.clone(),
                    NotifyTarget {
                        name: name.clone(),
                        kind,
                        token,
                        events,
                        timeout,
                    },
                );
            }
        }
        out
    }

    /// A URL as written (`https://…`), or a secret reference to read it from.
    fn url_ref(&mut self, p: &KeyPath, v: &str) -> Option<UrlRef> {
        if v.starts_with("https://") || v.starts_with("http://") {
            if v.len() <= "https://".len() || v.contains(char::is_whitespace) {
                self.err_at_value(p, format!("`{v}` is not a URL"), None);
                return None;
            }
            return Some(UrlRef::Plain(v.to_string()));
        }
        match SecretRef::parse(v) {
            Ok(r) => Some(UrlRef::Secret(r)),
            Err(_) => {
                self.err_at_value(
                    p,
                    format!("`{v}` is neither an http(s) URL nor a secret reference"),
                    Some(format!(
                        "a URL that holds a token can be read from {}",
                        super::super::secret_ref::SECRET_FORMS
                    )),
                );
                None
            }
        }
    }

    /// `schedule` and `jitter` of a role; `default` when no schedule is given.
    pub(super) fn timing(
        &mut self,
        p: &KeyPath,
        schedule: Option<&String>,
        jitter: Option<&String>,
        default: &str,
    ) -> Timing {
        let fallback = Schedule::parse(default).unwrap_or(Schedule::Manual);
        let schedule = match schedule {
            None => fallback,
            Some(s) => Schedule::parse(s).unwrap_or_else(|m| {
                self.err_at_value(&p.key("schedule"), m, None);
                fallback
            }),
        };
        let jitter = match jitter {
            None => 0,
            Some(j) => match parse_span(j) {
                Ok(secs) if secs <= 86_400 => {
                    if let Some(i) = schedule.interval().filter(|i| secs >= *i) {
                        self.err_at_value(
                            &p.key("jitter"),
                            format!("is not shorter than the schedule's interval ({i} s)"),
                            None,
                        );
                    }
                    secs as u32
                }
                Ok(_) => {
                    self.err_at_value(&p.key("jitter"), "must be at most 24h", None);
                    0
                }
                Err(m) => {
                    self.err_at_value(&p.key("jitter"), m, None);
                    0
                }
            },
        };
        Timing { schedule, jitter }
    }

    /// `late_after`: seconds without a success before a backup is late.
    pub(super) fn late_after(&mut self, p: &KeyPath, v: Option<&String>) -> Option<i64> {
        let v = v?;
        match parse_duration(v) {
            Ok(d) => Some(d.as_secs() as i64),
            Err(m) => {
                self.err_at_value(&p.key("late_after"), m, None);
                None
            }
        }
    }
}

/// `10M` → 10485760 bytes per second (binary units, as `--rate-limit`).
fn parse_rate(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1u64 << 10),
        'M' | 'm' => (&t[..t.len() - 1], 1 << 20),
        'G' | 'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}
