//! `RawCondition` and `Condition`: a condition variable over a lock.
//!
//! `seq` is the futex word: every notify that finds a registered waiter
//! bumps it. A waiter, *while holding the lock*, reads `seq`, then counts
//! itself in `waiters` (SeqCst), releases the lock and sleeps on the `seq`
//! it read. A notifier loads `waiters` (SeqCst) and, if not 0, bumps `seq`
//! and wakes: if the notifier saw the registration, the bump comes after the
//! waiter's read of `seq`, so the waiter's `FUTEX_WAIT` fails or is woken —
//! a notify sent after the waiter registered is never lost. A notify with
//! no registered waiter makes no system call.
//!
//! `notify(n)` wakes up to `n` sleepers; a waiter that had registered but
//! not yet slept also returns (a spurious wake-up, which condition waits
//! allow: `wait_while` re-checks).

use super::WaitStrategy;
use crate::futex::{self, WaitResult};
use crate::loom::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// How often a sleeping waiter looks for a notify whose wake was lost with
/// its notifier (see [`RawCondition::sleep`]).
#[cfg(not(loom))]
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// The shared core of a [`Condition`]: 8 bytes, all-zero = no waiters.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `seq` | bumped by notifies (futex word) |
/// | 4 | `waiters` | registered waiters |
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for RawCondition {}

impl Default for RawCondition {
    fn default() -> Self {
        Self::new()
    }
}

/// A registered waiter's ticket: the `seq` it saw.
#[derive(Debug)]
#[must_use = "a registered waiter must sleep (or cancel) to unregister"]
pub struct Ticket {
    seq: u32,
}

#[allow(dead_code)]
impl RawCondition {
    /// A condition with no waiters, on the heap.
    pub fn new() -> Self {
        RawCondition {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Resets every field (before it is shared).
    pub fn init(&self) {
        self.waiters.store(0, Ordering::Relaxed);
        self.seq.store(0, Ordering::Release);
    }

    /// Step 1 of a wait, called while holding the lock: registers the caller.
    #[inline]
    pub fn register(&self) -> Ticket {
        let seq = self.seq.load(Ordering::Relaxed);
        // SYNC POINT: SeqCst pairs with the SeqCst load of `waiters` in
        // `notify`: a notifier that sees us bumps `seq` after our read.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        Ticket { seq }
    }

    /// Step 2, after releasing the lock: sleeps until notified or `deadline`.
    ///
    /// Returns false if the deadline passed without a notify.
    pub fn sleep(&self, ticket: Ticket, deadline: Option<Instant>, strategy: WaitStrategy) -> bool {
        let moved = || (self.seq.load(Ordering::Acquire) != ticket.seq).then_some(());
        let mut notified = strategy.spin(deadline, moved).is_some();
        while !notified {
            // Wake up now and then to look at `seq`: a notifier that died
            // between its notify and the release that would have made its
            // deferred wake (see `wake_deferred`) bumped `seq` but never woke
            // us; we then go on to the lock, whose death check hands it over.
            #[cfg(not(loom))]
            let slice = super::earlier(deadline, Instant::now().checked_add(LOOK_EVERY));
            #[cfg(loom)]
            let slice = deadline;
            if futex::wait(&self.seq, ticket.seq, slice) == WaitResult::TimedOut {
                notified = moved().is_some();
                if slice == deadline {
                    break;
                }
                continue;
            }
            notified = moved().is_some();
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        notified
    }

    /// Announces a notify to up to `n` waiters without waking them: true if
    /// a waiter is registered, and then the caller must [`wake`](Self::wake)
    /// (now, or after releasing the lock).
    #[inline]
    pub fn bump(&self, n: u32) -> bool {
        // SYNC POINT: SeqCst pairs with the SeqCst increment in `register`.
        if n == 0 || self.waiters.load(Ordering::SeqCst) == 0 {
            return false;
        }
        // SYNC POINT: Release pairs with the Acquire load of `seq` in `sleep`.
        self.seq.fetch_add(1, Ordering::Release);
        true
    }

    /// Wakes up to `n` sleepers (after a [`bump`](Self::bump)).
    #[cold]
    pub fn wake(&self, n: u32) {
        futex::wake(&self.seq, n);
    }

    /// Wakes up to `n` waiters; no system call if none is registered.
    #[inline]
    pub fn notify(&self, n: u32) {
        // SYNC POINT: SeqCst pairs with the SeqCst increment in `register`.
        if n == 0 || self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.notify_slow(n);
    }

    #[cold]
    fn notify_slow(&self, n: u32) {
        // SYNC POINT: Release pairs with the Acquire load of `seq` in `sleep`.
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake(&self.seq, n);
    }

    /// Registered waiters (a snapshot).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}

#[cfg(not(loom))]
pub use handle::Condition;
#[cfg(not(loom))]
pub(crate) use handle::wake_deferred;

#[cfg(not(loom))]
mod handle {
    use super::RawCondition;
    use crate::arena::{Arena, ShmState};
    use crate::error::Result;
    use crate::loom::atomic::{AtomicU64, Ordering};
    use crate::sync::deadline_after;
    use crate::sync::lock::{Lock, LockGuard, LockResult, OwnerDied, wrap};
    use crate::sync::shared::Shared;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A wake-up owed at the next release of a lock this thread holds.
    struct Deferred {
        /// Keeps the condition (and its mapping) alive until the wake.
        shared: Arc<Shared<ConditionState>>,
        n: u32,
    }

    std::thread_local! {
        static DEFERRED: std::cell::RefCell<Vec<Deferred>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// How many wakes this thread owes (for tests).
    #[cfg(test)]
    pub(super) fn deferred_len() -> usize {
        DEFERRED.with(|list| list.borrow().len())
    }

    /// Queues a wake of `n` waiters of `shared` for this thread's next
    /// release of a marked lock; false if it could not (the thread is
    /// exiting), and the caller wakes now.
    fn defer(shared: &Arc<Shared<ConditionState>>, n: u32) -> bool {
        DEFERRED
            .try_with(|list| {
                list.borrow_mut().push(Deferred {
                    shared: Arc::clone(shared),
                    n,
                })
            })
            .is_ok()
    }

    /// Makes every wake this thread deferred (called by a release that found
    /// the lock word marked `DEFERRED`, after freeing the word).
    ///
    /// All of them, not only those of the lock being released: the same lock
    /// may be mapped at another address in this process, and a wake made
    /// early is only slower, never wrong.
    pub(crate) fn wake_deferred() {
        let _ = DEFERRED.try_with(|list| {
            // Take the list out so no borrow is held across the wakes (or
            // across the drops of the last handles they may hold).
            let mut due = std::mem::take(&mut *list.borrow_mut());
            for owed in due.drain(..) {
                owed.shared.get().condition.wake(owed.n);
            }
            // Give the (now empty) allocation back for the next notify.
            let mut list = list.borrow_mut();
            if list.is_empty() {
                *list = due;
            }
        });
    }

    /// A condition and the offset of its lock, as stored in the arena.
    #[repr(C)]
    #[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
    pub(crate) struct ConditionState {
        condition: RawCondition,
        lock_offset: AtomicU64,
    }

    // SAFETY: repr(C), FromBytes (derived), and every field is an atomic.
    unsafe impl ShmState for ConditionState {}

    /// A condition variable shared between processes (Python's
    /// `multiprocessing.Condition`), over a [`Lock`].
    ///
    /// `acquire` gives the lock's guard; `wait(guard)` releases the lock,
    /// sleeps until notified and re-acquires it. A `notify` sent after a
    /// waiter entered `wait` is never lost; waits may also return
    /// spuriously, so wait for a *condition* with [`Condition::wait_while`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Arena, Condition};
    /// use std::time::Duration;
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let cond = Condition::new_in(&arena)?;
    /// let guard = cond.acquire().unwrap();
    /// let (guard, notified) = cond.wait_timeout(guard, Duration::from_millis(1)).unwrap();
    /// assert!(!notified);
    /// cond.notify_all(); // nobody waits: no system call
    /// drop(guard);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Condition {
        shared: Arc<Shared<ConditionState>>,
        lock: Lock,
    }

    impl std::fmt::Debug for Condition {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Condition")
                .field("waiters", &self.raw().waiters())
                .field("lock", &self.lock)
                .finish()
        }
    }

    impl Condition {
        /// A condition with a new lock of its own, in the default arena.
        ///
        /// # Errors
        /// The default arena could not be created, or is full.
        pub fn new() -> Result<Condition> {
            Condition::new_in(Arena::default_arena()?)
        }

        /// A condition with a new lock of its own, in `arena`.
        ///
        /// # Errors
        /// [`Error::ArenaFull`](crate::Error::ArenaFull).
        pub fn new_in(arena: &Arena) -> Result<Condition> {
            Condition::with_lock(&Lock::new_in(arena)?)
        }

        /// A condition over an existing `lock` (Python's `Condition(lock)`),
        /// in the lock's arena.
        ///
        /// # Errors
        /// [`Error::ArenaFull`](crate::Error::ArenaFull).
        pub fn with_lock(lock: &Lock) -> Result<Condition> {
            let offset = lock.offset();
            let shared = Shared::alloc(lock.arena(), |state: &ConditionState| {
                state.condition.init();
                state.lock_offset.store(offset, Ordering::Relaxed);
            })?;
            Ok(Condition {
                shared: Arc::new(shared),
                lock: lock.clone(),
            })
        }

        fn raw(&self) -> &RawCondition {
            &self.shared.get().condition
        }

        /// The lock this condition waits with.
        pub fn lock(&self) -> &Lock {
            &self.lock
        }

        /// Acquires the condition's lock (as `Lock::acquire`).
        ///
        /// # Errors
        /// [`OwnerDied`] holding the guard, as [`Lock::acquire`].
        pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
            self.lock.acquire()
        }

        /// Releases the lock held by `guard`, sleeps until notified, and
        /// re-acquires it.
        ///
        /// # Errors
        /// [`OwnerDied`] holding the guard if, while this thread slept, a
        /// holder of the lock died holding it.
        pub fn wait<'a>(&self, guard: LockGuard<'a>) -> LockResult<LockGuard<'a>> {
            self.wait_until(guard, None)
                .map(|(guard, _)| guard)
                .map_err(|died| {
                    let pid = died.pid();
                    OwnerDied::new(died.into_inner().0, pid)
                })
        }

        /// As [`Condition::wait`], for at most `timeout`; the flag is
        /// `false` if it timed out (Python's `wait(timeout)` return value).
        ///
        /// # Errors
        /// As [`Condition::wait`].
        pub fn wait_timeout<'a>(
            &self,
            guard: LockGuard<'a>,
            timeout: Duration,
        ) -> LockResult<(LockGuard<'a>, bool)> {
            self.wait_until(guard, deadline_after(timeout))
        }

        fn wait_until<'a>(
            &self,
            guard: LockGuard<'a>,
            deadline: Option<Instant>,
        ) -> LockResult<(LockGuard<'a>, bool)> {
            let raw_lock = guard.raw();
            let ticket = self.raw().register();
            drop(guard);
            let notified = self.raw().sleep(ticket, deadline, self.lock.strategy());
            // Re-acquire without a deadline, as Python does.
            let result = loop {
                if let Some(result) = raw_lock.lock_until(None, self.lock.strategy()) {
                    break result;
                }
            };
            let guard = LockGuard::new(raw_lock);
            wrap((guard, notified), result)
        }

        /// Waits while `condition` holds (Python's `wait_for(not ...)`):
        /// returns with the lock held and `condition` false.
        ///
        /// # Errors
        /// As [`Condition::wait`].
        pub fn wait_while<'a, F>(
            &self,
            mut guard: LockGuard<'a>,
            mut condition: F,
        ) -> LockResult<LockGuard<'a>>
        where
            F: FnMut() -> bool,
        {
            let mut died = None;
            while condition() {
                match self.wait(guard) {
                    Ok(next) => guard = next,
                    Err(e) => {
                        died = Some(e.pid());
                        guard = e.into_inner();
                    }
                }
            }
            match died {
                None => Ok(guard),
                Some(pid) => Err(OwnerDied::new(guard, pid)),
            }
        }

        /// As [`Condition::wait_while`], for at most `timeout`; the flag is
        /// `false` if it timed out with `condition` still true.
        ///
        /// # Errors
        /// As [`Condition::wait`].
        pub fn wait_while_timeout<'a, F>(
            &self,
            mut guard: LockGuard<'a>,
            timeout: Duration,
            mut condition: F,
        ) -> LockResult<(LockGuard<'a>, bool)>
        where
            F: FnMut() -> bool,
        {
            let deadline = deadline_after(timeout);
            let mut died = None;
            let mut satisfied = true;
            while condition() {
                if crate::sync::expired(deadline) {
                    satisfied = false;
                    break;
                }
                match self.wait_until(guard, deadline) {
                    Ok((next, _)) => guard = next,
                    Err(e) => {
                        died = Some(e.pid());
                        guard = e.into_inner().0;
                    }
                }
            }
            match died {
                None => Ok((guard, satisfied)),
                Some(pid) => Err(OwnerDied::new((guard, satisfied), pid)),
            }
        }

        /// Wakes one waiter (Python's `notify()`).
        ///
        /// Made while holding the lock (as Python requires), the wake-up
        /// itself waits for the release, so the woken waiter finds the lock
        /// free instead of sleeping again on it; made without the lock, it
        /// wakes at once. No system call if nobody waits.
        #[inline]
        pub fn notify_one(&self) {
            self.notify(1);
        }

        /// Wakes up to `n` waiters (Python's `notify(n)`); see
        /// [`Condition::notify_one`].
        #[inline]
        pub fn notify(&self, n: u32) {
            if !self.raw().bump(n) {
                return;
            }
            let lock = self.lock.raw();
            if lock.defer_wakes_to_release() && defer(&self.shared, n) {
                return;
            }
            self.raw().wake(n);
        }

        /// Wakes every waiter (Python's `notify_all()`); see
        /// [`Condition::notify_one`].
        #[inline]
        pub fn notify_all(&self) {
            self.notify(u32::MAX);
        }

        /// Registered waiters (a snapshot, for tests).
        #[cfg(test)]
        pub(crate) fn raw_waiters(&self) -> u32 {
            self.raw().waiters()
        }

        /// The arena the condition lives in.
        pub fn arena(&self) -> &Arena {
            self.shared.arena()
        }
    }

    impl crate::arena::Publish for Condition {
        fn shared_offset(&self) -> u64 {
            self.shared.offset()
        }
        fn shared_size() -> u64 {
            core::mem::size_of::<ConditionState>() as u64
        }
        fn shared_align() -> u64 {
            core::mem::align_of::<ConditionState>() as u64
        }
        fn attach(arena: &Arena, offset: u64) -> Result<Self> {
            let shared = Shared::<ConditionState>::attach(arena, offset)?;
            let lock_offset = shared.get().lock_offset.load(Ordering::Relaxed);
            let lock = Lock::attach_at(arena, lock_offset)?;
            Ok(Condition {
                shared: Arc::new(shared),
                lock,
            })
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::handle::deferred_len;
    use crate::{Arena, Condition};
    use std::time::Duration;

    #[test]
    fn a_notify_under_the_lock_wakes_at_the_release() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let cond = Condition::new_in(&arena).unwrap();
        let waiter = {
            let cond = cond.clone();
            std::thread::spawn(move || {
                let guard = cond.acquire().unwrap();
                let (_guard, notified) = cond.wait_timeout(guard, Duration::from_secs(30)).unwrap();
                notified
            })
        };
        // Wait until the waiter has registered (it released the lock).
        while cond.raw_waiters() == 0 {
            std::thread::yield_now();
        }
        let guard = cond.acquire().unwrap();
        cond.notify_one();
        assert_eq!(deferred_len(), 1, "the wake waits for the release");
        drop(guard);
        assert_eq!(deferred_len(), 0, "the release made the wake");
        assert!(
            waiter.join().unwrap(),
            "the waiter was notified, not timed out"
        );
    }

    #[test]
    fn a_notify_without_the_lock_wakes_at_once() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let cond = Condition::new_in(&arena).unwrap();
        let waiter = {
            let cond = cond.clone();
            std::thread::spawn(move || {
                let guard = cond.acquire().unwrap();
                let (_guard, notified) = cond.wait_timeout(guard, Duration::from_secs(30)).unwrap();
                notified
            })
        };
        while cond.raw_waiters() == 0 {
            std::thread::yield_now();
        }
        cond.notify_one();
        assert_eq!(deferred_len(), 0);
        assert!(waiter.join().unwrap());
    }
}
