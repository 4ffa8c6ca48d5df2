//! Running what was allowed: each command as an argv (never a shell), streams
//! passed straight through this process's stdin/stdout (the ssh channel), and
//! every request written to the serve log with its verdict.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::policy::{authorize, Mode, Op, OpKind, Stream};
use super::{request, Refusal};
use crate::exec::quote::display_line;
use crate::zfs::{cmd, SnapshotName, ZfsErrorKind};

/// Exit status for a refused request (126: "cannot execute").
pub const REFUSED: i32 = 126;
pub use crate::protocol::{Banner, SERVE_BANNER, SERVE_FEATURES};

/// Where requests and verdicts are written. Falls back to stderr alone when the
/// file cannot be opened (the server still sees refusals there).
pub struct ServeLog {
    pub path: Option<PathBuf>,
    pub host: String,
    pub peer: String,
}

impl ServeLog {
    fn write(&self, verdict: &str, request: &str) {
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
        let line = format!(
            "{now} host={} peer={} {verdict} request={:?}\n",
            self.host, self.peer, request
        );
        if let Some(p) = &self.path {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = f.write_all(line.as_bytes());
                return;
            }
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Handles one request (the content of `SSH_ORIGINAL_COMMAND`, `None` for an
/// interactive login). Returns the exit status.
pub fn serve(mode: &Mode, raw: Option<&str>, log: &ServeLog) -> i32 {
    let raw = raw.unwrap_or("");
    let ops = match request::parse(raw).and_then(|cmds| {
        cmds.iter()
            .map(|c| authorize(mode, c))
            .collect::<Result<Vec<Op>, Refusal>>()
    }) {
        Ok(ops) => ops,
        Err(r) => return refuse(log, raw, &r),
    };
    for op in &ops {
        if let OpKind::ResumeSend { token } = &op.kind {
            if let Err(r) = check_token(mode, token) {
                return refuse(log, raw, &r);
            }
        }
    }
    if let Err(r) = super::holds::check(&mode.marker(), &mode.who(), &ops) {
        return refuse(log, raw, &r);
    }
    log.write("allowed", raw);
    for op in &ops {
        let status = run(op);
        if status != 0 {
            return status;
        }
    }
    0
}

fn refuse(log: &ServeLog, raw: &str, r: &Refusal) -> i32 {
    log.write(&format!("refused ({})", r.reason), raw);
    eprintln!("zfleet serve: refused: {}", r.reason);
    REFUSED
}

/// A resume token names the snapshot it continues; it must be one this peer
/// may send, like any other send, and its guids must be that snapshot's. The
/// token is decoded here, field by field, not read from what zfs prints.
fn check_token(mode: &Mode, token: &str) -> Result<(), Refusal> {
    let t = crate::zfs::resume_token::decode(token).map_err(Refusal::new)?;
    let snap = SnapshotName::parse(&t.toname).map_err(|e| Refusal::new(e.to_string()))?;
    authorize(mode, &["zfs".into(), "send".into(), snap.to_string()])?;
    let list = cmd::zfs()
        .args([
            "list",
            "-H",
            "-p",
            "-o",
            "name,guid",
            "-t",
            "snapshot,bookmark",
            "-d",
            "1",
        ])
        .arg(snap.dataset.as_str());
    let out = Command::new(&list.program)
        .args(&list.args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Refusal::new(format!("cannot check the resume token: {e}")))?;
    if !out.status.success() {
        return Err(Refusal::new(format!(
            "cannot check the resume token: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    crate::zfs::resume_token::check_guids(&t, &String::from_utf8_lossy(&out.stdout))
        .map_err(Refusal::new)
}

fn run(op: &Op) -> i32 {
    let mut c = Command::new(&op.argv.program);
    c.args(&op.argv.args).env("LC_ALL", "C");
    match op.kind {
        OpKind::Probe => probe(),
        OpKind::Checksum {
            ref snapshot,
            sample,
            rate,
        } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let opts = crate::verify::walk::WalkOptions { sample, rate };
            match crate::verify::snapdir::write_snapshot_listing(snapshot, opts, &mut out) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("zfleet serve: {e}");
                    1
                }
            }
        }
        OpKind::Tolerate { ref benign } => {
            let out = match c.stdin(Stdio::null()).output() {
                Ok(o) => o,
                Err(e) => return spawn_failed(op, &e),
            };
            let err = String::from_utf8_lossy(&out.stderr);
            let kind = ZfsErrorKind::classify(&err);
            let harmless = kind == ZfsErrorKind::Unsupported
                || benign
                    .iter()
                    .any(|b| std::mem::discriminant(b) == std::mem::discriminant(&kind));
            if out.status.success() || harmless {
                0
            } else {
                eprint!("{err}");
                out.status.code().unwrap_or(1)
            }
        }
        OpKind::Listing { ref datasets } => filtered(op, c, |line| {
            let name = line.split('\t').next().unwrap_or("");
            datasets.iter().any(|d| {
                name.strip_prefix(d.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('@') || rest.starts_with('#')
                })
            })
        }),
        OpKind::Properties => filtered(op, c, |line| {
            line.split('\t')
                .nth(1)
                .is_some_and(super::policy::property_shown)
        }),
        OpKind::Plain | OpKind::ResumeSend { .. } if op.zstd => send_compressed(op, c),
        OpKind::Plain | OpKind::ResumeSend { .. } => {
            // Streams go straight through: stdout to the ssh channel for a
            // send, stdin from it for a receive; zfleet copies nothing.
            c.stdin(if op.stream == Stream::In {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
            match c.status() {
                Ok(st) => st.code().unwrap_or(1),
                Err(e) => spawn_failed(op, &e),
            }
        }
    }
}

/// Runs a query and passes on only the lines `keep` accepts; the exit status
/// is the query's.
fn filtered(op: &Op, mut c: Command, keep: impl Fn(&str) -> bool) -> i32 {
    use std::io::BufRead;
    let mut child = match c.stdin(Stdio::null()).stdout(Stdio::piped()).spawn() {
        Ok(ch) => ch,
        Err(e) => return spawn_failed(op, &e),
    };
    let Some(stream) = child.stdout.take() else {
        let _ = child.kill();
        return 1;
    };
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(stream).split(b'\n') {
        let Ok(line) = line else { break };
        if keep(&String::from_utf8_lossy(&line)) {
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
        }
    }
    let _ = out.flush();
    match child.wait() {
        Ok(st) => st.code().unwrap_or(1),
        Err(e) => spawn_failed(op, &e),
    }
}

/// Runs a send with its stdout through a zstd encoder onto this process's
/// stdout; the exit status is the sender's, as for a plain send.
fn send_compressed(op: &Op, mut c: Command) -> i32 {
    let mut child = match c.stdin(Stdio::null()).stdout(Stdio::piped()).spawn() {
        Ok(ch) => ch,
        Err(e) => return spawn_failed(op, &e),
    };
    let Some(mut stream) = child.stdout.take() else {
        let _ = child.kill();
        return 1;
    };
    let out = std::io::stdout().lock();
    let copied =
        zstd::stream::write::Encoder::new(out, crate::protocol::ZSTD_LEVEL).and_then(|mut enc| {
            std::io::copy(&mut stream, &mut enc)?;
            enc.finish()?.flush()
        });
    if let Err(e) = copied {
        // The server went away; the sender would block on a full pipe.
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("zfleet serve: compressing the stream failed: {e}");
        return 1;
    }
    match child.wait() {
        Ok(st) => st.code().unwrap_or(1),
        Err(e) => spawn_failed(op, &e),
    }
}

fn spawn_failed(op: &Op, e: &std::io::Error) -> i32 {
    eprintln!(
        "zfleet serve: cannot run `{}`: {e}",
        display_line(op.argv.words())
    );
    1
}

/// `zfs version`, or `zpool upgrade -v` where that is not a command, after
/// the banner that tells the server it talks to zfleet serve.
fn probe() -> i32 {
    // The version word lets a server (and `zfleet deploy`) tell which build
    // answers; servers that predate it ignore it like any unknown feature.
    println!(
        "{SERVE_BANNER} {} zfleet={}",
        SERVE_FEATURES.join(" "),
        env!("CARGO_PKG_VERSION")
    );
    let version = cmd::zfs().arg("version");
    let ok = Command::new(&version.program)
        .args(&version.args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if matches!(ok, Ok(s) if s.success()) {
        return 0;
    }
    let up = cmd::zpool().args(["upgrade", "-v"]);
    match Command::new(&up.program)
        .args(&up.args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .status()
    {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            eprintln!("zfleet serve: cannot run zpool: {e}");
            1
        }
    }
}
