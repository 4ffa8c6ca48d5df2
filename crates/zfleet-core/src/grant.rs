//! What a host needs so that backup connections can do their job and nothing
//! more: the backup account, one `authorized_keys` line per peer key with
//! `zfleet serve` as its forced command, and the permission for serve to run
//! zfs — `zfs allow` delegation where the pool supports it, else one sudo rule
//! for exactly that command. A pure plan: printed, or applied over admin ssh.

use serde::Serialize;

use crate::config::Fleet;
use crate::zfs::DatasetName;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delegation {
    /// `zfs allow` (OpenZFS): serve runs as the backup account.
    ZfsAllow,
    /// No delegation in this dialect (zfs-fuse): serve runs through sudo,
    /// allowed for that one program and nothing else.
    Sudo,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantOptions {
    /// Where zfleet is installed on the host.
    pub zfleet_path: String,
    /// The fleet file as the host sees it.
    pub config_path: String,
    pub delegation: Delegation,
    /// Also let servers restore into this host's backed-up datasets.
    pub restore: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyLine {
    /// The peer this key belongs to and what it may do.
    pub peer: String,
    pub purpose: String,
    pub line: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Allow {
    pub dataset: DatasetName,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantPlan {
    pub host: String,
    pub user: String,
    pub delegation: Delegation,
    pub keys: Vec<KeyLine>,
    pub allows: Vec<Allow>,
    /// The sudoers rule, for [`Delegation::Sudo`].
    pub sudoers: Option<String>,
    /// Peers that could not be given a line, and why.
    pub missing: Vec<String>,
}

pub const SERVE_LOG_DIR: &str = "/var/log/zfleet";
pub const SERVE_LOG: &str = "/var/log/zfleet/serve.log";

fn forced(o: &GrantOptions, host: &str, args: &str) -> String {
    let sudo = if o.delegation == Delegation::Sudo {
        "sudo -n "
    } else {
        ""
    };
    format!(
        "{sudo}{} serve --config {} --host {host} {args}",
        o.zfleet_path, o.config_path
    )
}

fn key_line(command: &str, key: &str) -> String {
    format!("restrict,command=\"{command}\" {key}")
}

/// Builds the plan for `host`.
pub fn plan(fleet: &Fleet, host: &str, o: &GrantOptions) -> Result<GrantPlan, Error> {
    let hc = fleet.host(host).ok_or_else(|| Error::UnknownHost {
        name: host.to_string(),
        known: fleet.hosts.keys().cloned().collect(),
    })?;
    let user = fleet.backup_user.clone().ok_or_else(|| {
        Error::Usage(format!(
            "set `backup_user` in [fleet] of {}: it is the account zfleet grant sets up",
            fleet.file.display()
        ))
    })?;
    let mut keys = Vec::new();
    let mut allows: Vec<Allow> = Vec::new();
    let mut missing = Vec::new();

    // Servers that pull from this host.
    let pulls: Vec<_> = fleet
        .jobs()
        .into_iter()
        .filter(|j| j.client == host && !j.push)
        .collect();
    let mut servers: Vec<String> = pulls.iter().map(|j| j.server.clone()).collect();
    servers.dedup();
    for s in &servers {
        let role = fleet.host(s).and_then(|h| h.server.as_ref());
        let Some(key) = role.and_then(|r| r.public_key.clone()) else {
            missing.push(format!(
                "server `{s}` has no `public_key` in [hosts.{s}.server]"
            ));
            continue;
        };
        keys.push(KeyLine {
            peer: s.clone(),
            purpose: "pull backups".into(),
            line: key_line(&forced(o, host, &format!("--server {s}")), &key),
        });
        if o.restore {
            let datasets: Vec<String> = pulls
                .iter()
                .filter(|j| &j.server == s)
                .map(|j| format!("--dataset {}", j.source))
                .collect();
            keys.push(KeyLine {
                peer: s.clone(),
                purpose: "restores into this host's backed-up datasets".into(),
                line: key_line(
                    &forced(
                        o,
                        host,
                        &format!("--restore-from {s} {}", datasets.join(" ")),
                    ),
                    &key,
                ),
            });
        }
        let sync = role.is_some_and(|r| r.sync_snapshot);
        for j in pulls.iter().filter(|j| &j.server == s) {
            let mut perms: Vec<String> = ["send", "hold", "release", "userprop", "bookmark"]
                .map(String::from)
                .to_vec();
            if sync {
                perms.extend(["snapshot", "destroy", "mount"].map(String::from));
            }
            if o.restore {
                perms.extend(["receive", "create", "mount"].map(String::from));
            }
            perms.dedup();
            match allows.iter_mut().find(|a| a.dataset == j.source) {
                Some(a) => {
                    for p in perms {
                        if !a.permissions.contains(&p) {
                            a.permissions.push(p);
                        }
                    }
                }
                None => allows.push(Allow {
                    dataset: j.source.clone(),
                    permissions: perms,
                }),
            }
        }
    }

    // Push clients that send to this host, if it is a server.
    if let Some(role) = &hc.server {
        for j in fleet
            .jobs()
            .into_iter()
            .filter(|j| j.server == host && j.push)
        {
            let tree = role.target_root.join(&j.client)?;
            if !keys.iter().any(|k| k.peer == j.client) {
                match fleet
                    .host(&j.client)
                    .and_then(|h| h.client.as_ref())
                    .and_then(|c| c.public_key.clone())
                {
                    Some(key) => keys.push(KeyLine {
                        peer: j.client.clone(),
                        purpose: "receive pushed backups".into(),
                        line: key_line(
                            &forced(o, host, &format!("--receive-from {}", j.client)),
                            &key,
                        ),
                    }),
                    None => missing.push(format!(
                        "push client `{}` has no `public_key` in [hosts.{}.backup]",
                        j.client, j.client
                    )),
                }
            }
            if !allows.iter().any(|a| a.dataset == tree) {
                allows.push(Allow {
                    dataset: tree,
                    permissions: [
                        "receive",
                        "create",
                        "mount",
                        "hold",
                        "release",
                        "userprop",
                        "readonly",
                        "compression",
                        "recordsize",
                    ]
                    .map(String::from)
                    .to_vec(),
                });
            }
        }
    }

    let sudoers = (o.delegation == Delegation::Sudo).then(|| {
        format!(
            "# zfleet grant: the backup account may run zfleet serve as root, nothing else.\n\
             Defaults!{z} env_keep += \"SSH_ORIGINAL_COMMAND\"\n\
             {user} ALL=(root) NOPASSWD: {z} serve *\n",
            z = o.zfleet_path
        )
    });
    Ok(GrantPlan {
        host: host.to_string(),
        user,
        delegation: o.delegation,
        keys,
        allows: if o.delegation == Delegation::ZfsAllow {
            allows
        } else {
            Vec::new()
        },
        sudoers,
        missing,
    })
}

impl GrantPlan {
    /// The `authorized_keys` file zfleet manages for the backup account.
    pub fn authorized_keys(&self) -> String {
        let mut s = String::from(
            "# Managed by `zfleet grant`: every key runs `zfleet serve` and nothing else.\n",
        );
        for k in &self.keys {
            s.push_str(&format!("# {}: {}\n{}\n", k.peer, k.purpose, k.line));
        }
        s
    }

    /// The steps as shell commands for a human to read or run.
    pub fn script(&self) -> String {
        let u = &self.user;
        let mut s = format!(
            "# on {host}, as root\n\
             id -u {u} >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh {u}\n\
             usermod -p '*' {u}    # no password, but not locked: ssh keys work\n\
             # root owns the home, its .ssh and authorized_keys: the account cannot add a key\n\
             chown root:root ~{u} && chmod 755 ~{u}\n\
             install -d -m 755 -o root -g root ~{u}/.ssh\n\
             cat > ~{u}/.ssh/authorized_keys <<'EOF'\n{keys}EOF\n\
             chown root:root ~{u}/.ssh/authorized_keys && chmod 644 ~{u}/.ssh/authorized_keys\n\
             # root owns the log; the account may only append to it\n\
             install -d -m 755 -o root -g root {SERVE_LOG_DIR}\n\
             touch {SERVE_LOG} && chown root:\"$(id -gn {u})\" {SERVE_LOG} && chmod 620 {SERVE_LOG}\n\
             chattr +a {SERVE_LOG}    # append-only, where the filesystem supports it\n",
            host = self.host,
            keys = self.authorized_keys()
        );
        for a in &self.allows {
            s.push_str(&format!(
                "zfs allow -u {u} {} {}\n",
                a.permissions.join(","),
                a.dataset
            ));
        }
        if let Some(rule) = &self.sudoers {
            s.push_str(&format!("cat > /etc/sudoers.d/zfleet <<'EOF'\n{rule}EOF\nchmod 440 /etc/sudoers.d/zfleet && visudo -c -f /etc/sudoers.d/zfleet\n"));
        }
        s
    }
}

/// Performs the plan on `host` (reached with admin rights). Returns what was done.
pub fn apply(plan: &GrantPlan, host: &crate::host::Host) -> Result<Vec<String>, Error> {
    use crate::exec::{Argv, RunOptions};
    use crate::zfs::ZfsError;
    let q = |stdin: Option<&str>| RunOptions {
        timeout: Some(crate::host::QUERY_TIMEOUT),
        stdin: stdin.map(|s| s.as_bytes().to_vec().into()),
    };
    let ep = host.endpoint();
    let run = |a: Argv, stdin: Option<&str>| -> Result<String, Error> {
        Ok(ep.run(&a, &q(stdin)).map_err(ZfsError::from)?.stdout_text())
    };
    let u = plan.user.as_str();
    let mut done = Vec::new();
    let exists = ep
        .run_unchecked(&Argv::new("id").args(["-u", u]), &q(None))?
        .status
        .success();
    if !exists {
        run(
            Argv::new("useradd").args(["--system", "--create-home", "--shell", "/bin/sh", u]),
            None,
        )?;
        done.push(format!("created the system user {u}"));
    }
    // Locked accounts cannot log in with keys when sshd does not use PAM.
    run(Argv::new("usermod").args(["-p", "*", u]), None)?;
    let passwd = run(Argv::new("getent").args(["passwd", u]), None)?;
    let home = passwd
        .trim()
        .split(':')
        .nth(5)
        .filter(|h| h.starts_with('/'))
        .ok_or_else(|| {
            Error::Internal(format!("no home directory for {u} in `{}`", passwd.trim()))
        })?;
    let ssh_dir = format!("{home}/.ssh");
    let keys = format!("{ssh_dir}/authorized_keys");
    // Root owns every directory on the way to authorized_keys, and the file:
    // the account cannot add a key of its own, or swap its .ssh for one it
    // made. sshd accepts root-owned files that nobody else can write.
    run(Argv::new("chown").args(["root:root", home]), None)?;
    run(Argv::new("chmod").args(["755", home]), None)?;
    run(
        Argv::new("install").args(["-d", "-m", "755", "-o", "root", "-g", "root", &ssh_dir]),
        None,
    )?;
    // Written beside and renamed into place: never a half-written file, and
    // a key file the account once owned is replaced, not reused.
    let new_keys = format!("{keys}.zfleet-new");
    run(
        Argv::new("tee").arg(&new_keys),
        Some(&plan.authorized_keys()),
    )?;
    run(Argv::new("chown").args(["root:root", &new_keys]), None)?;
    run(Argv::new("chmod").args(["644", &new_keys]), None)?;
    run(Argv::new("mv").args(["-f", &new_keys, &keys]), None)?;
    done.push(format!(
        "wrote {keys} ({} key lines), owned by root",
        plan.keys.len()
    ));
    // The log: root's directory, a file the account's group may write (serve
    // runs as the account under zfs allow), append-only where the
    // filesystem has the attribute, so a stolen key cannot erase its tracks.
    let group = run(Argv::new("id").args(["-gn", u]), None)?;
    let group = group.trim();
    run(
        Argv::new("install").args(["-d", "-m", "755", "-o", "root", "-g", "root", SERVE_LOG_DIR]),
        None,
    )?;
    if ep
        .run_unchecked(&Argv::new("lsattr").arg(SERVE_LOG), &q(None))
        .map(|o| {
            o.stdout_text()
                .split_whitespace()
                .next()
                .is_some_and(|a| a.contains('a'))
        })
        .unwrap_or(false)
    {
        // Already append-only: chown and chmod would fail on it.
    } else {
        run(Argv::new("touch").arg(SERVE_LOG), None)?;
        run(
            Argv::new("chown").args([&format!("root:{group}"), SERVE_LOG]),
            None,
        )?;
        run(Argv::new("chmod").args(["620", SERVE_LOG]), None)?;
    }
    let append_only = ep
        .run_unchecked(&Argv::new("chattr").args(["+a", SERVE_LOG]), &q(None))
        .is_ok_and(|o| o.status.success());
    done.push(if append_only {
        format!("{SERVE_LOG} is root's and append-only; {u} may only add to it")
    } else {
        format!("{SERVE_LOG} is root's and {u}'s group may write it; its filesystem has no append-only attribute, so the account could truncate it")
    });
    for a in &plan.allows {
        if host.observe_if_exists(&a.dataset, &[])?.is_none() {
            run(
                crate::zfs::cmd::create(&a.dataset, &[("canmount", "off"), ("readonly", "on")]),
                None,
            )?;
            done.push(format!("created {}", a.dataset));
        }
        run(
            crate::zfs::cmd::zfs()
                .args(["allow", "-u", u, &a.permissions.join(",")])
                .arg(a.dataset.as_str()),
            None,
        )?;
        done.push(format!(
            "zfs allow -u {u} {} {}",
            a.permissions.join(","),
            a.dataset
        ));
    }
    if let Some(rule) = &plan.sudoers {
        let tmp = "/etc/sudoers.d/.zfleet.new";
        run(Argv::new("tee").arg(tmp), Some(rule))?;
        run(Argv::new("chmod").args(["440", tmp]), None)?;
        // A broken sudoers file would lock the admin out of sudo: check first.
        run(Argv::new("visudo").args(["-c", "-q", "-f", tmp]), None)?;
        run(Argv::new("mv").args([tmp, "/etc/sudoers.d/zfleet"]), None)?;
        done.push("wrote /etc/sudoers.d/zfleet".to_string());
    }
    Ok(done)
}
