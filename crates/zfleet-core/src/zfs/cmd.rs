//! Argument vectors for `zfs` and `zpool`. Builders take typed names, so a name
//! that reached here was validated; nothing is concatenated into a shell string.

use super::caps::Caps;
use super::name::{DatasetName, PoolName};
use super::parse::LIST_PROPERTIES;
use crate::exec::Argv;

pub fn zfs() -> Argv {
    Argv::new("zfs")
}

pub fn zpool() -> Argv {
    Argv::new("zpool")
}

/// One command that observes a whole tree: every filesystem, volume, snapshot
/// (and bookmark where they exist) below `root`, with exact numbers.
pub fn observe(caps: &Caps, root: &DatasetName) -> Argv {
    if caps.list_parsable {
        let types = if caps.bookmarks {
            "filesystem,volume,snapshot,bookmark"
        } else {
            "filesystem,volume,snapshot"
        };
        zfs()
            .args(["list", "-H", "-p", "-r", "-t", types, "-o"])
            .arg(LIST_PROPERTIES.join(","))
            .arg(root.as_str())
    } else {
        zfs()
            .args(["get", "-H", "-p", "-r", "-o", "name,property,value"])
            .arg(LIST_PROPERTIES[1..].join(","))
            .arg(root.as_str())
    }
}

/// Properties with their sources, for one or more datasets.
pub fn get_properties(props: &[&str], datasets: &[&DatasetName]) -> Argv {
    let props = if props.is_empty() {
        "all".to_string()
    } else {
        props.join(",")
    };
    zfs()
        .args(["get", "-H", "-p", "-o", "name,property,value,source"])
        .arg(props)
        .args(datasets.iter().map(|d| d.as_str()))
}

/// Imported pools.
pub fn pool_list(caps: &Caps) -> Argv {
    let a = zpool().args(["list", "-H"]);
    let a = if caps.list_parsable { a.arg("-p") } else { a };
    a.args(["-o", "name,size,allocated,free,health"])
}

pub fn pool_status(pool: &PoolName) -> Argv {
    zpool().arg("status").arg(pool.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_picks_the_dialect() {
        let root = DatasetName::parse("zroot").unwrap();
        assert_eq!(
            observe(&Caps::openzfs("2.1.11"), &root).to_string(),
            "zfs list -H -p -r -t filesystem,volume,snapshot,bookmark -o name,type,guid,createtxg,creation,used,referenced,userrefs zroot"
        );
        assert_eq!(
            observe(&Caps::legacy(Some(23)), &root).to_string(),
            "zfs get -H -p -r -o name,property,value type,guid,createtxg,creation,used,referenced,userrefs zroot"
        );
    }
}
