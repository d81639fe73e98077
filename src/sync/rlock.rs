//! `RawRLock` and `RLock`: a re-entrant lock.
//!
//! A [`RawLock`] plus a recursion `count` that only the holder touches. The
//! holder's tid is in the lock word, so "do I hold it?" is one load compared
//! with the cached tid: re-acquiring costs no atomic read-modify-write.
//! Taking it over from a dead holder resets the count to 1.

use super::lock::{NotOwner, OwnerDiedInfo, RawLock};
use super::{WaitStrategy, owner};
use crate::loom::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The shared core of an [`RLock`]: 32 bytes.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `lock` | a [`RawLock`] |
/// | 24 | `count` | how many times the holder acquired it (holder-only) |
/// | 28 | `reserved` | 0 |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawRLock {
    lock: RawLock,
    count: AtomicU32,
    reserved: AtomicU32,
}

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic (or a
// RawLock, which is one).
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawRLock {}

impl Default for RawRLock {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(dead_code)]
impl RawRLock {
    /// A free re-entrant lock on the heap.
    pub fn new() -> Self {
        RawRLock {
            lock: RawLock::new(),
            count: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        }
    }

    /// Frees the lock whatever bytes it held (before it is shared).
    pub fn init(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.reserved.store(0, Ordering::Relaxed);
        self.lock.init();
    }

    /// Acquires (again, if the caller holds it), waiting until `deadline`.
    ///
    /// `None`: timed out. `Some(Err(OwnerDiedInfo))`: acquired from a dead holder.
    #[inline]
    pub fn lock_until(
        &self,
        deadline: Option<Instant>,
        strategy: WaitStrategy,
    ) -> Option<Result<(), OwnerDiedInfo>> {
        if self.lock.holder_tid() == owner::current().tid {
            // Only the holder writes `count`, and we are the holder.
            let count = self.count.load(Ordering::Relaxed);
            self.count.store(count.saturating_add(1), Ordering::Relaxed);
            return Some(Ok(()));
        }
        let result = self.lock.lock_until(deadline, strategy)?;
        self.count.store(1, Ordering::Relaxed);
        Some(result)
    }

    /// Acquires if it is free or already held by the caller; no system call.
    #[inline]
    pub fn try_lock(&self) -> bool {
        if self.lock.holder_tid() == owner::current().tid {
            let count = self.count.load(Ordering::Relaxed);
            self.count.store(count.saturating_add(1), Ordering::Relaxed);
            return true;
        }
        if self.lock.try_lock() {
            self.count.store(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Releases one level; the lock is free when the count reaches 0.
    ///
    /// # Errors
    /// [`NotOwner`] if the calling thread does not hold it.
    #[inline]
    pub fn unlock(&self) -> Result<(), NotOwner> {
        if self.lock.holder_tid() != owner::current().tid {
            return Err(NotOwner);
        }
        let count = self.count.load(Ordering::Relaxed);
        if count <= 1 {
            self.count.store(0, Ordering::Relaxed);
            self.lock.unlock_held();
        } else {
            self.count.store(count - 1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many times the calling thread holds it (0 if it does not).
    pub fn depth(&self) -> u32 {
        if self.lock.holder_tid() == owner::current().tid {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// True if any thread holds it.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}

#[cfg(not(loom))]
pub use handle::{RLock, RLockGuard};

#[cfg(not(loom))]
mod handle {
    use super::RawRLock;
    use crate::arena::Arena;
    use crate::error::{Error, Result};
    use crate::sync::WaitStrategy;
    use crate::sync::lock::{LockResult, wrap};
    use crate::sync::shared::Shared;
    use std::marker::PhantomData;
    use std::sync::Arc;
    use std::time::Duration;

    /// A re-entrant lock shared between processes (Python's
    /// `multiprocessing.RLock`): the thread holding it may acquire it again;
    /// it is free once every acquire was released.
    ///
    /// A holder that dies is handled as for [`Lock`](crate::Lock): the next
    /// acquirer gets [`OwnerDied`](crate::OwnerDied).
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, RLock};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let lock = RLock::new_in(&arena)?;
    /// let outer = lock.acquire().unwrap();
    /// let inner = lock.acquire().unwrap(); // same thread: no deadlock
    /// drop(inner);
    /// drop(outer);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct RLock {
        shared: Arc<Shared<RawRLock>>,
        strategy: WaitStrategy,
    }

    impl std::fmt::Debug for RLock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RLock")
                .field("locked", &self.is_locked())
                .finish()
        }
    }

    impl RLock {
        /// A new, free re-entrant lock in the default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new() -> Result<RLock> {
            RLock::new_in(Arena::default_arena()?)
        }

        /// A new, free re-entrant lock in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`].
        pub fn new_in(arena: &Arena) -> Result<RLock> {
            Ok(RLock {
                shared: Arc::new(Shared::alloc(arena, RawRLock::init)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }

        fn raw(&self) -> &RawRLock {
            self.shared.get()
        }

        fn guard(&self) -> RLockGuard<'_> {
            RLockGuard {
                lock: self.raw(),
                _not_send: PhantomData,
            }
        }

        /// Blocks until this thread holds the lock (one more level if it
        /// already does).
        ///
        /// # Errors
        /// [`OwnerDied`](crate::OwnerDied) holding the guard if the previous
        /// holder died holding it: the lock *is* held.
        pub fn acquire(&self) -> LockResult<RLockGuard<'_>> {
            loop {
                if let Some(result) = self.raw().lock_until(None, self.strategy) {
                    return wrap(self.guard(), result);
                }
            }
        }

        /// Acquires if free or held by this thread, without waiting.
        pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
            self.raw().try_lock().then(|| self.guard())
        }

        /// Waits up to `timeout`; `None` if it timed out.
        pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockResult<RLockGuard<'_>>> {
            let deadline = crate::sync::deadline_after(timeout);
            let result = self.raw().lock_until(deadline, self.strategy)?;
            Some(wrap(self.guard(), result))
        }

        /// Releases one level held without a guard (a guard was `forget`-ed),
        /// as Python's `release()`.
        ///
        /// # Errors
        /// [`Error::NotOwner`] if this thread does not hold the lock.
        pub fn release(&self) -> Result<()> {
            self.raw().unlock().map_err(|_| {
                Error::NotOwner(
                    "RLock::release called by a thread that does not hold the lock: release it from the thread that acquired it",
                )
            })
        }

        /// How many times this thread holds the lock (0: not at all).
        pub fn depth(&self) -> u32 {
            self.raw().depth()
        }

        /// True if any thread holds it.
        pub fn is_locked(&self) -> bool {
            self.raw().is_locked()
        }

        /// How waits on this handle wait (see [`WaitStrategy`]).
        pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
            self.strategy = strategy;
        }

        /// The arena the lock lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }
    }

    impl crate::arena::Publish for RLock {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawRLock>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawRLock>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Ok(RLock {
                shared: Arc::new(Shared::attach(arena, offset)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }
    }

    /// One level of an [`RLock`]; released when dropped. Not `Send`.
    #[must_use = "the level is released as soon as the guard is dropped"]
    pub struct RLockGuard<'a> {
        lock: &'a RawRLock,
        _not_send: PhantomData<*const ()>,
    }

    impl RLockGuard<'_> {
        /// Keeps this level held without a guard; release it later with
        /// [`RLock::release`].
        pub fn forget(self) {
            std::mem::forget(self);
        }
    }

    impl std::fmt::Debug for RLockGuard<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RLockGuard").finish_non_exhaustive()
        }
    }

    impl Drop for RLockGuard<'_> {
        fn drop(&mut self) {
            // The guard's thread holds the lock (guards are not Send).
            let _ = self.lock.unlock();
        }
    }
}
