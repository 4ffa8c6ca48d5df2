//! SOURCE and TARGET: a local dataset, or `[user@]host:dataset`, split the
//! way syncoid's `getssh` splits them.
//!
//! syncoid reads `user@host:ds` (and `@host:ds`, no user) as remote always,
//! and `host:ds` (a `:` before the first `/`) as remote unless a local pool is
//! called `host:…`, which it asks `zfs list` about. The pure parse cannot ask,
//! so such an operand records that it could be a pool, and
//! [`Operand::resolve_local_pools`] settles it once the pools are known.

use serde::Serialize;

use super::ArgsError;
use crate::zfs::DatasetName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operand {
    /// As written.
    pub raw: String,
    /// `None`: a dataset on the machine syncoid runs on.
    pub remote: Option<Remote>,
    pub dataset: DatasetName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remote {
    pub user: Option<String>,
    pub host: String,
    /// Written `host:dataset` without `@`: syncoid takes it as local when a
    /// pool of that name exists where it runs.
    pub could_be_pool: bool,
}

impl Operand {
    pub fn parse(raw: &str) -> Result<Self, ArgsError> {
        let err = |m: String| ArgsError::new(raw, m);
        if raw.contains('@') {
            // `[user]@host:dataset`: user and host hold neither `@` nor `:`.
            let Some((login, dataset)) = raw.split_once(':') else {
                return Err(err("a remote dataset is written `[user@]host:dataset`; a local one has no `@` (syncoid copies datasets, not single snapshots)".into()));
            };
            let Some((user, host)) = login.split_once('@') else {
                return Err(err(
                    "a remote dataset is written `[user@]host:dataset`".into()
                ));
            };
            if host.contains('@') || dataset.contains('@') {
                return Err(err("a remote dataset is written `[user@]host:dataset`, with one `@` before the host (syncoid copies datasets, not single snapshots)".into()));
            }
            let user = (!user.is_empty()).then(|| user.to_string());
            return Self::remote(raw, user, host, dataset, false);
        }
        let first = raw.split('/').next().unwrap_or(raw);
        if let Some((host, _)) = first.split_once(':') {
            let dataset = &raw[host.len() + 1..];
            return Self::remote(raw, None, host, dataset, true);
        }
        Ok(Self {
            raw: raw.to_string(),
            remote: None,
            dataset: DatasetName::parse(raw).map_err(|e| err(e.to_string()))?,
        })
    }

    fn remote(
        raw: &str,
        user: Option<String>,
        host: &str,
        dataset: &str,
        could_be_pool: bool,
    ) -> Result<Self, ArgsError> {
        let err = |m: String| ArgsError::new(raw, m);
        if let Some(u) = &user {
            crate::config::valid_user(u).map_err(err)?;
        }
        crate::config::valid_address(host).map_err(|m| {
            err(format!(
                "`{}` is not a host name or address: {m}",
                crate::text::printable(host)
            ))
        })?;
        let dataset = DatasetName::parse(dataset).map_err(|e| err(e.to_string()));
        match dataset {
            Ok(dataset) => Ok(Self {
                raw: raw.to_string(),
                remote: Some(Remote {
                    user,
                    host: host.to_string(),
                    could_be_pool,
                }),
                dataset,
            }),
            // `tank:x/data` may still be a local pool called `tank:x`.
            Err(e) if could_be_pool => match DatasetName::parse(raw) {
                Ok(local) => Ok(Self {
                    raw: raw.to_string(),
                    remote: None,
                    dataset: local,
                }),
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// syncoid's pool check: `host:rest` is local when the part before the
    /// first `/` names a pool that exists where syncoid runs.
    pub fn resolve_local_pools<S: AsRef<str>>(&mut self, pools: &[S]) {
        let could = self.remote.as_ref().is_some_and(|r| r.could_be_pool);
        if !could {
            return;
        }
        let first = self.raw.split('/').next().unwrap_or(&self.raw);
        if pools.iter().any(|p| p.as_ref() == first) {
            if let Ok(ds) = DatasetName::parse(&self.raw) {
                self.remote = None;
                self.dataset = ds;
            }
        }
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    pub fn host(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.host.as_str())
    }

    pub fn user(&self) -> Option<&str> {
        self.remote.as_ref().and_then(|r| r.user.as_deref())
    }
}
