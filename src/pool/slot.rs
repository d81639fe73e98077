//! The task slot state machine and the sleep/wake handshake of the pool.
//!
//! Written over the atomics facade only (no arena), so `tests/loom_pool.rs`
//! model-checks it on the heap.
//!
//! # Slot states (`state`, a `u32`)
//!
//! | state | set by | from | meaning |
//! |---|---|---|---|
//! | `FREE` | caller | a final state, after reading it | unused |
//! | `QUEUED` | caller (Release) | `FREE` | task written; in the ring |
//! | `RUNNING \| ticket << 3` | worker (CAS, Acquire) | `QUEUED` | claimed by the worker incarnation `ticket` |
//! | `DONE` / `PANICKED` / `FAILED` | that worker (CAS) | its own `RUNNING` | result (or message) written |
//! | `DIED` | manager (CAS) | `RUNNING \| ticket` of a worker it has reaped | `pid`, `signal` written |
//! | `CANCELLED` | caller after `terminate` (CAS) | `QUEUED` or `RUNNING` | no worker is left |
//!
//! The claim is the only way out of `QUEUED`, so a task runs at most once;
//! a worker's completion and the manager's death verdict are both CASes from
//! the same `RUNNING | ticket` word, so exactly one of them wins. The ticket
//! names one worker incarnation: the manager only fails the slot that the
//! incarnation it reaped claimed, never a later use of the same slot.

use crate::loom::atomic::{AtomicI32, AtomicU32, Ordering};

/// Unused.
pub const FREE: u32 = 0;
/// Queued, not yet claimed.
pub const QUEUED: u32 = 1;
/// Claimed; the worker's ticket is in the bits above [`KIND_BITS`].
pub const RUNNING: u32 = 2;
/// Finished; the result is written.
pub const DONE: u32 = 3;
/// The task panicked; the message is written.
pub const PANICKED: u32 = 4;
/// The worker died while running it; `pid` and `signal` are written.
pub const DIED: u32 = 5;
/// The pool was terminated before the task finished.
pub const CANCELLED: u32 = 6;
/// The task could not run (bad argument bytes, result too large); message written.
pub const FAILED: u32 = 7;

/// Bits of the state that hold the kind; the rest hold a running ticket.
pub const KIND_BITS: u32 = 3;
const KIND_MASK: u32 = (1 << KIND_BITS) - 1;
/// The largest ticket (tickets wrap within `1..=MAX_TICKET`).
pub const MAX_TICKET: u32 = u32::MAX >> KIND_BITS;

/// The kind of a state word (`QUEUED`, `RUNNING`, ...).
#[inline]
pub fn kind(state: u32) -> u32 {
    state & KIND_MASK
}

/// The state word of a slot claimed by `ticket`.
#[inline]
pub fn running(ticket: u32) -> u32 {
    (ticket << KIND_BITS) | RUNNING
}

/// True for the states a task ends in.
#[inline]
pub fn is_final(state: u32) -> bool {
    matches!(kind(state), DONE | PANICKED | DIED | CANCELLED | FAILED)
}

/// The shared state of one task slot (12 bytes, the start of a slot in shm).
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct SlotState {
    state: AtomicU32,
    /// The dead worker's pid (valid in `DIED`).
    pid: AtomicI32,
    /// The signal that killed it, 0 if it exited (valid in `DIED`).
    signal: AtomicI32,
}

impl Default for SlotState {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(dead_code)]
impl SlotState {
    /// A free slot on the heap.
    pub fn new() -> Self {
        SlotState {
            state: AtomicU32::new(FREE),
            pid: AtomicI32::new(0),
            signal: AtomicI32::new(0),
        }
    }

    /// The state word.
    #[inline]
    pub fn load(&self) -> u32 {
        // SYNC POINT: Acquire pairs with the Release (SeqCst) CAS in
        // `finish`/`fail_dead`/`cancel`: whoever sees a final state sees the
        // result bytes (or pid and signal) written before it.
        self.state.load(Ordering::Acquire)
    }

    /// Caller: publishes a task whose description was written (FREE → QUEUED).
    #[inline]
    pub fn queue(&self) {
        // SYNC POINT: Release pairs with the Acquire CAS in `claim`: the
        // claiming worker sees the task description written before this.
        self.state.store(QUEUED, Ordering::Release);
    }

    /// Worker incarnation `ticket` claims a queued task (QUEUED → RUNNING).
    /// Exactly one claimer wins.
    #[inline]
    pub fn claim(&self, ticket: u32) -> bool {
        // SYNC POINT: Acquire pairs with the Release store in `queue`.
        self.state
            .compare_exchange(
                QUEUED,
                running(ticket),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The worker that claimed it records the outcome (`DONE`, `PANICKED`
    /// or `FAILED`). False if the slot is no longer its (the manager or a
    /// terminate got there first).
    #[inline]
    pub fn finish(&self, ticket: u32, outcome: u32) -> bool {
        // SYNC POINT: Release (in SeqCst) pairs with the Acquire in `load`:
        // the result written before is visible to the reader. SeqCst: this
        // store is the "change the word" half of the handshake in `Notify`.
        self.state
            .compare_exchange(
                running(ticket),
                outcome,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Manager: the worker incarnation `ticket` was reaped; fails the task it
    /// was running with its pid and signal. False if it had finished it.
    pub fn fail_dead(&self, ticket: u32, pid: i32, signal: i32) -> bool {
        // Only the manager writes these, and only for a reaped worker's slot;
        // they are read only in DIED, published by the CAS below.
        self.pid.store(pid, Ordering::Relaxed);
        self.signal.store(signal, Ordering::Relaxed);
        // SYNC POINT: Release (in SeqCst) pairs with the Acquire in `load`.
        self.state
            .compare_exchange(running(ticket), DIED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// Caller, after terminate (no worker left): ends a task that never
    /// finished. False if it had reached a final state.
    pub fn cancel(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if !matches!(kind(state), QUEUED | RUNNING) {
                return false;
            }
            // SYNC POINT: SeqCst (Release) pairs with the Acquire in `load`.
            match self
                .state
                .compare_exchange(state, CANCELLED, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(seen) => state = seen,
            }
        }
    }

    /// The pid and signal of a `DIED` slot.
    pub fn death(&self) -> (i32, i32) {
        // Ordered by the Acquire `load` that saw DIED.
        (
            self.pid.load(Ordering::Relaxed),
            self.signal.load(Ordering::Relaxed),
        )
    }

    /// Caller: the result was read; the slot may be reused.
    pub fn release(&self) {
        // Only the caller touches a slot in a final state; the next `queue`
        // (Release) publishes this to workers.
        self.state.store(FREE, Ordering::Relaxed);
    }
}

/// A sleep/wake point: a futex word bumped on every notification that
/// someone may be sleeping on, and a count of sleepers.
///
/// Sleeper: [`prepare`](Notify::prepare) (count up, SeqCst fence, read the
/// word), check the condition, [`sleep`](Notify::sleep) on the value read,
/// [`done`](Notify::done). Notifier: change the condition (a SeqCst RMW),
/// then [`notify`](Notify::notify) (load the count, SeqCst; bump and wake
/// only if not 0). Either the notifier sees the sleeper, or the sleeper's
/// check sees the change; the kernel re-checks the word before sleeping.
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct Notify {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(dead_code)]
impl Notify {
    /// Nobody sleeps.
    pub fn new() -> Self {
        Notify {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Resets the words (before the memory is shared).
    pub fn init(&self) {
        self.seq.store(0, Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
    }

    /// Announces a sleeper; returns the word to sleep on.
    #[inline]
    pub fn prepare(&self) -> u32 {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        crate::sync::sleeper_fence();
        self.seq.load(Ordering::SeqCst)
    }

    /// Sleeps while the word is `seen`, until `deadline`.
    #[inline]
    pub fn sleep(&self, seen: u32, deadline: Option<std::time::Instant>) {
        let _ = crate::futex::wait(&self.seq, seen, deadline);
    }

    /// Withdraws the announcement of [`prepare`](Notify::prepare).
    #[inline]
    pub fn done(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes up to `n` sleepers, if any are announced (no system call otherwise).
    #[inline]
    pub fn notify(&self, n: u32) {
        crate::sync::waker_fence();
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            crate::futex::wake(&self.seq, n);
        }
    }

    /// Whether anyone is announced (a hint).
    #[inline]
    pub fn has_sleepers(&self) -> bool {
        self.sleepers.load(Ordering::Relaxed) != 0
    }
}
