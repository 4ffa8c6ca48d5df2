//! Replication: common-base search by guid, send/receive planning, the stream
//! between `zfs send` and `zfs recv`, resume, base protection and divergence.

pub mod backup;
pub mod exec;
pub mod plan;
mod properties;
pub mod pump;
pub mod sync_snapshot;
mod wire;
pub(crate) use wire::ZSTD_LEVEL;
