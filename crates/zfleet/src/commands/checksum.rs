use clap::Args;
use zfleet_core::verify::snapdir::write_snapshot_listing;
use zfleet_core::verify::walk::WalkOptions;
use zfleet_core::verify::Sample;
use zfleet_core::zfs::SnapshotName;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

/// Print the listing of a snapshot's files (metadata and BLAKE3 per file,
/// as JSON lines) for `zfleet verify` on a backup server.
///
/// The server runs this on a client over ssh (and `zfleet serve` answers
/// the same request itself). It only reads: through `.zfs/snapshot`, or a
/// temporary read-only clone where that directory is not visible.
#[derive(Debug, Args)]
#[command(hide = true)]
pub struct ChecksumArgs {
    /// The snapshot, `POOL/DATASET@NAME`.
    snapshot: String,
    /// Which share of files to read (`BUCKET/BUCKETS`, as verify sends it).
    #[arg(long, default_value = "0/1")]
    sample: String,
    /// Bytes per second to read at most.
    #[arg(long)]
    rate: Option<u64>,
}

pub fn cmd_checksum(_g: &GlobalArgs, a: &ChecksumArgs) -> Result<u8, Error> {
    let snap = SnapshotName::parse(&a.snapshot)?;
    let sample = Sample::parse(&a.sample).map_err(Error::Usage)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_snapshot_listing(
        &snap,
        WalkOptions {
            sample,
            rate: a.rate,
        },
        &mut out,
    )?;
    Ok(crate::exit::OK)
}
