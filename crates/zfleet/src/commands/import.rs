use std::path::PathBuf;

use clap::{Args, Subcommand};
use zfleet_core::snapshot::sanoid_import::import;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};

/// Turn another tool's configuration into fleet.toml sections.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    what: ImportWhat,
}

#[derive(Debug, Subcommand)]
enum ImportWhat {
    /// Print the fleet.toml equivalent of a sanoid.conf (templates,
    /// use_template, recursive, per-dataset overrides, hooks, monitoring) on
    /// stdout, and on stderr what could not be carried over.
    Sanoid {
        /// The sanoid.conf to read.
        #[arg(default_value = "/etc/sanoid/sanoid.conf")]
        path: PathBuf,
        /// Put the datasets under `[hosts.HOST.snapshots]` instead of the
        /// fleet-wide `[snapshots]`.
        #[arg(long = "for-host", value_name = "HOST")]
        for_host: Option<String>,
        /// Print the result even where zfleet would keep a different number
        /// of snapshots than sanoid (each difference is listed on stderr).
        /// Without it, such an import is refused (exit 5).
        #[arg(long)]
        accept_differences: bool,
    },
    /// Print fleet.toml host, backup and server entries for syncoid jobs on
    /// stdout, and on stderr every flag that is not carried over (with what
    /// zfleet does instead) and the `zfs rename` steps that let zfleet go on
    /// from syncoid's backups.
    ///
    /// Each FILE holds syncoid command lines (one per line, as typed or in a
    /// shell script), crontab lines, or a systemd service unit (its `.timer`
    /// beside it is read too). The jobs are taken to run on this host
    /// (`--host`): a job that pulls `[user@]host:dataset` here makes this host
    /// a backup server, one that sends a local dataset to a remote host makes
    /// it a push client. `zfleet init` reads the jobs it finds the same way.
    Syncoid {
        /// Files to read; `-` (the default) is standard input.
        #[arg(value_name = "FILE|-")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
}

pub fn cmd_import(g: &GlobalArgs, a: &ImportArgs) -> Result<u8, Error> {
    match &a.what {
        ImportWhat::Syncoid { files, out } => import_syncoid(g, files, *out),
        ImportWhat::Sanoid {
            path,
            for_host,
            accept_differences,
        } => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
            let r = import(&text, for_host.as_deref());
            for d in &r.differences {
                eprintln!("differs from sanoid: {d}");
            }
            if !r.differences.is_empty() && !accept_differences {
                eprintln!("refused: the imported policy would keep other snapshots than sanoid does (above); fix the sections, or pass --accept-differences");
                return Ok(crate::exit::REFUSED);
            }
            outln!("{}", r.toml.trim_end());
            for l in &r.layered {
                eprintln!("note: {}: {l}", path.display());
            }
            for n in &r.notes {
                eprintln!("not carried over: {}: {n}", path.display());
            }
            // The result must be a fleet file zfleet accepts.
            if let Err(e) = zfleet_core::config::parse(&r.toml, std::path::Path::new("imported")) {
                eprintln!("warning: the imported text does not validate on its own:\n{e}");
            }
            Ok(crate::exit::OK)
        }
    }
}

/// Reads each file (a unit with the timer beside it), `-` from stdin.
pub fn syncoid_jobs(files: &[PathBuf]) -> Result<zfleet_core::syncoid::sources::Found, Error> {
    use std::io::Read as _;
    use zfleet_core::syncoid::sources;
    let mut found = sources::Found::default();
    let stdin = [PathBuf::from("-")];
    for path in if files.is_empty() { &stdin[..] } else { files } {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Usage(format!("cannot read standard input: {e}")))?;
            found.extend(sources::from_text("stdin", &text));
            continue;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        let label = path.display().to_string();
        let timer = (path.extension().is_some_and(|e| e == "service"))
            .then(|| std::fs::read_to_string(path.with_extension("timer")).ok())
            .flatten();
        if timer.is_some() || text.lines().any(|l| l.trim() == "[Service]") {
            found.extend(sources::from_unit(&label, &text, timer.as_deref()));
        } else {
            found.extend(sources::from_text(&label, &text));
        }
    }
    Ok(found)
}

fn import_syncoid(g: &GlobalArgs, files: &[PathBuf], out: OutputArgs) -> Result<u8, Error> {
    let this = g.this_host.clone().unwrap_or_else(crate::context::hostname);
    let found = syncoid_jobs(files)?;
    // syncoid reads `name:dataset` as local when a pool `name` exists here.
    let pools: Vec<String> = zfleet_core::host::Host::local(this.clone())
        .pools()
        .map(|p| p.iter().map(|p| p.as_str().to_string()).collect())
        .unwrap_or_default();
    let mut r = zfleet_core::syncoid::import::import(&this, &found.jobs, &pools);
    let mut notes = found.notes.clone();
    notes.append(&mut r.notes);
    r.notes = notes;
    if out.json {
        crate::render::json(&r);
    } else {
        if !r.toml.is_empty() {
            outln!("{}", r.toml.trim_end());
        }
        for n in &r.notes {
            eprintln!("note: {n}");
        }
        for m in &r.migrations {
            eprintln!("to go on from syncoid's backup: {m}");
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
    }
    if found.jobs.is_empty() {
        eprintln!(
            "error: no syncoid command found in {}",
            if files.is_empty() {
                "standard input".to_string()
            } else {
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        return Ok(crate::exit::USAGE);
    }
    if !r.toml.is_empty() {
        if let Err(e) = zfleet_core::config::parse(&r.toml, std::path::Path::new("imported")) {
            eprintln!("warning: the imported text does not validate on its own:\n{e}");
        }
    }
    Ok(if r.errors.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::USAGE
    })
}
