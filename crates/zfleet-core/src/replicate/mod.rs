//! Replication: observe both sides ([`observe`], into [`sides`]), decide what to send
//! ([`plan`], pure, with the base moves of [`base_moves`]), run it ([`exec`],
//! one step at a time through [`steps`] and the shared [`crate::transfer`]).
//! [`job`] holds what a job is given and what it reports; [`backup`] runs a
//! server's (or a push client's) jobs.

pub mod backup;
pub mod base_moves;
pub mod exec;
pub mod job;
pub mod observe;
pub mod plan;
mod properties;
pub mod sides;
pub mod steps;

pub use exec::{replicate, replicate_observed};
pub use job::{JobReport, JobSpec, Options, Outcome};
