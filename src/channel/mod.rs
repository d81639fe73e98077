//! Channels between processes: `Pipe`/`Connection` over SPSC rings and
//! `Queue`/`JoinableQueue`/`SimpleQueue` over the MPMC ring.
//!
//! What travels is a [`Message`]: plain-old-data and strings are copied in
//! place (`Message::as_bytes`), anything else is encoded into a per-thread
//! scratch buffer first. Payloads too big for a ring frame or a queue slot
//! travel as an arena block whose offset is passed (the receiver frees it).
//! See docs/ARCHITECTURE.md, "Rings and channels".

mod pipe;
mod queue;

pub use pipe::{Connection, Loan, Pipe, Receiver, RecvRef, Sender};
pub use queue::{Iter, JoinableQueue, Queue, SimpleQueue};

use crate::codec::Message;
use crate::error::Result;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with the bytes `value` travels as: in place when the type
/// allows it, else its encoding in a reused per-thread buffer.
#[inline]
pub(crate) fn with_bytes<T: Message, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    if let Some(bytes) = value.as_bytes() {
        return f(bytes);
    }
    let mut buffer = SCRATCH.with(|s| s.take());
    buffer.clear();
    let result = value.encode(&mut buffer).and_then(|()| f(&buffer));
    if buffer.capacity() <= 1 << 20 {
        let _ = SCRATCH.try_with(|s| *s.borrow_mut() = buffer);
    }
    result
}

static CACHED_PID: AtomicU32 = AtomicU32::new(0);
static CACHED_START: AtomicU64 = AtomicU64::new(0);

/// This process's `(pid, start time)`, as channel ends stamp it.
pub(crate) fn me_process() -> (u32, u64) {
    let pid = crate::sync::owner_current().pid;
    if CACHED_PID.load(Ordering::Acquire) == pid {
        return (pid, CACHED_START.load(Ordering::Relaxed));
    }
    let start = crate::sync::process_start(pid).unwrap_or(0);
    CACHED_START.store(start, Ordering::Relaxed);
    CACHED_PID.store(pid, Ordering::Release);
    (pid, start)
}

/// True if the process (or thread) stamped as `(id, start)` is gone.
pub(crate) fn is_dead(id: u32, start: u64) -> bool {
    if id == 0 {
        return false;
    }
    if start == 0 {
        crate::sync::holder_is_dead(id, None, u64::MAX)
    } else {
        crate::sync::holder_is_dead(id, Some(start), 0)
    }
}
