//! Properties across a replication: the server's preserved ones copied, the
//! client's own recorded for restores.

use super::job::JobSpec;
use crate::exec::RunOptions;
use crate::host::{Host, QUERY_TIMEOUT};
use crate::protocol::RECORDED_PREFIX;
use crate::zfs::{cmd, DatasetName, PropertyRow, PropertySource};
use crate::Error;

/// The source's properties and its pool's altroot, in one command: `zfs get`
/// shows a mountpoint with the altroot in front (a pool imported with `-R`,
/// as installers and the lab do), and what is recorded for a restore must be
/// the path the client itself uses.
pub(super) fn read_source(
    h: &Host,
    ds: &DatasetName,
) -> Result<(Vec<PropertyRow>, Option<String>), Error> {
    let get = cmd::get_properties(&[], &[ds]);
    let altroot = cmd::zpool().args(["list", "-H", "-o", "altroot", ds.pool().as_str()]);
    let argv = if h.is_served() {
        // zfleet serve takes plain commands chained with `&&`, never a shell
        // line; it knows both of these.
        get.arg("&&")
            .arg(altroot.program.clone())
            .args(altroot.args.iter().cloned())
    } else {
        let line = |a: &crate::exec::Argv| {
            crate::exec::quote::remote_command_line(a.words())
                .map_err(|e| Error::Internal(e.to_string()))
        };
        crate::exec::Argv::new("sh").arg("-c").arg(format!(
            "{} && {}",
            line(&get)?,
            line(&altroot)?
        ))
    };
    let out = h.query(&argv)?;
    let text = out.stdout_text();
    let (rows, last) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim_end()));
    let altroot = Some(last.trim()).filter(|a| !a.is_empty() && *a != "-" && *a != "/");
    let rows = crate::zfs::parse::properties(rows).map_err(|source| Error::Parse {
        host: h.name.clone(),
        cmdline: argv.to_string(),
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

/// Writes what differs on the target; failures become warnings.
pub(super) fn apply(
    dst: &Host,
    job: &JobSpec,
    source: &[PropertyRow],
    altroot: Option<&str>,
) -> Result<Vec<String>, Error> {
    let current = dst.properties(&job.target)?;
    let value = |name: &str| {
        current
            .iter()
            .find(|r| r.property == name)
            .map(|r| r.value.as_str())
    };
    let mut warnings = Vec::new();
    for (k, v) in wanted(source, &job.preserve, altroot) {
        if value(&k) == Some(v.as_str()) {
            continue;
        }
        if let Err(e) = dst.endpoint().run(
            &cmd::set(&k, &v, job.target.as_str()),
            &RunOptions::timeout(QUERY_TIMEOUT),
        ) {
            warnings.push(format!("{k}={v} not set on {}: {e}", job.target));
        }
    }
    Ok(warnings)
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
