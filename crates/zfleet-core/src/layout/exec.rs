//! Running a layout plan on its host, step by step, stopping at the first
//! failure. What ran is reported, so a second run (which observes and plans
//! again) continues where this one stopped.
//!
//! Each action becomes argument vectors ([`commands`], pure and tested);
//! passphrases and keys are fetched once per run from their providers and
//! reach `cryptsetup` and `zfs` on stdin only, never in argv or the
//! environment, and are redacted from anything the programs print.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretSlice;
use serde::Serialize;

use super::plan::{Action, PartitionSpec, Plan, Step, BLANK_PROPERTY};
use crate::clock::Clock;
use crate::config::SecretRef;
use crate::exec::{Argv, RunOptions};
use crate::host::Host;
use crate::unlock::{Providers, Secret, SecretCache};
use crate::zfs::cmd;

/// Generous: luksFormat derives a key for seconds, `zpool create` on slow
/// disks and resilvering attaches take their time.
const STEP_TIMEOUT: Duration = Duration::from_secs(900);

/// One process of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub argv: Vec<String>,
    pub stdin: Stdin,
    /// A failure of this command is the step's failure (`udevadm settle`
    /// may be missing in a container, which is no failure).
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdin {
    None,
    /// The secret as it is (`cryptsetup --key-file -`).
    SecretRaw(String),
    /// The secret and a newline (`zfs` reading a passphrase).
    SecretLine(String),
    /// Text, such as sfdisk's script.
    Text(String),
}

fn c(words: Vec<String>) -> Command {
    Command {
        argv: words,
        stdin: Stdin::None,
        required: true,
    }
}

fn argv_words(a: Argv) -> Vec<String> {
    a.words().map(str::to_string).collect()
}

/// udev makes the nodes of new partitions and mappings after the kernel
/// announced them; later steps name them by their /dev/disk links.
fn settle() -> Command {
    Command {
        argv: vec!["udevadm".into(), "settle".into(), "--timeout=60".into()],
        stdin: Stdin::None,
        required: false,
    }
}

/// sfdisk's script for a partition table.
pub fn sfdisk_script(parts: &[PartitionSpec]) -> String {
    let mut s = String::from("label: gpt\n");
    for p in parts {
        let size = p
            .size
            .map(|b| format!("size={}KiB, ", b / 1024))
            .unwrap_or_default();
        s.push_str(&format!(
            "{size}type={}, name=\"{}\"\n",
            p.type_guid, p.name
        ));
    }
    s
}

/// The processes of one action; `modern` is OpenZFS (`zfs create -u`,
/// `zpool import -N`).
pub fn commands(action: &Action, modern: bool) -> Vec<Command> {
    let zfs = |args: &[&str]| argv_words(cmd::zfs().args(args.iter().copied()));
    let zpool = |args: &[&str]| argv_words(cmd::zpool().args(args.iter().copied()));
    let w = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match action {
        Action::SetHostId { id } => vec![c(w(&["zgenhostid", "-f", id]))],
        Action::DestroyPool { pool } => vec![c(zpool(&["destroy", pool]))],
        Action::CloseLuks { mapping } => vec![c(w(&["cryptsetup", "close", mapping]))],
        Action::Wipe {
            disk,
            partitions,
            zfs_labels,
        } => {
            let mut out: Vec<Command> = zfs_labels
                .iter()
                .map(|d| c(zpool(&["labelclear", "-f", d])))
                .collect();
            for p in partitions {
                out.push(c(w(&["wipefs", "--all", "--quiet", p])));
            }
            out.push(c(w(&["wipefs", "--all", "--quiet", disk])));
            out.push(settle());
            out
        }
        Action::Partition { disk, partitions } => {
            let mut out = vec![Command {
                argv: w(&["sfdisk", "--quiet", "--wipe", "always", disk]),
                stdin: Stdin::Text(sfdisk_script(partitions)),
                required: true,
            }];
            out.push(settle());
            out
        }
        Action::FormatEsp { device } => vec![c(w(&["mkfs.vfat", "-F", "32", device])), settle()],
        Action::Mkswap { device } => vec![c(w(&["mkswap", device])), settle()],
        Action::LuksFormat {
            device,
            label,
            secret,
        } => vec![
            Command {
                argv: w(&[
                    "cryptsetup",
                    "--batch-mode",
                    "luksFormat",
                    "--type",
                    "luks2",
                    "--label",
                    label,
                    "--key-file",
                    "-",
                    device,
                ]),
                stdin: Stdin::SecretRaw(secret.to_string()),
                required: true,
            },
            settle(),
        ],
        Action::LuksOpen {
            device,
            mapping,
            discards,
            secret,
        } => {
            let mut a = w(&["cryptsetup", "open", "--type", "luks"]);
            if *discards {
                a.push("--allow-discards".into());
            }
            a.extend(w(&["--key-file", "-", device, mapping]));
            vec![
                Command {
                    argv: a,
                    stdin: Stdin::SecretRaw(secret.to_string()),
                    required: true,
                },
                settle(),
            ]
        }
        Action::ImportPool { pool, force, dirs } => {
            let mut a = zpool(&["import"]);
            if modern {
                a.push("-N".into());
            }
            if *force {
                a.push("-f".into());
            }
            for d in dirs {
                a.extend(w(&["-d", d]));
            }
            a.push(pool.clone());
            vec![c(a)]
        }
        Action::CreatePool {
            pool,
            topology,
            vdevs,
            pool_options,
            root_options,
            secret,
        } => {
            let mut a = zpool(&["create"]);
            for (k, v) in pool_options {
                a.extend(["-o".to_string(), format!("{k}={v}")]);
            }
            for (k, v) in root_options {
                a.extend(["-O".to_string(), format!("{k}={v}")]);
            }
            a.push(pool.clone());
            if let Some(word) = topology.vdev_word() {
                a.push(word.to_string());
            }
            a.extend(vdevs.iter().cloned());
            vec![Command {
                argv: a,
                stdin: secret
                    .as_ref()
                    .map_or(Stdin::None, |s| Stdin::SecretLine(s.to_string())),
                required: true,
            }]
        }
        Action::Attach {
            pool,
            existing,
            device,
        } => vec![c(zpool(&["attach", pool, existing, device]))],
        Action::LoadKey { dataset, secret } => vec![Command {
            argv: zfs(&["load-key", "-L", "prompt", dataset]),
            stdin: Stdin::SecretLine(secret.to_string()),
            required: true,
        }],
        Action::SetPoolProperty {
            pool,
            property,
            value,
            ..
        } => vec![c(zpool(&["set", &format!("{property}={value}"), pool]))],
        Action::CreateDataset { dataset, options } => {
            let mut a = zfs(&["create"]);
            if modern {
                // Mount order is not creation order: mounting now could shadow
                // a later mountpoint, and `disks mount` mounts where asked.
                a.push("-u".into());
            }
            for (k, v) in options {
                a.extend(["-o".to_string(), format!("{k}={v}")]);
            }
            a.push(dataset.clone());
            vec![c(a)]
        }
        Action::SetProperty {
            dataset,
            property,
            value,
            ..
        } => vec![c(zfs(&["set", &format!("{property}={value}"), dataset]))],
        Action::Snapshot { snapshot } => vec![c(zfs(&["snapshot", snapshot]))],
        Action::Hold { snapshot, tag } => vec![c(zfs(&["hold", tag, snapshot]))],
        // Two processes whose second argument comes from the first's output:
        // the executor runs this one itself.
        Action::RecordBlank { snapshot, .. } => {
            vec![c(zfs(&[
                "get", "-H", "-p", "-o", "value", "guid", snapshot,
            ]))]
        }
        Action::Mount {
            source,
            target,
            fstype,
            options,
        } => {
            let mut a = w(&["mount", "-t", fstype]);
            if !options.is_empty() {
                a.extend(["-o".to_string(), options.join(",")]);
            }
            a.extend([source.clone(), target.clone()]);
            vec![c(w(&["mkdir", "-p", target])), c(a)]
        }
        Action::WriteFile { path, content } => {
            let dir = match path.rsplit_once('/') {
                Some(("", _)) | None => "/",
                Some((d, _)) => d,
            };
            vec![
                c(w(&["mkdir", "-p", dir])),
                Command {
                    argv: w(&["dd", &format!("of={path}"), "status=none"]),
                    stdin: Stdin::Text(content.clone()),
                    required: true,
                },
            ]
        }
        Action::GenerateHostKey { path, comment } => {
            let dir = match path.rsplit_once('/') {
                Some(("", _)) | None => "/",
                Some((d, _)) => d,
            };
            vec![
                c(w(&["mkdir", "-p", dir])),
                c(w(&[
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    comment,
                    "-f",
                    path,
                ])),
            ]
        }
        // Reads the key on the host; the pin is written here.
        Action::PinHostKey { public_key, .. } => vec![c(w(&["cat", public_key]))],
    }
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub done: Vec<Step>,
    pub failed: Option<Failure>,
    /// Steps after the failure, not run.
    pub remaining: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: Step,
    pub message: String,
    pub hint: Option<String>,
}

/// Told about each step as it starts and ends.
pub trait Progress {
    fn started(&self, step: &Step);
    fn finished(&self, step: &Step, ok: bool);
}

pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _: &Step) {}
    fn finished(&self, _: &Step, _: bool) {}
}

/// Where secrets come from in this run: each reference fetched once.
pub struct Secrets<'a> {
    pub providers: &'a Providers,
    pub cache: &'a mut SecretCache,
}

impl Secrets<'_> {
    fn get(&mut self, reference: &SecretRef) -> Result<Arc<Secret>, Box<Failure>> {
        self.cache.get(self.providers, reference).map_err(|e| {
            Box::new(Failure {
                step: Step {
                    action: Action::SetHostId { id: String::new() },
                    reason: String::new(),
                },
                hint: e.hint(),
                message: e.to_string(),
            })
        })
    }
}

/// The reference an action's secret comes from.
fn secret_of(action: &Action) -> Option<&SecretRef> {
    match action {
        Action::LuksFormat { secret, .. }
        | Action::LuksOpen { secret, .. }
        | Action::LoadKey { secret, .. } => Some(secret),
        Action::CreatePool { secret, .. } => secret.as_ref(),
        _ => None,
    }
}

pub fn execute(
    host: &Host,
    plan: &Plan,
    modern: bool,
    secrets: &mut Secrets<'_>,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> Report {
    let mut done = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        progress.started(step);
        let result = run_step(host, step, modern, secrets, clock);
        progress.finished(step, result.is_ok());
        match result {
            Ok(()) => done.push(step.clone()),
            Err(mut f) => {
                f.step = step.clone();
                return Report {
                    done,
                    failed: Some(*f),
                    remaining: plan.steps[i + 1..].to_vec(),
                };
            }
        }
    }
    Report {
        done,
        failed: None,
        remaining: Vec::new(),
    }
}

fn run_step(
    host: &Host,
    step: &Step,
    modern: bool,
    secrets: &mut Secrets<'_>,
    clock: &dyn Clock,
) -> Result<(), Box<Failure>> {
    let secret = match secret_of(&step.action) {
        Some(r) => Some(secrets.get(r)?),
        None => None,
    };
    let fail = |message: String, hint: Option<String>| {
        Box::new(Failure {
            step: step.clone(),
            message,
            hint,
        })
    };
    let mut last_stdout = String::new();
    for command in commands(&step.action, modern) {
        let (program, args) = command
            .argv
            .split_first()
            .ok_or_else(|| fail("empty command".into(), None))?;
        let argv = Argv::new(program.clone()).args(args.iter().cloned());
        let stdin: Option<SecretSlice<u8>> = match &command.stdin {
            Stdin::None => None,
            Stdin::Text(t) => Some(SecretSlice::from(t.as_bytes().to_vec())),
            Stdin::SecretRaw(_) => secret.as_ref().map(|s| s.stdin_raw()),
            Stdin::SecretLine(_) => secret.as_ref().map(|s| s.stdin_line()),
        };
        let opts = RunOptions {
            timeout: Some(STEP_TIMEOUT),
            stdin,
        };
        let out = host.endpoint().run_unchecked(&argv, &opts);
        // cryptsetup and zfs do not echo what they read, but what they print
        // is shown and logged: it goes through the run's redactor all the same.
        let redact = |t: &str| match &secret {
            Some(s) => crate::unlock::Redactor::of(s).scrub(t),
            None => t.to_string(),
        };
        match out {
            Ok(o) if o.status.success() => last_stdout = o.stdout_text(),
            Ok(o) if !command.required => {
                tracing::debug!("{}: {argv}: {}", host.name, redact(&o.stderr_text()));
            }
            Ok(o) => {
                let err = host.endpoint().failure(&argv, &o);
                return Err(fail(
                    redact(&err.to_string()),
                    hint_for(&step.action, &o.stderr_text()),
                ));
            }
            Err(_) if !command.required => {}
            Err(e) => return Err(fail(redact(&e.to_string()), None)),
        }
    }
    match &step.action {
        Action::RecordBlank { dataset, snapshot } => {
            let guid = last_stdout.trim().to_string();
            if guid.is_empty() || !guid.chars().all(|c| c.is_ascii_digit()) {
                return Err(fail(
                    format!("`zfs get guid {snapshot}` gave no guid: {guid:?}"),
                    None,
                ));
            }
            let argv = cmd::zfs()
                .arg("set")
                .arg(format!("{BLANK_PROPERTY}={guid}"))
                .arg(dataset.as_str());
            host.endpoint()
                .run(&argv, &RunOptions::timeout(STEP_TIMEOUT))
                .map_err(|e| fail(e.to_string(), None))?;
        }
        Action::Partition { disk, partitions } => {
            // Wait for udev's links of the new partitions: the next steps
            // name them.
            for p in partitions {
                wait_for(host, &super::plan::partition_path(disk, p.number)).map_err(|m| {
                    fail(
                        m,
                        Some("is udev running? `udevadm settle` should have made it".into()),
                    )
                })?;
            }
        }
        Action::LuksOpen { mapping, .. } => {
            wait_for(host, &format!("/dev/mapper/{mapping}")).map_err(|m| fail(m, None))?;
        }
        Action::PinHostKey {
            pin_file,
            host: name,
            address,
            port,
            ..
        } => {
            let keys = crate::unlock::pin::parse_keys(&format!("{address} {}", last_stdout.trim()));
            if keys.is_empty() {
                return Err(fail(
                    format!("no public key in {:?}", last_stdout.trim()),
                    None,
                ));
            }
            let scanned = crate::unlock::pin::fingerprints(name, &keys)
                .map_err(|e| fail(e.to_string(), None))?;
            let ep = crate::config::SshEndpoint {
                address: address.clone(),
                user: None,
                port: *port,
                identity: None,
                known_hosts: None,
                connect_timeout: Duration::from_secs(10),
            };
            let now = jiff::Timestamp::from_second(clock.now())
                .map(|t| t.to_string())
                .unwrap_or_default();
            crate::unlock::pin::write_pin(
                std::path::Path::new(pin_file),
                name,
                &ep,
                &scanned,
                &now,
            )
            .map_err(|e| fail(format!("cannot write {pin_file}: {e}"), None))?;
        }
        _ => {}
    }
    Ok(())
}

fn wait_for(host: &Host, path: &str) -> Result<(), String> {
    for _ in 0..30 {
        let argv = Argv::new("test").args(["-e", path]);
        match host
            .endpoint()
            .run_unchecked(&argv, &RunOptions::timeout(Duration::from_secs(30)))
        {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(_) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("{path} did not appear"))
}

fn hint_for(action: &Action, stderr: &str) -> Option<String> {
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("command not found")
        || lower.contains(": not found")
        || (lower.contains("no such file or directory") && lower.contains("exec"))
    {
        return Some("a program is missing on the host; an installer or rescue system has them (sfdisk, mkfs.vfat, cryptsetup, zfs)".into());
    }
    match action {
        Action::LuksOpen { .. } if lower.contains("no key available") => Some(
            "the passphrase does not open this container: check the secret reference in fleet.toml"
                .into(),
        ),
        Action::DestroyPool { .. } if lower.contains("busy") => Some(
            "something of it is still mounted (an installer's /mnt?): `umount -R /mnt`, then run again"
                .into(),
        ),
        Action::CreatePool { .. } | Action::Attach { .. }
            if lower.contains("potentially active") =>
        {
            Some("a device still carries a label of a pool that was not exported".into())
        }
        _ => None,
    }
}

/// Whether a plan needs any secret (so the CLI can say so in --dry-run).
pub fn needs_secrets(plan: &Plan) -> Vec<String> {
    let mut refs: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| secret_of(&s.action).map(|r| r.to_string()))
        .collect();
    refs.sort();
    refs.dedup();
    refs
}
