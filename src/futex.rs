//! The only module that calls `futex(2)`.
//!
//! Every wait here is *shared* (never `FUTEX_PRIVATE_FLAG`): the 32-bit word
//! lives in a shared mapping and the waiter and the waker may be different
//! processes. The kernel keys a shared futex by the page's identity, so the
//! same word mapped at different addresses in two processes is one futex.
//!
//! Callers follow one protocol: announce yourself (a waiter count or a bit in
//! the word) *before* calling [`wait`] with the value you last saw, and have
//! wakers call [`wake`] only when someone is announced. The kernel compares
//! the word with `expected` atomically with queueing the waiter, so a change
//! made before the sleep is never missed (no lost wake-up).
//!
//! [`wait`] returns whenever the caller may have been woken: a real wake-up, a
//! value that already differs, a signal (`EINTR`) or a spurious wake-up all
//! come back as [`WaitResult::Woken`] or [`WaitResult::Changed`]; callers
//! re-check their condition in a loop. Only an expired deadline is reported
//! separately.
//!
//! Under `--cfg loom` the syscall is replaced by a Mutex + Condvar stand-in
//! with the same contract, so the lock and ring state machines can be model
//! checked without a kernel.

use crate::loom::atomic::AtomicU32;
#[cfg(not(loom))]
use crate::loom::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken (by a wake, a signal, or spuriously): re-check the condition.
    Woken,
    /// The word did not hold `expected` when the kernel looked.
    Changed,
    /// The deadline passed.
    TimedOut,
}

#[cfg(not(loom))]
static SYSCALLS: AtomicU64 = AtomicU64::new(0);

/// How many futex system calls this process has made through this module.
///
/// Tests use it to prove that fast paths make none.
#[doc(hidden)]
pub fn syscall_count() -> u64 {
    #[cfg(not(loom))]
    return SYSCALLS.load(Ordering::Relaxed);
    #[cfg(loom)]
    0
}

/// Sleeps while `*word == expected`, until woken or `deadline` (monotonic, absolute) passes.
///
/// `futex(word, FUTEX_WAIT_BITSET, expected, abs_timeout, FUTEX_BITSET_MATCH_ANY)`
/// with a `CLOCK_MONOTONIC` absolute timeout, so a retry after a signal never
/// stretches the deadline.
#[cfg(not(loom))]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    use rustix::io::Errno;
    use rustix::thread::futex;
    use rustix::time::{ClockId, Timespec, clock_gettime};

    let abs = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WaitResult::TimedOut;
            }
            let now = clock_gettime(ClockId::Monotonic);
            let mut sec = now.tv_sec.saturating_add(left.as_secs() as i64);
            let mut nsec = now.tv_nsec + i64::from(left.subsec_nanos());
            if nsec >= 1_000_000_000 {
                nsec -= 1_000_000_000;
                sec = sec.saturating_add(1);
            }
            Some(Timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            })
        }
    };
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    let any = core::num::NonZeroU32::MAX;
    match futex::wait_bitset(word, futex::Flags::empty(), expected, abs.as_ref(), any) {
        Ok(()) => WaitResult::Woken,
        Err(Errno::AGAIN) => WaitResult::Changed,
        Err(Errno::TIMEDOUT) => WaitResult::TimedOut,
        // EINTR: a signal arrived; the caller re-checks and waits again.
        Err(_) => WaitResult::Woken,
    }
}

/// Wakes up to `n` waiters sleeping on `word`; returns how many were woken.
///
/// `futex(word, FUTEX_WAKE, n)`.
#[cfg(not(loom))]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    use rustix::thread::futex;
    SYSCALLS.fetch_add(1, Ordering::Relaxed);
    let n = n.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

/// Wakes one waiter on `word`.
#[inline]
pub fn wake_one(word: &AtomicU32) -> usize {
    wake(word, 1)
}

/// Wakes every waiter on `word`.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

#[cfg(loom)]
mod model {
    use loom::sync::{Condvar, Mutex};
    loom::lazy_static! {
        pub(super) static ref PARK: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }
}

/// Loom stand-in for `FUTEX_WAIT`: the value check and the sleep happen under
/// one mutex, as the kernel does them under its hash-bucket lock. Deadlines
/// are ignored (loom has no time); a missing wake shows up as a deadlock.
#[cfg(loom)]
pub fn wait(word: &AtomicU32, expected: u32, _deadline: Option<Instant>) -> WaitResult {
    use crate::loom::atomic::Ordering;
    let (lock, cv) = &*model::PARK;
    let guard = lock.lock().unwrap();
    if word.load(Ordering::SeqCst) != expected {
        return WaitResult::Changed;
    }
    drop(cv.wait(guard).unwrap());
    WaitResult::Woken
}

/// Loom stand-in for `FUTEX_WAKE`: wakes every sleeper (they re-check).
#[cfg(loom)]
pub fn wake(_word: &AtomicU32, n: u32) -> usize {
    let (lock, cv) = &*model::PARK;
    let _guard = lock.lock().unwrap();
    cv.notify_all();
    n as usize
}
