//! Transfer progress: bars with bytes, rate and ETA on a terminal; a quiet log
//! line every 30 seconds and one at the end otherwise (timer units, cron, pipes).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use zfleet_core::progress::{Progress, Transfer};

use crate::render;

pub enum CliProgress {
    Bars(MultiProgress),
    Lines,
    Silent,
}

impl CliProgress {
    pub fn new(quiet: bool, json: bool) -> Self {
        if quiet {
            CliProgress::Silent
        } else if std::io::stderr().is_terminal() && !json {
            CliProgress::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            CliProgress::Lines
        }
    }
}

impl Progress for CliProgress {
    fn transfer(&self, label: &str, total: Option<u64>) -> Box<dyn Transfer> {
        match self {
            CliProgress::Bars(m) => {
                let bar = match total {
                    Some(t) => ProgressBar::new(t).with_style(
                        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    ),
                    None => ProgressBar::no_length().with_style(
                        ProgressStyle::with_template("{msg} {bytes} {binary_bytes_per_sec} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
                };
                let bar = m.add(bar);
                bar.set_message(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(250));
                Box::new(BarTransfer(bar))
            }
            CliProgress::Lines => Box::new(LineTransfer {
                label: label.to_string(),
                total,
                start: Instant::now(),
                last: Mutex::new(Instant::now()),
            }),
            CliProgress::Silent => Box::new(zfleet_core::progress::Silent),
        }
    }
}

struct BarTransfer(ProgressBar);

impl Transfer for BarTransfer {
    fn advance(&self, bytes: u64) {
        self.0.set_position(bytes);
    }
    fn finish(&self, bytes: u64, _ok: bool) {
        self.0.set_position(bytes);
        self.0.finish_and_clear();
    }
}

struct LineTransfer {
    label: String,
    total: Option<u64>,
    start: Instant,
    last: Mutex<Instant>,
}

impl LineTransfer {
    fn rate(&self, bytes: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        format!("{}/s", render::bytes((bytes as f64 / secs) as u64))
    }
}

impl Transfer for LineTransfer {
    fn advance(&self, bytes: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < Duration::from_secs(30) {
            return;
        }
        *last = Instant::now();
        let of = self
            .total
            .map(|t| format!(" of {}", render::bytes(t)))
            .unwrap_or_default();
        tracing::info!(
            "{}: {}{of} at {}",
            self.label,
            render::bytes(bytes),
            self.rate(bytes)
        );
    }
    fn finish(&self, bytes: u64, ok: bool) {
        let secs = self.start.elapsed().as_secs_f64();
        if ok {
            tracing::info!(
                "{}: {} in {secs:.1}s ({})",
                self.label,
                render::bytes(bytes),
                self.rate(bytes)
            );
        } else {
            tracing::warn!(
                "{}: stopped after {} ({secs:.1}s)",
                self.label,
                render::bytes(bytes)
            );
        }
    }
}
