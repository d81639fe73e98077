//! `RawSemaphore`, `Semaphore` and `BoundedSemaphore`.
//!
//! `count` is the semaphore's value and the futex word; `waiters` counts
//! sleepers. Acquire = CAS `count → count - 1` while `count > 0`; release =
//! add to `count` (a CAS that checks `bound`), then `FUTEX_WAKE` as many as
//! were released only if `waiters != 0`. A sleeper raises `waiters` before
//! its last look at `count` and sleeps on `count == 0` (both SeqCst against
//! the releaser's add-then-load), so no release is missed.

use super::WaitStrategy;
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The shared core of a semaphore: 12 bytes.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `count` | the value (futex word) |
/// | 4 | `waiters` | sleepers (a hint for `release`) |
/// | 8 | `bound` | the largest value a release may reach (`u32::MAX`: none) |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawSemaphore {
    count: AtomicU32,
    waiters: AtomicU32,
    bound: AtomicU32,
}

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawSemaphore {}

/// A release would take the value past the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// The bound.
    pub bound: u32,
}

#[allow(dead_code)]
impl RawSemaphore {
    /// A semaphore with value `value` and the largest value `bound`.
    pub fn new(value: u32, bound: u32) -> Self {
        RawSemaphore {
            count: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(bound),
        }
    }

    /// Sets every field (before the semaphore is shared).
    pub fn init(&self, value: u32, bound: u32) {
        self.waiters.store(0, Ordering::Relaxed);
        self.bound.store(bound, Ordering::Relaxed);
        self.count.store(value, Ordering::Release);
    }

    /// The current value (a snapshot).
    pub fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bound (`u32::MAX` for an unbounded semaphore).
    pub fn bound(&self) -> u32 {
        self.bound.load(Ordering::Relaxed)
    }

    /// Takes one unit if the value is above 0; no system call.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut count = self.count.load(Ordering::Relaxed);
        while count != 0 {
            // SYNC POINT: Acquire pairs with the SeqCst add in `release`.
            match self.count.compare_exchange_weak(
                count,
                count - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
        false
    }

    /// Takes one unit, waiting until `deadline`; false if it timed out.
    #[inline]
    pub fn acquire_until(&self, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        self.try_acquire() || self.acquire_slow(deadline, strategy)
    }

    #[cold]
    fn acquire_slow(&self, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        if strategy.spin(|| self.try_acquire().then_some(())).is_some() {
            return true;
        }
        // SYNC POINT: SeqCst pairs with the SeqCst load of `waiters` in `release`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        super::sleeper_fence();
        let acquired = loop {
            if self.try_acquire() {
                break true;
            }
            if futex::wait(&self.count, 0, deadline) == WaitResult::TimedOut {
                break self.try_acquire();
            }
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        acquired
    }

    /// Adds `n` to the value and wakes up to `n` sleepers.
    ///
    /// # Errors
    /// [`Overflow`] (and nothing changes) if the value would pass the bound.
    #[inline]
    pub fn release(&self, n: u32) -> Result<(), Overflow> {
        let bound = self.bound.load(Ordering::Relaxed);
        let mut count = self.count.load(Ordering::Relaxed);
        loop {
            let next = match count.checked_add(n) {
                Some(next) if next <= bound => next,
                _ => return Err(Overflow { bound }),
            };
            // SYNC POINT: SeqCst: Release for the next acquirer's Acquire CAS,
            // and ordered before the `waiters` load below (see module docs).
            match self
                .count
                .compare_exchange_weak(count, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => count = now,
            }
        }
        super::waker_fence();
        if n != 0 && self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake(n);
        }
        Ok(())
    }

    #[cold]
    fn wake(&self, n: u32) {
        futex::wake(&self.count, n);
    }
}

#[cfg(not(loom))]
pub use handle::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(not(loom))]
mod handle {
    use super::RawSemaphore;
    use crate::arena::Arena;
    use crate::error::{Error, Result};
    use crate::sync::WaitStrategy;
    use crate::sync::shared::Shared;
    use std::sync::Arc;
    use std::time::Duration;

    /// A counting semaphore shared between processes (Python's
    /// `multiprocessing.Semaphore`).
    ///
    /// `acquire` takes one unit, waiting while the value is 0, and returns a
    /// guard that gives it back when dropped (`guard.forget()` keeps it
    /// taken; `release()` gives a unit back explicitly, as Python allows).
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, Semaphore};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let slots = Semaphore::new_in(&arena, 2)?;
    /// let a = slots.acquire();
    /// let _b = slots.acquire();
    /// assert!(slots.try_acquire().is_none());
    /// drop(a);
    /// assert_eq!(slots.value(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Semaphore {
        shared: Arc<Shared<RawSemaphore>>,
        strategy: WaitStrategy,
    }

    impl std::fmt::Debug for Semaphore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Semaphore")
                .field("value", &self.value())
                .field("bound", &self.raw().bound())
                .finish()
        }
    }

    impl Semaphore {
        /// A semaphore with initial value `value`, in the default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new(value: u32) -> Result<Semaphore> {
            Semaphore::new_in(Arena::default_arena()?, value)
        }

        /// A semaphore with initial value `value`, in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`].
        pub fn new_in(arena: &Arena, value: u32) -> Result<Semaphore> {
            Semaphore::with_bound(arena, value, u32::MAX)
        }

        fn with_bound(arena: &Arena, value: u32, bound: u32) -> Result<Semaphore> {
            Ok(Semaphore {
                shared: Arc::new(Shared::alloc(arena, |raw: &RawSemaphore| {
                    raw.init(value, bound)
                })?),
                strategy: WaitStrategy::DEFAULT,
            })
        }

        fn raw(&self) -> &RawSemaphore {
            self.shared.get()
        }

        /// Takes one unit, waiting while the value is 0.
        #[inline]
        pub fn acquire(&self) -> SemaphoreGuard<'_> {
            while !self.raw().acquire_until(None, self.strategy) {}
            SemaphoreGuard { semaphore: self }
        }

        /// Takes one unit if the value is above 0 (`acquire(False)`).
        #[inline]
        pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
            self.raw()
                .try_acquire()
                .then(|| SemaphoreGuard { semaphore: self })
        }

        /// Takes one unit, waiting up to `timeout`; `None` if it timed out.
        pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
            let deadline = crate::sync::deadline_after(timeout);
            self.raw()
                .acquire_until(deadline, self.strategy)
                .then(|| SemaphoreGuard { semaphore: self })
        }

        /// Gives back one unit (Python's `release()`), waking a waiter.
        ///
        /// # Errors
        /// [`Error::SemaphoreOverflow`] for a [`BoundedSemaphore`] at its
        /// bound, or a plain one at `u32::MAX`.
        pub fn release(&self) -> Result<()> {
            self.release_n(1)
        }

        /// Gives back `n` units at once (Python's `release(n)`).
        ///
        /// # Errors
        /// As [`Semaphore::release`]; nothing is released then.
        pub fn release_n(&self, n: u32) -> Result<()> {
            self.raw()
                .release(n)
                .map_err(|e| Error::SemaphoreOverflow { bound: e.bound })
        }

        /// The current value (a snapshot; Python's `get_value()`).
        pub fn value(&self) -> u32 {
            self.raw().value()
        }

        /// How waits on this handle wait (see [`WaitStrategy`]).
        pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
            self.strategy = strategy;
        }

        /// The arena the semaphore lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }

        fn attach_at(arena: &Arena, offset: u64) -> Result<Semaphore> {
            Ok(Semaphore {
                shared: Arc::new(Shared::attach(arena, offset)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }
    }

    /// One unit of a [`Semaphore`]; given back when dropped.
    #[must_use = "the unit is given back as soon as the guard is dropped"]
    pub struct SemaphoreGuard<'a> {
        semaphore: &'a Semaphore,
    }

    impl SemaphoreGuard<'_> {
        /// Keeps the unit taken (it is not given back on drop).
        pub fn forget(self) {
            std::mem::forget(self);
        }
    }

    impl std::fmt::Debug for SemaphoreGuard<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
        }
    }

    impl Drop for SemaphoreGuard<'_> {
        fn drop(&mut self) {
            // Cannot overflow: this unit was taken, and a bounded semaphore
            // overflows only if someone released units they never took.
            let _ = self.semaphore.raw().release(1);
        }
    }

    /// A semaphore whose value may never exceed its initial value (Python's
    /// `multiprocessing.BoundedSemaphore`): a `release` past it is
    /// [`Error::SemaphoreOverflow`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, BoundedSemaphore, Error};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let sem = BoundedSemaphore::new_in(&arena, 1)?;
    /// assert!(matches!(sem.release(), Err(Error::SemaphoreOverflow { bound: 1 })));
    /// sem.acquire().forget();
    /// sem.release()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone, Debug)]
    pub struct BoundedSemaphore {
        inner: Semaphore,
    }

    impl BoundedSemaphore {
        /// A bounded semaphore with value and bound `value`, in the default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new(value: u32) -> Result<BoundedSemaphore> {
            BoundedSemaphore::new_in(Arena::default_arena()?, value)
        }

        /// A bounded semaphore with value and bound `value`, in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`].
        pub fn new_in(arena: &Arena, value: u32) -> Result<BoundedSemaphore> {
            Ok(BoundedSemaphore {
                inner: Semaphore::with_bound(arena, value, value)?,
            })
        }
    }

    impl std::ops::Deref for BoundedSemaphore {
        type Target = Semaphore;
        fn deref(&self) -> &Semaphore {
            &self.inner
        }
    }

    impl crate::arena::Publish for Semaphore {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawSemaphore>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawSemaphore>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Semaphore::attach_at(arena, offset)
        }
    }

    impl crate::arena::Publish for BoundedSemaphore {
        fn shared_offset(&self) -> u64 {
            self.inner.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawSemaphore>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawSemaphore>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Ok(BoundedSemaphore {
                inner: Semaphore::attach_at(arena, offset)?,
            })
        }
    }
}
