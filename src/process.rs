//! Processes: forked children with the semantics of Python's
//! `multiprocessing.Process` (the `fork` start method).
//!
//! A [`Process`] wraps a closure (or any [`Run`] type). [`Process::start`]
//! forks; the child runs the closure and leaves with `_exit`, and the parent
//! keeps a handle to join, poll, and signal the child without races against
//! pid reuse: by pid while the child is unreaped (the kernel does not reuse
//! it before we reap it, and we reap under a lock), or through a pidfd
//! opened when a wait needs one (a timeout, the pool's `poll`).
//!
//! The user-facing documentation (what the child does, fork and threads,
//! zombies) is on [`Process`], which the crate root re-exports (this module
//! is private, so rustdoc shows only what is there).

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{
    Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitIdStatus, pidfd_open, pidfd_send_signal,
};

use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicI32, Ordering};
use crate::sys::getpid;

// ---------------------------------------------------------------------------
// The Run trait
// ---------------------------------------------------------------------------

/// What a [`Process`] runs in the child: a closure, or a type of yours.
///
/// Python subclasses `Process` and overrides `run`; in Rust you implement
/// `Run` for your type and pass it to [`Process::new`]. Every `FnOnce()`
/// closure implements `Run`.
///
/// # Examples
///
/// ```
/// use shmproc::{Process, Run};
///
/// struct Clock {
///     ticks: u32,
/// }
///
/// impl Run for Clock {
///     fn run(self) {
///         for i in 0..self.ticks {
///             println!("tick {i}");
///         }
///     }
/// }
///
/// let mut p = Process::new(Clock { ticks: 2 });
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub trait Run {
    /// The body of the process; runs once, in the child.
    fn run(self);
}

impl<F: FnOnce()> Run for F {
    fn run(self) {
        self()
    }
}

// ---------------------------------------------------------------------------
// Exit status
// ---------------------------------------------------------------------------

/// How a child ended, as `waitid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// It called `_exit(code)` (0..=255).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// Someone else collected its status (SIGCHLD ignored, or a stray
    /// `waitpid(-1)`): it is gone, but how it ended is lost.
    Unknown,
}

impl ExitStatus {
    fn from_waitid(status: &WaitIdStatus) -> Self {
        if let Some(code) = status.exit_status() {
            ExitStatus::Code(code)
        } else if let Some(signal) = status.terminating_signal() {
            ExitStatus::Signal(signal)
        } else {
            // WEXITED only reports exits and deaths; anything else is not an end.
            ExitStatus::Unknown
        }
    }

    /// Python's `exitcode`: the code, or `-N` after signal N.
    pub(crate) fn exitcode(self) -> Option<i32> {
        match self {
            ExitStatus::Code(code) => Some(code),
            ExitStatus::Signal(signal) => Some(-signal),
            ExitStatus::Unknown => None,
        }
    }

    /// The signal that killed the child, if one did.
    #[allow(dead_code)] // for the pool's WorkerDied
    pub(crate) fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(signal) => Some(signal),
            _ => None,
        }
    }
}

fn status_lost(pid: i32) -> Error {
    Error::os(
        "waitid",
        io::Error::other(format!(
            "the exit status of child {pid} was collected by someone else \
             (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere in this program); \
             do not reap shmproc's children yourself"
        )),
    )
}

fn not_our_child(pid: i32, owner: i32) -> Error {
    Error::InvalidArgument(format!(
        "process {pid} is a child of process {owner}, not of this process ({}): \
         only the process that started it can join or signal it",
        getpid()
    ))
}

// ---------------------------------------------------------------------------
// Child: a forked process seen from its parent (shared with the pool)
// ---------------------------------------------------------------------------

/// A forked child, seen from the process that forked it.
///
/// Shared (`Arc`) between the [`Process`] handle, the registry behind
/// [`active_children`] and, later, the pool. All methods may be called from
/// any thread; the exit status is behind a mutex, and a blocking wait holds
/// no lock (it waits with `WNOWAIT`, or polls the pidfd, and reaps under the
/// lock afterwards).
///
/// In the forked child itself, the same (copied) `Child` describes the
/// process it is (`current_process()`); there `pid` is 0 and `pidfd` `None`,
/// as they were before the fork.
pub(crate) struct Child {
    /// Set by the parent right after the fork (0 before, and in the child's
    /// own copy). Release-stored before the lock on the registry is dropped;
    /// Acquire-loaded by readers (SYNC POINT: `fork_child`'s store).
    pid: AtomicI32,
    /// The pid of the process that forked it: only that one may reap it.
    owner: i32,
    name: Name,
    /// Python's `_identity`: (1,) for Process-1, (1, 2) for the second child
    /// of Process-1.
    identity: Identity,
    daemon: bool,
    /// Opened on first need (a wait with a deadline, or the pool's
    /// [`pidfd`](Child::pidfd)), under the status lock while the child is
    /// unreaped: its pid cannot be reused before we reap it, so the pidfd
    /// names our child. Empty until then, or if `pidfd_open` failed (a
    /// kernel older than 5.3, a seccomp filter, or no fds left); then waits
    /// and signals go by pid.
    pidfd: OnceLock<OwnedFd>,
    /// `Some` once reaped.
    status: Mutex<Option<ExitStatus>>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid())
            .field("name", &self.name())
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

/// What `waitid` waits for: the pidfd if one is open, else the pid.
fn wait_id<'a>(pidfd: Option<&'a OwnedFd>, pid: i32) -> Option<WaitId<'a>> {
    match pidfd {
        Some(fd) => Some(WaitId::PidFd(fd.as_fd())),
        None => Pid::from_raw(pid).map(WaitId::Pid),
    }
}

impl Child {
    /// The child's name (formatted on first use if it is a default one).
    pub(crate) fn name(&self) -> &str {
        self.name.get(&self.identity)
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Option<ExitStatus>> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_owner(&self) -> Result<()> {
        if self.owner == getpid() {
            Ok(())
        } else {
            Err(not_our_child(self.pid(), self.owner))
        }
    }

    /// The status if it was already collected, without a system call.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        *self.lock()
    }

    /// The pidfd, opened now if it was not yet: readable once the child has
    /// ended (the pool polls many workers' pidfds at once). `None` once the
    /// child has been reaped without one, in another process than the owner,
    /// or if `pidfd_open` failed.
    #[allow(dead_code)] // for the pool
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        if let Some(fd) = self.pidfd.get() {
            return Some(fd.as_fd());
        }
        let slot = self.lock();
        self.open_pidfd(&slot)
    }

    /// Opens the pidfd unless it is open already. `slot` is the held status
    /// lock: while it says "not reaped" nobody can reap the child (reaping
    /// takes the lock), so its pid still names it.
    fn open_pidfd<'a>(
        &'a self,
        slot: &MutexGuard<'_, Option<ExitStatus>>,
    ) -> Option<BorrowedFd<'a>> {
        if let Some(fd) = self.pidfd.get() {
            return Some(fd.as_fd());
        }
        if slot.is_some() || self.owner != getpid() {
            return None;
        }
        let pid = Pid::from_raw(self.pid())?;
        let fd = pidfd_open(pid, PidfdFlags::empty()).ok()?;
        Some(self.pidfd.get_or_init(|| fd).as_fd())
    }

    /// Collects the exit status if the child has ended (`waitid(WNOHANG)`).
    pub(crate) fn try_wait(&self) -> Result<Option<ExitStatus>> {
        let mut slot = self.lock();
        if let Some(status) = *slot {
            return Ok(Some(status));
        }
        self.check_owner()?;
        self.reap_nohang(&mut slot)
    }

    /// `try_wait` once the lock is held, the status is unset and the caller
    /// is known to be the owner.
    fn reap_nohang(
        &self,
        slot: &mut MutexGuard<'_, Option<ExitStatus>>,
    ) -> Result<Option<ExitStatus>> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        let status = loop {
            let result = match wait_id(self.pidfd.get(), self.pid()) {
                Some(id) => rustix::process::waitid(id, options),
                None => Err(Errno::CHILD),
            };
            match result {
                Ok(Some(status)) => break ExitStatus::from_waitid(&status),
                Ok(None) => return Ok(None),
                Err(Errno::INTR) => continue,
                Err(Errno::CHILD) => break ExitStatus::Unknown,
                Err(errno) => return Err(Error::os("waitid", errno)),
            }
        };
        **slot = Some(status);
        Ok(Some(status))
    }

    /// Waits until the child ends or `deadline` passes; `None` on timeout.
    pub(crate) fn wait_deadline(&self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        let slot = self.lock();
        if let Some(status) = *slot {
            return Ok(Some(status));
        }
        self.check_owner()?;
        match deadline {
            None => {
                drop(slot);
                self.wait_blocking().map(Some)
            }
            Some(deadline) => {
                let pidfd = self.open_pidfd(&slot);
                drop(slot);
                self.wait_until(deadline, pidfd)
            }
        }
    }

    /// Blocks until the child has ended, then reaps it.
    ///
    /// One blocking `waitid(WEXITED | WNOWAIT)` without the lock: it returns
    /// once the child has ended but leaves it unreaped, so while we sleep
    /// nobody else can reap it, its pid cannot be reused (a signal sent by
    /// pid still reaches it), and other threads may signal or wait too.
    /// Then `waitid(WNOHANG)` under the lock reaps it, so two waiters never
    /// both collect the status. No pidfd needed.
    fn wait_blocking(&self) -> Result<ExitStatus> {
        loop {
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
            let result = match wait_id(self.pidfd.get(), self.pid()) {
                Some(id) => rustix::process::waitid(id, options),
                None => Err(Errno::CHILD),
            };
            match result {
                // It has ended; or ECHILD: another waiter of ours reaped it
                // (the status is stored) or someone else did (lost).
                Ok(_) | Err(Errno::CHILD) => {}
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(Error::os("waitid", errno)),
            }
            let mut slot = self.lock();
            if let Some(status) = *slot {
                return Ok(status);
            }
            if let Some(status) = self.reap_nohang(&mut slot)? {
                return Ok(status);
            }
        }
    }

    /// Waits until the child ends or `deadline` passes: sleeps in `poll` on
    /// the pidfd (no lock held, no sleeping loop), then reaps with
    /// `waitid(WNOHANG)` under the lock. Without a pidfd (`pidfd_open`
    /// failed) it sleeps with a growing step between `try_wait`s.
    fn wait_until(
        &self,
        deadline: Instant,
        pidfd: Option<BorrowedFd<'_>>,
    ) -> Result<Option<ExitStatus>> {
        let mut backoff = Duration::from_micros(50);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match pidfd {
                Some(fd) => {
                    // A duration too long for a timespec waits for ever.
                    let timeout = Timespec::try_from(left).ok();
                    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                    match poll(&mut fds, timeout.as_ref()) {
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(errno) => return Err(Error::os("poll", errno)),
                    }
                }
                None => {
                    std::thread::sleep(backoff.min(left));
                    backoff = (backoff * 2).min(Duration::from_millis(10));
                }
            }
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Sends `signal` unless the child was already reaped (then does nothing).
    pub(crate) fn send_signal(&self, signal: Signal) -> Result<()> {
        // Holding the lock keeps a concurrent reap (and so pid reuse) out.
        let slot = self.lock();
        if slot.is_some() {
            return Ok(());
        }
        self.check_owner()?;
        let (call, result) = match self.pidfd.get() {
            Some(fd) => ("pidfd_send_signal", pidfd_send_signal(fd.as_fd(), signal)),
            // Without a pidfd the pid is still ours: it cannot be reused
            // before we reap it, and we hold the lock that reaping takes.
            None => match Pid::from_raw(self.pid()) {
                Some(pid) => ("kill", rustix::process::kill_process(pid, signal)),
                None => return Ok(()),
            },
        };
        match result {
            // ESRCH: it has already ended; nothing to signal.
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(errno) => Err(Error::os(call, errno)),
        }
    }
}

// ---------------------------------------------------------------------------
// Process-wide state: who am I, who is my parent, which children do I have
// ---------------------------------------------------------------------------

struct Global {
    /// The process this state describes. A forked child inherits a copy and
    /// notices the pid differs at its first call (see [`GlobalGuard::get`]).
    pid: i32,
    /// What this process is; `None` for the main process.
    me: Option<Arc<Child>>,
    /// The parent's `me` and pid, in children forked by shmproc.
    parent: Option<(Option<Arc<Child>>, i32)>,
    /// Set in children forked by shmproc: [`exit`] then `_exit`s.
    forked_by_us: bool,
    /// The last process number handed out (Process-N).
    counter: u32,
    children: Vec<Arc<Child>>,
    /// `/proc/self/stat` of `pid`, kept open to count threads with one pread.
    stat_file: Option<OwnedFd>,
    /// The child `fork_child` is forking (written before the fork). In the
    /// child's copy its pid is still 0: that is how the child recognises
    /// itself, lazily, without writing a page right after the fork. The
    /// parent stores the pid after the fork and drops this at its next call.
    forking: Option<Arc<Child>>,
}

impl Global {
    fn name(&self) -> &str {
        self.me.as_ref().map_or("MainProcess", |me| me.name())
    }

    fn identity(&self) -> &[u32] {
        self.me.as_ref().map_or(&[], |me| &me.identity)
    }

    fn daemon(&self) -> bool {
        self.me.as_ref().is_some_and(|me| me.daemon)
    }

    /// [`thread_count`](Self::thread_count), re-read for up to
    /// [`THREAD_EXIT_GRACE`] while it says more than one.
    ///
    /// A thread that `join` (or the end of `std::thread::scope`) has just
    /// waited for is still counted for a moment: the joiner is woken from the
    /// exiting thread's `CLONE_CHILD_CLEARTID` futex wake, before the kernel
    /// removes the thread from the thread group. Without the re-read a
    /// `start` right after a scope could be refused for threads that are
    /// already gone. Bounded: a process that really runs threads gets its
    /// count after the grace period.
    fn settled_thread_count(&mut self) -> Option<usize> {
        let deadline = Instant::now() + THREAD_EXIT_GRACE;
        let mut pause = Duration::from_micros(10);
        loop {
            let threads = self.thread_count()?;
            if threads <= 1 || Instant::now() >= deadline {
                return Some(threads);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// The number of threads this process runs (`num_threads` in
    /// `/proc/self/stat`), or `None` if /proc cannot tell.
    fn thread_count(&mut self) -> Option<usize> {
        use rustix::fs::{Mode, OFlags};
        if self.stat_file.is_none() {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            self.stat_file = rustix::fs::open("/proc/self/stat", flags, Mode::empty()).ok();
        }
        let file = self.stat_file.as_ref()?;
        let mut buf = [0u8; 4096];
        let mut len = 0;
        while len < buf.len() {
            // A read at offset 0 regenerates the file's text.
            match rustix::io::pread(file, &mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::INTR) => continue,
                Err(_) => return None,
            }
        }
        let text = &buf[..len];
        // The command name (field 2) is in parentheses and may hold anything;
        // the fields after its last ')' start at field 3 (state).
        let close = text.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
        // num_threads is field 20: the 18th after the parenthesis.
        rest.split_ascii_whitespace().nth(17)?.parse().ok()
    }
}

/// How long `start` keeps re-reading the thread count before it refuses with
/// [`Error::ThreadedFork`]: threads that were just joined take a moment to
/// leave the kernel's count (see `Global::settled_thread_count`).
const THREAD_EXIT_GRACE: Duration = Duration::from_millis(20);

static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

struct GlobalGuard(MutexGuard<'static, Option<Global>>);

impl GlobalGuard {
    fn get(&mut self) -> &mut Global {
        let pid = getpid();
        let state = self.0.get_or_insert_with(|| Global {
            pid,
            me: None,
            parent: None,
            forked_by_us: false,
            counter: 0,
            children: Vec::new(),
            stat_file: None,
            forking: None,
        });
        if state.pid != pid {
            // A forked copy: the parent's children, counter and
            // /proc/self/stat are not ours. Forget the children rather than
            // drop them (their pidfds stay open, unused).
            let parent_pid = std::mem::replace(&mut state.pid, pid);
            state.counter = 0;
            std::mem::forget(std::mem::take(&mut state.children));
            state.stat_file = None;
            match state.forking.take() {
                // Forked by fork_child: we are that child.
                Some(me) if me.pid() == 0 && me.owner == parent_pid => {
                    let parent_me = state.me.replace(me);
                    state.parent = Some((parent_me, parent_pid));
                    state.forked_by_us = true;
                }
                // A raw fork (not ours): keep the names, as Python does after
                // `os.fork`.
                _ => {}
            }
        } else if state.forking.as_ref().is_some_and(|child| child.pid() != 0) {
            state.forking = None;
        }
        state
    }
}

fn global() -> GlobalGuard {
    GlobalGuard(GLOBAL.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The payload [`exit`] unwinds with.
struct ExitRequest(i32);

/// Hands out the next process number and the identity that goes with it.
pub(crate) fn next_identity() -> Identity {
    let mut guard = global();
    let state = guard.get();
    state.counter = state.counter.wrapping_add(1);
    Identity::child_of(state.identity(), state.counter)
}

/// Python's `_identity`: this process's numbers and the child's own.
///
/// Inline up to [`Identity::INLINE`] numbers (processes nested that deep), so
/// handing one out allocates nothing: every heap chunk a start touches is
/// one more page fault after each fork.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    Inline {
        len: u8,
        parts: [u32; Identity::INLINE],
    },
    Heap(Vec<u32>),
}

impl Identity {
    const INLINE: usize = 4;

    /// `parent` followed by `number`.
    fn child_of(parent: &[u32], number: u32) -> Self {
        let len = parent.len();
        if len < Self::INLINE {
            let mut parts = [0; Self::INLINE];
            for (part, &n) in parts.iter_mut().zip(parent) {
                *part = n;
            }
            if let Some(slot) = parts.get_mut(len) {
                *slot = number;
            }
            Identity::Inline {
                len: len as u8 + 1,
                parts,
            }
        } else {
            let mut parts = Vec::with_capacity(len + 1);
            parts.extend_from_slice(parent);
            parts.push(number);
            Identity::Heap(parts)
        }
    }
}

impl Default for Identity {
    fn default() -> Self {
        Identity::Inline {
            len: 0,
            parts: [0; Self::INLINE],
        }
    }
}

impl std::ops::Deref for Identity {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self {
            Identity::Inline { len, parts } => parts.get(..usize::from(*len)).unwrap_or(&[]),
            Identity::Heap(parts) => parts,
        }
    }
}

/// A process's name: one the user set, or the default `prefix-1:2`, which
/// is formatted from the identity only when first asked for (so starting a
/// process allocates no name).
#[derive(Debug, Default)]
pub(crate) struct Name {
    prefix: &'static str,
    text: OnceLock<String>,
}

impl Name {
    /// The default name: `prefix` and the identity (`Process-1:2`).
    pub(crate) fn default_for(prefix: &'static str) -> Self {
        Name {
            prefix,
            text: OnceLock::new(),
        }
    }

    /// A name set by the user.
    fn custom(name: String) -> Self {
        Name {
            prefix: "",
            text: OnceLock::from(name),
        }
    }

    fn get(&self, identity: &[u32]) -> &str {
        self.text
            .get_or_init(|| identity_name(self.prefix, identity))
    }
}

/// `Process-1:2` for identity (1, 2), as Python names them.
fn identity_name(prefix: &str, identity: &[u32]) -> String {
    use std::fmt::Write as _;
    let mut name = String::with_capacity(prefix.len() + 4 * identity.len());
    name.push_str(prefix);
    for (i, number) in identity.iter().enumerate() {
        let _ = write!(name, "{}{number}", if i == 0 { '-' } else { ':' });
    }
    name
}

// ---------------------------------------------------------------------------
// Forking
// ---------------------------------------------------------------------------

/// How to fork a child (crate-internal; [`Process`] and the pool use it).
#[derive(Debug)]
pub(crate) struct ForkOptions {
    /// The child's name (its `current_process().name()`).
    pub(crate) name: Name,
    /// The child's identity (see [`next_identity`]).
    pub(crate) identity: Identity,
    /// Kill the child when this process dies.
    pub(crate) daemon: bool,
    /// Fork even if this process runs other threads (the caller vouched).
    pub(crate) allow_threads: bool,
    /// List the child in [`active_children`].
    pub(crate) register: bool,
}

/// True if glibc says this process has never started a thread
/// (`__libc_single_threaded`, glibc 2.32+, looked up with `dlsym` so other
/// C libraries simply lack it): then counting threads in /proc is skipped.
/// False means "maybe threaded": count them.
fn never_threaded() -> bool {
    static FLAG: OnceLock<usize> = OnceLock::new();
    let address = *FLAG.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only
        // looks the symbol up; a null result means it does not exist.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) as usize }
    });
    if address == 0 {
        return false;
    }
    // SAFETY: `address` is glibc's `char __libc_single_threaded`, a global
    // that lives as long as the process; glibc writes it only when starting
    // the first thread, so a volatile byte read is enough.
    unsafe { std::ptr::read_volatile(address as *const u8) != 0 }
}

/// The C library's stdout, to flush what C code buffered in it.
mod c_stdio {
    unsafe extern "C" {
        /// `FILE *stdout` (glibc and musl both export the symbol).
        pub(super) static stdout: *mut libc::FILE;
        /// Bytes buffered in `stream` (`<stdio_ext.h>`; glibc and musl).
        pub(super) fn __fpending(stream: *mut libc::FILE) -> libc::size_t;
    }

    /// Whether `stream` holds bytes not yet written.
    ///
    /// # Safety
    ///
    /// `stream` must be a valid, open `FILE` of the C library.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub(super) unsafe fn pending(stream: *mut libc::FILE) -> bool {
        // SAFETY: the caller passes a valid FILE; __fpending only reads it.
        unsafe { __fpending(stream) > 0 }
    }

    /// Whether `stream` holds bytes not yet written.
    ///
    /// Reads the byte buffer's pointers the way glibc's own `__fpending`
    /// does, rather than calling it: in a child that has just forked,
    /// `__fpending`'s code is one more page to fault in (each costs several
    /// µs on a VM), and this runs before every child's `_exit`. A stream
    /// in wide mode (rare) still asks `__fpending`, whose wide buffer is
    /// glibc-internal.
    ///
    /// # Safety
    ///
    /// `stream` must be a valid, open `FILE` of the C library.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub(super) unsafe fn pending(stream: *mut libc::FILE) -> bool {
        // SAFETY: `stream` is a valid glibc FILE (the caller's contract),
        // which starts with `GlibcFile`'s fields (its public layout); plain
        // reads of them, as __fpending's are.
        let head = unsafe { stream.cast::<GlibcFile>().read_volatile() };
        if head.mode > 0 {
            // SAFETY: `stream` is a valid FILE; __fpending only reads it.
            return unsafe { __fpending(stream) > 0 };
        }
        head.write_ptr > head.write_base
    }

    /// glibc's `FILE` up to `_mode` (`struct _IO_FILE` in the installed
    /// `<bits/types/struct_FILE.h>`). The buffer pointers are ABI: programs
    /// compiled against that header read them directly (the inline
    /// `getc_unlocked`/`putc_unlocked` bodies). `_mode` lies further on in
    /// the same public struct, whose layout glibc has kept; the offsets are
    /// asserted below for x86_64, and the unit test reads `_mode` through
    /// this mirror on the machine it runs on.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[repr(C)]
    pub(super) struct GlibcFile {
        flags: libc::c_int,
        read_ptr: *mut libc::c_char,
        read_end: *mut libc::c_char,
        read_base: *mut libc::c_char,
        write_base: *mut libc::c_char,
        write_ptr: *mut libc::c_char,
        write_end: *mut libc::c_char,
        buf_base: *mut libc::c_char,
        buf_end: *mut libc::c_char,
        save_base: *mut libc::c_char,
        backup_base: *mut libc::c_char,
        save_end: *mut libc::c_char,
        markers: *mut libc::c_void,
        chain: *mut libc::c_void,
        fileno: libc::c_int,
        flags2: libc::c_int,
        old_offset: libc::c_long,
        cur_column: libc::c_ushort,
        vtable_offset: libc::c_schar,
        shortbuf: [libc::c_char; 1],
        lock: *mut libc::c_void,
        offset: i64,
        codecvt: *mut libc::c_void,
        wide_data: *mut libc::c_void,
        freeres_list: *mut libc::c_void,
        freeres_buf: *mut libc::c_void,
        pad5: libc::size_t,
        pub(super) mode: libc::c_int,
    }

    // The offsets glibc's header gives on x86_64 (offsetof in C).
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    const _: () = {
        assert!(std::mem::offset_of!(GlibcFile, write_base) == 32);
        assert!(std::mem::offset_of!(GlibcFile, write_ptr) == 40);
        assert!(std::mem::offset_of!(GlibcFile, wide_data) == 160);
        assert!(std::mem::offset_of!(GlibcFile, mode) == 192);
    };
}

/// Flushes Rust's stdout (its stderr is unbuffered) and C's stdout if it
/// holds anything (C's stderr is unbuffered too).
fn flush_stdio() {
    let _ = io::stdout().flush();
    // SAFETY: reads the C library's `stdout` pointer, set before main runs.
    let stream = unsafe { c_stdio::stdout };
    if stream.is_null() {
        return;
    }
    // SAFETY: `stream` is the C library's valid stdout FILE; `pending` only
    // reads it (and writes nothing, which keeps copy-on-write pages shared).
    if unsafe { c_stdio::pending(stream) } {
        // SAFETY: fflush of the valid stdout FILE.
        unsafe { libc::fflush(stream) };
    }
}

/// Puts `new` in place of the `Child` in `entry` if no one else holds that
/// one (it is dropped there), and returns a handle to it; else gives `new`
/// back.
fn reuse_child(entry: &mut Arc<Child>, new: Child) -> std::result::Result<Arc<Child>, Child> {
    match Arc::get_mut(entry) {
        Some(place) => {
            *place = new;
            Ok(Arc::clone(entry))
        }
        None => Err(new),
    }
}

/// Forks a child that runs `body` and `_exit`s.
///
/// On success the parent's `body` is dropped (its captures live on only in
/// the child, as after Python's `start`) and `options`' name and identity
/// have moved into the returned [`Child`]; on an error `body` and `options`
/// are left as they were, so the caller can try again.
///
/// Every page either side writes between the fork and the child's `_exit`
/// costs a copy-on-write fault, so the parent prepares everything before the
/// fork (the `Child`, its registry entry), the child writes nothing of
/// shmproc's until it asks who it is, and after the fork the parent only
/// stores the pid.
pub(crate) fn fork_child<F: FnOnce()>(
    options: &mut ForkOptions,
    body: &mut Option<F>,
) -> Result<Arc<Child>> {
    if body.is_none() {
        return Err(Error::AlreadyStarted);
    }
    flush_stdio();
    let mut guard = global();
    let state = guard.get();
    let parent_pid = state.pid;
    if !options.allow_threads && !never_threaded() {
        if let Some(threads) = state.settled_thread_count().filter(|&n| n > 1) {
            return Err(Error::ThreadedFork { threads });
        }
    }
    let new = Child {
        pid: AtomicI32::new(0),
        owner: parent_pid,
        name: std::mem::take(&mut options.name),
        identity: std::mem::take(&mut options.identity),
        daemon: options.daemon,
        pidfd: OnceLock::new(),
        status: Mutex::new(None),
    };
    // Collect finished children (Python's `_cleanup()` in `start`), so
    // dropped daemon handles leave no zombie behind. A registered child
    // takes the place of the first reaped entry nobody else holds any more:
    // the same allocation and registry slot, so a start+join cycle frees and
    // allocates nothing there (each heap page written after a fork is a
    // page fault).
    let mut reuse = None;
    let mut index = 0;
    while let Some(entry) = state.children.get_mut(index) {
        match entry.try_wait() {
            Ok(None) => {}
            Ok(Some(_)) if options.register && reuse.is_none() && Arc::get_mut(entry).is_some() => {
                reuse = Some(index);
            }
            // Reaped (and not reusable), or not ours to wait for: drop it.
            _ => {
                state.children.remove(index);
                continue;
            }
        }
        index += 1;
    }
    let reused = match reuse.and_then(|index| state.children.get_mut(index)) {
        Some(entry) => reuse_child(entry, new),
        None => Err(new),
    };
    let mut child = match reused {
        Ok(child) => child,
        Err(new) => {
            let child = Arc::new(new);
            if options.register {
                state.children.push(Arc::clone(&child));
            }
            child
        }
    };
    state.forking = Some(Arc::clone(&child));
    // With other threads around, hold the lock across the fork so the child
    // copies a consistent state (and readers never see the pid unset);
    // alone, let it go now so the parent need not write its page afterwards.
    let guard = if options.allow_threads {
        Some(guard)
    } else {
        drop(guard);
        None
    };

    // The child only runs `child_main`, which never returns.
    // SAFETY: this process runs one thread (checked above), so no lock is
    // held by a thread the child lacks, or the caller vouched for it
    // through the unsafe `allow_threads`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Our copy of the lock, if the parent held it: release it.
        drop(guard);
        child_main(&child, parent_pid, body);
    }
    if pid < 0 {
        let error = Error::os("fork", io::Error::last_os_error());
        let mut guard = guard.unwrap_or_else(global);
        let state = guard.get();
        state.forking = None;
        state.children.retain(|entry| !Arc::ptr_eq(entry, &child));
        drop(guard);
        if let Some(child) = Arc::get_mut(&mut child) {
            options.name = std::mem::take(&mut child.name);
            options.identity = std::mem::take(&mut child.identity);
        }
        return Err(error);
    }
    // The parent. No pidfd yet: a plain join needs none (see
    // Child::wait_blocking), and the pid stays ours until we reap it.
    // SYNC POINT: pairs with the Acquire in Child::pid (other threads find
    // the child through the registry only after this, under the lock).
    child.pid.store(pid, Ordering::Release);
    drop(guard);
    *body = None;
    Ok(child)
}

/// The child's side of [`fork_child`]: never returns.
fn child_main<F: FnOnce()>(me: &Child, parent_pid: i32, body: &mut Option<F>) -> ! {
    if me.daemon {
        // Die with the parent (even on its SIGKILL). PDEATHSIG fires when the
        // *thread* that forked us ends; see Process::daemon.
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        // If the parent died before the prctl, it will never fire: we have
        // been reparented already. Die the same death.
        let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
        if ppid != parent_pid {
            if let Some(me) = Pid::from_raw(getpid()) {
                let _ = rustix::process::kill_process(me, Signal::KILL);
            }
            // SAFETY: _exit ends this process without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(1) };
        }
    }
    // Reading `body` (instead of `take`, which writes `None`) leaves the
    // page holding it shared.
    // SAFETY: `body` is `Some` (fork_child checked) and initialised; this
    // process never returns from child_main nor touches `body` again, so
    // the value is moved out exactly once, here.
    let body = unsafe { std::ptr::read(body) };
    let code = match body {
        None => 0,
        Some(body) => match catch_unwind(AssertUnwindSafe(body)) {
            Ok(()) => 0,
            Err(payload) => match payload.downcast::<ExitRequest>() {
                Ok(request) => request.0,
                Err(payload) => {
                    // The panic hook has printed the message already.
                    let _ = writeln!(
                        io::stderr(),
                        "shmproc: process {} (pid {}) panicked; exit code 1",
                        me.name(),
                        getpid()
                    );
                    // Dropping a payload can panic again; we are leaving anyway.
                    std::mem::forget(payload);
                    1
                }
            },
        },
    };
    flush_stdio();
    // SAFETY: _exit ends the child at once: the parent's destructors (copies
    // on this stack) and atexit handlers do not run a second time.
    unsafe { libc::_exit(code) }
}

// ---------------------------------------------------------------------------
// Process
// ---------------------------------------------------------------------------

/// A process running a closure (or a [`Run`] type): Python's
/// `multiprocessing.Process` with the `fork` start method.
///
/// Configure it builder-style with [`name`](Process::name) and
/// [`daemon`](Process::daemon), [`start`](Process::start) it once, then
/// [`join`](Process::join) it. The sections below say what the child does,
/// why a threaded process may not fork, and how zombies are avoided.
///
/// Exit codes follow Python: `None` while running, `Some(0)` after the body
/// returned, `Some(1)` after it panicked, `Some(code)` after
/// [`exit`]`(code)`, `Some(-N)` after signal N killed it.
///
/// # What the child does
///
/// 1. Before the fork the parent flushes Rust's `stdout`/`stderr` and C's
///    stdio buffers, so nothing buffered is printed twice.
/// 2. A daemon child asks the kernel to `SIGKILL` it when its parent dies
///    (`prctl(PR_SET_PDEATHSIG)`), then checks that its parent is still the
///    process that forked it (if the parent died before the `prctl`, the child
///    kills itself the same way).
/// 3. The closure runs under `catch_unwind`. Its exit code is 0 when it
///    returns, 1 when it panics (the panic hook prints the message on stderr,
///    as usual), and `code` when it calls [`exit`]`(code)`.
/// 4. The child flushes stdio and calls `_exit`: the parent's destructors
///    (whose copies are on the child's stack) and `atexit` handlers never run
///    twice.
///
/// # Fork and threads
///
/// After `fork` the child has one thread: the one that called fork. A lock
/// that another thread of the parent held at that instant (the allocator's,
/// `stdout`'s, a `Mutex` of yours) stays locked forever in the child, and the
/// child deadlocks when it touches it. So [`Process::start`] refuses to fork
/// from a process that runs more than one thread ([`Error::ThreadedFork`]);
/// start your processes before you spawn threads. If you know the child only
/// touches state no other thread can hold, opt in with the `unsafe`
/// [`Process::allow_threads`].
///
/// # Zombies
///
/// A finished child stays a zombie until its parent collects its exit status.
/// shmproc collects it in [`Process::join`], [`Process::join_timeout`],
/// [`Process::is_alive`] and [`Process::exitcode`]; dropping an un-joined
/// non-daemon [`Process`] joins it (blocking until it ends, as Python does
/// for non-daemon children at exit); daemon handles that were dropped are
/// collected by the next [`Process::start`] or [`active_children`] call.
///
/// # Dropping
///
/// Dropping a started, un-joined **non-daemon** `Process` joins it: the drop
/// blocks until the child ends (Python joins non-daemon children at exit).
/// Dropping a **daemon** `Process` leaves the child running; it is killed
/// when this process dies and reaped by a later `start`/[`active_children`].
///
/// # Examples
///
/// ```
/// use shmproc::Process;
/// use std::time::Duration;
///
/// let mut sleeper = Process::new(|| std::thread::sleep(Duration::from_secs(60)))
///     .name("sleeper")
///     .daemon(true);
/// sleeper.start()?;
/// assert!(sleeper.is_alive());
/// assert_eq!(sleeper.join_timeout(Duration::from_millis(10))?, None);
/// sleeper.terminate()?;
/// assert_eq!(sleeper.join()?, -15); // SIGTERM
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Process {
    /// The target. Before `start`, what the child will run; after it, this
    /// process's copy, kept unused until the child has ended (see
    /// [`Process::start`]).
    target: std::cell::RefCell<Option<Box<dyn RunInPlace>>>,
    /// Name and identity move into `child` at start.
    options: ForkOptions,
    child: Option<Arc<Child>>,
}

/// A [`Run`] value the forked child runs straight out of the parent's box.
///
/// The child moves the value out with `ptr::read` and never touches the box
/// again (no `take`, no free): it `_exit`s. So the heap pages holding the box
/// (and the allocator's bookkeeping) stay shared with the parent, and the
/// child pays no copy-on-write fault for them; the parent keeps and later
/// drops its own copy as usual.
trait RunInPlace {
    /// Moves the value out of `self` and runs it.
    ///
    /// # Safety
    ///
    /// Called at most once, in a process that afterwards never reads, moves
    /// or drops `self` (the forked child, which leaves with `_exit`).
    unsafe fn run_in_place(&mut self);
}

impl<R: Run> RunInPlace for R {
    unsafe fn run_in_place(&mut self) {
        // SAFETY: the caller guarantees this is the only use of `self` in
        // this process from now on, so the value is moved out exactly once
        // and its original is never dropped here.
        let target = unsafe { std::ptr::read(self) };
        target.run();
    }
}

impl Process {
    /// A process that will run `target` (a closure or a [`Run`] type) once
    /// started. Named `Process-N` (N counts the processes this process
    /// created, `Process-2:1` for the first child of `Process-2`), as in
    /// Python.
    pub fn new<R: Run + 'static>(target: R) -> Self {
        Process {
            target: std::cell::RefCell::new(Some(Box::new(target))),
            options: ForkOptions {
                name: Name::default_for("Process"),
                identity: next_identity(),
                daemon: false,
                allow_threads: false,
                register: true,
            },
            child: None,
        }
    }

    /// Sets the name (what [`current_process`]`().name()` says in the
    /// child). Has no effect once started.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Name::custom(name.into());
        self
    }

    /// Makes the process a daemon: it is killed (`SIGKILL`) when this process
    /// dies, however it dies (`prctl(PR_SET_PDEATHSIG)`), and dropping its
    /// handle does not join it.
    ///
    /// The kernel sends the signal when the *thread* that called `start`
    /// ends; start daemons from the main thread (or a thread that lives as
    /// long as they should).
    ///
    /// Has no effect once started.
    #[must_use]
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.options.daemon = daemon;
        self
    }

    /// Lets [`start`](Process::start) fork even though this process runs
    /// other threads.
    ///
    /// # Safety
    ///
    /// The child starts with a copy of this process's memory but only the
    /// thread that called `start`. Any lock another thread held at that
    /// instant stays locked in the child forever: the allocator's (every
    /// `Box`, `Vec`, `String`, `format!`), stdout's (`println!`), and any
    /// `Mutex` of yours. The caller guarantees that the child does not touch
    /// such state, or that no other thread can hold it while `start` forks
    /// (for example, the other threads are parked on something that holds
    /// no lock). A child that breaks this may deadlock; shmproc cannot detect
    /// it.
    #[must_use]
    pub unsafe fn allow_threads(mut self) -> Self {
        self.options.allow_threads = true;
        self
    }

    /// Forks the child, which runs the target and exits.
    ///
    /// Flushes stdout/stderr first, so text printed before `start` appears
    /// once.
    ///
    /// This process keeps its copy of the target (and what it captured),
    /// unused, until the child has ended: `join` (or a `join_timeout` that
    /// sees the end) or dropping the `Process` lets it go. So a shared
    /// object moved into the closure stays allocated in its arena while the
    /// child uses it, even when the parent kept no handle of its own (an
    /// object's memory returns to the arena when the creating process drops
    /// its last handle). The flip side, unlike Python: a file descriptor the
    /// closure captured stays open here until then too; join before reading
    /// a pipe to its end. An un-joined daemon's target is never dropped.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyStarted`] on a second call; [`Error::ThreadedFork`] if
    /// this process runs more than one thread (see
    /// [`allow_threads`](Process::allow_threads)); [`Error::Os`] if `fork`
    /// fails (too many processes, no memory).
    ///
    /// Threads that were joined do not count: right after a join (or the end
    /// of a `std::thread::scope`) the kernel may still count an exiting
    /// thread for a moment, and `start` re-reads the count for up to 20 ms
    /// before it refuses.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(Error::AlreadyStarted);
        }
        let Some(target) = self.target.get_mut().as_deref_mut() else {
            return Err(Error::AlreadyStarted);
        };
        let target: *mut dyn RunInPlace = target;
        let mut body = Some(move || {
            // SAFETY: fork_child calls `body` only in the child, which then
            // `_exit`s, and that child touches nothing else of `self`:
            // `target` points into its copy of the box, valid and unaliased.
            let target = unsafe { &mut *target };
            // SAFETY: called once, in the child, which never reads, moves or
            // drops its copy of the target afterwards (it `_exit`s).
            unsafe { target.run_in_place() }
        });
        let child = fork_child(&mut self.options, &mut body)?;
        self.child = Some(child);
        Ok(())
    }

    /// Lets this process's copy of the target go (the child has ended).
    fn release_target(&self) {
        let kept = self.target.borrow_mut().take();
        // Dropped outside the borrow: its destructors may do anything.
        drop(kept);
    }

    fn started(&self) -> Result<&Arc<Child>> {
        self.child.as_ref().ok_or(Error::NotStarted)
    }

    /// Waits for the child to end and returns its exit code.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] before `start`; [`Error::InvalidArgument`] when
    /// called in another process than the one that started it; [`Error::Os`]
    /// if its exit status was collected by someone else (SIGCHLD ignored, or a
    /// `waitpid(-1)` in this program).
    pub fn join(&self) -> Result<i32> {
        let child = self.started()?;
        match child.wait_deadline(None)? {
            Some(status) => {
                self.release_target();
                status.exitcode().ok_or_else(|| status_lost(child.pid()))
            }
            None => Err(Error::Timeout), // unreachable without a deadline
        }
    }

    /// Waits up to `timeout` for the child to end: `Some(exit code)` if it
    /// did, `None` if it is still running.
    ///
    /// Sleeps in `poll` on the child's pidfd; returns as soon as the child
    /// ends.
    ///
    /// # Errors
    ///
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        let child = self.started()?;
        let deadline = Instant::now().checked_add(timeout);
        match child.wait_deadline(deadline)? {
            Some(status) => {
                self.release_target();
                status
                    .exitcode()
                    .map(Some)
                    .ok_or_else(|| status_lost(child.pid()))
            }
            None => Ok(None),
        }
    }

    /// True from `start` until the child has ended (reaps it if it has).
    pub fn is_alive(&self) -> bool {
        match &self.child {
            None => false,
            Some(child) => match child.try_wait() {
                Ok(status) => status.is_none(),
                Err(_) => crate::sys::pid_alive(child.pid()),
            },
        }
    }

    /// The child's pid; `None` before `start`.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|child| child.pid())
    }

    /// The exit code: `None` while running (or before `start`), `Some(0)`,
    /// `Some(1)` after a panic, `Some(code)` after [`exit`]`(code)`,
    /// `Some(-N)` after signal N. Reaps the child if it has ended.
    pub fn exitcode(&self) -> Option<i32> {
        let child = self.child.as_ref()?;
        child
            .try_wait()
            .ok()
            .flatten()
            .and_then(ExitStatus::exitcode)
    }

    /// Sends `SIGTERM` (exit code -15 unless the child handles it). Does
    /// nothing if the child has already been reaped.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] before `start`; [`Error::InvalidArgument`] in
    /// another process than the one that started it.
    pub fn terminate(&self) -> Result<()> {
        self.started()?.send_signal(Signal::TERM)
    }

    /// Sends `SIGKILL` (exit code -9). Does nothing if the child has already
    /// been reaped.
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn kill(&self) -> Result<()> {
        self.started()?.send_signal(Signal::KILL)
    }

    /// The name: `Process-N` unless set with [`name`](Process::name).
    ///
    /// (Called `get_name` because `name(..)` is the builder method, as
    /// `std::process::Command` has `arg` and `get_args`.)
    pub fn get_name(&self) -> &str {
        match &self.child {
            Some(child) => child.name(),
            None => self.options.name.get(&self.options.identity),
        }
    }

    /// Whether this is a daemon process (see [`daemon`](Process::daemon)).
    pub fn is_daemon(&self) -> bool {
        match &self.child {
            Some(child) => child.daemon,
            None => self.options.daemon,
        }
    }

    /// A [`ProcessInfo`] for the started child (as [`active_children`] lists it).
    pub fn info(&self) -> Option<ProcessInfo> {
        self.child.as_ref().map(ProcessInfo::child)
    }
}

impl fmt::Debug for Process {
    /// Like Python's repr: `<Process name='Process-1' pid=1234 started>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Process name={:?}", self.get_name())?;
        match &self.child {
            None => write!(f, " initial")?,
            Some(child) => {
                write!(f, " pid={} parent={}", child.pid(), child.owner)?;
                match child.status() {
                    None => write!(f, " started")?,
                    Some(status) => match status.exitcode() {
                        Some(code) => write!(f, " stopped exitcode={code}")?,
                        None => write!(f, " stopped")?,
                    },
                }
            }
        }
        if self.is_daemon() {
            write!(f, " daemon")?;
        }
        write!(f, ">")
    }
}

impl Drop for Process {
    /// Joins an un-joined non-daemon child (blocking until it ends); leaves a
    /// daemon running (see the type's docs).
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // Joined already (the usual case): nothing to do, no system call.
            if child.status().is_some() {
                return;
            }
            if child.owner == getpid() {
                if !child.daemon {
                    let _ = child.wait_deadline(None);
                } else if matches!(child.try_wait(), Ok(None)) {
                    // A daemon left running may still use what its target
                    // captured: never free it here.
                    std::mem::forget(self.target.get_mut().take());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// current_process, parent_process, active_children, cpu_count, exit
// ---------------------------------------------------------------------------

#[derive(Clone)]
enum Kind {
    Current,
    /// The parent, as seen by `observer` (the process that asked).
    Parent {
        observer: i32,
    },
    Child(Arc<Child>),
}

/// What [`current_process`], [`parent_process`] and [`active_children`]
/// return: a process's name and pid, and for children the means to wait for
/// and signal them.
///
/// # Examples
///
/// ```
/// use shmproc::{Process, active_children, current_process};
///
/// assert_eq!(current_process().name(), "MainProcess");
/// let mut p = Process::new(|| {
///     // In the child: its own name and pid.
///     assert_eq!(current_process().name(), "worker");
///     assert_eq!(current_process().pid(), std::process::id() as i32);
/// })
/// .name("worker");
/// p.start()?;
/// for child in active_children() {
///     println!("{} {} alive={}", child.name(), child.pid(), child.is_alive());
/// }
/// assert_eq!(p.join()?, 0); // the child's asserts held
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct ProcessInfo {
    name: String,
    pid: i32,
    daemon: bool,
    kind: Kind,
}

impl fmt::Debug for ProcessInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Current => "current",
            Kind::Parent { .. } => "parent",
            Kind::Child(_) => "child",
        };
        write!(
            f,
            "<{kind} process name={:?} pid={}{}>",
            self.name,
            self.pid,
            if self.daemon { " daemon" } else { "" }
        )
    }
}

impl ProcessInfo {
    fn child(child: &Arc<Child>) -> Self {
        ProcessInfo {
            name: child.name().to_owned(),
            pid: child.pid(),
            daemon: child.daemon,
            kind: Kind::Child(Arc::clone(child)),
        }
    }

    /// The process's name (`MainProcess` for a process not started by shmproc).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether it was started as a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Whether it is still running. For the parent: whether this process has
    /// not been orphaned (`getppid()` is still the parent's pid).
    pub fn is_alive(&self) -> bool {
        match &self.kind {
            Kind::Current => true,
            Kind::Parent { observer } if *observer == getpid() => {
                rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()) == self.pid
            }
            Kind::Parent { .. } => crate::sys::pid_alive(self.pid),
            Kind::Child(child) => match child.try_wait() {
                Ok(status) => status.is_none(),
                Err(_) => crate::sys::pid_alive(child.pid()),
            },
        }
    }

    /// A child's exit code once it has ended (reaps it); `None` otherwise.
    pub fn exitcode(&self) -> Option<i32> {
        match &self.kind {
            Kind::Child(child) => child
                .try_wait()
                .ok()
                .flatten()
                .and_then(ExitStatus::exitcode),
            _ => None,
        }
    }

    fn as_child(&self) -> Result<&Arc<Child>> {
        match &self.kind {
            Kind::Child(child) => Ok(child),
            _ => Err(Error::InvalidArgument(format!(
                "{} (pid {}) is not a child of this process: only children can be joined or signalled",
                self.name, self.pid
            ))),
        }
    }

    /// Waits for a child to end and returns its exit code
    /// (see [`Process::join`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for the current or the parent process;
    /// otherwise as [`Process::join`].
    pub fn join(&self) -> Result<i32> {
        let child = self.as_child()?;
        match child.wait_deadline(None)? {
            Some(status) => status.exitcode().ok_or_else(|| status_lost(child.pid())),
            None => Err(Error::Timeout),
        }
    }

    /// Waits up to `timeout` for a child (see [`Process::join_timeout`]).
    ///
    /// # Errors
    ///
    /// As [`join`](ProcessInfo::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        let child = self.as_child()?;
        match child.wait_deadline(Instant::now().checked_add(timeout))? {
            Some(status) => status
                .exitcode()
                .map(Some)
                .ok_or_else(|| status_lost(child.pid())),
            None => Ok(None),
        }
    }

    /// Sends `SIGTERM` to a child.
    ///
    /// # Errors
    ///
    /// As [`join`](ProcessInfo::join).
    pub fn terminate(&self) -> Result<()> {
        self.as_child()?.send_signal(Signal::TERM)
    }

    /// Sends `SIGKILL` to a child.
    ///
    /// # Errors
    ///
    /// As [`join`](ProcessInfo::join).
    pub fn kill(&self) -> Result<()> {
        self.as_child()?.send_signal(Signal::KILL)
    }
}

/// This process: `MainProcess`, or the name of the [`Process`] it runs.
///
/// ```
/// assert_eq!(shmproc::current_process().name(), "MainProcess");
/// assert_eq!(shmproc::current_process().pid(), std::process::id() as i32);
/// ```
pub fn current_process() -> ProcessInfo {
    let mut guard = global();
    let state = guard.get();
    ProcessInfo {
        name: state.name().to_owned(),
        pid: state.pid,
        daemon: state.daemon(),
        kind: Kind::Current,
    }
}

/// The process that started this one with [`Process::start`]; `None` in a
/// process not started by shmproc.
///
/// ```
/// assert!(shmproc::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    let mut guard = global();
    let state = guard.get();
    let (parent, pid) = state.parent.as_ref()?;
    Some(ProcessInfo {
        name: parent
            .as_ref()
            .map_or("MainProcess", |parent| parent.name())
            .to_owned(),
        pid: *pid,
        daemon: parent.as_ref().is_some_and(|parent| parent.daemon),
        kind: Kind::Parent {
            observer: state.pid,
        },
    })
}

/// The children this process started that are still running. Collects the
/// exit status of those that have ended (so they leave no zombie), as
/// Python's `active_children()` does.
pub fn active_children() -> Vec<ProcessInfo> {
    let mut guard = global();
    let state = guard.get();
    state
        .children
        .retain(|child| matches!(child.try_wait(), Ok(None)));
    state.children.iter().map(ProcessInfo::child).collect()
}

/// The number of CPUs this process may run on (`sched_getaffinity`), at
/// least 1. What a [`Pool`](https://docs.python.org/3/library/multiprocessing.html)
/// sizes itself by; under `taskset` or a cgroup cpuset it is smaller than
/// the machine's CPU count.
pub fn cpu_count() -> usize {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (set.count() as usize).max(1),
        Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
    }
}

/// Ends the current process with exit code `code`, like Python's
/// `sys.exit(code)` in a child.
///
/// In a [`Process`] body (on the thread that runs it) this unwinds the body's
/// stack, running destructors, up to shmproc's frame, which flushes stdio
/// and `_exit`s with `code`; no panic message is printed. A `catch_unwind`
/// of yours in between would catch it: let it pass. Elsewhere in a child it
/// flushes stdio and `_exit`s at once; in a process not started by shmproc it
/// is `std::process::exit`.
///
/// The parent sees `code & 0xff` (the kernel keeps 8 bits): use 0..=255.
pub fn exit(code: i32) -> ! {
    // In a child forked by shmproc, the body runs on the main thread (the
    // only one at the fork, so its tid is the pid) under child_main's
    // catch_unwind.
    let (in_body, forked_by_us) = {
        let mut guard = global();
        let state = guard.get();
        let in_body = state.forked_by_us && crate::sys::gettid() == state.pid;
        (in_body, state.forked_by_us)
    };
    if in_body {
        resume_unwind(Box::new(ExitRequest(code)));
    }
    flush_stdio();
    if forked_by_us {
        // SAFETY: _exit ends this child without running the parent's
        // destructors or atexit handlers a second time.
        unsafe { libc::_exit(code) }
    }
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::{Identity, Name};

    #[test]
    fn identity_is_inline_then_spills_to_the_heap() {
        let mut identity = Identity::default();
        assert!(identity.is_empty());
        for number in 1..=6 {
            identity = Identity::child_of(&identity, number);
            let inline = matches!(identity, Identity::Inline { .. });
            assert_eq!(inline, number as usize <= Identity::INLINE);
        }
        assert_eq!(&*identity, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            Name::default_for("Process").get(&identity),
            "Process-1:2:3:4:5:6"
        );
        assert_eq!(Name::custom("worker".into()).get(&identity), "worker");
    }

    /// A C `FILE` on /dev/null, fully buffered like a redirected stdout.
    struct CFile(*mut libc::FILE);

    unsafe extern "C" {
        fn fwide(stream: *mut libc::FILE, mode: libc::c_int) -> libc::c_int;
        fn fputwc(wc: libc::wchar_t, stream: *mut libc::FILE) -> libc::c_uint;
    }

    impl CFile {
        fn open() -> Self {
            // SAFETY: fopen with a NUL-terminated path and mode.
            let file = unsafe { libc::fopen(c"/dev/null".as_ptr(), c"w".as_ptr()) };
            assert!(!file.is_null(), "fopen /dev/null");
            CFile(file)
        }

        /// Ours and the C library's answer (they must agree).
        fn pending(&self) -> bool {
            // SAFETY: `self.0` is a valid FILE until drop.
            let ours = unsafe { super::c_stdio::pending(self.0) };
            // SAFETY: as above; __fpending only reads the FILE.
            let theirs = unsafe { super::c_stdio::__fpending(self.0) } > 0;
            assert_eq!(ours, theirs, "c_stdio::pending disagrees with __fpending");
            ours
        }

        /// glibc's `_mode`, read through the mirrored layout.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        fn mode(&self) -> libc::c_int {
            // SAFETY: a valid glibc FILE starts with `GlibcFile`'s fields.
            unsafe { (*self.0.cast::<super::c_stdio::GlibcFile>()).mode }
        }

        fn put(&self, text: &std::ffi::CStr) {
            // SAFETY: a valid FILE and a NUL-terminated string.
            assert!(unsafe { libc::fputs(text.as_ptr(), self.0) } >= 0);
        }

        fn put_wide(&self, c: char) {
            // SAFETY: a valid FILE.
            assert!(unsafe { fwide(self.0, 1) } > 0, "fwide");
            // SAFETY: a valid FILE, now wide-oriented.
            assert_ne!(unsafe { fputwc(c as libc::wchar_t, self.0) }, u32::MAX);
        }

        fn flush(&self) {
            // SAFETY: a valid FILE.
            assert_eq!(unsafe { libc::fflush(self.0) }, 0);
        }
    }

    impl Drop for CFile {
        fn drop(&mut self) {
            // SAFETY: opened by fopen, closed once, here.
            unsafe { libc::fclose(self.0) };
        }
    }

    /// `c_stdio::pending` agrees with the C library's `__fpending` before
    /// and after a flush, in byte and in wide mode; on glibc the `_mode`
    /// read through the mirrored layout shows the offsets are right.
    #[test]
    fn c_stdio_pending_agrees_with_fpending() {
        let file = CFile::open();
        assert!(!file.pending());
        file.put(c"no newline");
        assert!(file.pending(), "buffered bytes must be seen");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_eq!(file.mode(), -1, "byte-oriented after fputs");
        file.flush();
        assert!(!file.pending());

        let file = CFile::open();
        file.put_wide('w');
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_eq!(file.mode(), 1, "wide-oriented after fwide");
        assert!(file.pending(), "buffered wide characters must be seen");
        file.flush();
        assert!(!file.pending());
    }
}
