//! `zfleet verify`: proof that a backup can be restored.
//!
//! - quick ([`quick`]): the newest backup snapshot is the source's (by guid),
//!   the server can send it, its pool was scrubbed recently without errors,
//!   and the recorded base exists on both sides;
//! - content ([`content`]): each host walks its copy of the newest common
//!   snapshot ([`walk`]) and sends only a listing of checksums; the server
//!   merges the two ([`compare`], pure) and names every difference;
//! - drill ([`drill`]): a real restore into a scratch dataset through the
//!   restore code, compared, timed and removed.

pub mod compare;
pub mod content;
pub mod drill;
pub mod due;
pub mod entry;
pub mod quick;
pub mod run;
pub mod sample;
pub mod scrub;
pub mod snapdir;
pub mod walk;

pub use compare::{compare, Comparison, Difference, What, Which};
pub use entry::{Entry, Kind, Line};
pub use sample::Sample;

pub use run::{run, JobVerify, Level, Options, VerifyReport};
