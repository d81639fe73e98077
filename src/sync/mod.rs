//! Synchronisation primitives that work across processes: `Lock`, `RLock`,
//! `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`, `Barrier`.
//!
//! Each primitive is two layers (the parking_lot / lock_api split):
//!
//! * a *core*: a `#[repr(C)]` struct of atomics that lives in shared memory
//!   (`RawLock`, `RawRLock`, `RawSemaphore`, `RawEvent`, `RawCondition`,
//!   `RawBarrier`) with the whole algorithm: a fast path of one atomic
//!   operation, and a `#[cold]` slow path that spins briefly and then sleeps
//!   on a futex word in that struct. Cores know nothing of arenas, so loom
//!   can model-check them on the heap (`tests/loom_sync.rs`).
//! * a *handle* (`Lock`, `Event`, ...): an arena, the offset of the core in
//!   it and a pointer resolved once, plus the guard types and the errors.
//!
//! The state tables and the safety argument are in docs/ARCHITECTURE.md,
//! section "Sync".

mod barrier;
mod condition;
mod event;
mod lock;
mod owner;
mod rlock;
mod semaphore;
#[cfg(not(loom))]
mod shared;

use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

#[allow(unused_imports)]
pub use barrier::{BarrierWait, MAX_PARTIES, RawBarrier};
#[allow(unused_imports)]
pub use condition::{RawCondition, Ticket};
#[allow(unused_imports)]
pub use event::RawEvent;
#[allow(unused_imports)] // the crate-internal API other layers (Value) use
pub use lock::{CHECK_EVERY, NotOwner, OwnerDiedInfo, RawLock};
#[allow(unused_imports)]
pub use owner::OwnerId;
/// For the channel layer: identities and liveness of the processes using an end.
#[cfg(not(loom))]
pub(crate) use owner::{current as owner_current, holder_is_dead, process_start};
#[allow(unused_imports)]
pub use rlock::RawRLock;
#[allow(unused_imports)]
pub use semaphore::{Overflow, RawSemaphore};

#[cfg(not(loom))]
pub use barrier::Barrier;
#[cfg(not(loom))]
pub use condition::Condition;
#[cfg(not(loom))]
pub use event::Event;
#[cfg(not(loom))]
pub use lock::{Lock, LockGuard, LockResult, OwnerDied};
#[cfg(not(loom))]
pub use rlock::{RLock, RLockGuard};
#[cfg(not(loom))]
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

/// How a waiting call waits: sleep at once, or spin a little first.
///
/// Sleeping (a futex wait) and being woken costs tens of microseconds per
/// hand-off on a small VM; when the other process answers quickly, spinning
/// on the shared word for a few microseconds turns a hand-off into a cache
/// line transfer. Spinning burns the CPU for as long as it lasts, so it is
/// bounded; every wait sleeps once its spin budget is spent.
///
/// Set per handle (`lock.set_wait_strategy(..)`); the default is
/// [`WaitStrategy::DEFAULT`].
///
/// # Examples
///
/// ```
/// use shmproc::{Event, WaitStrategy};
/// use std::time::Duration;
///
/// // An event whose waiters sleep at once (no spinning): for waits that are
/// // long compared with a futex wake-up.
/// let event = Event::new()?.with_wait_strategy(WaitStrategy::Park);
/// assert!(!event.wait_timeout(Duration::from_millis(1)));
/// event.set();
/// assert!(event.wait_timeout(Duration::from_millis(1)));
/// assert_eq!(WaitStrategy::default(), WaitStrategy::DEFAULT);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Never sleep: re-check until the condition is met or the deadline
    /// passes. The lowest latency there is, for as long as a CPU can be
    /// given over to waiting (one per waiting process); after the first
    /// couple of microseconds each look also yields the CPU (`sched_yield`),
    /// so a spinner does not starve the process it waits for.
    Spin,
    /// Sleep on the futex as soon as the condition is not met.
    Park,
    /// Re-check the condition for up to this long, then sleep.
    SpinThenPark(Duration),
}

impl WaitStrategy {
    /// Spin for up to 20 µs, then sleep: about the cost of one sleeping
    /// hand-off, so spinning never costs more than twice the best case.
    pub const DEFAULT: WaitStrategy = WaitStrategy::SpinThenPark(Duration::from_micros(20));

    /// Calls `ready` until it returns `Some`, the spin budget is spent or
    /// `deadline` passes (a zero timeout does not spin).
    #[inline]
    pub(crate) fn spin<T>(
        self,
        deadline: Option<std::time::Instant>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let budget = match self {
            WaitStrategy::Park => return None,
            WaitStrategy::SpinThenPark(budget) => budget,
            WaitStrategy::Spin => Duration::MAX,
        };
        #[cfg(loom)]
        {
            // Time does not exist in a model: one look is as good as a spin,
            // and keeps the explored state space small.
            let _ = (budget, deadline);
            ready()
        }
        #[cfg(not(loom))]
        {
            let start = Instant::now();
            let budget = match deadline {
                Some(deadline) => budget.min(deadline.saturating_duration_since(start)),
                None => budget,
            };
            if budget.is_zero() {
                return None;
            }
            let mut rounds = 0u32;
            loop {
                for _ in 0..16 {
                    if let Some(value) = ready() {
                        return Some(value);
                    }
                    crate::loom::spin_loop();
                }
                let spent = start.elapsed();
                if spent >= budget {
                    return None;
                }
                // After the first couple of microseconds, yield between
                // looks: on a busy machine the process we wait for may need
                // this very CPU to make progress (sched_yield, not a futex call).
                rounds += 1;
                if rounds > 8 && spent >= Duration::from_micros(2) {
                    crate::loom::yield_now();
                }
            }
        }
    }
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::DEFAULT
    }
}

/// The waker's half of a store-then-load handshake with a sleeper.
///
/// Wakers (`Event::set`, `Semaphore::release`) change the futex word with a
/// SeqCst read-modify-write and then load the waiter count with SeqCst;
/// sleepers raise the count, issue a SeqCst fence and load the word. In the
/// C11 model the SeqCst accesses and the fence fall in one total order, so
/// either the waker sees the sleeper or the sleeper sees the new word (and
/// the kernel re-checks the word before sleeping). Loom models SeqCst
/// *accesses* only as AcqRel (it supports SeqCst *fences*), so under loom
/// the waker issues the fence too; in real builds it costs nothing here
/// (on x86 the locked RMW already is a full barrier).
#[inline(always)]
pub(crate) fn waker_fence() {
    #[cfg(loom)]
    crate::loom::atomic::fence(crate::loom::atomic::Ordering::SeqCst);
}

/// The sleeper's half of the handshake described at [`waker_fence`].
#[inline(always)]
pub(crate) fn sleeper_fence() {
    crate::loom::atomic::fence(crate::loom::atomic::Ordering::SeqCst);
}

/// The deadline `timeout` from now; `None` (wait forever) if it overflows.
#[cfg(not(loom))]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The earlier of two optional deadlines (`None` = never).
pub(crate) fn earlier(
    a: Option<std::time::Instant>,
    b: Option<std::time::Instant>,
) -> Option<std::time::Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// True once `deadline` has passed (never for `None`).
pub(crate) fn expired(deadline: Option<std::time::Instant>) -> bool {
    deadline.is_some_and(|d| std::time::Instant::now() >= d)
}
