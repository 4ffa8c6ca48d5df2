//! Noticing that the wall clock jumped: a suspended laptop waking up, an NTP
//! step, a clock set by hand (or by libfaketime in the lab). The monotonic
//! clock keeps counting through none of these (Linux's CLOCK_MONOTONIC stops
//! during suspend), so the two drift apart by exactly the jump.

/// The wall clock and the monotonic clock as last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockWatch {
    wall: i64,
    /// Monotonic seconds (any origin).
    mono: f64,
    tolerance: i64,
}

/// A jump of the wall clock by `by` seconds (negative: backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    pub by: i64,
}

/// Scheduling delays and a slow tick are far below this.
pub const DEFAULT_TOLERANCE: i64 = 5;

impl ClockWatch {
    pub fn new(wall: i64, mono: f64) -> Self {
        Self {
            wall,
            mono,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    pub fn with_tolerance(mut self, secs: i64) -> Self {
        self.tolerance = secs;
        self
    }

    /// Takes the clocks' new readings; `Some` when the wall clock moved more
    /// (or less) than the time that passed.
    pub fn observe(&mut self, wall: i64, mono: f64) -> Option<Jump> {
        let passed = (mono - self.mono).round() as i64;
        let moved = wall - self.wall;
        self.wall = wall;
        self.mono = mono;
        let by = moved - passed;
        (by.abs() > self.tolerance).then_some(Jump { by })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_ticks_are_no_jump() {
        let mut w = ClockWatch::new(1000, 50.0);
        for i in 1..100 {
            assert_eq!(w.observe(1000 + i, 50.0 + i as f64), None);
        }
        // A slow tick moves both clocks alike.
        assert_eq!(w.observe(1200, 250.2), None);
    }

    #[test]
    fn suspend_and_steps_are_jumps() {
        let mut w = ClockWatch::new(1000, 50.0);
        // Eight hours of suspend: the monotonic clock saw one second.
        assert_eq!(
            w.observe(1000 + 8 * 3600 + 1, 51.0),
            Some(Jump { by: 8 * 3600 })
        );
        // An NTP step back by a minute.
        assert_eq!(w.observe(29_801 - 60 + 1, 52.0), Some(Jump { by: -60 }));
        // Within the tolerance: not a jump.
        assert_eq!(w.observe(29_742 + 4 + 1, 53.0), None);
    }
}
