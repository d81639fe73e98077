//! A fork-based worker pool: Python's `multiprocessing.Pool`, on shared
//! memory, that never hangs.
//!
//! [`Pool::new`] forks one *manager* process while the caller is still
//! single-threaded; the manager forks the workers and replaces any that die.
//! A task is a function's address (every process of the pool is a fork of
//! the same program, so code sits at the same address everywhere) plus its
//! argument's bytes in a task slot in shared memory; a worker claims the
//! slot from a lock-free ring, runs the function under `catch_unwind` and
//! writes the result into the slot (`map` writes each plain-old-data result
//! straight into its place in a shared array). The caller waits on a futex.
//!
//! Failures never hang the pool: a panic becomes [`Error::TaskPanicked`]; a
//! worker killed mid-task fails exactly that task with
//! [`Error::WorkerDied`] (its slot records which worker claimed it) and is
//! replaced; `terminate` kills every worker within milliseconds.
//!
//! See docs/ARCHITECTURE.md, section "Pool", for the layout and the state
//! machine.

mod result;
mod scope;
mod shm;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod slot;
mod worker;

pub use result::{AsyncResult, IMap, IMapUnordered, MapResult};
pub use scope::fork_map;
pub use worker::StarFn;

use crate::arena::Arena;
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use crate::process::{Child, ForkOptions, Name, fork_child, next_identity};
use result::{Chunks, Job};

use shm::{Core, DRAINING, INLINE, TERMINATING};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use worker::{ManagerConfig, Plain, Star, Trampoline, WorkerConfig, apply_task, map_task};

/// Task slots per pool: how many tasks (map chunks, `apply_async` results
/// not yet dropped) can be outstanding at once.
const SLOTS: usize = 1 << 16;
/// Default size of a pool's own (sparse) arena.
const ARENA_BYTES: usize = 4 << 30;
/// How long a worker looks for work before it sleeps.
const WORKER_SPIN: Duration = Duration::from_micros(100);
/// How long a caller looks at a result before it sleeps.
const RESULT_SPIN: Duration = Duration::from_micros(100);
/// How often a sleeping caller checks that the manager is alive.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long `terminate` waits for the manager before killing it.
const MANAGER_GRACE: Duration = Duration::from_secs(2);

/// Builds a [`Pool`]: Python's `Pool(processes, initializer, maxtasksperchild)`.
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// let pool = Pool::builder().processes(2).maxtasksperchild(100).build()?;
/// assert_eq!(pool.map(square, 1..=4u64)?, [1, 4, 9, 16]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    maxtasksperchild: Option<u64>,
    arena_bytes: usize,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("maxtasksperchild", &self.maxtasksperchild)
            .finish()
    }
}

impl PoolBuilder {
    /// The number of worker processes (default [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Runs `initializer` once in every worker before its first task, also
    /// in the workers that replace dead or retired ones.
    ///
    /// It may capture anything: the workers inherit it by `fork`. A panic
    /// in it ends that worker (exit code 1); the manager forks another.
    pub fn initializer(mut self, initializer: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(initializer));
        self
    }

    /// Retires a worker after it ran `tasks` tasks (a map chunk is one task)
    /// and forks a fresh one: Python's `maxtasksperchild`. `1` runs every
    /// task in a new process.
    pub fn maxtasksperchild(mut self, tasks: u64) -> Self {
        self.maxtasksperchild = Some(tasks.max(1));
        self
    }

    /// The size of the pool's own shared-memory arena (sparse: only what is
    /// used costs memory), which holds the inputs and results in flight.
    /// Default 4 GiB.
    pub fn arena_size(mut self, bytes: usize) -> Self {
        self.arena_bytes = bytes;
        self
    }

    /// Forks the manager process, which forks the workers.
    ///
    /// Call it while this process runs a single thread (fork's rule; see
    /// [`Process`](crate::Process)); afterwards the pool may be used from
    /// any number of threads (it never forks from this process again).
    ///
    /// # Errors
    /// [`Error::ThreadedFork`] if this process runs other threads;
    /// [`Error::InvalidArgument`] for zero processes; [`Error::Os`] if a
    /// system call fails.
    pub fn build(self) -> Result<Pool> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "a pool needs at least one process".into(),
            ));
        }
        let arena = Arena::anonymous(self.arena_bytes)?;
        // Map the default arena now, before the fork, so that arrays made in
        // it later exist at the same address in the workers (map_array).
        let default_arena = Arena::default_arena()?.clone();
        let core = Arc::new(Core::new(arena, default_arena, SLOTS, processes)?);
        let eventfd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::os("eventfd", e))?;
        let config = ManagerConfig {
            processes,
            worker: WorkerConfig {
                max_tasks: self.maxtasksperchild,
                spin: WORKER_SPIN,
                initializer: self.initializer,
            },
            eventfd: eventfd.try_clone().map_err(|e| Error::os("dup", e))?,
        };
        let identity = next_identity();
        let mut options = ForkOptions {
            name: Name::default_for("PoolManager"),
            identity,
            daemon: true,
            allow_threads: false,
            register: false,
        };
        let manager_core = Arc::clone(&core);
        let mut body = Some(move || worker::manager_main(&manager_core, &config));
        let manager = fork_child(&mut options, &mut body)?;
        let shared = Shared {
            owner: crate::sys::getpid(),
            core,
            manager,
            eventfd,
            processes,
            local: Mutex::new(Local {
                free: (0..SLOTS as u32).rev().collect(),
                abandoned: Vec::new(),
                closed: false,
                stopped: false,
            }),
        };
        Ok(Pool {
            shared: Arc::new(shared),
        })
    }
}

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// Tasks are functions `fn(A) -> R` — a function item such as `square`, or
/// a closure that captures nothing (checked at compile time: the worker
/// finds the code again by its address, but could not find captured data).
/// `A` and `R` travel as [`Message`]s: plain-old-data in place, `String`
/// and serde types encoded. For closures that capture data, use
/// [`fork_map`].
///
/// Dropping a pool terminates it (kills the workers) and reaps every
/// process; call [`close`](Pool::close) and [`join`](Pool::join) first to
/// let queued tasks finish.
///
/// A closure that captures something is refused at compile time (its data
/// would not exist in the worker):
///
/// ```compile_fail
/// let pool = shmproc::Pool::new(2)?;
/// let k = 3u64;
/// pool.map(move |x: u64| x * k, 0..10u64)?;
/// # Ok::<(), shmproc::Error>(())
/// ```
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(square, 1..=10u64)?, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// let pending = pool.apply_async(square, 12)?;
/// assert_eq!(pending.get()?, 144);
/// pool.close();
/// pool.join()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Pool {
    shared: Arc<Shared>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.shared.local();
        write!(
            f,
            "<Pool processes={} manager={} {}>",
            self.shared.processes,
            self.shared.manager.pid(),
            if local.stopped {
                "stopped"
            } else if local.closed {
                "closed"
            } else {
                "running"
            }
        )
    }
}

/// The caller's side of a pool, shared with its results.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    manager: Arc<Child>,
    eventfd: OwnedFd,
    processes: usize,
    local: Mutex<Local>,
    /// The process that built the pool: only it may use or stop it (a
    /// forked child holds a copy of this handle, not the pool).
    owner: i32,
}

struct Local {
    /// Free slot indices.
    free: Vec<u32>,
    /// Jobs whose handles were dropped before they ended.
    abandoned: Vec<Job>,
    closed: bool,
    /// The manager was reaped (joined or terminated): no worker is left.
    stopped: bool,
}

/// One task to queue.
pub(crate) struct TaskSpec<'a> {
    pub(crate) trampoline: Trampoline,
    /// Input bytes to copy inline, or `None` when `input` names a block.
    pub(crate) inline_input: Option<&'a [u8]>,
    pub(crate) input: u64,
    pub(crate) input_len: u64,
    pub(crate) output: u64,
    pub(crate) output_len: u64,
    pub(crate) start: u64,
    pub(crate) count: u64,
}

impl Shared {
    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the manager to look at `flags`.
    fn poke_manager(&self) {
        let _ = rustix::io::write(self.eventfd.as_fd(), &1u64.to_ne_bytes());
    }

    /// Frees the slots and blocks of abandoned jobs that have ended.
    fn reclaim(&self, local: &mut Local) {
        let mut i = 0;
        while i < local.abandoned.len() {
            if local.abandoned[i].ended(&self.core) {
                let job = local.abandoned.swap_remove(i);
                job.release(&self.core, &mut local.free);
            } else {
                i += 1;
            }
        }
    }

    /// Queues one task; `Ok(None)` when no slot is free right now.
    pub(crate) fn try_submit(&self, spec: &TaskSpec<'_>) -> Result<Option<u32>> {
        if !self.is_owner() {
            return Err(self.not_owner());
        }
        let mut local = self.local();
        if local.closed {
            return Err(Error::PoolClosed);
        }
        if local.free.is_empty() {
            self.reclaim(&mut local);
        }
        let Some(index) = local.free.pop() else {
            return Ok(None);
        };
        let slot = self.core.slots.get(u64::from(index))?;
        let trampoline = spec.trampoline as usize as u64;
        slot.trampoline.store(trampoline, Ordering::Relaxed);
        slot.seal
            .store(self.core.seal(trampoline), Ordering::Relaxed);
        let (input, input_len) = match spec.inline_input {
            Some(bytes) => {
                let at = self.core.region(slot, 0, bytes.len() as u64)?;
                // SAFETY: `at` has room for bytes.len() <= INLINE bytes (region
                // checked); the slot is FREE, so no other process reads it.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at.as_ptr(), bytes.len()) };
                (0, bytes.len() as u64)
            }
            None => (spec.input, spec.input_len),
        };
        slot.input.store(input, Ordering::Relaxed);
        slot.input_len.store(input_len, Ordering::Relaxed);
        slot.output.store(spec.output, Ordering::Relaxed);
        slot.output_len.store(spec.output_len, Ordering::Relaxed);
        slot.start.store(spec.start, Ordering::Relaxed);
        slot.count.store(spec.count, Ordering::Relaxed);
        slot.state.queue();
        let stopped = || self.core.header().flags.load(Ordering::Relaxed) & TERMINATING != 0;
        if let Err(error) = self.core.push(index, stopped) {
            slot.state.release();
            local.free.push(index);
            return Err(error);
        }
        Ok(Some(index))
    }

    /// Wakes sleeping workers for `tasks` new tasks.
    pub(crate) fn wake_workers(&self, tasks: usize) {
        let n = tasks.min(self.processes).min(u32::MAX as usize) as u32;
        self.core.header().work.notify(n);
    }

    /// Queues one task, waiting for a free slot if need be.
    pub(crate) fn submit(&self, spec: &TaskSpec<'_>) -> Result<u32> {
        loop {
            if let Some(index) = self.try_submit(spec)? {
                self.wake_workers(1);
                return Ok(index);
            }
            self.wait_for_any(None, || false)?;
        }
    }

    /// Sleeps until some task ends (or `deadline`, or `ready()`), checking
    /// the manager is alive every [`CHECK_EVERY`].
    pub(crate) fn wait_for_any(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let done = &self.core.header().done;
        let seen = done.prepare();
        if ready() {
            done.done();
            return Ok(());
        }
        let slice = Instant::now() + CHECK_EVERY;
        done.sleep(seen, Some(deadline.map_or(slice, |d| d.min(slice))));
        done.done();
        self.check_manager()
    }

    /// Waits until `ready()` holds: spins briefly, then sleeps on the pool's
    /// completion word. `Err(Timeout)` at `deadline`.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let strategy = crate::sync::WaitStrategy::SpinThenPark(RESULT_SPIN);
        if strategy.spin(deadline, || ready().then_some(())).is_some() {
            return Ok(());
        }
        loop {
            if ready() {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            self.wait_for_any(deadline, &ready)?;
        }
    }

    /// If the manager died unexpectedly (killed from outside), the workers
    /// died with it: end every unfinished task instead of waiting forever.
    fn check_manager(&self) -> Result<()> {
        if let Ok(Some(_)) = self.manager.try_wait() {
            let mut local = self.local();
            if !local.stopped {
                local.stopped = true;
                local.closed = true;
                drop(local);
                self.cancel_all();
            }
        }
        Ok(())
    }

    /// Ends every queued or running task (no worker is left to run it).
    fn cancel_all(&self) {
        for i in 0..self.core.slots.len() {
            if let Ok(slot) = self.core.slots.get(i as u64) {
                slot.state.cancel();
            }
        }
        self.core.header().done.notify(u32::MAX);
    }

    /// Sets `flag` in the shared flags and tells workers and manager.
    fn raise(&self, flag: u32) {
        let header = self.core.header();
        // SYNC POINT: SeqCst pairs with the workers' Acquire/SeqCst loads of
        // `flags` (after `work.prepare`), so a sleeping worker is woken.
        header.flags.fetch_or(flag, Ordering::SeqCst);
        header.work.notify(u32::MAX);
        self.poke_manager();
    }

    /// True in the process that built the pool.
    pub(crate) fn is_owner(&self) -> bool {
        crate::sys::getpid() == self.owner
    }

    fn not_owner(&self) -> Error {
        Error::InvalidArgument(format!(
            "this pool belongs to process {}, not to this one ({}): a forked child holds a \
             copy of the handle, not the pool; build a pool in the child instead",
            self.owner,
            crate::sys::getpid()
        ))
    }

    fn terminate(&self) -> Result<()> {
        if !self.is_owner() {
            // A forked copy of the handle (dropped in a child): the pool is
            // not ours to stop.
            return Ok(());
        }
        if self.local().stopped {
            return Ok(());
        }
        self.local().closed = true;
        self.raise(TERMINATING);
        let deadline = Instant::now() + MANAGER_GRACE;
        let reaped = self.manager.wait_deadline(Some(deadline))?;
        if reaped.is_none() {
            // The manager does not answer: kill it; its workers die with it
            // (PR_SET_PDEATHSIG).
            self.manager.send_signal(rustix::process::Signal::KILL)?;
            self.manager.wait_deadline(None)?;
        }
        self.local().stopped = true;
        self.cancel_all();
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Normally Pool::drop has terminated it already; a result that
        // outlived its pool comes here last.
        let _ = self.terminate();
    }
}

/// Python's default chunk size: `len / (4 × workers)`, rounded up, at least 1.
fn default_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(4 * processes).max(1)
}

impl Pool {
    /// A pool of `processes` workers (Python's `Pool(processes)`).
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A builder with Python's defaults: [`cpu_count`](crate::cpu_count)
    /// workers, no initializer, workers never retired.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            initializer: None,
            maxtasksperchild: None,
            arena_bytes: ARENA_BYTES,
        }
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.shared.processes
    }

    /// The pid of the manager process (which forks and replaces workers).
    pub fn manager_pid(&self) -> i32 {
        self.shared.manager.pid()
    }

    /// The pids of the workers alive now (read from shared memory; for
    /// diagnostics and tests).
    pub fn worker_pids(&self) -> Vec<i32> {
        let records = &self.shared.core.records;
        (0..records.len())
            .filter_map(|i| records.get(i as u64).ok())
            .map(|r| r.pid.load(Ordering::Relaxed))
            .filter(|&pid| pid > 0 && crate::sys::pid_alive(pid))
            .collect()
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// [`Error::TaskPanicked`], [`Error::WorkerDied`], [`Error::PoolClosed`],
    /// [`Error::Codec`] (see [`AsyncResult::get`]).
    pub fn apply<A, R, F>(&self, f: F, arg: A) -> Result<R>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Queues `f(arg)` and returns at once (Python's `apply_async`).
    ///
    /// # Errors
    /// [`Error::PoolClosed`] after `close`/`terminate`; [`Error::Codec`] if
    /// the argument cannot be encoded; [`Error::ArenaFull`].
    pub fn apply_async<A, R, F>(&self, f: F, arg: A) -> Result<AsyncResult<R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        let trampoline: Trampoline = apply_task::<A, R, Plain<F>>;
        let mut scratch = Vec::new();
        let bytes = worker::bytes_of(&arg, &mut scratch)?;
        let mut job = Job::default();
        let (inline_input, input) = if bytes.len() <= INLINE {
            (Some(bytes), 0)
        } else {
            let block = self.copy_to_block(bytes)?;
            job.blocks.push(block);
            (None, block)
        };
        let spec = TaskSpec {
            trampoline,
            inline_input,
            input,
            input_len: bytes.len() as u64,
            output: 0,
            output_len: 0,
            start: 0,
            count: 1,
        };
        match self.shared.submit(&spec) {
            Ok(index) => {
                job.slots.push((index, 0));
                Ok(AsyncResult::new(Arc::clone(&self.shared), job))
            }
            Err(error) => {
                job.free_blocks(&self.shared.core);
                Err(error)
            }
        }
    }

    fn copy_to_block(&self, bytes: &[u8]) -> Result<u64> {
        let core = &self.shared.core;
        let block = core.arena.alloc(bytes.len(), 8)?.raw();
        let at = core.arena.check_range(block, bytes.len() as u64, 1)?;
        // SAFETY: `at` has room for the bytes (check_range); the block is
        // fresh, nobody else knows it yet.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at.as_ptr(), bytes.len()) };
        Ok(block)
    }

    /// `f` applied to every item, in order (Python's `map`), with the
    /// default chunk size.
    ///
    /// # Errors
    /// The first failed chunk's error ([`Error::TaskPanicked`],
    /// [`Error::WorkerDied`], ...); [`Error::PoolClosed`].
    pub fn map<A, R, F>(&self, f: F, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.map_async_chunksize(f, items, None)?.get()
    }

    /// [`map`](Pool::map) with `chunksize` items per task.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn map_chunksize<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.map_async_chunksize(f, items, Some(chunksize))?.get()
    }

    /// Queues a [`map`](Pool::map) and returns at once (Python's `map_async`).
    ///
    /// # Errors
    /// [`Error::PoolClosed`]; [`Error::Codec`]; [`Error::ArenaFull`].
    pub fn map_async<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapResult<R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.map_async_chunksize(f, items, None)
    }

    /// [`map_async`](Pool::map_async) with a chunk size (`None`: Python's default).
    ///
    /// # Errors
    /// As [`map_async`](Pool::map_async).
    pub fn map_async_chunksize<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        self.map_with(map_task::<A, R, Plain<F>>, items, chunksize)
    }

    /// `f(a, b, ..)` for every tuple `(a, b, ..)` of `items`, in order
    /// (Python's `starmap`); `f` takes one to four arguments.
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn starmap<Args, R, F>(&self, f: F, items: impl IntoIterator<Item = Args>) -> Result<Vec<R>>
    where
        Args: Message,
        R: Message,
        F: StarFn<Args, R>,
    {
        self.starmap_chunksize(f, items, None)
    }

    /// [`starmap`](Pool::starmap) with a chunk size (`None`: Python's default).
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn starmap_chunksize<Args, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>>
    where
        Args: Message,
        R: Message,
        F: StarFn<Args, R>,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        self.map_with(map_task::<Args, R, Star<F>>, items, chunksize)?
            .get()
    }

    /// Queues a [`starmap`](Pool::starmap) and returns at once (Python's
    /// `starmap_async`), with a chunk size (`None`: Python's default).
    ///
    /// # Errors
    /// As [`map_async`](Pool::map_async).
    pub fn starmap_async<Args, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>>
    where
        Args: Message,
        R: Message,
        F: StarFn<Args, R>,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        self.map_with(map_task::<Args, R, Star<F>>, items, chunksize)
    }

    fn map_with<A: Message, R: Message>(
        &self,
        trampoline: Trampoline,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>> {
        self.check_open()?;
        let items = items.into_iter();
        let processes = self.shared.processes;
        let chunks = match items.size_hint() {
            // Fixed-size items of a known count go straight into shm.
            (low, Some(high)) if low == high && A::FIXED_SIZE.is_some() => {
                let chunksize = chunksize.unwrap_or_else(|| default_chunksize(low, processes));
                Chunks::<R>::submit(&self.shared, trampoline, items, low, chunksize, true)?
            }
            _ => {
                let items: Vec<A> = items.collect();
                let len = items.len();
                let chunksize = chunksize.unwrap_or_else(|| default_chunksize(len, processes));
                let items = items.into_iter();
                Chunks::<R>::submit(&self.shared, trampoline, items, len, chunksize, true)?
            }
        };
        Ok(MapResult::new(chunks))
    }

    /// `f` over `items`, lazily and in order (Python's `imap`, chunk size
    /// 1): items are pulled from the iterator only as workers need them, so
    /// the first result is available before the input is exhausted.
    ///
    /// # Errors
    /// [`Error::PoolClosed`]. Each item is `Result`: a failed task is an
    /// `Err` in its place (one per failed chunk).
    pub fn imap<'a, A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMap<'a, A, R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.imap_chunksize(f, items, 1)
    }

    /// [`imap`](Pool::imap) with `chunksize` items per task.
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_chunksize<'a, A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMap<'a, A, R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        self.check_open()?;
        Ok(IMap::new(
            Arc::clone(&self.shared),
            map_task::<A, R, Plain<F>>,
            Box::new(items.into_iter()),
            chunksize.max(1),
            true,
        ))
    }

    /// Like [`imap`](Pool::imap), but yields results as they complete
    /// (Python's `imap_unordered`).
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered<'a, A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
    ) -> Result<IMapUnordered<'a, A, R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        self.imap_unordered_chunksize(f, items, 1)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with `chunksize` items per task.
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered_chunksize<'a, A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> Result<IMapUnordered<'a, A, R>>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        self.check_open()?;
        Ok(IMapUnordered(IMap::new(
            Arc::clone(&self.shared),
            map_task::<A, R, Plain<F>>,
            Box::new(items.into_iter()),
            chunksize.max(1),
            false,
        )))
    }

    /// `f` over a [`RawArray`](crate::RawArray) in the default arena, into
    /// a new one: the zero-copy `map`. The workers read the items and write
    /// the results in place in shared memory; nothing is copied through
    /// this process and nothing is encoded (`A` and `R` are plain old data).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `input` is not in the default arena;
    /// otherwise as [`map_array_into`](Pool::map_array_into).
    pub fn map_array<A, R, F>(&self, f: F, input: &crate::RawArray<A>) -> Result<crate::RawArray<R>>
    where
        A: bytemuck::Pod,
        R: bytemuck::Pod,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let output = crate::RawArray::<R>::zeroed_in(&self.shared.core.default_arena, input.len())?;
        self.map_array_into(f, input, &output, None)?;
        Ok(output)
    }

    /// `output[i] = f(input[i])` for every `i`, in the workers, for two
    /// [`RawArray`](crate::RawArray)s of the default arena (made after the
    /// pool or before: the pool maps the default arena before it forks).
    /// Like any `RawArray` access, other processes should not write
    /// `input` or touch `output` meanwhile (they would see or cause torn
    /// values, never undefined behaviour).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if an array is not in the default arena or
    /// the lengths differ; the first failed chunk's error
    /// ([`Error::TaskPanicked`], [`Error::WorkerDied`], ...);
    /// [`Error::PoolClosed`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Pool, RawArray};
    /// let pool = Pool::new(2)?;
    /// let input = RawArray::from_iter(0..1000u64)?;
    /// let output = RawArray::<u64>::zeroed(1000)?;
    /// pool.map_array_into(|x: u64| x * x, &input, &output, None)?;
    /// assert_eq!(output.get(999)?, 998_001);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn map_array_into<A, R, F>(
        &self,
        f: F,
        input: &crate::RawArray<A>,
        output: &crate::RawArray<R>,
        chunksize: Option<usize>,
    ) -> Result<()>
    where
        A: bytemuck::Pod,
        R: bytemuck::Pod,
        F: Fn(A) -> R + Copy + Send + 'static,
    {
        let _ = f; // only its type travels (see `worker::conjure`)
        let shared = &self.shared;
        let arena = &shared.core.default_arena;
        if !input.arena().same_as(arena) || !output.arena().same_as(arena) {
            return Err(Error::InvalidArgument(
                "Pool::map_array works on RawArrays of the default arena (RawArray::from_slice, \
                 RawArray::zeroed): other arenas are not mapped at the same place in the workers"
                    .into(),
            ));
        }
        let len = input.len();
        if output.len() != len {
            return Err(Error::InvalidArgument(format!(
                "map_array: the output has {} elements, the input {len}",
                output.len()
            )));
        }
        self.check_open()?;
        let base = arena.check_range(0, 0, 1)?.as_ptr() as u64;
        let offset_of = |ptr: u64| ptr.wrapping_sub(base);
        let input_bytes = (core::mem::size_of::<A>() * len) as u64;
        let output_bytes = (core::mem::size_of::<R>() * len) as u64;
        let output_offset = offset_of(output.as_ptr() as u64);
        let mut spec = TaskSpec {
            trampoline: worker::array_task::<A, R, Plain<F>>,
            inline_input: None,
            input: offset_of(input.as_ptr() as u64),
            input_len: input_bytes,
            output: output_offset,
            output_len: output_bytes,
            start: 0,
            count: 0,
        };
        let chunksize = chunksize
            .unwrap_or_else(|| default_chunksize(len, shared.processes))
            .max(1);
        let mut pending: Vec<u32> = Vec::new();
        let mut failed: Option<Error> = None;
        // Waits for a pending slot, keeps the first failure, frees the slot.
        // It always waits for the end (the workers write `output`, which the
        // caller may free once we return); a dead manager ends every task.
        let settle = |index: u32, failed: &mut Option<Error>| {
            let core = &shared.core;
            let ended = || slot::is_final(result::state_of(core, index));
            while !ended() {
                let _ = shared.wait_until(None, ended);
            }
            let state = result::state_of(core, index);
            if slot::kind(state) != slot::DONE && failed.is_none() {
                *failed = Some(result::failure(core, index, state).error());
            }
            shared.release_slot(index, output_offset);
        };
        let mut start = 0usize;
        while start < len && failed.is_none() {
            spec.start = start as u64;
            spec.count = chunksize.min(len - start) as u64;
            match shared.try_submit(&spec) {
                Ok(Some(index)) => {
                    shared.wake_workers(1);
                    pending.push(index);
                    start += chunksize;
                }
                Ok(None) if !pending.is_empty() => settle(pending.remove(0), &mut failed),
                Ok(None) => {
                    if let Err(error) = shared.wait_for_any(None, || false) {
                        failed = Some(error);
                    }
                }
                Err(error) => failed = Some(error),
            }
        }
        for index in pending {
            settle(index, &mut failed);
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.local().closed {
            Err(Error::PoolClosed)
        } else {
            Ok(())
        }
    }

    /// No more tasks may be queued; the workers leave once the queued ones
    /// are done (Python's `close`). Idempotent.
    pub fn close(&self) {
        if !self.shared.is_owner() {
            return;
        }
        let mut local = self.shared.local();
        if local.closed {
            return;
        }
        local.closed = true;
        drop(local);
        self.shared.raise(DRAINING);
    }

    /// Stops the workers at once (SIGKILL, through the manager): running
    /// tasks are cut short, queued ones never run; their results report
    /// [`Error::PoolClosed`]. Returns once every pool process is reaped.
    ///
    /// # Errors
    /// [`Error::Os`] if reaping the manager fails.
    pub fn terminate(&self) -> Result<()> {
        self.shared.terminate()
    }

    /// Waits for the workers to finish the queued tasks and leave, and
    /// reaps the manager (Python's `join`).
    ///
    /// # Errors
    /// [`Error::PoolRunning`] unless [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) was called first.
    pub fn join(&self) -> Result<()> {
        if !self.shared.is_owner() {
            return Err(self.shared.not_owner());
        }
        let local = self.shared.local();
        if !local.closed {
            return Err(Error::PoolRunning);
        }
        if local.stopped {
            return Ok(());
        }
        drop(local);
        loop {
            let status = self
                .shared
                .manager
                .wait_deadline(Some(Instant::now() + CHECK_EVERY))?;
            if status.is_some() {
                break;
            }
        }
        let mut local = self.shared.local();
        local.stopped = true;
        drop(local);
        // Anything left unfinished (the manager was killed) fails now.
        self.shared.cancel_all();
        Ok(())
    }
}

impl Drop for Pool {
    /// Terminates the pool (as Python's `Pool.__exit__`) and reaps it.
    fn drop(&mut self) {
        let _ = self.shared.terminate();
    }
}
