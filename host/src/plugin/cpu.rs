//! CPU fairness between plugin calls: an entry whose calls keep a thread busy past a short
//! allowance is demoted, and a demoted entry's calls run on the *slow lane* — threads of
//! their own at a lower OS priority — until its calls are quick again.
//!
//! Plugins run on the threads that serve every request. Epoch ticks make a looping guest
//! yield once a millisecond, but nothing in the async runtime can stop a single long step:
//! `vec![0; 200_000_000]` is one `memory.fill`, run by wasmtime as one host `memset` of
//! ~150 ms, then 50 000 page faults, then a decommit when the instance goes; an allocation
//! storm is the same in small pieces. Measured with bench/misbehaving.sh, such plugins
//! hammered beside healthy routes stalled the serving thread until the healthy routes kept
//! 1 % of their throughput. Only the kernel can preempt those steps, so the calls that take
//! them are moved where it will: lane threads niced [`LANE_NICE`] below the threads that
//! start them, which get about a tenth of a core while the serving threads are busy and
//! all of it while they are idle.
//!
//! Demotion is decided by what a call costs the thread it runs on, measured so that being
//! preempted (by the lane, by anything) does not read as a slow plugin:
//! - epoch ticks that fall while the guest computes: a tick counts when the guest ran at
//!   least [`COUNTED_RUN`] since it last resumed, so a preemption adds one at most, and
//!   a call that sees more than [`FREE_TICKS`] is computing;
//! - the thread time spent inside the call's polls (guest code, host imports and the copies
//!   between them, including steps no tick can split): on a serving thread by the wall
//!   clock, past [`SERVING_ALLOWANCE`] (more than a preemption lasts; the thread's CPU
//!   clock is a 0.5 µs system call here, too dear for every call); on the lane by the
//!   thread's CPU clock, past [`LANE_ALLOWANCE`];
//! - the moving average of that time over an entry's calls on serving threads, past
//!   [`HEAVY_AVERAGE`]: a plugin that spends a few hundred microseconds on every call
//!   passes no allowance, and under load costs the other routes as much as one that stalls.
//!
//! Ticks demote on serving threads only; on the lane the thread's CPU clock decides. A
//! demoted entry's calls on the lane that go past their allowance keep it demoted, so a
//! plugin that always misbehaves costs the serving threads one call.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::home::{AbortOnDrop, HOME};
use super::info::EntryInfo;

/// Epoch ticks a call may compute through before its entry is demoted. A tick falls in a
/// call with a probability that grows with the CPU time it takes, so quick policies (tens
/// of microseconds) almost never see two, and a call that sees three is computing.
pub const FREE_TICKS: u32 = 2;
/// Guest time that makes a tick count: the epoch ticks by the wall clock, so a tick right
/// after the guest resumed (from a yield, an awaited import, or a preemption) measures
/// waiting, not computing.
pub const COUNTED_RUN: Duration = Duration::from_micros(500);
/// Wall time a call may spend in its polls on a serving thread before its entry is demoted:
/// longer than a preemption by the lane (a scheduler slice, a few milliseconds), so only a
/// step no tick split (a bulk memory instruction, page faults, a large copy) gets here.
pub const SERVING_ALLOWANCE: Duration = Duration::from_millis(10);
/// CPU time a call may take on a lane thread before its entry's demotion starts over.
pub const LANE_ALLOWANCE: Duration = Duration::from_millis(2);
/// Average thread time per call past which an entry is demoted although no single call
/// went past an allowance. The built-in plugins cost 5–60 µs a call (BENCHMARKS.md);
/// 16 connections hammering a plugin that spends 150 µs a call inline (500 counter names)
/// kept healthy routes to 0.6 of what the same connections on a quick plugin left them. A
/// lane call this cheap is what lets a demoted entry back.
pub const HEAVY_AVERAGE: Duration = Duration::from_micros(100);
/// Each call's weight in the average, as one in this many: a preempted call (clipped to
/// [`AVERAGE_CLIP`]) moves a 30 µs average by 30 µs, and two in a row stay short of
/// [`HEAVY_AVERAGE`]; a plugin at 150 µs a call gets there in about 35 calls.
const AVERAGE_WEIGHT: u64 = 32;
/// Calls count in the average for this much at most: an outlier (a preemption, a first
/// call that compiles something) weighs like a slow call, not like a stall.
const AVERAGE_CLIP: Duration = Duration::from_millis(1);
/// How long an entry stays demoted after a call went past its allowance. Its calls on the
/// lane that go past it again start the time over.
pub const DEMOTED_FOR: Duration = Duration::from_secs(1);
/// How much nicer lane threads are than the thread that starts them: with the serving
/// threads at 0 and the lane at 10, the kernel gives a busy lane thread about a tenth of a
/// core they also want (CFS/EEVDF weights 110 against 1024).
pub const LANE_NICE: i32 = 10;

/// Demoted calls that may be under way on the lane at once, per lane thread. More wait for
/// a turn, within their deadline: interleaved without a bound, 16 connections hammering a
/// plugin that fills 200 MB each held 16 such memories at once (3 GiB resident).
/// (A call holds its turn while it awaits an import, too: a demoted plugin waiting 100 ms
/// on an outbound call runs at most this many times ten calls a second per lane thread.)
const LANE_CALLS_PER_THREAD: usize = 4;

/// Nanoseconds on one clock for the whole process.
pub fn clock_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Whether an entry's calls run on the lane. An entry is demoted for [`DEMOTED_FOR`] at
/// least, and until one of its calls on the lane has succeeded cheaply (within
/// [`HEAVY_AVERAGE`]): time
/// alone does not promote it, because a misbehaving plugin's calls on the lane end late
/// (they get a tenth of a core) and seldom, and each promotion by time alone put one of its
/// stalls back on a serving thread (measured: healthy p99 1.7 → 109 ms).
#[derive(Debug)]
pub struct Demotion {
    /// Until when, on [`clock_ns`]'s clock; 0 is never.
    until: AtomicU64,
    /// Demoted, and no call on the lane has since succeeded cheaply.
    unproven: AtomicBool,
    /// Moving average of the thread time its calls took on serving threads, nanoseconds.
    average_ns: AtomicU64,
    /// Its share of the lane's turns.
    share: Arc<Semaphore>,
}

impl Default for Demotion {
    fn default() -> Self {
        Self {
            until: AtomicU64::default(),
            unproven: AtomicBool::default(),
            average_ns: AtomicU64::default(),
            share: Arc::new(Semaphore::new(entry_share())),
        }
    }
}

impl Demotion {
    pub fn is_demoted(&self) -> bool {
        self.unproven.load(Ordering::Relaxed) || self.until.load(Ordering::Relaxed) > clock_ns()
    }

    /// Demotes for [`DEMOTED_FOR`] from now; true when it was not demoted before.
    fn demote(&self) -> bool {
        let was = self.is_demoted();
        self.unproven.store(true, Ordering::Relaxed);
        self.until.fetch_max(
            clock_ns() + DEMOTED_FOR.as_nanos() as u64,
            Ordering::Relaxed,
        );
        !was
    }

    /// Forgets everything: what a plugin costs while its config is checked at load says
    /// nothing about its calls.
    pub(super) fn clear(&self) {
        self.until.store(0, Ordering::Relaxed);
        self.unproven.store(false, Ordering::Relaxed);
        self.average_ns.store(0, Ordering::Relaxed);
    }

    /// A call on the lane succeeded cheaply (`spent_ns`): the entry may go back once its
    /// time is up, its average starting over from that call.
    fn proven(&self, spent_ns: u64) {
        self.average_ns.store(spent_ns, Ordering::Relaxed);
        self.unproven.store(false, Ordering::Relaxed);
    }

    /// Adds a call on a serving thread to the average; true when the average is now heavy.
    /// (Concurrent calls may lose an update; an average needs none of them exactly.)
    fn observe(&self, spent_ns: u64) -> bool {
        let sample = spent_ns.min(AVERAGE_CLIP.as_nanos() as u64);
        let old = self.average_ns.load(Ordering::Relaxed);
        let new = old - old / AVERAGE_WEIGHT + sample / AVERAGE_WEIGHT;
        self.average_ns.store(new, Ordering::Relaxed);
        new > HEAVY_AVERAGE.as_nanos() as u64
    }
}

/// Demotes an entry whose call computes past its allowance, saying so when it was not.
pub fn demote(entry: &EntryInfo) {
    if entry.demotion.demote() {
        tracing::info!(
            target: "portcullis::plugin",
            route = %entry.route,
            plugin = %entry.plugin,
            "the plugin computes for long: its calls run at a lower priority for at least {DEMOTED_FOR:?}"
        );
    }
}

/// Which clock measures a call's thread time.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Serving threads: the monotonic clock (from the vDSO, 20 ns here).
    Wall,
    /// Lane threads: the calling thread's CPU clock.
    ThreadCpu,
}

impl Clock {
    fn allowance(self) -> Duration {
        match self {
            Self::Wall => SERVING_ALLOWANCE,
            Self::ThreadCpu => LANE_ALLOWANCE,
        }
    }

    fn now_ns(self) -> u64 {
        match self {
            Self::Wall => clock_ns(),
            Self::ThreadCpu => {
                // 0.5 µs here (no vDSO for it): paid by demoted calls only.
                let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
                (t.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(t.tv_nsec as u64)
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A plugin call (or instantiation) that sums the thread time of its polls and demotes
    /// its entry the moment the sum passes its clock's allowance.
    #[derive(Debug)]
    pub struct Metered<F> {
        #[pin]
        call: F,
        entry: Arc<EntryInfo>,
        clock: Clock,
        spent_ns: u64,
        // Whether the call counts in its entry's average cost.
        average: bool,
    }
}

impl<F> Metered<F> {
    /// Meters a plugin call running on a serving thread; it counts in the entry's average.
    pub fn serving_call(entry: &Arc<EntryInfo>, call: F) -> Self {
        Self::new(entry, call, Clock::Wall, true)
    }

    /// Meters other work for an entry (making an instance) on a serving thread.
    pub fn serving(entry: &Arc<EntryInfo>, call: F) -> Self {
        Self::new(entry, call, Clock::Wall, false)
    }

    /// Meters a call running on a lane thread.
    fn lane(entry: &Arc<EntryInfo>, call: F) -> Self {
        Self::new(entry, call, Clock::ThreadCpu, false)
    }

    fn new(entry: &Arc<EntryInfo>, call: F, clock: Clock, average: bool) -> Self {
        Self {
            call,
            entry: Arc::clone(entry),
            clock,
            spent_ns: 0,
            average,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let start = this.clock.now_ns();
        let poll = this.call.poll(cx);
        let spent = this.clock.now_ns().saturating_sub(start);
        let before = *this.spent_ns;
        *this.spent_ns = before.saturating_add(spent);
        let allowance = this.clock.allowance().as_nanos() as u64;
        if *this.spent_ns > allowance && before <= allowance {
            demote(this.entry);
        }
        if poll.is_ready() && *this.average && this.entry.demotion.observe(*this.spent_ns) {
            demote(this.entry);
        }
        poll
    }
}

/// The lane: its runtime, started on first use and kept for the life of the process (a
/// call moved to it always finishes there or is aborted, and nothing has to shut it down),
/// and the turns its calls take.
#[derive(Debug)]
struct Lane {
    runtime: tokio::runtime::Runtime,
    turns: Arc<Semaphore>,
}

fn lane() -> Result<&'static Lane, &'static str> {
    static LANE: OnceLock<Result<Lane, String>> = OnceLock::new();
    LANE.get_or_init(|| {
        let threads = lane_threads();
        // Relative to the thread that starts the lane (a serving thread), whichever lane
        // thread starts a thread of its own.
        let nice = rustix::process::getpriority_process(None).unwrap_or(0) + LANE_NICE;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("plugin-lane")
            .on_thread_start(move || {
                LANE_THREAD.set(true);
                lower_priority(nice.min(19));
            })
            .enable_all()
            .build()
            .map_err(|e| format!("the plugin lane's threads could not start: {e}"))?;
        Ok(Lane {
            runtime,
            turns: Arc::new(Semaphore::new(threads * LANE_CALLS_PER_THREAD)),
        })
    })
    .as_ref()
    .map_err(String::as_str)
}

/// A turn on the lane for one of `entry`'s demoted calls, waited for up to `wait` (the
/// call's deadline); `None` when none came or the lane is not running. A call first waits
/// for one of its entry's [`entry_share`] of the turns, then for a turn: the turns are first
/// come, first served, and one hammered plugin would otherwise queue ahead of every other
/// demoted entry.
pub async fn lane_turn(entry: &EntryInfo, wait: Duration) -> Option<LaneTurn> {
    let lane = lane().ok()?;
    let until = tokio::time::Instant::now() + wait;
    let share = acquire(&entry.demotion.share, until).await?;
    let turn = acquire(&lane.turns, until).await?;
    Some(LaneTurn {
        _turn: turn,
        _share: share,
    })
}

async fn acquire(
    semaphore: &Arc<Semaphore>,
    until: tokio::time::Instant,
) -> Option<OwnedSemaphorePermit> {
    match Arc::clone(semaphore).try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => tokio::time::timeout_at(until, Arc::clone(semaphore).acquire_owned())
            .await
            .ok()?
            .ok(),
    }
}

/// One call's turn on the lane, given back when the call ends.
#[derive(Debug)]
pub struct LaneTurn {
    _turn: OwnedSemaphorePermit,
    _share: OwnedSemaphorePermit,
}

/// Lane threads: one per core the process may use.
fn lane_threads() -> usize {
    // Asked once: on Linux the answer reads the affinity mask and cgroup quota files, and
    // every entry built at a (re)load asks for its share; the lane and the shares must
    // also agree on it.
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The turns one entry may hold at once: half of them, so that a second demoted entry
/// always finds room.
fn entry_share() -> usize {
    (lane_threads() * LANE_CALLS_PER_THREAD / 2).max(1)
}

/// Sets the calling thread's nice value (Linux: `setpriority` on id 0 sets the calling
/// thread's only).
fn lower_priority(nice: i32) {
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                target: "portcullis::plugin",
                "the plugin lane runs at normal priority (setpriority: {e}): a plugin that computes can slow other routes"
            );
        });
    }
}

/// Whether demoted calls can go to the lane; when its threads could not start, they run
/// where they are, as every call did before the lane.
pub fn lane_running() -> bool {
    match lane() {
        Ok(_) => true,
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| tracing::error!(target: "portcullis::plugin", "{e}"));
            false
        }
    }
}

/// Runs a demoted entry's work on the lane in its turn, and waits for it. A plugin call
/// (`succeeded` given) is metered by the lane thread's CPU clock: past [`LANE_ALLOWANCE`]
/// it keeps the entry demoted, and cheaper than [`HEAVY_AVERAGE`] with an output
/// `succeeded` calls a success it lets the entry be promoted. Other work (making an
/// instance) is not metered. Dropping the returned future aborts the call, as
/// dropping an inline call does. `None` only when the lane is not running (see
/// [`lane_running`]).
pub async fn on_lane<F>(
    turn: LaneTurn,
    entry: &Arc<EntryInfo>,
    call: F,
    succeeded: Option<fn(&F::Output) -> bool>,
) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let lane = lane().ok()?;
    let span = tracing::Span::current();
    let entry = Arc::clone(entry);
    let home = tokio::runtime::Handle::current();
    let call = HOME.scope(home, async move {
        let Some(succeeded) = succeeded else {
            let output = call.await;
            drop(turn);
            return output;
        };
        let mut call = std::pin::pin!(Metered::lane(&entry, call));
        let output = call.as_mut().await;
        if call.spent_ns <= HEAVY_AVERAGE.as_nanos() as u64 && succeeded(&output) {
            entry.demotion.proven(call.spent_ns);
        }
        drop(turn);
        output
    });
    let call = tracing::Instrument::instrument(call, span);
    let task = AbortOnDrop(lane.runtime.spawn(call));
    match task.wait().await {
        Ok(output) => Some(output),
        // A panic in the call is the host's bug: it goes on unwinding in the request's
        // task, as it would have had the call run there.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The lane never shuts down, and only this future's drop aborts its task: no
        // one is left to see a cancelled one.
        Err(_) => None,
    }
}

thread_local! {
    static LANE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the lane's.
pub fn on_lane_thread() -> bool {
    LANE_THREAD.get()
}

/// Drops what a demoted entry's instance leaves behind on the lane: resetting a store that
/// grew to its memory budget decommits every page it touched.
pub fn drop_on_lane<T: Send + 'static>(value: T) {
    match lane() {
        Ok(lane) => drop(lane.runtime.spawn(async move { drop(value) })),
        Err(_) => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_cpu_clock_ignores_time_off_the_cpu() {
        let cpu = Clock::ThreadCpu;
        let start = cpu.now_ns();
        std::thread::sleep(Duration::from_millis(20));
        let slept = cpu.now_ns() - start;
        assert!(slept < 10_000_000, "{slept} ns of CPU while asleep");
        let start = cpu.now_ns();
        let until = Instant::now() + Duration::from_millis(5);
        while Instant::now() < until {
            std::hint::black_box(0u64);
        }
        assert!(
            cpu.now_ns() - start >= 1_000_000,
            "a busy loop shows as CPU time"
        );
    }

    #[test]
    fn demotion_lasts_its_time_and_until_a_call_succeeds() {
        let demotion = Demotion::default();
        assert!(!demotion.is_demoted());
        assert!(demotion.demote(), "newly demoted");
        assert!(demotion.is_demoted());
        assert!(!demotion.demote(), "extended");
        let until = demotion.until.load(Ordering::Relaxed);
        demotion
            .until
            .store(until - DEMOTED_FOR.as_nanos() as u64, Ordering::Relaxed);
        assert!(demotion.is_demoted(), "time alone does not promote");
        demotion.proven(1_000);
        assert!(!demotion.is_demoted(), "time up and a call succeeded");
        demotion.demote();
        demotion.proven(1_000);
        assert!(
            demotion.is_demoted(),
            "a success does not cut the time short"
        );
    }

    #[test]
    fn a_heavy_average_demotes_and_one_outlier_does_not() {
        let demotion = Demotion::default();
        let quick = 30_000;
        for _ in 0..100 {
            assert!(!demotion.observe(quick));
        }
        // A preempted call, twice in a row: clipped, it does not make the average heavy.
        assert!(!demotion.observe(50_000_000));
        assert!(!demotion.observe(50_000_000));
        // A plugin that spends 150 µs a call: heavy within a few dozen calls.
        assert!((0..60).any(|_| demotion.observe(150_000)));
    }

    #[tokio::test]
    async fn network_work_a_lane_call_asks_for_runs_at_home() {
        use super::super::jwks::KeySetSettings;
        use super::super::services::HostServices;
        let services = HostServices::new(
            Arc::new(crate::telemetry::Metrics::default()),
            KeySetSettings::default(),
        );
        let entry = Arc::new(EntryInfo::for_tests(Arc::new(services), 1 << 20));
        assert!(!on_lane_thread());
        let turn = lane_turn(&entry, Duration::from_secs(10))
            .await
            .expect("turn");
        let call = async {
            let here = on_lane_thread();
            let home = super::super::home::at_home(async { on_lane_thread() })
                .await
                .expect("home");
            (here, home)
        };
        let (here, home) = on_lane(turn, &entry, call, None).await.expect("lane");
        assert!(here, "the call runs on a lane thread");
        assert!(!home, "what it sends home runs on the caller's runtime");
    }

    #[tokio::test]
    async fn lane_threads_run_at_the_lane_priority() {
        let here = rustix::process::getpriority_process(None).expect("getpriority");
        let nice = lane()
            .expect("lane")
            .runtime
            .spawn(async { rustix::process::getpriority_process(None) })
            .await
            .expect("task")
            .expect("getpriority");
        assert_eq!(nice, (here + LANE_NICE).min(19));
        let after = rustix::process::getpriority_process(None).expect("getpriority");
        assert_eq!(after, here, "the caller's priority is left alone");
    }
}
