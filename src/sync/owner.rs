//! Who holds a lock, and whether that thread still lives.
//!
//! A lock word records the holder's thread id (tid). A tid is recycled by the
//! kernel once its thread is gone, so a holder is identified by its tid *plus*
//! its start time (field 22 of `/proc/<tid>/stat`, in clock ticks since boot):
//! a different thread that later gets the same tid has a later start time.
//!
//! The identity of the calling thread is cached in a thread-local. A forked
//! child's thread inherits that cache but is another thread, so a
//! `pthread_atfork` child handler bumps a generation counter that invalidates
//! every cached identity in the child.
//!
//! Under `--cfg loom` there is no `/proc`: identities come from a counter and
//! every owner counts as alive.

#[cfg(not(loom))]
use crate::loom::atomic::{AtomicU32, Ordering};

/// The identity a lock records for its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerId {
    /// Kernel thread id (`gettid`), never 0.
    pub tid: u32,
    /// Process id (`getpid`) of the thread.
    pub pid: u32,
    /// The thread's start time in clock ticks since boot.
    pub start: u64,
}

/// Bumped in every forked child (pthread_atfork), invalidating cached identities.
#[cfg(not(loom))]
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

#[cfg(not(loom))]
extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's identity (cached; one `/proc` read per thread).
#[cfg(not(loom))]
#[inline]
pub fn current() -> OwnerId {
    use std::cell::Cell;
    const NONE: (u32, OwnerId) = (
        u32::MAX,
        OwnerId {
            tid: 0,
            pid: 0,
            start: 0,
        },
    );
    thread_local! {
        static ME: Cell<(u32, OwnerId)> = const { Cell::new(NONE) };
    }
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    // `try_with`: during thread-local destruction the cache may be gone;
    // then the identity is computed afresh (not cached).
    let (cached_generation, id) = ME.try_with(Cell::get).unwrap_or(NONE);
    if cached_generation == generation && id.tid != 0 {
        return id;
    }
    current_slow(&ME)
}

#[cfg(not(loom))]
#[cold]
fn current_slow(cell: &'static std::thread::LocalKey<std::cell::Cell<(u32, OwnerId)>>) -> OwnerId {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only bumps an atomic (which
        // is async-signal-safe, as a handler run after fork must be).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    // Read the generation before the ids: a fork after this point bumps it
    // again in the child, so a stale cache is never accepted.
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let tid = crate::sys::gettid() as u32;
    let id = OwnerId {
        tid,
        pid: crate::sys::getpid() as u32,
        start: thread_stat(tid).map_or(0, |stat| stat.start),
    };
    let _ = cell.try_with(|c| c.set((generation, id)));
    id
}

/// What `/proc/<tid>/stat` says about a thread.
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug)]
struct ThreadStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    state: u8,
    /// Field 22: start time in clock ticks since boot.
    start: u64,
}

/// Reads `/proc/<tid>/stat`; `None` if no such thread (or it cannot be parsed).
#[cfg(not(loom))]
fn thread_stat(tid: u32) -> Option<ThreadStat> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // Field 2 (comm) is in parentheses and may itself hold ')' or spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // After the state (field 3) come fields 4..; field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some(ThreadStat { state, start })
}

/// The start time of process `pid` (its main thread's), in clock ticks since
/// boot; `None` if there is no such process. Channels stamp it next to a pid
/// so that a recycled pid is not taken for the process that used an end.
#[cfg(not(loom))]
pub fn process_start(pid: u32) -> Option<u64> {
    thread_stat(pid).map(|stat| stat.start)
}

/// Now, in the clock ticks since boot that `/proc/<tid>/stat` uses.
#[cfg(not(loom))]
pub fn ticks_now() -> u64 {
    use rustix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::Boottime);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let nanos = (now.tv_sec as u128) * 1_000_000_000 + now.tv_nsec as u128;
    (nanos * u128::from(hz) / 1_000_000_000) as u64
}

/// Under loom there is no clock: every observation is at tick 0.
#[cfg(loom)]
pub fn ticks_now() -> u64 {
    0
}

/// Decides whether the holder recorded in a lock word has died.
///
/// * `tid`: the holder's tid as the lock word names it;
/// * `stamped_start`: the start time the holder recorded next to the word,
///   if it recorded one *for this tid* (a holder that died between taking
///   the word and writing its stamp leaves none);
/// * `seen_at`: when (in [`ticks_now`] units) the waiter first saw this tid
///   in the word.
///
/// Dead when no thread has that tid, or it is a zombie (a killed process
/// stays a zombie until its parent reaps it); or when a thread has the tid
/// but is another one: its start time differs from the stamp, or, with no
/// stamp, it started after the waiter saw the tid in the word (so it cannot
/// have been the thread that took the lock).
#[cfg(not(loom))]
pub fn holder_is_dead(tid: u32, stamped_start: Option<u64>, seen_at: u64) -> bool {
    match thread_stat(tid) {
        None => true,
        Some(stat) if matches!(stat.state, b'Z' | b'X' | b'x') => true,
        Some(stat) => match stamped_start {
            Some(start) => stat.start != start,
            None => stat.start > seen_at,
        },
    }
}

/// Under loom every holder lives (no process can be killed in a model).
#[cfg(loom)]
pub fn holder_is_dead(_tid: u32, _stamped_start: Option<u64>, _seen_at: u64) -> bool {
    false
}

/// Under loom each model thread gets a small id from a counter.
#[cfg(loom)]
pub fn current() -> OwnerId {
    use crate::loom::atomic::{AtomicU32, Ordering};
    use std::cell::Cell;
    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1);
    }
    loom::thread_local! {
        static ME: Cell<u32> = Cell::new(0);
    }
    let tid = ME.with(|me| {
        if me.get() == 0 {
            me.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        me.get()
    });
    OwnerId {
        tid,
        pid: tid,
        start: 1,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn own_identity_is_alive_and_stable() {
        let me = current();
        assert_eq!(me.tid, crate::sys::gettid() as u32);
        assert_eq!(me.pid, crate::sys::getpid() as u32);
        assert!(me.start > 0);
        assert_eq!(current(), me);
        assert!(!holder_is_dead(me.tid, Some(me.start), ticks_now()));
        assert!(!holder_is_dead(me.tid, None, ticks_now()));
        // Same tid, another start time: a recycled tid, so the holder is dead.
        assert!(holder_is_dead(me.tid, Some(me.start + 1), ticks_now()));
        // No stamp, and the thread started after the waiter looked: dead.
        assert!(holder_is_dead(me.tid, None, me.start - 1));
        assert!(ticks_now() >= me.start);
    }

    #[test]
    fn another_thread_has_another_identity() {
        let me = current();
        let other = std::thread::spawn(current).join().unwrap();
        assert_ne!(other.tid, me.tid);
        assert_eq!(other.pid, me.pid);
        // That thread has exited: it is dead now.
        assert!(holder_is_dead(other.tid, Some(other.start), ticks_now()));
    }
}
