//! The fleet in other tools' terms: the Tailscale policy that matches who
//! backs up whom, so the network allows exactly what the fleet file says,
//! and systemd units that run zfleet on a host ([`systemd`]).

pub mod systemd;

use serde_json::{json, Value};

use crate::config::Fleet;

/// `tag:zfleet-<host>` for every host: each device gets its own tag.
pub fn host_tag(host: &str) -> String {
    format!("tag:zfleet-{}", host.to_ascii_lowercase())
}

pub fn tailscale_acl(fleet: &Fleet) -> Value {
    let user = fleet.backup_user.clone().unwrap_or_else(|| "root".into());
    let mut tag_owners = serde_json::Map::new();
    for h in fleet.hosts.keys() {
        tag_owners.insert(host_tag(h), json!([]));
    }
    tag_owners.insert("tag:zfleet-server".into(), json!([]));
    tag_owners.insert("tag:zfleet-client".into(), json!([]));
    let mut acls = Vec::new();
    let mut ssh = Vec::new();
    for s in fleet.servers() {
        let Some(plan) = fleet.server_plan(&s.name) else {
            continue;
        };
        let mut pulled: Vec<String> = plan
            .jobs
            .iter()
            .filter(|j| !j.extra && !j.push)
            .map(|j| host_tag(&j.client))
            .collect();
        pulled.dedup();
        if !pulled.is_empty() {
            acls.push(json!({
                "action": "accept",
                "src": [host_tag(&s.name)],
                "dst": pulled.iter().map(|t| format!("{t}:22")).collect::<Vec<_>>(),
            }));
            ssh.push(json!({
                "action": "accept",
                "src": [host_tag(&s.name)],
                "dst": pulled,
                "users": [user],
            }));
        }
        let mut pushers: Vec<String> = plan
            .jobs
            .iter()
            .filter(|j| j.push)
            .map(|j| host_tag(&j.client))
            .collect();
        pushers.dedup();
        if !pushers.is_empty() {
            acls.push(json!({ "action": "accept", "src": pushers, "dst": [format!("{}:22", host_tag(&s.name))] }));
            ssh.push(json!({ "action": "accept", "src": pushers, "dst": [host_tag(&s.name)], "users": [user] }));
        }
    }
    json!({ "tagOwners": tag_owners, "acls": acls, "ssh": ssh })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_fleet_policy_shape() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/seed-fleet.toml"
        ))
        .unwrap();
        let fleet = crate::config::parse(&src, std::path::Path::new("seed-fleet.toml")).unwrap();
        let v = tailscale_acl(&fleet);
        // Valid JSON (so valid HuJSON) with every host's tag.
        let text = serde_json::to_string_pretty(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        for h in ["alpha", "bravo", "laptop", "vault"] {
            assert!(back["tagOwners"].get(host_tag(h)).is_some(), "{h}");
        }
        assert_eq!(v["acls"][0]["src"], json!(["tag:zfleet-vault"]));
        assert_eq!(
            v["acls"][0]["dst"],
            json!([
                "tag:zfleet-alpha:22",
                "tag:zfleet-bravo:22",
                "tag:zfleet-laptop:22"
            ])
        );
        assert_eq!(v["ssh"][0]["users"], json!(["zfleet"]));
        assert_eq!(
            v["ssh"][0]["dst"],
            json!(["tag:zfleet-alpha", "tag:zfleet-bravo", "tag:zfleet-laptop"])
        );
    }
}
