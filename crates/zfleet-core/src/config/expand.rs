//! What the fleet file means, spelled out: the backup jobs each server runs and
//! the snapshot policy each host applies. `zfleet check` prints this; the
//! backup and snapshot planners start from the same values.

use serde::Serialize;

use super::{Fleet, NamedPolicy, Policy, PolicyOrigin, Recursive, SshEndpoint};
use crate::zfs::DatasetName;

/// One replication a server runs: `client:source → target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub server: String,
    pub client: String,
    /// True for a server's `extra_clients` entry (not a fleet host).
    pub extra: bool,
    pub source: DatasetName,
    pub target: DatasetName,
    /// How the server reaches the client.
    pub ssh: SshEndpoint,
    pub preserve_properties: Vec<String>,
    pub sync_snapshot: bool,
    pub compress: super::Compression,
    /// The client pushes this one to the server; the server does not pull it.
    pub push: bool,
}

impl Job {
    /// `client:source → target`, the way `zfleet check` shows it.
    pub fn describe(&self) -> String {
        let push = if self.push {
            " (pushed by the client)"
        } else {
            ""
        };
        format!("{}:{} → {}{push}", self.client, self.source, self.target)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedClient {
    pub client: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerPlan {
    pub server: String,
    pub target_root: DatasetName,
    pub retention: Option<NamedPolicy>,
    pub jobs: Vec<Job>,
    pub skipped: Vec<SkippedClient>,
}

/// A policy as a host applies it, with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct ExpandedPolicy {
    pub dataset: DatasetName,
    /// Template names, or `retention of <server>` for received backups.
    pub source: String,
    pub policy: Policy,
    pub recursive: Recursive,
    pub process_children_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetPlan {
    pub file: String,
    pub servers: Vec<ServerPlan>,
    /// Per host, in file order.
    pub policies: Vec<(String, Vec<ExpandedPolicy>)>,
}

impl Fleet {
    /// Where a server stores a client's dataset:
    /// `<target_root>/<client>/<dataset with its pool>`, so that datasets of
    /// different pools never collide.
    pub fn target_for(
        target_root: &DatasetName,
        client: &str,
        source: &DatasetName,
    ) -> Result<DatasetName, crate::zfs::NameError> {
        target_root.join(&format!("{client}/{source}"))
    }

    /// The jobs of one server, and the clients it skips with the reason.
    pub fn server_plan(&self, server: &str) -> Option<ServerPlan> {
        let host = self.hosts.get(server)?;
        let role = host.server.as_ref()?;
        let mut jobs = Vec::new();
        let mut skipped = Vec::new();
        for client in self.hosts.values() {
            let Some(c) = &client.client else { continue };
            let reason = if client.name == server {
                Some("the server itself".to_string())
            } else if !c.enabled {
                Some("backup disabled (`enabled = false`)".to_string())
            } else if role.exclude.contains(&client.name) {
                Some("excluded by this server".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                skipped.push(SkippedClient {
                    client: client.name.clone(),
                    reason,
                });
                continue;
            }
            let mut ssh = client.ssh.clone();
            ssh.user = c
                .user
                .clone()
                .or_else(|| self.backup_user.clone())
                .or(ssh.user);
            if let Some(id) = &self.backup_identity {
                ssh.identity = Some(id.clone());
            }
            for source in &c.datasets {
                if let Ok(target) = Self::target_for(&role.target_root, &client.name, source) {
                    jobs.push(Job {
                        server: server.to_string(),
                        client: client.name.clone(),
                        extra: false,
                        source: source.clone(),
                        target,
                        ssh: ssh.clone(),
                        preserve_properties: role.preserve_properties.clone(),
                        sync_snapshot: role.sync_snapshot,
                        compress: role.compress,
                        push: c.push,
                    });
                }
            }
        }
        for e in &role.extra_clients {
            for source in &e.datasets {
                if let Ok(target) = Self::target_for(&role.target_root, &e.name, source) {
                    jobs.push(Job {
                        server: server.to_string(),
                        client: e.name.clone(),
                        extra: true,
                        source: source.clone(),
                        target,
                        ssh: e.ssh.clone(),
                        preserve_properties: role.preserve_properties.clone(),
                        sync_snapshot: role.sync_snapshot,
                        compress: role.compress,
                        push: false,
                    });
                }
            }
        }
        Some(ServerPlan {
            server: server.to_string(),
            target_root: role.target_root.clone(),
            retention: role.retention.clone(),
            jobs,
            skipped,
        })
    }

    /// The jobs a push client runs itself, one per (server, dataset).
    pub fn push_jobs(&self, client: &str) -> Vec<Job> {
        self.jobs()
            .into_iter()
            .filter(|j| j.push && j.client == client)
            .collect()
    }

    /// Every job of every server.
    pub fn jobs(&self) -> Vec<Job> {
        self.servers()
            .filter_map(|s| self.server_plan(&s.name))
            .flat_map(|p| p.jobs)
            .collect()
    }

    /// The policies a host applies: its snapshot entries, and on a server the
    /// prune-only retention for every client it receives.
    pub fn policies(&self, host: &str) -> Vec<ExpandedPolicy> {
        let Some(h) = self.hosts.get(host) else {
            return Vec::new();
        };
        let mut out: Vec<ExpandedPolicy> = h
            .snapshots
            .iter()
            .map(|p| ExpandedPolicy {
                dataset: p.dataset.clone(),
                source: match (p.templates.is_empty(), p.origin) {
                    (true, PolicyOrigin::Fleet) => "fleet-wide, sanoid defaults".into(),
                    (true, PolicyOrigin::Host) => "sanoid defaults".into(),
                    (false, PolicyOrigin::Fleet) => {
                        format!("fleet-wide, template {}", p.templates.join(", "))
                    }
                    (false, PolicyOrigin::Host) => format!("template {}", p.templates.join(", ")),
                },
                policy: p.policy.clone(),
                recursive: p.recursive,
                process_children_only: p.process_children_only,
            })
            .collect();
        if let (Some(plan), Some(role)) = (self.server_plan(host), h.server.as_ref()) {
            if let Some(ret) = &role.retention {
                let mut clients: Vec<&str> = plan.jobs.iter().map(|j| j.client.as_str()).collect();
                clients.dedup();
                for c in clients {
                    if let Ok(ds) = role.target_root.join(c) {
                        out.push(ExpandedPolicy {
                            dataset: ds,
                            source: format!("retention, template {}", ret.template),
                            policy: ret.policy.clone(),
                            recursive: Recursive::Yes,
                            process_children_only: true,
                        });
                    }
                }
            }
        }
        out
    }

    pub fn plan(&self) -> FleetPlan {
        FleetPlan {
            file: self.file.display().to_string(),
            servers: self
                .servers()
                .filter_map(|s| self.server_plan(&s.name))
                .collect(),
            policies: self
                .hosts
                .keys()
                .map(|h| (h.clone(), self.policies(h)))
                .collect(),
        }
    }
}
