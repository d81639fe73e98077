//! `RawEvent` and `Event`: a flag that processes wait on.
//!
//! # The word
//!
//! `word = generation << 1 | flag`. `set` turns the flag on *and* bumps the
//! generation, `clear` turns it off. A waiter remembers the word it saw with
//! the flag off and sleeps on exactly that value; it returns `true` as soon
//! as the flag is on *or* the generation moved, so a `set` followed at once
//! by a `clear` still wakes everyone who was waiting (as Python's `Event`,
//! which notifies its waiters on `set`).
//!
//! `waiters` counts sleepers; a `set` calls `FUTEX_WAKE` only if it is not 0.
//! Waiter: `waiters += 1` then load `word`; setter: change `word` then load
//! `waiters` (both SeqCst): at least one of the two sees the other, and the
//! kernel re-checks the word before sleeping, so no wake-up is lost.
//! `is_set`, a `set` of a set event and a `set` with no sleeper make no
//! system call.

use super::WaitStrategy;
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const FLAG: u32 = 1;

/// The shared core of an [`Event`]: 8 bytes, all-zero = clear.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `word` | `generation << 1 \| flag` (futex word) |
/// | 4 | `waiters` | sleepers (a hint for `set`) |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawEvent {
    word: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawEvent {}

impl Default for RawEvent {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(dead_code)]
impl RawEvent {
    /// A clear event on the heap.
    pub fn new() -> Self {
        RawEvent {
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Clears the event whatever bytes it held (before it is shared).
    pub fn init(&self) {
        self.waiters.store(0, Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
    }

    /// True if the flag is set. One load; no system call.
    #[inline]
    pub fn is_set(&self) -> bool {
        // SYNC POINT: Acquire pairs with the SeqCst CAS in `set`: whoever
        // sees the flag sees what the setter wrote before `set`.
        self.word.load(Ordering::Acquire) & FLAG != 0
    }

    /// Sets the flag and wakes every waiter (no system call if none sleeps).
    #[inline]
    pub fn set(&self) {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & FLAG != 0 {
                // Already set: whoever waits has been (or will be) told.
                return;
            }
            let next = (word & !FLAG).wrapping_add(2) | FLAG;
            match self
                .word
                .compare_exchange_weak(word, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        // SYNC POINT: SeqCst (+ waker_fence) pairs with the `waiters`
        // increment and sleeper_fence in `wait_slow`.
        super::waker_fence();
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake_all();
        }
    }

    #[cold]
    fn wake_all(&self) {
        futex::wake_all(&self.word);
    }

    /// Clears the flag (waiters keep waiting).
    #[inline]
    pub fn clear(&self) {
        self.word.fetch_and(!FLAG, Ordering::Release);
    }

    /// Waits until the flag is set or `deadline` passes; returns the flag
    /// (`true`, or `false` on time-out), as Python's `Event.wait`.
    #[inline]
    pub fn wait_until(&self, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        let seen = self.word.load(Ordering::Acquire);
        if seen & FLAG != 0 {
            return true;
        }
        self.wait_slow(seen, deadline, strategy)
    }

    #[cold]
    fn wait_slow(&self, seen: u32, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        let moved = |word: u32| word & FLAG != 0 || word >> 1 != seen >> 1;
        let spun = strategy.spin(|| moved(self.word.load(Ordering::Acquire)).then_some(()));
        if spun.is_some() {
            return true;
        }
        // SYNC POINT: SeqCst pairs with the SeqCst load of `waiters` in `set`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        super::sleeper_fence();
        let mut expected = self.word.load(Ordering::SeqCst);
        let result = loop {
            if moved(expected) {
                break true;
            }
            if futex::wait(&self.word, expected, deadline) == WaitResult::TimedOut {
                break moved(self.word.load(Ordering::Acquire));
            }
            expected = self.word.load(Ordering::Acquire);
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

#[cfg(not(loom))]
pub use handle::Event;

#[cfg(not(loom))]
mod handle {
    use super::RawEvent;
    use crate::arena::Arena;
    use crate::error::Result;
    use crate::sync::WaitStrategy;
    use crate::sync::shared::Shared;
    use std::sync::Arc;
    use std::time::Duration;

    /// A flag that processes set, clear and wait for (Python's
    /// `multiprocessing.Event`).
    ///
    /// `is_set`, and `set` when nobody waits, make no system call.
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, Event};
    /// use std::time::Duration;
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let event = Event::new_in(&arena)?;
    /// assert!(!event.wait_timeout(Duration::from_millis(1)));
    /// event.set();
    /// assert!(event.is_set() && event.wait_timeout(Duration::ZERO));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Event {
        shared: Arc<Shared<RawEvent>>,
        strategy: WaitStrategy,
    }

    impl std::fmt::Debug for Event {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Event")
                .field("is_set", &self.is_set())
                .finish()
        }
    }

    impl Event {
        /// A new, clear event in the process-wide default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new() -> Result<Event> {
            Event::new_in(Arena::default_arena()?)
        }

        /// A new, clear event in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`](crate::Error::ArenaFull).
        pub fn new_in(arena: &Arena) -> Result<Event> {
            Ok(Event {
                shared: Arc::new(Shared::alloc(arena, RawEvent::init)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }

        fn raw(&self) -> &RawEvent {
            self.shared.get()
        }

        /// True if the flag is set.
        #[inline]
        pub fn is_set(&self) -> bool {
            self.raw().is_set()
        }

        /// Sets the flag, waking every process waiting for it.
        #[inline]
        pub fn set(&self) {
            self.raw().set();
        }

        /// Clears the flag.
        #[inline]
        pub fn clear(&self) {
            self.raw().clear();
        }

        /// Blocks until the flag is set.
        #[inline]
        pub fn wait(&self) {
            while !self.raw().wait_until(None, self.strategy) {}
        }

        /// Blocks until the flag is set or `timeout` passes; returns the
        /// flag (`false`: timed out), as Python's `wait(timeout)`.
        #[inline]
        pub fn wait_timeout(&self, timeout: Duration) -> bool {
            self.raw()
                .wait_until(crate::sync::deadline_after(timeout), self.strategy)
        }

        /// How waits on this handle wait (see [`WaitStrategy`]).
        pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
            self.strategy = strategy;
        }

        /// This handle with another wait strategy.
        pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
            self.strategy = strategy;
            self
        }

        /// The arena the event lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }
    }

    impl crate::arena::Publish for Event {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawEvent>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawEvent>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Ok(Event {
                shared: Arc::new(Shared::attach(arena, offset)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }
    }
}
