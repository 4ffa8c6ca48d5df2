//! Disks, pools and datasets from fleet.toml: what disko does for the seed,
//! but incremental and safe to rerun.
//!
//! observe ([`observe::observe`]: lsblk, wipefs, the `zpool import` scan,
//! pools and datasets) → plan ([`plan::plan`], pure, a reason per step) →
//! execute ([`exec::execute`], stops at the first failure). `disks mount`
//! has its own planner ([`mount`]) for installers, and writes the facts a
//! NixOS or Debian install needs ([`facts`]). [`disko`] prints the same
//! layout as a disko expression.

pub mod disko;
pub mod exec;
pub mod facts;
pub mod model;
pub mod mount;
pub mod observe;
pub mod parse;
pub mod plan;
pub mod run;

pub use model::Observed;
pub use plan::{plan, Options, Plan};
