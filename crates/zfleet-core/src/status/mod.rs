//! Where every backup stands: the judgement of each row ([`judge`]), the
//! report `zfleet status` prints and the daemon serves ([`model`]), as a page
//! ([`page`]) and as Prometheus metrics ([`metrics`]).

pub mod check;
pub mod collect;
pub mod history;
pub mod judge;
pub mod metrics;
pub mod model;
pub mod page;

pub use judge::{judge, late_threshold, BackupState, History};
pub use model::*;
