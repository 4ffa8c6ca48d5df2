//! One guest per test process, booted on first use, and the skip rules.
//!
//! Booting takes ≈40 s under TCG, so every test in a test binary shares one
//! guest (and serialises its scenarios through it). The guest lives in a
//! `static`, which Rust never drops; teardown rests on the other two layers
//! described in [`super::supervise`]: qemu is a child of the supervisor
//! thread, which only dies with the process, so `PR_SET_PDEATHSIG` kills qemu
//! when the test binary exits (normally, by panic, or by SIGKILL), and the
//! reaper removes the run directory at that same moment.
//!
//! `ZFLEET_LAB_GUEST` decides what happens when the guest cannot be had:
//! unset → tests print `SKIPPED: <why>` and pass when the machine cannot run
//! the guest (not root and no image, no qemu), but *fail* when it could and
//! something broke; `skip` → always skip; `require` → a skip is a failure.
//! A missing image is built (≈8 min) when running as root.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use super::image::{missing_boot_tools, Image, Recipe};
use super::vm::{Guest, GuestConfig};

pub const GUEST_ENV: &str = "ZFLEET_LAB_GUEST";

/// Why the shared guest is not there.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// The machine cannot run it; tests should skip.
    Skip(String),
    /// It should have worked; tests should fail.
    Failed(String),
}

/// What it would take to get a guest on this machine.
#[derive(Debug)]
pub enum Availability {
    Ready(Image),
    NeedsBuild(Recipe),
    No(String),
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Checks, without building or booting anything.
pub fn availability() -> Availability {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Availability::No("the guest needs Linux on x86_64".to_owned());
    }
    match std::env::var(GUEST_ENV).as_deref() {
        Ok("skip") => return Availability::No(format!("{GUEST_ENV}=skip")),
        Ok("" | "require") | Err(_) => {}
        Ok(other) => {
            return Availability::No(format!("{GUEST_ENV}={other} is not one of skip, require"))
        }
    }
    let recipe = match Recipe::from_env() {
        Ok(recipe) => recipe,
        Err(err) => return Availability::No(format!("{err:#}")),
    };
    let root = is_root();
    let missing = missing_boot_tools();
    if !missing.is_empty() && !root {
        return Availability::No(format!(
            "{} not installed, and installing needs root",
            missing.join(", ")
        ));
    }
    match Image::cached(&recipe) {
        Ok(Some(image)) if missing.is_empty() => Availability::Ready(image),
        Ok(_) if root => Availability::NeedsBuild(recipe),
        Ok(_) => Availability::No(format!(
            "guest image {} is not built, and building it needs root \
             (run `zfleet-lab guest build` as root)",
            recipe.dir().display()
        )),
        Err(err) => Availability::No(format!("{err:#}")),
    }
}

static SHARED: OnceLock<Result<Guest, Unavailable>> = OnceLock::new();

/// The process-wide guest, booted (and if need be built) on first call.
/// Concurrent callers wait for the first one.
pub fn shared_guest() -> Result<&'static Guest, Unavailable> {
    SHARED
        .get_or_init(|| {
            let image = match availability() {
                Availability::Ready(image) => image,
                Availability::NeedsBuild(recipe) => Image::build(&recipe).map_err(|err| {
                    Unavailable::Failed(format!("building the guest image: {err:#}"))
                })?,
                Availability::No(reason) => return Err(Unavailable::Skip(reason)),
            };
            Guest::boot(&image, GuestConfig::default())
                .map_err(|err| Unavailable::Failed(format!("booting the guest: {err:#}")))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// For tests: the shared guest, or `None` after printing why the test is
/// skipped. Panics when the guest should have worked, or when
/// `ZFLEET_LAB_GUEST=require`.
// Only tests call this, and panicking is how it fails the calling test.
#[allow(clippy::panic)]
pub fn guest_or_skip(test: &str) -> Option<&'static Guest> {
    match shared_guest() {
        Ok(guest) => Some(guest),
        Err(Unavailable::Skip(reason)) => {
            if std::env::var(GUEST_ENV).as_deref() == Ok("require") {
                panic!("{GUEST_ENV}=require, but the guest is unavailable: {reason}");
            }
            // Straight to the stderr handle: libtest captures print!/eprint!
            // of passing tests, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
            None
        }
        Err(Unavailable::Failed(err)) => panic!("{err}"),
    }
}
