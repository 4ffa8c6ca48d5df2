//! Policy snapshots and pruning, as sanoid does them, and safer.
//!
//! `naming` reads and writes sanoid's names, `localtime` and `due` reproduce its
//! time arithmetic, `targets` lays the configured policies over the datasets
//! that exist, and `plan` decides — purely — what to take and what to destroy,
//! with a reason for each. Executing a plan is `exec`'s job.

pub mod batch;
pub mod caps_cache;
pub mod due;
pub mod exec;
pub mod hooks;
pub mod index;
pub mod localtime;
pub mod monitor;
pub mod naming;
pub mod plan;
pub mod sanoid_import;
mod sanoid_layering;
pub mod targets;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod sanoid_scenarios;

pub use index::{base_property, Index, Snap, BASE_PREFIX};
pub use naming::AutoName;
pub use plan::{plan, Action, Destroy, KeepRule, Kept, Plan, PlanInput, Steps, Take, Want};
pub use targets::{TakeMode, Target};
