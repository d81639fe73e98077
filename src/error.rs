//! The one error type of shmproc.

use std::io;

/// Every way a shmproc call can fail.
///
/// The `Display` text of each variant says what happened and what to do about
/// it. No call of this crate panics on bad input or on a peer's misbehaviour;
/// it returns one of these.
///
/// # Examples
///
/// ```
/// use shmproc::{Arena, Error};
///
/// let name = format!("shmproc-doc-missing-{}", std::process::id());
/// match Arena::open(&name) {
///     Err(Error::NoSuchSegment { name: missing }) => assert!(missing.ends_with(&name)),
///     other => panic!("expected NoSuchSegment, got {other:?}"),
/// }
/// // Display says what happened and what to do.
/// let message = Arena::open(&name).unwrap_err().to_string();
/// assert!(message.contains("Arena::create"), "{message}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The C name of the call that failed (`shm_open`, `mmap`, ...).
        call: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// `Arena::open` found no segment of that name.
    #[error(
        "no shared-memory segment named {name:?}: create it first with Arena::create, or check the name (segments live in /dev/shm)"
    )]
    NoSuchSegment {
        /// The name that was looked up.
        name: String,
    },
    /// A segment of that name already exists.
    #[error(
        "a shared-memory segment named {name:?} already exists: pick another name, or attach to it with Arena::open (a stale one can be removed from /dev/shm)"
    )]
    SegmentExists {
        /// The name that was asked for.
        name: String,
    },
    /// The segment exists but this user may not open it.
    #[error(
        "permission denied opening shared-memory segment {name:?}: it was created by another user (segments are mode 0600)"
    )]
    PermissionDenied {
        /// The segment's name.
        name: String,
    },
    /// The segment does not start with shmproc's header.
    #[error(
        "{name:?} is not a shmproc segment (bad magic number): it was created by another program, or overwritten"
    )]
    NotShmproc {
        /// The segment's name.
        name: String,
    },
    /// The segment is smaller than its header says, or than a header.
    #[error(
        "shared-memory segment {name:?} is truncated: its header says {expected} bytes but it has {actual}; it was cut short or is still being created"
    )]
    Truncated {
        /// The segment's name.
        name: String,
        /// Bytes the header claims (or the minimum for a header).
        expected: u64,
        /// Bytes the segment has.
        actual: u64,
    },
    /// The segment was made by a newer shmproc.
    #[error(
        "shared-memory segment {name:?} has layout version {found}, this build of shmproc understands up to {supported}: upgrade shmproc in this program"
    )]
    NewerLayout {
        /// The segment's name.
        name: String,
        /// The version found in the header.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Shared state failed a consistency check (a peer scribbled on it, or it is not what it claims).
    #[error(
        "corrupt shared state ({what}): a process wrote outside shmproc's API into the arena; the arena cannot be trusted any more"
    )]
    Corrupt {
        /// What was found inconsistent.
        what: String,
    },
    /// The arena has no free block large enough.
    #[error(
        "arena full: no free block of {requested} bytes ({used} of {capacity} bytes in use); create a larger arena (Arena::anonymous / Arena::create take the size)"
    )]
    ArenaFull {
        /// Bytes asked for.
        requested: u64,
        /// Bytes in use when the request failed.
        used: u64,
        /// Bytes the arena can hand out in all.
        capacity: u64,
    },
    /// An argument was out of range or otherwise unusable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An offset does not lie inside the arena, or is misaligned for its type.
    #[error(
        "offset {offset:#x} (+{len} bytes) lies outside the arena of {arena_len} bytes or is misaligned for its type (align {align})"
    )]
    OutOfBounds {
        /// The offset.
        offset: u64,
        /// Bytes needed at it.
        len: u64,
        /// The alignment required.
        align: u64,
        /// The arena's size.
        arena_len: u64,
    },
    /// `lookup` found no object published under that name.
    #[error("nothing is published under {name:?} in this arena: publish it first (arena.publish)")]
    NotPublished {
        /// The name looked up.
        name: String,
    },
    /// `publish` found the name taken.
    #[error("{name:?} is already published in this arena: unpublish it or pick another name")]
    AlreadyPublished {
        /// The name.
        name: String,
    },
    /// `lookup` found an object of another type under the name.
    #[error(
        "{name:?} holds a {found}, not the {expected} asked for (type, size or alignment differ)"
    )]
    TypeMismatch {
        /// The name looked up.
        name: String,
        /// The type asked for.
        expected: &'static str,
        /// What the registry holds.
        found: String,
    },
    /// The name registry has no free slot.
    #[error(
        "the arena's name registry is full ({capacity} names): unpublish names you no longer need"
    )]
    RegistryFull {
        /// Slots in the registry.
        capacity: usize,
    },
    /// A bounded wait ran out.
    #[error("timed out")]
    Timeout,
    /// A non-blocking put found no room.
    #[error("the queue is full")]
    Full,
    /// A non-blocking get found nothing.
    #[error("the queue is empty")]
    Empty,
    /// The channel was closed (and, for receivers, drained).
    #[error("the channel is closed")]
    Closed,
    /// The process at the other end died without closing.
    #[error("the peer process (pid {pid}) died without closing the channel")]
    PeerDied {
        /// The dead peer's pid.
        pid: i32,
    },
    /// The holder of a lock died while holding it; the lock was taken over.
    #[error(
        "the previous holder of the lock (pid {pid}) died while holding it: the data it protected may be half-written"
    )]
    OwnerDied {
        /// The pid of the dead holder.
        pid: i32,
    },
    /// Releasing a lock this thread does not hold, or a semaphore past its bound.
    #[error("{0}")]
    NotOwner(&'static str),
    /// A `BoundedSemaphore` was released more times than it was acquired.
    #[error("BoundedSemaphore released too many times: its value would exceed the bound {bound}")]
    SemaphoreOverflow {
        /// The semaphore's bound.
        bound: u32,
    },
    /// A barrier was aborted or broken by a timeout.
    #[error("the barrier is broken (aborted, or a party timed out): call reset() to use it again")]
    BrokenBarrier,
    /// A message is larger than the channel can ever hold.
    #[error(
        "message of {len} bytes is larger than this channel can ever hold ({max} bytes): create it with a larger capacity"
    )]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The largest message the channel takes.
        max: usize,
    },
    /// Encoding or decoding a message failed.
    #[error("could not encode or decode a message: {0}")]
    Codec(String),
    /// Forking would be unsound here.
    #[error(
        "refusing to fork: this process runs {threads} threads, and a forked child of a threaded process may deadlock on a lock another thread held (malloc, stdout). Start processes before spawning threads, or opt in with the unsafe Process::allow_threads"
    )]
    ThreadedFork {
        /// Threads the process runs.
        threads: usize,
    },
    /// `start` was called twice on one `Process`.
    #[error("a process can be started only once")]
    AlreadyStarted,
    /// A call needs a started process.
    #[error("the process has not been started: call start() first")]
    NotStarted,
    /// A task submitted to a pool panicked.
    #[error("the task panicked: {0}")]
    TaskPanicked(String),
    /// The worker running a task was killed.
    #[error(
        "the worker process {pid} running this task died (signal {signal}); the pool replaced it"
    )]
    WorkerDied {
        /// The dead worker's pid.
        pid: i32,
        /// The signal that killed it (0 if it exited).
        signal: i32,
    },
    /// The pool was closed or terminated.
    #[error("the pool is closed: no new tasks are accepted")]
    PoolClosed,
    /// `Pool::join` called before `close` or `terminate`.
    #[error("Pool::join needs close() or terminate() first (as in Python)")]
    PoolRunning,
}

/// `Result` with shmproc's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Os`] for a failed call named as in C.
    pub(crate) fn os(call: &'static str, errno: impl Into<io::Error>) -> Self {
        Error::Os {
            call,
            source: errno.into(),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Self {
        Error::os("system call", errno)
    }
}
