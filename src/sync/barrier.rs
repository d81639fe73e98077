//! `RawBarrier` and `Barrier`: Python's `threading.Barrier` across processes.
//!
//! # The state word
//!
//! `state = phase << 16 | count`, where `count` is how many parties are
//! inside `wait` (arrived and not yet left) and `phase` is
//!
//! | phase | meaning | next |
//! |---|---|---|
//! | `FILLING` | parties arrive; `count < parties` | last arrival → `DRAINING` |
//! | `DRAINING` | released: waiters leave with `Ok(index)` | last to leave → `FILLING` |
//! | `RESETTING` | `reset` while parties waited: they leave with `Broken` | last to leave → `FILLING` |
//! | `BROKEN` | `abort` or a time-out: every wait fails | `reset` |
//!
//! As in CPython, a new arrival waits while the barrier drains or resets, so
//! a waiter of one round can never be confused with the next round: its own
//! place in `count` holds the phase until it leaves. Every transition is one
//! CAS on `state`, the futex word; `sleepers` counts futex sleepers so a
//! transition wakes (`FUTEX_WAKE` all) only when someone sleeps.

use super::WaitStrategy;
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const COUNT_MASK: u32 = 0xffff;
const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// The most parties a barrier takes.
pub const MAX_PARTIES: u32 = COUNT_MASK;

fn phase(state: u32) -> u32 {
    (state >> 16) & 3
}
fn count(state: u32) -> u32 {
    state & COUNT_MASK
}
fn make(phase: u32, count: u32) -> u32 {
    (phase << 16) | count
}

/// How a barrier wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierWait {
    /// Released; the arrival index `0..parties` (the last arrival gets `parties - 1`).
    Passed(u32),
    /// The barrier was aborted, reset, or broken by another party's time-out.
    Broken,
    /// This party's deadline passed; the barrier is broken now.
    TimedOut,
}

/// The shared core of a [`Barrier`]: 12 bytes.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `state` | `phase << 16 \| count` (futex word) |
/// | 4 | `parties` | parties per round, 1..=65535 |
/// | 8 | `sleepers` | futex sleepers (a hint for wakers) |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawBarrier {
    state: AtomicU32,
    parties: AtomicU32,
    sleepers: AtomicU32,
}

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawBarrier {}

#[allow(dead_code)]
impl RawBarrier {
    /// A barrier for `parties` (1..=[`MAX_PARTIES`]) on the heap.
    pub fn new(parties: u32) -> Self {
        RawBarrier {
            state: AtomicU32::new(make(FILLING, 0)),
            parties: AtomicU32::new(parties.clamp(1, MAX_PARTIES)),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Sets every field (before it is shared).
    pub fn init(&self, parties: u32) {
        self.parties
            .store(parties.clamp(1, MAX_PARTIES), Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
        self.state.store(make(FILLING, 0), Ordering::Release);
    }

    /// Parties per round (a value a peer could have scribbled is clamped).
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed).clamp(1, MAX_PARTIES)
    }

    /// Parties waiting in the current round.
    pub fn n_waiting(&self) -> u32 {
        let state = self.state.load(Ordering::Relaxed);
        if phase(state) == FILLING {
            count(state)
        } else {
            0
        }
    }

    /// True if aborted or broken by a time-out (until `reset`).
    pub fn is_broken(&self) -> bool {
        phase(self.state.load(Ordering::Relaxed)) == BROKEN
    }

    fn wake_all(&self) {
        // SYNC POINT: SeqCst pairs with the SeqCst increment of `sleepers`
        // in `sleep` (the state CAS before this is AcqRel + this fence).
        crate::loom::atomic::fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.state);
        }
    }

    /// Sleeps while `state` still holds `seen`; false if the deadline passed.
    fn sleep(&self, seen: u32, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        let changed = || (self.state.load(Ordering::Acquire) != seen).then_some(());
        if strategy.spin(changed).is_some() {
            return true;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        crate::loom::atomic::fence(Ordering::SeqCst);
        let result = if self.state.load(Ordering::SeqCst) != seen {
            true
        } else {
            futex::wait(&self.state, seen, deadline) != WaitResult::TimedOut
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Moves `state` with `f` (a CAS loop); returns (old, new).
    fn update(&self, mut f: impl FnMut(u32) -> Option<u32>) -> Option<(u32, u32)> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = f(state)?;
            // SYNC POINT: AcqRel: each party's writes before `wait` are seen
            // by every party after it (the release chain through `state`).
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((state, next)),
                Err(now) => state = now,
            }
        }
    }

    /// Waits for the round to fill, until `deadline`.
    pub fn wait_until(&self, deadline: Option<Instant>, strategy: WaitStrategy) -> BarrierWait {
        let parties = self.parties();
        // Enter: wait out a draining or resetting round.
        let index = loop {
            let state = self.state.load(Ordering::Acquire);
            match phase(state) {
                BROKEN => return BarrierWait::Broken,
                DRAINING | RESETTING => {
                    if !self.sleep(state, deadline, strategy) {
                        return BarrierWait::TimedOut;
                    }
                }
                _ => {
                    let arrived = count(state);
                    if arrived >= parties {
                        // Only a scribbling peer makes this happen.
                        return BarrierWait::Broken;
                    }
                    let next = if arrived + 1 == parties {
                        make(DRAINING, arrived + 1)
                    } else {
                        make(FILLING, arrived + 1)
                    };
                    if self
                        .state
                        .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        if phase(next) == DRAINING {
                            self.wake_all();
                        }
                        break arrived;
                    }
                }
            }
        };
        // Wait for the round to end.
        let outcome = loop {
            let state = self.state.load(Ordering::Acquire);
            match phase(state) {
                DRAINING => break BarrierWait::Passed(index),
                RESETTING | BROKEN => break BarrierWait::Broken,
                _ => {
                    if !self.sleep(state, deadline, strategy) {
                        // Timed out: break the barrier unless it was just released.
                        let broke = self.update(|state| match phase(state) {
                            FILLING => Some(make(BROKEN, count(state))),
                            _ => None,
                        });
                        if broke.is_some() {
                            self.wake_all();
                            break BarrierWait::TimedOut;
                        }
                    }
                }
            }
        };
        self.leave();
        outcome
    }

    /// Leaves the barrier; the last to leave a drained or reset round
    /// opens the next one.
    fn leave(&self) {
        let moved = self.update(|state| {
            let left = count(state).saturating_sub(1);
            Some(match phase(state) {
                DRAINING | RESETTING if left == 0 => make(FILLING, 0),
                p => make(p, left),
            })
        });
        if let Some((old, new)) = moved {
            if phase(old) != phase(new) {
                self.wake_all();
            }
        }
    }

    /// Breaks the barrier: every current and future wait fails until `reset`.
    pub fn abort(&self) {
        self.update(|state| (phase(state) != BROKEN).then(|| make(BROKEN, count(state))));
        self.wake_all();
    }

    /// Returns the barrier to its empty state; current waiters fail with
    /// [`BarrierWait::Broken`].
    pub fn reset(&self) {
        self.update(|state| {
            let inside = count(state);
            Some(match phase(state) {
                _ if inside == 0 => make(FILLING, 0),
                FILLING | BROKEN => make(RESETTING, inside),
                // Draining or already resetting: the last to leave opens it.
                p => make(p, inside),
            })
        });
        self.wake_all();
    }
}

#[cfg(not(loom))]
pub use handle::Barrier;

#[cfg(not(loom))]
mod handle {
    use super::{BarrierWait, MAX_PARTIES, RawBarrier};
    use crate::arena::Arena;
    use crate::error::{Error, Result};
    use crate::sync::WaitStrategy;
    use crate::sync::shared::Shared;
    use std::sync::Arc;
    use std::time::Duration;

    /// A barrier for a fixed number of parties, shared between processes
    /// (Python's `multiprocessing.Barrier`).
    ///
    /// `wait` blocks until `parties` processes (or threads) have called it,
    /// then releases them all and returns each a different index in
    /// `0..parties`. `abort`, or a party's time-out, breaks it: every wait
    /// then fails with [`Error::BrokenBarrier`] until [`Barrier::reset`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, Barrier, Error};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let solo = Barrier::new_in(&arena, 1)?;
    /// assert_eq!(solo.wait()?, 0);
    /// solo.abort();
    /// assert!(matches!(solo.wait(), Err(Error::BrokenBarrier)));
    /// solo.reset();
    /// assert_eq!(solo.wait()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Barrier {
        shared: Arc<Shared<RawBarrier>>,
        strategy: WaitStrategy,
    }

    impl std::fmt::Debug for Barrier {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Barrier")
                .field("parties", &self.parties())
                .field("n_waiting", &self.n_waiting())
                .field("broken", &self.is_broken())
                .finish()
        }
    }

    impl Barrier {
        /// A barrier for `parties` in the default arena.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] unless `1 <= parties <= 65535`; the
        /// default arena could not be created, or is full.
        pub fn new(parties: u32) -> Result<Barrier> {
            Barrier::new_in(Arena::default_arena()?, parties)
        }

        /// A barrier for `parties` in `arena`.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] unless `1 <= parties <= 65535`;
        /// [`Error::ArenaFull`].
        pub fn new_in(arena: &Arena, parties: u32) -> Result<Barrier> {
            if !(1..=MAX_PARTIES).contains(&parties) {
                return Err(Error::InvalidArgument(format!(
                    "a Barrier needs 1 to {MAX_PARTIES} parties, not {parties}"
                )));
            }
            Ok(Barrier {
                shared: Arc::new(Shared::alloc(arena, |raw: &RawBarrier| raw.init(parties))?),
                strategy: WaitStrategy::DEFAULT,
            })
        }

        fn raw(&self) -> &RawBarrier {
            self.shared.get()
        }

        /// Waits until every party arrived; returns this party's index
        /// (`0..parties`, the last arrival `parties - 1`).
        ///
        /// # Errors
        /// [`Error::BrokenBarrier`] if the barrier is or becomes broken
        /// (aborted, reset while waiting, or another party timed out).
        pub fn wait(&self) -> Result<u32> {
            self.finish(self.raw().wait_until(None, self.strategy))
        }

        /// As [`Barrier::wait`], for at most `timeout`.
        ///
        /// # Errors
        /// [`Error::Timeout`] if this party timed out, which breaks the
        /// barrier for everyone (Python's `wait(timeout)`); otherwise as
        /// [`Barrier::wait`].
        pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
            let deadline = crate::sync::deadline_after(timeout);
            self.finish(self.raw().wait_until(deadline, self.strategy))
        }

        fn finish(&self, outcome: BarrierWait) -> Result<u32> {
            match outcome {
                BarrierWait::Passed(index) => Ok(index),
                BarrierWait::Broken => Err(Error::BrokenBarrier),
                BarrierWait::TimedOut => Err(Error::Timeout),
            }
        }

        /// Breaks the barrier: current and future waits fail with
        /// [`Error::BrokenBarrier`] until [`Barrier::reset`].
        pub fn abort(&self) {
            self.raw().abort();
        }

        /// Returns the barrier to its empty state; parties waiting now fail
        /// with [`Error::BrokenBarrier`].
        pub fn reset(&self) {
            self.raw().reset();
        }

        /// Parties per round.
        pub fn parties(&self) -> u32 {
            self.raw().parties()
        }

        /// Parties waiting in the current round.
        pub fn n_waiting(&self) -> u32 {
            self.raw().n_waiting()
        }

        /// True if broken (aborted or timed out) and not reset since.
        pub fn is_broken(&self) -> bool {
            self.raw().is_broken()
        }

        /// How waits on this handle wait (see [`WaitStrategy`]).
        pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
            self.strategy = strategy;
        }

        /// The arena the barrier lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }
    }

    impl crate::arena::Publish for Barrier {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawBarrier>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawBarrier>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Ok(Barrier {
                shared: Arc::new(Shared::attach(arena, offset)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }
    }
}
