//! zfleet's engine. This crate never prints: it returns values and reports
//! progress through traits, so the CLI and the daemon render the same results.
