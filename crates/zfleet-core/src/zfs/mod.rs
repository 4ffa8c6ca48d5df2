//! The ZFS layer: typed names, command builders, output parsers, error
//! classification and the capability probe. Nothing here runs a process; `host`
//! does, with these pieces.

pub mod caps;
pub mod cmd;
pub mod error;
pub mod name;
pub mod parse;
pub mod resume_token;

pub use caps::{Caps, Dialect};
pub use error::{ZfsError, ZfsErrorKind};
pub use name::{
    BookmarkName, DatasetName, NameError, NameKind, ObjectName, PoolName, SnapshotName,
};
pub use parse::{Listing, ObjectInfo, ObjectType, ParseError, PropertyRow, PropertySource};
