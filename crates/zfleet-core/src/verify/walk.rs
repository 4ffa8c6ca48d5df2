//! The walker each host runs over its copy of a snapshot: depth first, each
//! directory's names sorted, symlinks never followed, one file's contents
//! streamed through BLAKE3 at a time. What it holds is the directory being
//! walked and the ones above it, plus the first path of each hard-linked
//! inode: flat in the size of files and nearly so in their number. A file or
//! directory that cannot be read is listed with its error and the walk goes
//! on: a damaged block is a finding, not a reason to stop.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::entry::{escape_name, Entry, Kind, Line};
use super::sample::Sample;

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub sample: Sample,
    /// Bytes per second the walk reads at most (`None`: as fast as it can).
    pub rate: Option<u64>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            sample: Sample::ALL,
            rate: None,
        }
    }
}

/// What a walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    pub entries: u64,
    pub bytes_read: u64,
}

const CHUNK: usize = 1 << 20;

/// The nice value a walk runs at, at least. Hashing every file of a snapshot
/// is background work and must yield the CPU to what the host is for. Linux
/// keeps the nice value per thread, and every walk has a thread of its own
/// (a comparison's producer, `zfleet checksum`, serve's one request), so the
/// lowered priority stays with the walk. Disk priority (ionice) is not set:
/// ZFS reads a file's blocks from its own threads (OpenZFS's zio taskqs, the
/// zfs-fuse daemon), which a class set on this thread does not reach; `rate`
/// is the bound on I/O.
pub const WALK_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`WALK_NICE`] unless it is
/// already that low. Failing to is not a reason not to verify.
fn yield_cpu() {
    use rustix::process::{getpriority_process, setpriority_process};
    match getpriority_process(None) {
        Ok(nice) if nice >= WALK_NICE => {}
        _ => {
            if let Err(e) = setpriority_process(None, WALK_NICE) {
                tracing::debug!("could not lower the walk's CPU priority: {e}");
            }
        }
    }
}

struct Walker<'a> {
    opts: WalkOptions,
    links: HashMap<(u64, u64), String>,
    done: Walked,
    started: Instant,
    buf: Vec<u8>,
    emit: &'a mut dyn FnMut(Entry) -> io::Result<()>,
}

/// One level of the walk: a directory and its remaining names.
struct Level {
    rel: String,
    full: PathBuf,
    names: std::vec::IntoIter<(String, OsString)>,
}

/// Walks `root`, handing each entry to `emit` in listing order. Fails only
/// when `root` itself cannot be read or `emit` fails (the listing's reader
/// went away).
pub fn walk(
    root: &Path,
    opts: WalkOptions,
    emit: &mut dyn FnMut(Entry) -> io::Result<()>,
) -> io::Result<Walked> {
    yield_cpu();
    let meta = fs::symlink_metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut w = Walker {
        opts,
        links: HashMap::new(),
        done: Walked::default(),
        started: Instant::now(),
        buf: vec![0; CHUNK],
        emit,
    };
    let mut stack: Vec<Level> = Vec::new();
    w.visit(String::new(), root.to_path_buf(), &meta, &mut stack)?;
    while let Some(top) = stack.last_mut() {
        let Some((name, os)) = top.names.next() else {
            stack.pop();
            continue;
        };
        let rel = if top.rel.is_empty() {
            name
        } else {
            format!("{}/{name}", top.rel)
        };
        let full = top.full.join(&os);
        match fs::symlink_metadata(&full) {
            Ok(meta) => w.visit(rel, full, &meta, &mut stack)?,
            Err(e) => {
                // Listed a moment ago, unreadable now: say so and go on.
                let mut entry = unknown(rel);
                entry.error = Some(e.to_string());
                w.emit_entry(entry)?;
            }
        }
    }
    Ok(w.done)
}

fn unknown(path: String) -> Entry {
    Entry {
        path,
        kind: Kind::File,
        size: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_ns: 0,
        target: None,
        link: None,
        blake3: None,
        error: None,
    }
}

fn kind_of(ft: fs::FileType) -> Kind {
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::File
    }
}

impl Walker<'_> {
    fn emit_entry(&mut self, e: Entry) -> io::Result<()> {
        self.done.entries += 1;
        (self.emit)(e)
    }

    fn visit(
        &mut self,
        rel: String,
        full: PathBuf,
        meta: &fs::Metadata,
        stack: &mut Vec<Level>,
    ) -> io::Result<()> {
        let kind = kind_of(meta.file_type());
        let mut e = Entry {
            kind,
            size: meta.size(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            mtime_ns: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            ..unknown(rel)
        };
        if kind != Kind::Dir && meta.nlink() > 1 {
            let first = self
                .links
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| e.path.clone());
            e.link = Some(first.clone());
        }
        match kind {
            Kind::Symlink => match fs::read_link(&full) {
                Ok(t) => e.target = Some(escape_name(t.as_os_str().as_bytes())),
                Err(err) => e.error = Some(err.to_string()),
            },
            Kind::File if self.opts.sample.covers(&e.path) => match self.checksum(&full) {
                Ok(h) => e.blake3 = Some(h),
                Err(err) => e.error = Some(err.to_string()),
            },
            Kind::Dir => match names(&full) {
                Ok(names) => {
                    let rel = e.path.clone();
                    self.emit_entry(e)?;
                    stack.push(Level {
                        rel,
                        full,
                        names: names.into_iter(),
                    });
                    return Ok(());
                }
                Err(err) => e.error = Some(err.to_string()),
            },
            _ => {}
        }
        self.emit_entry(e)
    }

    fn checksum(&mut self, path: &Path) -> io::Result<String> {
        let mut f = fs::File::open(path)?;
        let mut h = blake3::Hasher::new();
        loop {
            let n = match f.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&self.buf[..n]);
            self.done.bytes_read += n as u64;
            self.throttle();
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Sleeps until the bytes read so far fit the rate limit.
    fn throttle(&self) {
        let Some(rate) = self.opts.rate.filter(|r| *r > 0) else {
            return;
        };
        let due = Duration::from_secs_f64(self.done.bytes_read as f64 / rate as f64);
        let spent = self.started.elapsed();
        if due > spent {
            std::thread::sleep(due - spent);
        }
    }
}

/// A directory's names, sorted as listing order wants them.
fn names(dir: &Path) -> io::Result<Vec<(String, OsString)>> {
    let mut out = Vec::new();
    for d in fs::read_dir(dir)? {
        let d = d?;
        let os = d.file_name();
        out.push((escape_name(os.as_bytes()), os));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Walks `root` and writes the listing as JSON lines, ending with the count.
pub fn write_listing(root: &Path, opts: WalkOptions, out: &mut dyn Write) -> io::Result<Walked> {
    let mut emit = |e: Entry| -> io::Result<()> {
        serde_json::to_writer(&mut *out, &Line::Entry(e))?;
        out.write_all(b"\n")
    };
    let done = walk(root, opts, &mut emit)?;
    serde_json::to_writer(
        &mut *out,
        &Line::End {
            entries: done.entries,
        },
    )?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(done)
}

/// Reads a listing written by [`write_listing`], one entry at a time. A
/// listing that ends without its count, or with another count, ends in an
/// error: the other host's walk was cut short.
pub fn read_listing<R: BufRead>(r: R) -> impl Iterator<Item = Result<Entry, String>> {
    let mut lines = r.lines();
    let mut seen = 0u64;
    let mut ended = false;
    std::iter::from_fn(move || {
        if ended {
            return None;
        }
        match lines.next() {
            None => {
                ended = true;
                Some(Err(format!(
                    "the listing ended after {seen} entries, without its end"
                )))
            }
            Some(Err(e)) => {
                ended = true;
                Some(Err(format!("reading the listing failed: {e}")))
            }
            Some(Ok(l)) => match serde_json::from_str::<Line>(&l) {
                Ok(Line::Entry(e)) => {
                    seen += 1;
                    Some(Ok(e))
                }
                Ok(Line::End { entries }) => {
                    ended = true;
                    (entries != seen).then(|| {
                        Err(format!(
                            "the listing says {entries} entries but carried {seen}"
                        ))
                    })
                }
                Err(e) => {
                    ended = true;
                    Some(Err(format!(
                        "line {} of the listing is not an entry: {e}",
                        seen + 1
                    )))
                }
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::compare::compare;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/c.txt"), b"hello").unwrap();
        fs::write(root.join("a.b"), vec![7u8; 3 * CHUNK + 11]).unwrap();
        fs::write(root.join(OsString::from_vec(b"bad\xffname".to_vec())), b"x").unwrap();
        fs::hard_link(root.join("a/b/c.txt"), root.join("z-link")).unwrap();
        symlink("a/b/c.txt", root.join("sym")).unwrap();
    }

    use std::os::unix::ffi::OsStringExt;

    fn listing(root: &Path, opts: WalkOptions) -> Vec<Entry> {
        let mut out = Vec::new();
        write_listing(root, opts, &mut out).unwrap();
        read_listing(&out[..]).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_walk_lowers_the_cpu_priority_of_its_own_thread_only() {
        use rustix::process::getpriority_process;
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let before = getpriority_process(None).unwrap();
        let root = d.path().to_path_buf();
        let during = std::thread::spawn(move || {
            listing(&root, WalkOptions::default());
            getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(during, before.max(WALK_NICE));
        assert_eq!(getpriority_process(None).unwrap(), before);
    }

    #[test]
    fn lists_in_order_with_checksums_links_and_targets() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let l = listing(d.path(), WalkOptions::default());
        let paths: Vec<&str> = l.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "",
                "a",
                "a/b",
                "a/b/c.txt",
                "a.b",
                "bad\\xffname",
                "sym",
                "z-link"
            ]
        );
        let get = |p: &str| l.iter().find(|e| e.path == p).unwrap();
        assert_eq!(
            get("a/b/c.txt").blake3.as_deref(),
            Some(blake3::hash(b"hello").to_hex().as_str())
        );
        let big = vec![7u8; 3 * CHUNK + 11];
        assert_eq!(
            get("a.b").blake3.as_deref(),
            Some(blake3::hash(&big).to_hex().as_str())
        );
        assert_eq!(get("sym").target.as_deref(), Some("a/b/c.txt"));
        assert_eq!(get("sym").blake3, None, "a symlink is not followed");
        assert_eq!(get("z-link").link.as_deref(), Some("a/b/c.txt"));
        assert_eq!(get("a/b/c.txt").link.as_deref(), Some("a/b/c.txt"));
        assert_eq!(get("a.b").link, None);
    }

    #[test]
    fn a_copy_compares_equal_and_a_change_is_named() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tree(a.path());
        tree(b.path());
        // Two trees written apart differ in their times; a received
        // snapshot does not, so times are left out here.
        let (la, lb) = (
            listing(a.path(), WalkOptions::default()),
            listing(b.path(), WalkOptions::default()),
        );
        let strip = |l: Vec<Entry>| -> Vec<Result<Entry, ()>> {
            l.into_iter()
                .map(|e| {
                    Ok(Entry {
                        mtime: 0,
                        mtime_ns: 0,
                        ..e
                    })
                })
                .collect()
        };
        let c = compare(strip(la.clone()), strip(lb.clone())).unwrap();
        assert!(c.ok(), "{:?}", c.differences);
        fs::write(b.path().join("a/b/c.txt"), b"HELLO").unwrap();
        fs::set_permissions(b.path().join("a.b"), fs::Permissions::from_mode(0o600)).unwrap();
        let lb = listing(b.path(), WalkOptions::default());
        let c = compare(strip(la), strip(lb)).unwrap();
        let named: Vec<String> = c
            .differences
            .iter()
            .map(|d| format!("{} {}", d.path, d.what.describe()))
            .collect();
        assert_eq!(
            named,
            [
                "/a/b/c.txt contents differ (BLAKE3)".to_string(),
                "/a.b mode 644 vs 600".to_string(),
                "/z-link contents differ (BLAKE3)".to_string(),
            ]
        );
    }

    #[test]
    fn a_root_that_is_not_there_fails_the_walk() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            walk(&d.path().join("nope"), WalkOptions::default(), &mut |_| Ok(
                ()
            ))
            .is_err()
        );
    }

    #[test]
    fn sampling_reads_only_its_share_and_lists_everything() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..200 {
            fs::write(d.path().join(format!("f{i}")), b"data").unwrap();
        }
        let s = Sample::rotation(25, 1).unwrap();
        let l = listing(
            d.path(),
            WalkOptions {
                sample: s,
                rate: None,
            },
        );
        assert_eq!(l.len(), 201);
        let read = l.iter().filter(|e| e.blake3.is_some()).count();
        assert_eq!(
            read,
            l.iter()
                .filter(|e| e.kind == Kind::File && s.covers(&e.path))
                .count()
        );
        assert!(read > 20 && read < 100, "{read}");
    }

    #[test]
    fn a_listing_cut_short_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let mut out = Vec::new();
        write_listing(d.path(), WalkOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let r: Result<Vec<Entry>, String> = read_listing(cut.as_bytes()).collect();
        assert_eq!(
            r.unwrap_err(),
            "the listing ended after 3 entries, without its end"
        );
    }

    #[test]
    fn the_rate_limit_holds_the_walk_back() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), vec![0u8; 2 * CHUNK]).unwrap();
        let t = Instant::now();
        let done = walk(
            d.path(),
            WalkOptions {
                sample: Sample::ALL,
                rate: Some(4 * CHUNK as u64),
            },
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(done.bytes_read, 2 * CHUNK as u64);
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "{:?}",
            t.elapsed()
        );
    }
}
