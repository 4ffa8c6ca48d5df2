//! Properties across a replication: the server's preserved ones copied, the
//! client's own recorded for restores.

use super::job::JobSpec;
use crate::exec::{quote, Argv, RunOptions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::protocol::RECORDED_PREFIX;
use crate::zfs::{cmd, DatasetName, PropertyRow, PropertySource};
use crate::Error;

/// The source's properties and its pool's altroot, read after a send at the
/// end of the source's base moves (one round trip for both): `zfs get` shows
/// a mountpoint with the altroot in front (a pool imported with `-R`, as
/// installers and the lab do), and what is recorded for a restore must be
/// the path the client itself uses. Two commands, in this order.
pub(super) fn source_reads(ds: &DatasetName) -> [Argv; 2] {
    [
        cmd::get_properties(&[], &[ds]),
        cmd::zpool().args(["list", "-H", "-o", "altroot", ds.pool().as_str()]),
    ]
}

/// What [`source_reads`] printed: the property rows, then the altroot line.
pub(super) fn parse_source(
    h: &Host,
    text: &str,
    cmdline: &str,
) -> Result<(Vec<PropertyRow>, Option<String>), Error> {
    let (rows, last) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim_end()));
    let altroot = Some(last.trim()).filter(|a| !a.is_empty() && *a != "-" && *a != "/");
    let rows = crate::zfs::parse::properties(rows).map_err(|source| Error::Parse {
        host: h.name.clone(),
        cmdline: cmdline.to_string(),
        source,
    })?;
    Ok((rows, altroot.map(str::to_string)))
}

/// What the target should carry, from the source's properties: the preserved
/// native ones with their effective values, and the source's mountpoint,
/// canmount and explicitly set user properties recorded as `zfleet:src:<name>`.
/// The mountpoint is recorded without the source pool's `altroot`.
pub fn wanted(
    source: &[PropertyRow],
    preserve: &[String],
    altroot: Option<&str>,
) -> Vec<(String, String)> {
    let mut want = Vec::new();
    for r in source {
        if r.property == "mountpoint" {
            if let Some(rest) = altroot.and_then(|a| r.value.strip_prefix(a)) {
                if rest.is_empty() || rest.starts_with('/') {
                    let path = if rest.is_empty() { "/" } else { rest };
                    want.push((format!("{RECORDED_PREFIX}{}", r.property), path.to_string()));
                    continue;
                }
            }
        }
        let explicit = matches!(r.source, PropertySource::Local | PropertySource::Received);
        let user = r.property.contains(':') && !r.property.starts_with("zfleet:") && explicit;
        if preserve.contains(&r.property) {
            want.push((r.property.clone(), r.value.clone()));
        } else if matches!(r.property.as_str(), "mountpoint" | "canmount") || user {
            want.push((format!("{RECORDED_PREFIX}{}", r.property), r.value.clone()));
        }
    }
    want
}

/// Properties fixed when a dataset is made (a received one has the stream's),
/// and `readonly`, which zfleet sets on what it receives.
const NOT_SETTABLE: &[&str] = &[
    "volsize",
    "volblocksize",
    "encryption",
    "keyformat",
    "keylocation",
    "pbkdf2iters",
    "casesensitivity",
    "normalization",
    "utf8only",
    "readonly",
];

/// syncoid's `--preserve-properties`: every property set locally on the
/// source that can be set on the target (user properties included, zfleet's
/// own not).
pub fn locally_set(source: &[PropertyRow]) -> Vec<String> {
    source
        .iter()
        .filter(|r| matches!(r.source, PropertySource::Local))
        .filter(|r| {
            !r.property.starts_with("zfleet:") && !NOT_SETTABLE.contains(&r.property.as_str())
        })
        .map(|r| r.property.clone())
        .collect()
}

/// The target's current properties, read at the end of its base moves.
pub(super) fn target_read(ds: &DatasetName) -> Argv {
    cmd::get_properties(&[], &[ds])
}

/// What [`target_read`] printed.
pub(super) fn parse_target(h: &Host, text: &str, cmdline: &str) -> Result<Vec<PropertyRow>, Error> {
    crate::zfs::parse::properties(text).map_err(|source| Error::Parse {
        host: h.name.clone(),
        cmdline: cmdline.to_string(),
        source,
    })
}

/// Writes what differs from `current` on the target, all of it in one round
/// trip; failures become warnings, one per property.
pub(super) fn apply(
    dst: &Host,
    job: &JobSpec,
    source: &[PropertyRow],
    altroot: Option<&str>,
    current: &[PropertyRow],
) -> Vec<String> {
    let value = |name: &str| {
        current
            .iter()
            .find(|r| r.property == name)
            .map(|r| r.value.as_str())
    };
    let mut preserve = job.preserve.clone();
    if job.preserve_local {
        preserve.extend(locally_set(source));
    }
    let sets: Vec<(String, String)> = wanted(source, &preserve, altroot)
        .into_iter()
        .filter(|(k, v)| value(k) != Some(v.as_str()))
        .collect();
    let argvs: Vec<Argv> = sets
        .iter()
        .map(|(k, v)| cmd::set(k, v, job.target.as_str()))
        .collect();
    write_all(dst, &argvs)
        .into_iter()
        .map(|(i, why)| {
            let (k, v) = sets
                .get(i)
                .map_or(("?", "?"), |(k, v)| (k.as_str(), v.as_str()));
            format!("{k}={v} not set on {} ({}): {why}", job.target, dst.name)
        })
        .collect()
}

const FAILED_SET: &str = "zfleet-failed-set:";

/// Runs every write, each whether or not the others worked, in one command
/// line: a shell line on a plain host (the writes run side by side), a
/// chain for `zfleet serve` (which
/// stops at the first failure; then each runs alone, so that every failure
/// is known). Returns the index of each that failed, with why.
fn write_all(h: &Host, argvs: &[Argv]) -> Vec<(usize, String)> {
    let opts = RunOptions::timeout(QUERY_TIMEOUT);
    let one_by_one = |argvs: &[Argv]| -> Vec<(usize, String)> {
        argvs
            .iter()
            .enumerate()
            .filter_map(|(i, a)| h.endpoint().run(a, &opts).err().map(|e| (i, e.to_string())))
            .collect()
    };
    if argvs.len() < 2 {
        return one_by_one(argvs);
    }
    if h.is_served() {
        let Some((first, rest)) = argvs.split_first() else {
            return Vec::new();
        };
        let mut chain = first.clone();
        for a in rest {
            chain = chain
                .arg("&&")
                .arg(a.program.clone())
                .args(a.args.iter().cloned());
        }
        return match h.endpoint().run(&chain, &opts) {
            Ok(_) => Vec::new(),
            Err(_) => one_by_one(argvs),
        };
    }
    let mut script = String::new();
    for (i, a) in argvs.iter().enumerate() {
        let Ok(line) = quote::remote_command_line(a.words()) else {
            return one_by_one(argvs);
        };
        // All at once: each `zfs set` is a sync task that waits for its
        // transaction group, and together they share one.
        script.push_str(&format!(
            "{{ out=$({line} 2>&1 >/dev/null) || printf '{FAILED_SET}%s\\n%s\\n' {i} \"$out\" >&2; }} &\n"
        ));
    }
    script.push_str("wait\n");
    let argv = Argv::new("sh").arg("-c").arg(script);
    match h.endpoint().run_unchecked(&argv, &opts) {
        Ok(out) => failed_sets(&out.stderr_text()),
        Err(e) => (0..argvs.len()).map(|i| (i, e.to_string())).collect(),
    }
}

/// The writes a [`write_all`] shell line reported failed, with what each said.
fn failed_sets(stderr: &str) -> Vec<(usize, String)> {
    stderr
        .split(FAILED_SET)
        .skip(1)
        .filter_map(|chunk| {
            let (i, said) = chunk.split_once('\n').unwrap_or((chunk, ""));
            Some((i.trim().parse().ok()?, said.trim_end().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &str, v: &str, src: PropertySource) -> PropertyRow {
        PropertyRow {
            name: "zroot/a".into(),
            property: p.into(),
            value: v.into(),
            source: src,
        }
    }

    #[test]
    fn each_failed_write_and_what_it_said() {
        let stderr = "zfleet-failed-set:1\ncannot set property for 'z/a': permission denied\nzfleet-failed-set:3\ncannot set property for 'z/a': invalid property\n  second line\n";
        assert_eq!(
            failed_sets(stderr),
            [
                (
                    1,
                    "cannot set property for 'z/a': permission denied".to_string()
                ),
                (
                    3,
                    "cannot set property for 'z/a': invalid property\n  second line".to_string()
                )
            ]
        );
        assert_eq!(failed_sets(""), []);
    }

    #[test]
    fn preserved_recorded_and_ignored() {
        let rows = [
            row(
                "compression",
                "zstd",
                PropertySource::Inherited("zroot".into()),
            ),
            row("recordsize", "131072", PropertySource::Default),
            row("atime", "off", PropertySource::Local),
            row("mountpoint", "/persist/save", PropertySource::Local),
            row("canmount", "on", PropertySource::Default),
            row("com.example:note", "x", PropertySource::Local),
            row(
                "com.example:inherited",
                "y",
                PropertySource::Inherited("zroot".into()),
            ),
            row("zfleet:base:vault", "1", PropertySource::Local),
        ];
        let want = wanted(&rows, &["compression".into(), "recordsize".into()], None);
        let got: Vec<String> = want.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "compression=zstd",
                "recordsize=131072",
                "zfleet:src:mountpoint=/persist/save",
                "zfleet:src:canmount=on",
                "zfleet:src:com.example:note=x",
            ]
        );
    }

    #[test]
    fn preserve_properties_takes_what_is_set_locally_and_settable() {
        let rows = [
            row("recordsize", "16384", PropertySource::Local),
            row("xattr", "sa", PropertySource::Local),
            row("volblocksize", "8192", PropertySource::Local),
            row("compression", "lz4", PropertySource::Inherited("z".into())),
            row("atime", "on", PropertySource::Default),
            row(
                "net.openoid:var-name",
                "with whitespace",
                PropertySource::Local,
            ),
            row("zfleet:base:sync", "1", PropertySource::Local),
        ];
        assert_eq!(
            locally_set(&rows),
            ["recordsize", "xattr", "net.openoid:var-name"]
        );
    }

    #[test]
    fn the_recorded_mountpoint_is_the_clients_own_path() {
        let rows = [row(
            "mountpoint",
            "/mnt/persist/save",
            PropertySource::Local,
        )];
        let want = |alt| wanted(&rows, &[], alt);
        assert_eq!(
            want(Some("/mnt")),
            [(
                "zfleet:src:mountpoint".to_string(),
                "/persist/save".to_string()
            )]
        );
        assert_eq!(want(None)[0].1, "/mnt/persist/save");
        // Only a whole leading component is the altroot.
        assert_eq!(want(Some("/mn"))[0].1, "/mnt/persist/save");
        let root = [row("mountpoint", "/mnt", PropertySource::Local)];
        assert_eq!(wanted(&root, &[], Some("/mnt"))[0].1, "/");
    }
}
