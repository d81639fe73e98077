//! `RawLock` (the shared core) and `Lock` (the handle with a guard).
//!
//! # The lock word
//!
//! | `word` | meaning |
//! |---|---|
//! | `0` | free |
//! | `tid` | held by thread `tid`, nobody sleeping |
//! | `tid \| WAITERS` | held by `tid`; someone may sleep on the futex |
//! | `tid \| DEFERRED` (with or without `WAITERS`) | held by `tid`, which owes condition wake-ups at its release |
//!
//! Like the kernel's `FUTEX_TID_MASK`/`FUTEX_WAITERS`: acquiring is one CAS
//! `0 → tid` and releasing one swap to `0`; only a release that finds
//! `WAITERS` makes a system call (`FUTEX_WAKE` of one sleeper). A sleeper sets
//! `WAITERS` before sleeping on the value it set, and a woken sleeper takes
//! the lock *with* `WAITERS` (it cannot know whether others sleep), so no
//! wake-up is lost.
//!
//! `DEFERRED` is how a `Condition` avoids "hurry up and wait": a notify
//! made while holding the lock does not wake its sleeper at once (it would
//! wake only to find the lock still held and sleep again on the lock word);
//! it marks the word and leaves the wake in a list of the notifying thread's,
//! and the release that finds `DEFERRED` makes those wakes after freeing the
//! word. Only the holder sets the bit; it travels with the word until the
//! release's swap.
//!
//! # Owner death
//!
//! Next to the word the holder stamps its pid, tid and start time
//! (`owner_ids`, `owner_start`); a clean release clears the stamp before it
//! frees the word. A sleeper wakes every [`CHECK_EVERY`] (and when its own
//! deadline ends) and, if the same tid still holds the word, asks
//! [`owner::holder_is_dead`]; a dead holder's word is taken over with a CAS
//! and the new holder is told ([`OwnerDiedInfo`]). A holder that died
//! between its CAS and its stamp is recognised too (see `holder_is_dead`).

use super::owner::{self, OwnerId};
use super::{WaitStrategy, earlier, expired};
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set in the word while someone may sleep on it.
const WAITERS: u32 = 1 << 31;
/// Set by the holder when it owes condition wake-ups at its release.
const DEFERRED: u32 = 1 << 30;
/// The holder's tid (Linux tids are below 2^22).
const TID_MASK: u32 = (1 << 30) - 1;

/// How often a sleeper checks whether the holder still lives.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The previous holder of a lock died while holding it.
///
/// Returned by [`RawLock`] acquires that *did* take the lock: the caller
/// holds it now, but the data it protects may be half-written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerDiedInfo {
    /// Pid of the dead holder (its tid if it died before recording its pid).
    pub pid: i32,
}

/// Releasing a lock the calling thread does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwner;

/// A futex mutex that lives in shared memory; see the module docs.
///
/// All-zero bytes are a valid, free lock, so a zeroed block (or one embedded
/// in a zeroed struct) needs no initialisation. Every method takes `&self`:
/// the struct is shared between processes through an arena.
///
/// Layout (24 bytes, align 8):
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `word` | the lock word (table above) |
/// | 4 | `reserved` | 0 |
/// | 8 | `owner_ids` | `pid << 32 \| tid` of the stamped holder, 0 if none |
/// | 16 | `owner_start` | the stamped holder's start time (clock ticks since boot) |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawLock {
    word: AtomicU32,
    reserved: AtomicU32,
    owner_ids: AtomicU64,
    owner_start: AtomicU64,
}

#[cfg(not(loom))]
const _: () =
    assert!(core::mem::size_of::<RawLock>() == 24 && core::mem::align_of::<RawLock>() == 8);

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawLock {}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("RawLock")
            .field("holder_tid", &(word & TID_MASK))
            .field("waiters", &(word & WAITERS != 0))
            .finish()
    }
}

// Not every method is used by every layer in every build.
#[allow(dead_code)]
impl RawLock {
    /// A free lock (for the heap, e.g. under loom; in shm use [`RawLock::init`]
    /// or zeroed memory).
    pub fn new() -> Self {
        RawLock {
            word: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            owner_ids: AtomicU64::new(0),
            owner_start: AtomicU64::new(0),
        }
    }

    /// Makes the lock free, whatever bytes it held (before it is shared).
    pub fn init(&self) {
        self.owner_ids.store(0, Ordering::Relaxed);
        self.owner_start.store(0, Ordering::Relaxed);
        self.reserved.store(0, Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
    }

    /// Blocks until the calling thread holds the lock.
    ///
    /// `Err(OwnerDiedInfo)` still means *acquired*: the previous holder died
    /// holding it, so the data it guards may be inconsistent.
    #[inline]
    pub fn lock(&self) -> Result<(), OwnerDiedInfo> {
        self.lock_with(WaitStrategy::DEFAULT)
    }

    /// [`RawLock::lock`] with an explicit wait strategy.
    #[inline]
    pub fn lock_with(&self, strategy: WaitStrategy) -> Result<(), OwnerDiedInfo> {
        let me = owner::current();
        if self.try_lock_as(&me) {
            return Ok(());
        }
        loop {
            // Without a deadline the slow path only returns once acquired.
            if let Some(result) = self.lock_slow(&me, None, strategy) {
                return result;
            }
        }
    }

    /// Blocks until the lock is held or `deadline` passes (`None`: never).
    ///
    /// `None` = timed out (not acquired); `Some(Ok)` acquired;
    /// `Some(Err(OwnerDiedInfo))` acquired from a dead holder.
    #[inline]
    pub fn lock_until(
        &self,
        deadline: Option<Instant>,
        strategy: WaitStrategy,
    ) -> Option<Result<(), OwnerDiedInfo>> {
        let me = owner::current();
        if self.try_lock_as(&me) {
            return Some(Ok(()));
        }
        self.lock_slow(&me, deadline, strategy)
    }

    /// [`RawLock::lock_until`] with a relative timeout.
    #[cfg(not(loom))]
    pub fn lock_timeout(&self, timeout: Duration) -> Option<Result<(), OwnerDiedInfo>> {
        self.lock_until(super::deadline_after(timeout), WaitStrategy::DEFAULT)
    }

    /// Takes the lock if it is free; never waits, never makes a system call.
    ///
    /// A lock whose holder died stays unavailable to `try_lock`: the blocking
    /// and timed forms detect the death and take it over.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.try_lock_as(&owner::current())
    }

    #[inline]
    fn try_lock_as(&self, me: &OwnerId) -> bool {
        // SYNC POINT: Acquire pairs with the Release swap in `unlock_held`:
        // the new holder sees everything the previous one wrote.
        if self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.stamp(me);
            return true;
        }
        false
    }

    /// Records the holder next to the word (read by death checks).
    #[inline]
    fn stamp(&self, me: &OwnerId) {
        self.owner_start.store(me.start, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of `owner_ids` in
        // `holder_died`: who sees these ids sees this start time.
        self.owner_ids.store(
            (u64::from(me.pid) << 32) | u64::from(me.tid),
            Ordering::Release,
        );
    }

    /// Releases the lock; [`NotOwner`] if the calling thread does not hold it.
    #[inline]
    pub fn unlock(&self) -> Result<(), NotOwner> {
        let me = owner::current();
        if self.word.load(Ordering::Relaxed) & TID_MASK != me.tid {
            return Err(NotOwner);
        }
        self.unlock_held();
        Ok(())
    }

    /// Releases the lock, which the caller knows it holds (a guard).
    ///
    /// Not `unsafe` (nothing here can touch memory it should not), but
    /// calling it without holding the lock breaks mutual exclusion.
    #[inline]
    pub fn unlock_held(&self) {
        self.owner_ids.store(0, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire CAS of the next holder.
        let previous = self.word.swap(0, Ordering::Release);
        if previous & (WAITERS | DEFERRED) != 0 {
            self.unlock_slow(previous);
        }
    }

    #[cold]
    fn unlock_slow(&self, previous: u32) {
        if previous & DEFERRED != 0 {
            #[cfg(not(loom))]
            super::condition::wake_deferred();
        }
        if previous & WAITERS != 0 {
            self.wake_one();
        }
    }

    /// Marks the word so that the release runs the calling thread's deferred
    /// condition wakes; true if the calling thread holds the lock (and the
    /// mark was made), false otherwise (wake now instead).
    #[inline]
    pub(crate) fn defer_wakes_to_release(&self) -> bool {
        #[cfg(loom)]
        {
            false
        }
        #[cfg(not(loom))]
        {
            let word = self.word.load(Ordering::Relaxed);
            if word & TID_MASK != owner::current().tid {
                return false;
            }
            if word & DEFERRED == 0 {
                // Only the holder writes DEFERRED; others only add WAITERS
                // (a CAS), which the fetch_or keeps. The holder's own swap
                // at release reads it (same thread, same word).
                self.word.fetch_or(DEFERRED, Ordering::Relaxed);
            }
            true
        }
    }

    #[cold]
    fn wake_one(&self) {
        futex::wake_one(&self.word);
    }

    /// True if some thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK != 0
    }

    /// True if the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.holder_tid() == owner::current().tid
    }

    /// The tid of the holder, 0 if free (a snapshot).
    #[inline]
    pub fn holder_tid(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & TID_MASK
    }

    /// The slow path: spin, then sleep with `WAITERS` set, checking the
    /// holder's liveness every [`CHECK_EVERY`].
    #[cold]
    fn lock_slow(
        &self,
        me: &OwnerId,
        deadline: Option<Instant>,
        strategy: WaitStrategy,
    ) -> Option<Result<(), OwnerDiedInfo>> {
        let spun = strategy.spin(deadline, || {
            let word = self.word.load(Ordering::Relaxed);
            (word == 0 && self.try_lock_as(me)).then_some(())
        });
        if spun.is_some() {
            return Some(Ok(()));
        }
        // The holder we are waiting for, and when we first saw it.
        let mut watched: u32 = 0;
        let mut seen_at: u64 = 0;
        loop {
            let word = self.word.load(Ordering::Relaxed);
            let holder = word & TID_MASK;
            if holder == 0 {
                // Take it with WAITERS: others may sleep (we cannot know).
                // SYNC POINT: Acquire pairs with the Release swap in `unlock_held`.
                if self
                    .word
                    .compare_exchange(word, me.tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.stamp(me);
                    return Some(Ok(()));
                }
                continue;
            }
            if word & WAITERS == 0
                && self
                    .word
                    .compare_exchange(word, word | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if holder != watched {
                watched = holder;
                seen_at = owner::ticks_now();
            }
            let slice = Instant::now().checked_add(CHECK_EVERY);
            let result = futex::wait(&self.word, word | WAITERS, earlier(deadline, slice));
            if result == WaitResult::TimedOut {
                // The same holder for a whole slice (or to our deadline):
                // does it still live?
                if let Some(died) = self.take_over_if_dead(me, watched, seen_at) {
                    return Some(Err(died));
                }
                if expired(deadline) {
                    return None;
                }
            }
        }
    }

    /// If `holder` still holds the word and has died, takes the lock over.
    #[cold]
    fn take_over_if_dead(&self, me: &OwnerId, holder: u32, seen_at: u64) -> Option<OwnerDiedInfo> {
        let word = self.word.load(Ordering::Relaxed);
        if word & TID_MASK != holder || holder == 0 {
            return None;
        }
        // SYNC POINT: Acquire pairs with the Release store in `stamp`.
        let ids = self.owner_ids.load(Ordering::Acquire);
        let start = self.owner_start.load(Ordering::Relaxed);
        let stamped = (ids as u32 == holder).then_some(start);
        // The stamp must belong to the word we read: re-read the word.
        if self.word.load(Ordering::Acquire) != word {
            return None;
        }
        if !owner::holder_is_dead(holder, stamped, seen_at) {
            return None;
        }
        // SYNC POINT: Acquire pairs with the dead holder's last Release
        // (whatever it managed to write is visible to us).
        self.word
            .compare_exchange(word, me.tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.stamp(me);
        let pid = match stamped {
            Some(_) => (ids >> 32) as i32,
            None => holder as i32,
        };
        Some(OwnerDiedInfo { pid })
    }
}

#[cfg(not(loom))]
pub(crate) use handle::wrap;
#[cfg(not(loom))]
pub use handle::{Lock, LockGuard, LockResult, OwnerDied};

#[cfg(not(loom))]
mod handle {
    use super::{OwnerDiedInfo, RawLock};
    use crate::arena::Arena;
    use crate::error::{Error, Result};
    use crate::sync::WaitStrategy;
    use crate::sync::shared::Shared;
    use std::marker::PhantomData;
    use std::sync::Arc;
    use std::time::Duration;

    /// The result of acquiring a lock: the guard, or the guard wrapped in
    /// [`OwnerDied`] when the previous holder died holding the lock.
    ///
    /// As `std::sync::LockResult` (poisoning): both arms hold the lock.
    pub type LockResult<G> = std::result::Result<G, OwnerDied<G>>;

    /// The lock was acquired, but its previous holder died holding it.
    ///
    /// The data the lock protects may be half-written. Recover with
    /// [`OwnerDied::into_inner`] (and repair the data), or propagate it with
    /// `?` as [`Error::OwnerDied`] (which releases the lock).
    pub struct OwnerDied<G> {
        guard: G,
        pid: i32,
    }

    impl<G> OwnerDied<G> {
        pub(crate) fn new(guard: G, pid: i32) -> Self {
            OwnerDied { guard, pid }
        }

        /// The guard: the caller holds the lock.
        pub fn into_inner(self) -> G {
            self.guard
        }

        /// The guard, borrowed.
        pub fn get_ref(&self) -> &G {
            &self.guard
        }

        /// The guard, borrowed mutably.
        pub fn get_mut(&mut self) -> &mut G {
            &mut self.guard
        }

        /// Pid of the process whose thread died holding the lock.
        pub fn pid(&self) -> i32 {
            self.pid
        }
    }

    impl<G> std::fmt::Debug for OwnerDied<G> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OwnerDied")
                .field("pid", &self.pid)
                .finish_non_exhaustive()
        }
    }

    impl<G> std::fmt::Display for OwnerDied<G> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Display::fmt(&Error::OwnerDied { pid: self.pid }, f)
        }
    }

    impl<G> std::error::Error for OwnerDied<G> {}

    impl<G> From<OwnerDied<G>> for Error {
        fn from(died: OwnerDied<G>) -> Self {
            Error::OwnerDied { pid: died.pid }
        }
    }

    pub(crate) fn wrap<G>(
        guard: G,
        result: std::result::Result<(), OwnerDiedInfo>,
    ) -> LockResult<G> {
        match result {
            Ok(()) => Ok(guard),
            Err(died) => Err(OwnerDied::new(guard, died.pid)),
        }
    }

    /// A mutual-exclusion lock shared between processes (Python's
    /// `multiprocessing.Lock`).
    ///
    /// Lives in an [`Arena`]; forked children share it, and an unrelated
    /// process finds it with `arena.lookup::<Lock>(name)` after
    /// `arena.publish(name, &lock)`. Held by a *thread*: the guard releases
    /// it and cannot be sent to another thread.
    ///
    /// Uncontended `acquire` and release make no system call. If the holder
    /// dies (even by SIGKILL), the next acquirer gets the lock within about
    /// 10 ms (a waiter checks the holder's `/proc/<tid>/stat` every 10 ms),
    /// wrapped in [`OwnerDied`]; see [`Lock::acquire`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, Lock};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let lock = Lock::new_in(&arena)?;
    /// {
    ///     let _guard = lock.acquire().unwrap();
    ///     assert!(lock.try_acquire().is_none());
    /// }
    /// assert!(lock.try_acquire().is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    ///
    /// Across processes: a child holds the lock until the parent lets it go.
    /// ```
    /// use shmproc::{Event, Lock, Process};
    /// let (lock, held, go) = (Lock::new()?, Event::new()?, Event::new()?);
    /// let (child_lock, child_held, child_go) = (lock.clone(), held.clone(), go.clone());
    /// let mut child = Process::new(move || {
    ///     let _guard = child_lock.acquire().unwrap();
    ///     child_held.set();
    ///     child_go.wait(); // released when `_guard` drops
    /// });
    /// child.start()?;
    /// held.wait();
    /// assert!(lock.try_acquire().is_none(), "the child holds it");
    /// go.set();
    /// let _guard = lock.acquire()?; // waits for the child's release
    /// assert_eq!(child.join()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Lock {
        shared: Arc<Shared<RawLock>>,
        strategy: WaitStrategy,
    }

    impl std::fmt::Debug for Lock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Lock")
                .field("offset", &self.shared.offset())
                .field("state", self.raw())
                .finish()
        }
    }

    #[allow(dead_code)]
    impl Lock {
        /// A new, free lock in the process-wide default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new() -> Result<Lock> {
            Lock::new_in(Arena::default_arena()?)
        }

        /// A new, free lock in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`].
        pub fn new_in(arena: &Arena) -> Result<Lock> {
            Ok(Lock {
                shared: Arc::new(Shared::alloc(arena, RawLock::init)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }

        /// Blocks until this thread holds the lock (Python's `acquire()`).
        ///
        /// # Errors
        /// [`OwnerDied`] holding the guard if the previous holder died
        /// holding the lock: the lock *is* held.
        #[inline]
        pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
            let result = self.raw().lock_with(self.strategy);
            wrap(self.guard(), result)
        }

        /// Takes the lock if it is free, without waiting (`acquire(False)`).
        ///
        /// `None` if another thread holds it. Never makes a system call;
        /// a lock held by a dead thread is only recovered by the waiting forms.
        #[inline]
        pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
            self.raw().try_lock().then(|| self.guard())
        }

        /// Waits up to `timeout` for the lock (`acquire(timeout=t)`).
        ///
        /// `None` if it timed out; otherwise as [`Lock::acquire`].
        pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockResult<LockGuard<'_>>> {
            let deadline = crate::sync::deadline_after(timeout);
            let result = self.raw().lock_until(deadline, self.strategy)?;
            Some(wrap(self.guard(), result))
        }

        /// Releases the lock held without a guard (after
        /// [`LockGuard::forget`]), as Python's `release()`.
        ///
        /// # Errors
        /// [`Error::NotOwner`] if this thread does not hold the lock (as
        /// Python, releasing a lock you do not hold is an error).
        pub fn release(&self) -> Result<()> {
            self.raw().unlock().map_err(|_| {
                Error::NotOwner(
                    "Lock::release called by a thread that does not hold the lock: release it from the thread that acquired it",
                )
            })
        }

        /// True if some thread (of any process) holds the lock now.
        pub fn is_locked(&self) -> bool {
            self.raw().is_locked()
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

        /// The arena the lock lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }

        /// The shared core.
        #[inline]
        pub(crate) fn raw(&self) -> &RawLock {
            self.shared.get()
        }

        pub(crate) fn strategy(&self) -> WaitStrategy {
            self.strategy
        }

        #[inline]
        fn guard(&self) -> LockGuard<'_> {
            LockGuard::new(self.raw())
        }

        pub(crate) fn offset(&self) -> u64 {
            self.shared.offset()
        }

        pub(crate) fn attach_at(arena: &Arena, offset: u64) -> Result<Lock> {
            Ok(Lock {
                shared: Arc::new(Shared::attach(arena, offset)?),
                strategy: WaitStrategy::DEFAULT,
            })
        }
    }

    impl crate::arena::Publish for Lock {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<RawLock>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<RawLock>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            Lock::attach_at(arena, offset)
        }
    }

    /// Holds a [`Lock`]; releases it when dropped.
    ///
    /// Not `Send`: the lock is held by the thread that acquired it.
    #[must_use = "the lock is released as soon as the guard is dropped"]
    pub struct LockGuard<'a> {
        lock: &'a RawLock,
        _not_send: PhantomData<*const ()>,
    }

    #[allow(dead_code)]
    impl<'a> LockGuard<'a> {
        pub(crate) fn new(lock: &'a RawLock) -> Self {
            LockGuard {
                lock,
                _not_send: PhantomData,
            }
        }

        /// The core this guard holds (for Condition).
        pub(crate) fn raw(&self) -> &'a RawLock {
            self.lock
        }

        /// Releases the lock now (as dropping the guard does; Python's `release()`).
        pub fn release(self) {
            drop(self);
        }

        /// Keeps the lock held without a guard; release it later from this
        /// thread with [`Lock::release`].
        pub fn forget(self) {
            std::mem::forget(self);
        }
    }

    impl std::fmt::Debug for LockGuard<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LockGuard").finish_non_exhaustive()
        }
    }

    impl Drop for LockGuard<'_> {
        #[inline]
        fn drop(&mut self) {
            self.lock.unlock_held();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_free_and_lock_unlock_round_trips() {
        let lock = RawLock::new();
        assert!(!lock.is_locked());
        assert_eq!(lock.lock(), Ok(()));
        assert!(lock.is_locked());
        assert!(lock.is_held_by_current_thread());
        assert!(!lock.try_lock());
        assert_eq!(lock.unlock(), Ok(()));
        assert_eq!(lock.unlock(), Err(NotOwner));
        assert!(lock.try_lock());
        assert_eq!(lock.unlock(), Ok(()));
    }

    #[test]
    fn unlock_from_another_thread_is_refused() {
        let lock = std::sync::Arc::new(RawLock::new());
        lock.lock().unwrap();
        let other = lock.clone();
        let refused = std::thread::spawn(move || other.unlock()).join().unwrap();
        assert_eq!(refused, Err(NotOwner));
        assert!(lock.is_locked());
        lock.unlock().unwrap();
    }

    #[test]
    fn timed_lock_times_out_then_succeeds() {
        let lock = std::sync::Arc::new(RawLock::new());
        lock.lock().unwrap();
        let other = lock.clone();
        let timed_out =
            std::thread::spawn(move || other.lock_timeout(Duration::from_millis(30)).is_none())
                .join()
                .unwrap();
        assert!(timed_out);
        let other = lock.clone();
        let waiter = std::thread::spawn(move || {
            let got = other.lock_timeout(Duration::from_secs(10));
            other.unlock().unwrap();
            got
        });
        std::thread::sleep(Duration::from_millis(20));
        lock.unlock().unwrap();
        assert_eq!(waiter.join().unwrap(), Some(Ok(())));
    }

    #[test]
    fn holder_thread_exit_is_detected() {
        let lock = std::sync::Arc::new(RawLock::new());
        let other = lock.clone();
        let (tid, pid) = std::thread::spawn(move || {
            other.lock().unwrap();
            let me = owner::current();
            (me.tid, me.pid)
            // exits holding the lock
        })
        .join()
        .unwrap();
        assert_eq!(lock.word.load(Ordering::Relaxed) & TID_MASK, tid);
        let died = lock.lock();
        assert_eq!(died, Err(OwnerDiedInfo { pid: pid as i32 }));
        assert!(lock.is_held_by_current_thread());
        lock.unlock().unwrap();
    }

    #[test]
    fn holder_that_died_before_stamping_is_detected() {
        let lock = std::sync::Arc::new(RawLock::new());
        let other = lock.clone();
        let tid = std::thread::spawn(move || {
            let tid = owner::current().tid;
            // Only the CAS, no stamp: as if it died right after taking the word.
            other.word.store(tid, Ordering::Relaxed);
            tid
        })
        .join()
        .unwrap();
        let died = lock.lock_timeout(Duration::from_secs(10));
        assert_eq!(died, Some(Err(OwnerDiedInfo { pid: tid as i32 })));
        lock.unlock().unwrap();
    }

    #[test]
    fn contended_counter_is_exact() {
        let lock = std::sync::Arc::new(RawLock::new());
        let counter = std::sync::Arc::new(crate::loom::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let lock = lock.clone();
                let counter = counter.clone();
                let strategy = if i % 2 == 0 {
                    WaitStrategy::Park
                } else {
                    WaitStrategy::DEFAULT
                };
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        lock.lock_with(strategy).unwrap();
                        // A non-atomic read-modify-write under the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        lock.unlock().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);
    }
}
