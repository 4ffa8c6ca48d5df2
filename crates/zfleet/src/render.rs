//! Human output: tables without borders, times in local time, errors with hints.

/// `println!` that ends the process quietly when stdout is a closed pipe
/// (`zfleet list | head`), the way Unix tools do. zfleet keeps SIGPIPE ignored
/// (Rust's default) so that a closed stream pipe is an error it can handle,
/// never a signal that kills it mid-transfer.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

use comfy_table::{presets, ContentArrangement, Table};

/// A table in the style of `zfs list`: a header row and aligned columns.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table, trimming the padding comfy-table leaves at line ends.
pub fn print_table(t: &Table, indent: &str) {
    for line in t.to_string().lines() {
        outln!("{indent}{}", line.trim_end());
    }
}

/// Raw bytes on stdout (a generated script or page), ending quietly on a
/// closed pipe like [`outln!`].
pub fn write_stdout(bytes: &[u8]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
    }
}

pub fn json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

/// Errors carry names, values and remote programs' stderr: control
/// characters are escaped (line breaks kept) so none of it drives the terminal.
pub fn error(e: &zfleet_core::Error) {
    eprintln!(
        "error: {}",
        zfleet_core::text::printable_lines(&e.to_string())
    );
}

/// `2026-11-25 23:00` in the local time zone.
pub fn local_time(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => unix.to_string(),
    }
}

/// `3h`, `2d`, `5w`: how long ago, for humans.
pub fn age(now: i64, then: i64) -> String {
    let s = (now - then).max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s if s < 1_209_600 => format!("{}d", s / 86400),
        s => format!("{}w", s / 604_800),
    }
}

pub use zfleet_core::progress::human_bytes as bytes;

/// A Nagios check's answer: one line (or `--json`), and its exit code. A check
/// that could not run is UNKNOWN in the same shape.
pub fn nagios<T: serde::Serialize>(
    r: Result<zfleet_core::snapshot::monitor::CheckResult<T>, zfleet_core::Error>,
    as_json: bool,
) -> u8 {
    let r = r.unwrap_or_else(zfleet_core::snapshot::monitor::CheckResult::unknown);
    if as_json {
        json(&r);
    } else {
        outln!("{}", r.message);
    }
    r.level.exit_code()
}
