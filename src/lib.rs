//! # shmproc
//!
//! Python's `multiprocessing`, rebuilt in Rust on shared memory.
//!
//! Every object that processes share lives in a shared-memory [`Arena`];
//! messages are written and read in place, and waiting is done on futexes in
//! that memory. No pickling, no pipes, no server process on the hot path.
//!
//! Coming from Python? `docs/guide.md` maps every `multiprocessing` name to
//! ours and lists the safety rules (threads before fork, named segments,
//! owner death). The main types: [`Process`], [`Arena`], [`Lock`], [`RLock`],
//! [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`],
//! [`Value`], [`Array`], [`RawValue`], [`RawArray`], [`AtomicValue`], what
//! travels through channels ([`Message`]), and
//! [`Error`].
//!
//! The layers, bottom up (see `docs/ARCHITECTURE.md`):
//! `arena` (segments, header, allocator, offsets, names) → `futex` → `sync`
//! → `value` → `ring` → `channel` → `process` → `pool`.
//!
//! ```
//! use shmproc::{Arena, Offset};
//! let arena = Arena::anonymous(1 << 20)?;
//! let at: Offset<u64> = arena.alloc_value(7)?;
//! arena.publish("seven", &at)?;
//! let found: Offset<u64> = arena.lookup("seven")?;
//! assert_eq!(arena.read(found)?, 7);
//! # Ok::<(), shmproc::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::missing_safety_doc
)]

pub(crate) mod loom;

pub mod codec;

pub mod futex;

#[cfg(not(loom))]
mod sync;
/// Under loom the sync cores are exported for `tests/loom_sync.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub mod sync;

#[cfg(not(loom))]
mod arena;
#[cfg(not(loom))]
mod channel;
mod error;
// The ring cores; public (hidden) under loom for tests/loom_ring.rs.
#[cfg(not(loom))]
mod ring;
#[cfg(loom)]
#[doc(hidden)]
pub mod ring;
// The allocator's lock-free core; public (hidden) under loom for its model.
#[cfg(not(loom))]
mod freelist;
#[cfg(loom)]
#[doc(hidden)]
pub mod freelist;
#[cfg(not(loom))]
mod pool;
/// Under loom the pool's slot state machine is exported for `tests/loom_pool.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub mod pool {
    #[path = "../pool/slot.rs"]
    pub mod slot;
}
#[cfg(not(loom))]
mod process;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
mod value;

#[cfg(not(loom))]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(not(loom))]
pub use arena::{Arena, Offset, Publish, Segment};
#[cfg(not(loom))]
pub use channel::{
    Connection, Iter, JoinableQueue, Loan, Pipe, Queue, Receiver, RecvRef, Sender, SimpleQueue,
};
#[cfg(feature = "serde")]
pub use codec::Encoded;
pub use codec::Message;
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use pool::{AsyncResult, IMap, IMapUnordered, MapResult, Pool, PoolBuilder, StarFn, fork_map};
#[cfg(not(loom))]
pub use process::{
    Process, ProcessInfo, Run, active_children, cpu_count, current_process, exit, parent_process,
};
#[cfg(not(loom))]
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, LockResult, OwnerDied, RLock,
    RLockGuard, Semaphore, SemaphoreGuard, WaitStrategy,
};
#[cfg(not(loom))]
pub use value::{
    Array, ArrayGuard, AtomicInteger, AtomicValue, RawArray, RawValue, Value, ValueGuard,
};
