//! CPU fairness between plugin calls: an entry whose calls run past a short allowance is
//! demoted, and all demoted calls together get at most a fifth of the runtime's threads.
//!
//! Plugins run on the threads that serve every request, yielding at each epoch tick. A
//! plugin that computes until its deadline (a loop, a 200 MB body built byte by byte, an
//! allocation storm) would otherwise take a tick-long slice every scheduling round, and
//! a few of them cut every other route's throughput to a fraction (measured: 3 % of
//! plain-proxy requests/s with 16 connections hammering such plugins, bench/misbehaving.sh).
//! Policies are meant to be quick; one that is not keeps its deadline, but shares a small
//! CPU budget with the others like it (multi-level feedback scheduling, in one level).
//!
//! The budget is a GCRA over slices: a demoted call's next slice is charged against it
//! and waits (without holding a thread) when the budget is spent. A burst lets the
//! occasional long call (a big schema compiled once) through unthrottled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::engine::EPOCH_TICK;

/// Epoch ticks a call may see before its entry is demoted. A tick falls in a call with a
/// probability that grows with the CPU time it takes, so quick policies (tens of
/// microseconds) almost never see two, and a call that does is computing.
pub const FREE_TICKS: u32 = 2;
/// How long an entry stays demoted after one of its calls went past [`FREE_TICKS`]: its
/// later calls get no free ticks, so a computing plugin cannot take a free slice per call
/// (16 connections on a plugin looping to its 50 ms deadline took 64 % of a core that way).
pub const DEMOTED_FOR: Duration = Duration::from_secs(1);
/// Share of each runtime thread that demoted calls may use together, as one slice in this
/// many: 5 is a fifth.
const SHARE_DENOMINATOR: u32 = 5;
/// Slices of demoted calls let through at once before any waits.
const BURST_SLICES: u32 = 100;

/// Guest time that makes a tick count: the epoch ticks by the wall clock, so a tick right
/// after the guest resumed (from a yield that ran late on a busy thread, or from an
/// awaited import) measures waiting, not computing.
pub const COUNTED_RUN: Duration = Duration::from_micros(500);

/// Nanoseconds on one clock for the whole process.
pub fn clock_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Milliseconds on [`clock_ns`]'s clock, plus one (0 is "never"): the clock entries use
/// to record until when they are demoted.
pub fn now_mark() -> u64 {
    clock_ns() / 1_000_000 + 1
}

/// The budget of demoted slices, shared by every plugin call of the process.
#[derive(Debug, Default)]
pub struct CpuLane {
    /// GCRA theoretical arrival time of the next slice, on [`clock_ns`]'s clock.
    tat: AtomicU64,
}

impl CpuLane {
    /// Charges one slice of a demoted call running on a runtime of `threads` threads;
    /// returns how long the call must wait before the slice, or `None` — charging
    /// nothing — when that wait would run past `time_left` (the call's deadline), so
    /// calls that can never run their slice do not push the budget into the future.
    pub fn charge(&self, threads: usize, time_left: Duration) -> Option<Duration> {
        let threads = u64::try_from(threads.max(1)).unwrap_or(1);
        let interval = EPOCH_TICK.as_nanos() as u64 * u64::from(SHARE_DENOMINATOR) / threads;
        let tolerance = interval * u64::from(BURST_SLICES);
        let now = clock_ns();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            let wait = Duration::from_nanos(start.saturating_sub(now + tolerance));
            if wait >= time_left {
                return None;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(wait),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demoted_slices_past_the_burst_wait_for_their_share() {
        let lane = CpuLane::default();
        let charge = |threads| {
            lane.charge(threads, Duration::from_secs(1))
                .expect("in time")
        };
        // The burst, and the slice the budget allows now.
        for _ in 0..=BURST_SLICES {
            assert_eq!(charge(1), Duration::ZERO);
        }
        // One thread: a slice per 5 ms. The burst spent, waits grow by 5 ms a slice.
        let first = charge(1);
        let second = charge(1);
        assert!(
            first > Duration::from_millis(3) && first <= Duration::from_millis(5),
            "{first:?}"
        );
        let step = second - first;
        assert!(
            step > Duration::from_millis(3) && step <= Duration::from_millis(5),
            "{step:?}"
        );
        // A slice that could not start before the call's deadline is not charged.
        assert_eq!(lane.charge(1, Duration::from_millis(1)), None);
        let third = charge(1);
        assert!(
            third - second <= Duration::from_millis(5),
            "{:?}",
            third - second
        );
        // Two threads: half the interval.
        let lane = CpuLane::default();
        let left = Duration::from_secs(1);
        for _ in 0..=BURST_SLICES {
            lane.charge(2, left);
        }
        let a = lane.charge(2, left).expect("in time");
        let b = lane.charge(2, left).expect("in time");
        assert!(b - a <= Duration::from_micros(2500), "{:?}", b - a);
    }
}
