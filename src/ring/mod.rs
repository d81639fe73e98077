//! Lock-free rings in shared memory: the SPSC byte ring behind `Pipe` and
//! the bounded MPMC slot ring behind `Queue`.
//!
//! Both are *cores* in the sense of `src/sync`: `#[repr(C)]` headers of
//! facade atomics plus a data area, with the whole index algorithm and the
//! sleep/wake handshake, and nothing of arenas, so `tests/loom_ring.rs` runs
//! them on the heap. The channel handles (`src/channel`) put them in arenas.
//!
//! # Waiting
//!
//! [`wait`] is shared by both rings. It looks at the ring (`poll`) a few
//! dozen times with nothing but loads (no clock, no read-modify-write), then,
//! per [`WaitStrategy`], keeps spinning with a clock read every 16 looks, and
//! finally sleeps on a futex word. A sleeper first raises a waiter count and
//! only then looks once more; a publisher stores its index (SeqCst) and then
//! loads the count (SeqCst): of the two, at least one sees the other (the
//! store-then-load handshake of `src/sync`), so a wake-up is never lost and
//! a publisher whose peer is awake makes no system call.
//!
//! Every index, length and offset read from shared memory is validated
//! before use; a ring that fails a check gives [`Error::Corrupt`], and every
//! loop over shared state is bounded, so a scribbling peer can make calls
//! fail but never read or write outside the ring or spin forever.

// Some helpers serve only the loom models and the fuzz entry point.
#![allow(dead_code)]

pub mod mpmc;
pub mod spsc;

use crate::error::{Error, Result};
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::sync::WaitStrategy;
use std::time::{Duration, Instant};

/// How often a long wait checks whether its peer still lives.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(20);

/// Looks made with nothing but loads before a wait reads the clock.
#[cfg(not(loom))]
const FAST_LOOKS: u32 = 64;
#[cfg(loom)]
const FAST_LOOKS: u32 = 1;

/// A futex word and the count of those sleeping on it.
#[derive(Clone, Copy)]
pub struct Sleepers<'a> {
    /// Bumped by every wake; sleepers wait on the value they read.
    pub word: &'a AtomicU32,
    /// How many are (about to be) asleep on `word`.
    pub count: &'a AtomicU32,
}

impl Sleepers<'_> {
    /// The publisher's half of the handshake: call right after a SeqCst
    /// store (or RMW) that makes progress visible. No system call unless
    /// someone sleeps; `all` wakes every sleeper, else one.
    #[inline]
    pub fn wake(&self, all: bool) {
        crate::sync::waker_fence();
        // SYNC POINT: SeqCst pairs with the SeqCst `count` increment (and
        // sleeper_fence) in `park`: either we see the sleeper, or it sees
        // the index stored before this call.
        if self.count.load(Ordering::SeqCst) != 0 {
            self.wake_slow(all);
        }
    }

    #[cold]
    fn wake_slow(&self, all: bool) {
        // SYNC POINT: Release pairs with the Acquire load of `word` in `park`.
        self.word.fetch_add(1, Ordering::Release);
        if all {
            futex::wake_all(self.word);
        } else {
            futex::wake_one(self.word);
        }
    }
}

/// What a wait gave: the value `poll` produced, or `None` at the deadline.
///
/// * `poll` looks at the ring once: `Ok(Some(v))` ready, `Ok(None)` not yet,
///   `Err` ends the wait (closed, corrupt).
/// * `check` runs every [`LIVENESS_EVERY`] of waiting: a liveness check of
///   the peer (its `Err` ends the wait) and any recovery.
#[inline]
pub fn wait<T>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    sleepers: Sleepers<'_>,
    mut poll: impl FnMut() -> Result<Option<T>>,
    check: impl FnMut() -> Result<()>,
) -> Result<Option<T>> {
    if strategy != WaitStrategy::Park {
        for _ in 0..FAST_LOOKS {
            if let Some(value) = poll()? {
                return Ok(Some(value));
            }
            crate::loom::spin_loop();
        }
    }
    wait_slow(strategy, deadline, sleepers, poll, check)
}

#[cold]
#[cfg_attr(loom, allow(unused_mut, unused_variables))]
fn wait_slow<T>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    sleepers: Sleepers<'_>,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut check: impl FnMut() -> Result<()>,
) -> Result<Option<T>> {
    #[cfg(not(loom))]
    {
        match spin(strategy, deadline, &mut poll, &mut check)? {
            Spun::Ready(value) => return Ok(Some(value)),
            Spun::TimedOut => return Ok(None),
            Spun::Park => {}
        }
    }
    park(deadline, sleepers, poll, check)
}

#[cfg(not(loom))]
enum Spun<T> {
    Ready(T),
    TimedOut,
    Park,
}

/// The timed spin: 16 looks between clock reads; after ~2 µs each round
/// also yields the CPU (the process we wait for may need it).
#[cfg(not(loom))]
fn spin<T>(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    poll: &mut impl FnMut() -> Result<Option<T>>,
    check: &mut impl FnMut() -> Result<()>,
) -> Result<Spun<T>> {
    let budget = match strategy {
        WaitStrategy::Park => return Ok(Spun::Park),
        WaitStrategy::SpinThenPark(budget) => budget,
        WaitStrategy::Spin => Duration::MAX,
    };
    let start = Instant::now();
    let mut last_check = start;
    let mut rounds = 0u32;
    loop {
        for _ in 0..16 {
            if let Some(value) = poll()? {
                return Ok(Spun::Ready(value));
            }
            crate::loom::spin_loop();
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(Spun::TimedOut);
        }
        let spent = now.saturating_duration_since(start);
        if spent >= budget {
            return Ok(Spun::Park);
        }
        if now.saturating_duration_since(last_check) >= LIVENESS_EVERY {
            check()?;
            last_check = now;
        }
        rounds += 1;
        if rounds > 8 && spent >= Duration::from_micros(2) {
            crate::loom::yield_now();
        }
    }
}

/// Announce, look once more, sleep; wakes every [`LIVENESS_EVERY`] to run `check`.
fn park<T>(
    deadline: Option<Instant>,
    sleepers: Sleepers<'_>,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut check: impl FnMut() -> Result<()>,
) -> Result<Option<T>> {
    loop {
        // SYNC POINT: Acquire pairs with the Release bump in `wake_slow`.
        let seen = sleepers.word.load(Ordering::Acquire);
        // SYNC POINT: SeqCst pairs with the SeqCst load of `count` in `wake`.
        sleepers.count.fetch_add(1, Ordering::SeqCst);
        crate::sync::sleeper_fence();
        let looked = poll();
        if !matches!(looked, Ok(None)) {
            sleepers.count.fetch_sub(1, Ordering::Relaxed);
            return looked;
        }
        #[cfg(not(loom))]
        let (slice, is_deadline) = {
            let check_at = Instant::now() + LIVENESS_EVERY;
            match deadline {
                Some(d) if d <= check_at => (Some(d), true),
                _ => (Some(check_at), false),
            }
        };
        #[cfg(loom)]
        let (slice, is_deadline) = (deadline, true);
        let result = futex::wait(sleepers.word, seen, slice);
        sleepers.count.fetch_sub(1, Ordering::Relaxed);
        if result == WaitResult::TimedOut {
            if is_deadline {
                // One last look: what arrived with the deadline counts.
                return poll();
            }
            check()?;
        }
    }
}

/// A corrupt-ring error naming what failed.
#[cold]
pub(crate) fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt { what: what.into() }
}
