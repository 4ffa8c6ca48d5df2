//! Properties across a replication: the server's preserved ones copied, the
//! client's own recorded for restores.

use super::exec::JobSpec;
use crate::exec::RunOptions;
use crate::host::{Host, QUERY_TIMEOUT};
use crate::zfs::{cmd, DatasetName};
use crate::Error;

/// Copies the preserved native properties (their effective values) from source
/// to target, and records the source's mountpoint, canmount and user
/// properties as `zfleet:src:<name>` on the target, for restores. Only changes
/// are written.
pub(super) fn preserve_properties(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
) -> Result<Vec<String>, Error> {
    use crate::zfs::PropertySource;
    let q = RunOptions::timeout(QUERY_TIMEOUT);
    let read = |h: &Host, ds: &DatasetName| -> Result<Vec<crate::zfs::PropertyRow>, Error> {
        let argv = cmd::get_properties(&[], &[ds]);
        let out = h.query(&argv)?;
        crate::zfs::parse::properties(&out.stdout_text()).map_err(|source| Error::Parse {
            host: h.name.clone(),
            cmdline: argv.to_string(),
            source,
        })
    };
    let from = read(src, &job.source)?;
    let to = read(dst, &job.target)?;
    let current = |name: &str| {
        to.iter()
            .find(|r| r.property == name)
            .map(|r| r.value.as_str())
    };
    let mut want: Vec<(String, String)> = Vec::new();
    for r in &from {
        let explicit = matches!(r.source, PropertySource::Local | PropertySource::Received);
        let user = r.property.contains(':') && !r.property.starts_with("zfleet:") && explicit;
        if job.preserve.contains(&r.property) {
            want.push((r.property.clone(), r.value.clone()));
        } else if matches!(r.property.as_str(), "mountpoint" | "canmount") || user {
            want.push((format!("zfleet:src:{}", r.property), r.value.clone()));
        }
    }
    let mut warnings = Vec::new();
    for (k, v) in want {
        if current(&k) == Some(v.as_str()) {
            continue;
        }
        if let Err(e) = dst
            .endpoint()
            .run(&cmd::set(&k, &v, job.target.as_str()), &q)
        {
            warnings.push(format!("{k}={v} not set on {}: {e}", job.target));
        }
    }
    Ok(warnings)
}
