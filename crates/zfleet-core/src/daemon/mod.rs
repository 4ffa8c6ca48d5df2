//! The pure parts of `zfleet daemon`: when each job runs ([`schedule`],
//! [`cadence`]), how a failure is retried ([`backoff`]), how a clock jump is
//! noticed ([`clock_watch`]) and which events become notifications
//! ([`notify`]). The daemon's loop (in the CLI crate) feeds these with the
//! clock and the engine's typed outcomes; none of them reads either itself.

pub mod backoff;
pub mod cadence;
pub mod clock_watch;
pub mod notify;
pub mod schedule;

pub use backoff::{AfterFailure, Backoff};
pub use schedule::{Schedule, Timing};
