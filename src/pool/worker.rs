//! What runs in the pool's other processes: the manager (forks, watches and
//! replaces workers) and the workers (pull tasks, run them, write results),
//! plus the monomorphised trampolines a task names.

use super::shm::{Core, DRAINING, INLINE, Slot, TERMINATING};
use super::slot::{self, DONE, FAILED, MAX_TICKET, PANICKED};
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use crate::process::{Child, ExitStatus, ForkOptions, Name, fork_child, next_identity};
use crate::sync::WaitStrategy;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

/// What a task's slot names: runs the task in a worker that claimed the slot.
pub(crate) type Trampoline = unsafe fn(&Core, &Slot, &mut Vec<u8>) -> Result<()>;

/// A user function that [`Pool::starmap`](crate::Pool::starmap) calls with a
/// tuple's fields as arguments: any function item or capture-less closure
/// of one to four arguments.
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// fn power(base: u64, exponent: u32) -> u64 {
///     base.pow(exponent)
/// }
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.starmap(power, [(2u64, 3u32), (3, 2)])?, [8, 9]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub trait StarFn<Args, R>: Copy + Send + 'static {
    /// Calls the function with the tuple's fields.
    fn call_star(&self, args: Args) -> R;
}

impl<F, A, R> StarFn<(A,), R> for F
where
    F: Fn(A) -> R + Copy + Send + 'static,
{
    fn call_star(&self, (a,): (A,)) -> R {
        self(a)
    }
}

impl<F, A, B, R> StarFn<(A, B), R> for F
where
    F: Fn(A, B) -> R + Copy + Send + 'static,
{
    fn call_star(&self, (a, b): (A, B)) -> R {
        self(a, b)
    }
}

impl<F, A, B, C, R> StarFn<(A, B, C), R> for F
where
    F: Fn(A, B, C) -> R + Copy + Send + 'static,
{
    fn call_star(&self, (a, b, c): (A, B, C)) -> R {
        self(a, b, c)
    }
}

impl<F, A, B, C, D, R> StarFn<(A, B, C, D), R> for F
where
    F: Fn(A, B, C, D) -> R + Copy + Send + 'static,
{
    fn call_star(&self, (a, b, c, d): (A, B, C, D)) -> R {
        self(a, b, c, d)
    }
}

/// The value of a zero-sized function type (a function item or a closure
/// that captures nothing): what a task calls, rebuilt in the worker.
#[inline(always)]
pub(crate) fn conjure<F: Copy + 'static>() -> F {
    const {
        assert!(
            core::mem::size_of::<F>() == 0,
            "a pool task must be a function item (`square`) or a closure that captures nothing: \
             its code is found again in the worker process by its address, but captured data is not"
        )
    };
    // A zero-sized Fn type is a function item or a closure that captured
    // nothing (or only zero-sized Copy values), whose only content is its
    // type: the value read is the value the caller passed.
    // SAFETY: F is zero-sized (asserted at compile time), so this reads no
    // bytes from the aligned dangling pointer; F is Copy (no drop).
    unsafe { NonNull::<F>::dangling().as_ptr().read() }
}

/// How a trampoline calls the user's function with one decoded argument.
pub(crate) trait Invoke<A, R> {
    fn invoke(arg: A) -> R;
}

/// `f(arg)` for a zero-sized `F: Fn(A) -> R`.
pub(crate) struct Plain<F>(PhantomData<F>);
impl<A, R, F: Fn(A) -> R + Copy + 'static> Invoke<A, R> for Plain<F> {
    #[inline(always)]
    fn invoke(arg: A) -> R {
        conjure::<F>()(arg)
    }
}

/// `f(args.0, args.1, ..)` for a zero-sized `F: StarFn<Args, R>`.
pub(crate) struct Star<F>(PhantomData<F>);
impl<Args, R, F: StarFn<Args, R>> Invoke<Args, R> for Star<F> {
    #[inline(always)]
    fn invoke(args: Args) -> R {
        conjure::<F>().call_star(args)
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt {
        what: what.to_owned(),
    }
}

/// The bytes `value` travels as: its own, or its encoding in `scratch`.
#[inline(always)]
pub(crate) fn bytes_of<'a, T: Message>(value: &'a T, scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    match value.as_bytes() {
        Some(bytes) => Ok(bytes),
        None => {
            scratch.clear();
            value.encode(scratch)?;
            Ok(scratch)
        }
    }
}

/// Appends `value` as a frame: a native-endian `u32` length, then its bytes.
pub(crate) fn put_frame<T: Message>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match value.as_bytes() {
        Some(bytes) => out.extend_from_slice(bytes),
        None => value.encode(out)?,
    }
    let len = u32::try_from(out.len() - at - 4).map_err(|_| Error::MessageTooLarge {
        len: out.len() - at - 4,
        max: u32::MAX as usize,
    })?;
    out[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    Ok(())
}

/// Splits the next frame off `bytes`.
pub(crate) fn take_frame<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("truncated frame header"))?;
    let len = u32::from_ne_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("frame longer than its block"));
    }
    let (frame, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(frame)
}

/// Calls `each` with items `start .. start + count` of a chunk's input:
/// fixed-size items in place (the whole array), or `count` frames.
#[inline(always)]
pub(crate) fn for_each_input<A: Message>(
    input: &[u8],
    start: u64,
    count: u64,
    mut each: impl FnMut(A) -> Result<()>,
) -> Result<()> {
    match A::FIXED_SIZE {
        Some(0) => {
            if count > u64::from(u32::MAX) {
                return Err(corrupt("chunk of zero-sized items too long"));
            }
            for _ in 0..count {
                each(A::decode(&[])?)?;
            }
        }
        Some(size) => {
            let size = size as u64;
            let range = start
                .checked_mul(size)
                .and_then(|begin| Some((begin, begin.checked_add(count.checked_mul(size)?)?)))
                .ok_or_else(|| corrupt("chunk range overflows"))?;
            let items = usize::try_from(range.0)
                .ok()
                .zip(usize::try_from(range.1).ok())
                .and_then(|(b, e)| input.get(b..e))
                .ok_or_else(|| corrupt("chunk range outside its input"))?;
            for item in items.chunks_exact(size as usize) {
                each(A::decode(item)?)?;
            }
        }
        None => {
            let mut rest = input;
            for _ in 0..count {
                each(A::decode(take_frame(&mut rest)?)?)?;
            }
        }
    }
    Ok(())
}

/// Runs one `apply` task: decode the argument, call, store the result.
///
/// # Safety
/// Called by a worker that claimed `slot` (it alone reads and writes it).
pub(crate) unsafe fn apply_task<A: Message, R: Message, K: Invoke<A, R>>(
    core: &Core,
    slot: &Slot,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    // SAFETY: we claimed the slot; nobody writes its input meanwhile.
    let arg = A::decode(unsafe { core.input(slot)? })?;
    let result = K::invoke(arg);
    let bytes = bytes_of(&result, scratch)?;
    core.store_output(slot, bytes)
}

/// Runs one map chunk. Fixed-size results go straight into their place in
/// the caller's result array; others are framed into one new block.
///
/// # Safety
/// As [`apply_task`].
pub(crate) unsafe fn map_task<A: Message, R: Message, K: Invoke<A, R>>(
    core: &Core,
    slot: &Slot,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let start = slot.start.load(Ordering::Relaxed);
    let count = slot.count.load(Ordering::Relaxed);
    // SAFETY: we claimed the slot; nobody writes its input meanwhile.
    let input = unsafe { core.input(slot)? };
    let out_offset = slot.output.load(Ordering::Relaxed);
    match R::FIXED_SIZE {
        Some(size) if out_offset != 0 => {
            let out_len = slot.output_len.load(Ordering::Relaxed);
            let end = start
                .checked_add(count)
                .and_then(|end| end.checked_mul(size as u64))
                .filter(|&end| end <= out_len)
                .ok_or_else(|| corrupt("chunk range outside its result array"))?;
            let base = core.region(slot, out_offset, out_len)?;
            let mut at = (end - count * size as u64) as usize;
            let mut spare = Vec::new();
            for_each_input::<A>(input, start, count, |arg| {
                let result = K::invoke(arg);
                let bytes = bytes_of(&result, &mut spare)?;
                if bytes.len() != size {
                    return Err(Error::Codec(format!(
                        "a fixed-size result encoded to {} bytes, not {size}",
                        bytes.len()
                    )));
                }
                // SAFETY: at + size <= end <= out_len, and `base .. base +
                // out_len` was checked to lie in the arena; this chunk's
                // items are written by this worker only.
                let to = unsafe { base.as_ptr().add(at) };
                // SAFETY: as above: `size` bytes at `to` are this chunk's.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to, size) };
                at += size;
                Ok(())
            })
        }
        fixed => {
            // Encoded results, or fixed-size ones that fit inline: gather
            // them here, then store them in one go.
            scratch.clear();
            let mut spare = Vec::new();
            for_each_input::<A>(input, start, count, |arg| {
                let result = K::invoke(arg);
                match fixed {
                    Some(_) => scratch.extend_from_slice(bytes_of(&result, &mut spare)?),
                    None => put_frame(&result, scratch)?,
                }
                Ok(())
            })?;
            core.store_output(slot, scratch)
        }
    }
}

/// Runs one chunk of [`Pool::map_array`](crate::Pool::map_array): reads
/// items `start .. start + count` of a `RawArray<A>` in the default arena
/// and writes `f(item)` into the same places of a `RawArray<R>`. No codec,
/// no copy through the caller: the loop is a load, the call and a store.
///
/// # Safety
/// As [`apply_task`].
pub(crate) unsafe fn array_task<A: bytemuck::Pod, R: bytemuck::Pod, K: Invoke<A, R>>(
    core: &Core,
    slot: &Slot,
    _scratch: &mut Vec<u8>,
) -> Result<()> {
    let arena = &core.default_arena;
    let start = slot.start.load(Ordering::Relaxed);
    let count = slot.count.load(Ordering::Relaxed);
    let end = start
        .checked_add(count)
        .filter(|&end| end <= u64::from(u32::MAX) * 1024)
        .ok_or_else(|| corrupt("array chunk range overflows"))?;
    let span = |offset: &crate::loom::atomic::AtomicU64,
                len: &crate::loom::atomic::AtomicU64,
                size: usize,
                align: usize|
     -> Result<core::ptr::NonNull<u8>> {
        let len = len.load(Ordering::Relaxed);
        if end.checked_mul(size as u64).is_none_or(|need| need > len) {
            return Err(corrupt("array chunk outside its array"));
        }
        arena.check_range(offset.load(Ordering::Relaxed), len, align as u64)
    };
    let input = span(
        &slot.input,
        &slot.input_len,
        core::mem::size_of::<A>(),
        core::mem::align_of::<A>(),
    )?
    .cast::<A>();
    let output = span(
        &slot.output,
        &slot.output_len,
        core::mem::size_of::<R>(),
        core::mem::align_of::<R>(),
    )?
    .cast::<R>();
    for i in start as usize..end as usize {
        // Volatile, as RawArray's own accessors: another process may write
        // the array meanwhile (any bytes are a valid A: Pod), so no
        // reference to it is formed.
        // SAFETY: i < end, and `end` items of A lie inside the checked,
        // aligned range at `input`.
        let from = unsafe { input.as_ptr().add(i) };
        // SAFETY: `from` is in bounds and aligned (above).
        let item = unsafe { from.read_volatile() };
        let result = K::invoke(item);
        // SAFETY: as above, for R at `output`.
        let to = unsafe { output.as_ptr().add(i) };
        // SAFETY: `to` is in bounds and aligned (above).
        unsafe { to.write_volatile(result) };
    }
    Ok(())
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// What a worker is told at its fork (its forked memory, never shm).
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) max_tasks: Option<u64>,
    pub(crate) spin: Duration,
    pub(crate) initializer: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// A worker's life: the initializer, then tasks until the pool drains, is
/// terminated, or `max_tasks` ran. Returns to exit with code 0.
pub(crate) fn worker_main(core: &Core, index: usize, ticket: u32, config: &WorkerConfig) {
    let Ok(record) = core.records.get(index as u64) else {
        return;
    };
    record.pid.store(crate::sys::getpid(), Ordering::Relaxed);
    if let Some(init) = &config.initializer {
        // A panic here ends the worker with exit code 1 (and the manager
        // forks a replacement, as Python's Pool does).
        init();
    }
    let mut scratch = Vec::new();
    let mut ran = 0u64;
    while let Some(index) = next_task(core, ticket, record, config.spin) {
        run_task(core, index, ticket, &mut scratch);
        record.current.store(0, Ordering::Relaxed);
        ran += 1;
        if config.max_tasks.is_some_and(|max| ran >= max) {
            return;
        }
    }
}

/// Claims the next task: from the ring, else after spinning, else after
/// sleeping. `None` when the ring is empty and the pool drains (or is
/// being terminated).
fn next_task(core: &Core, ticket: u32, record: &super::shm::Record, spin: Duration) -> Option<u32> {
    let header = core.header();
    loop {
        if let Some(index) = core.pop(ticket, record) {
            return Some(index);
        }
        // SYNC POINT: Acquire pairs with the SeqCst fetch_or in close/terminate.
        if header.flags.load(Ordering::Acquire) & (DRAINING | TERMINATING) != 0 {
            return None;
        }
        let strategy = WaitStrategy::SpinThenPark(spin);
        if let Some(index) = strategy.spin(None, || core.pop(ticket, record)) {
            return Some(index);
        }
        let seen = header.work.prepare();
        if let Some(index) = core.pop(ticket, record) {
            header.work.done();
            return Some(index);
        }
        if header.flags.load(Ordering::SeqCst) != 0 {
            header.work.done();
            return None;
        }
        header.work.sleep(seen, None);
        header.work.done();
    }
}

fn run_task(core: &Core, index: u32, ticket: u32, scratch: &mut Vec<u8>) {
    let Ok(slot) = core.slots.get(u64::from(index)) else {
        return;
    };
    let address = slot.trampoline.load(Ordering::Relaxed);
    let (outcome, message) = if address == 0
        || core.seal(address) != slot.seal.load(Ordering::Relaxed)
    {
        (
            FAILED,
            Some("the task's function address failed its check: the pool's shared memory was overwritten".to_owned()),
        )
    } else {
        // A forked process has the same code at the same addresses.
        // SAFETY: the address carries a seal keyed by a secret that lives
        // only in the pool processes' private memory, so the pool's caller
        // wrote it from a `Trampoline` of this very binary.
        let trampoline = unsafe { core::mem::transmute::<usize, Trampoline>(address as usize) };
        // SAFETY: this worker claimed the slot (the trampoline's contract).
        match catch_unwind(AssertUnwindSafe(|| unsafe {
            trampoline(core, slot, scratch)
        })) {
            Ok(Ok(())) => (DONE, None),
            Ok(Err(error)) => (FAILED, Some(error.to_string())),
            Err(payload) => {
                let message = panic_message(&*payload);
                // Dropping a payload may panic again; the worker goes on.
                std::mem::forget(payload);
                (PANICKED, Some(message))
            }
        }
    };
    if let Some(message) = message {
        if core.store_output(slot, message.as_bytes()).is_err() {
            slot.output_len.store(0, Ordering::Relaxed);
        }
    }
    if slot.state.finish(ticket, outcome) {
        core.header().done.notify(u32::MAX);
    }
}

/// What the manager is told at its fork.
pub(crate) struct ManagerConfig {
    pub(crate) processes: usize,
    pub(crate) worker: WorkerConfig,
    /// Readable when the caller changed `flags` (close, terminate).
    pub(crate) eventfd: OwnedFd,
}

struct Worker {
    child: Arc<Child>,
    ticket: u32,
}

/// The manager's life: fork the workers, replace dead ones (failing the
/// task each was running), leave when the pool has drained or is terminated.
pub(crate) fn manager_main(core: &Core, config: &ManagerConfig) {
    let header = core.header();
    let mut workers: Vec<Option<Worker>> = (0..config.processes).map(|_| None).collect();
    let mut next_ticket = 0u32;
    loop {
        let flags = header.flags.load(Ordering::Acquire);
        if flags & TERMINATING != 0 {
            for worker in workers.iter().flatten() {
                let _ = worker.child.send_signal(rustix::process::Signal::KILL);
            }
            for worker in workers.iter().flatten() {
                let _ = worker.child.wait_deadline(None);
            }
            return;
        }
        let draining = flags & DRAINING != 0;
        let mut retry = false;
        for (index, place) in workers.iter_mut().enumerate() {
            if place.is_some() || (draining && core.ring_empty()) {
                continue;
            }
            next_ticket = next_ticket % MAX_TICKET + 1;
            match spawn(core, index, next_ticket, &config.worker) {
                Ok(worker) => *place = Some(worker),
                Err(_) => retry = true,
            }
        }
        if draining && workers.iter().all(Option::is_none) && core.ring_empty() {
            return;
        }
        let mut fds = vec![rustix::event::PollFd::new(
            &config.eventfd,
            rustix::event::PollFlags::IN,
        )];
        let mut without_pidfd = false;
        for worker in workers.iter().flatten() {
            {
                match worker.child.pidfd() {
                    Some(fd) => {
                        fds.push(rustix::event::PollFd::from_borrowed_fd(
                            fd,
                            rustix::event::PollFlags::IN,
                        ));
                    }
                    None => without_pidfd = true,
                }
            }
        }
        let timeout = if retry {
            Some(Duration::from_millis(50))
        } else if without_pidfd {
            Some(Duration::from_millis(10))
        } else {
            None
        };
        let timeout = timeout.and_then(|t| rustix::event::Timespec::try_from(t).ok());
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        drop(fds);
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(config.eventfd.as_fd(), &mut buf);
        for (index, place) in workers.iter_mut().enumerate() {
            let ended = match place {
                Some(worker) => match worker.child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    Ok(None) => None,
                    Err(_) => Some(ExitStatus::Unknown),
                },
                None => None,
            };
            if let Some(status) = ended {
                if let Some(worker) = place.take() {
                    worker_ended(core, index, &worker, status);
                }
            }
        }
    }
}

/// A worker was reaped: fail the task it was running, if it was running one
/// (a clean exit after `max_tasks`, or on draining, was running none).
fn worker_ended(core: &Core, index: usize, worker: &Worker, status: ExitStatus) {
    let Ok(record) = core.records.get(index as u64) else {
        return;
    };
    // Written by the dead worker before its claim; the exit and our waitid
    // order it before this load.
    let current = record.current.load(Ordering::Relaxed);
    if current == 0 {
        return;
    }
    let signal = status.signal().unwrap_or(0);
    if let Ok(slot) = core.slots.get(u64::from(current) - 1) {
        // The ticket is ours (manager memory), so only the slot this very
        // incarnation claimed can match.
        if slot
            .state
            .fail_dead(worker.ticket, worker.child.pid(), signal)
        {
            core.header().done.notify(u32::MAX);
        }
    }
}

fn spawn(core: &Core, index: usize, ticket: u32, config: &WorkerConfig) -> Result<Worker> {
    let record = core.records.get(index as u64)?;
    record.ticket.store(ticket, Ordering::Relaxed);
    record.current.store(0, Ordering::Relaxed);
    let identity = next_identity();
    let mut options = ForkOptions {
        name: Name::default_for("ForkPoolWorker"),
        identity,
        daemon: true,
        allow_threads: false,
        register: false,
    };
    let mut body = Some(|| worker_main(core, index, ticket, config));
    let child = fork_child(&mut options, &mut body)?;
    Ok(Worker { child, ticket })
}

/// A slot kind is one of the final states.
#[allow(dead_code)]
pub(crate) fn finished(state: u32) -> bool {
    slot::is_final(state)
}

const _: () = assert!(INLINE % 8 == 0);

#[cfg(test)]
mod tests {
    //! A peer scribbling on the pool's shared memory gets errors, never UB:
    //! the worker-side checks, without forking.
    use super::*;
    use crate::arena::Arena;

    fn core() -> Core {
        let arena = Arena::anonymous(8 << 20).unwrap();
        let default = Arena::anonymous(1 << 20).unwrap();
        Core::new(arena, default, 8, 2).unwrap()
    }

    fn double(x: u64) -> u64 {
        x * 2
    }

    fn apply_of<F: Fn(u64) -> u64 + Copy + 'static>(_: F) -> Trampoline {
        apply_task::<u64, u64, Plain<F>>
    }

    fn map_of<F: Fn(u64) -> u64 + Copy + 'static>(_: F) -> Trampoline {
        map_task::<u64, u64, Plain<F>>
    }

    fn queue(core: &Core, index: u32, trampoline: Trampoline, input: &[u8]) {
        let slot = core.slots.get(u64::from(index)).unwrap();
        let address = trampoline as usize as u64;
        slot.trampoline.store(address, Ordering::Relaxed);
        slot.seal.store(core.seal(address), Ordering::Relaxed);
        let at = core.region(slot, 0, input.len() as u64).unwrap();
        // SAFETY: room for the input (region checked it); no other process.
        unsafe { core::ptr::copy_nonoverlapping(input.as_ptr(), at.as_ptr(), input.len()) };
        slot.input.store(0, Ordering::Relaxed);
        slot.input_len.store(input.len() as u64, Ordering::Relaxed);
        slot.output.store(0, Ordering::Relaxed);
        slot.output_len.store(0, Ordering::Relaxed);
        slot.start.store(0, Ordering::Relaxed);
        slot.count.store(1, Ordering::Relaxed);
        slot.state.queue();
        core.push(index, || true).unwrap();
    }

    fn run_next(core: &Core) -> (u32, Vec<u8>) {
        let record = core.records.get(0).unwrap();
        let index = core.pop(9, record).expect("a queued task");
        let mut scratch = Vec::new();
        run_task(core, index, 9, &mut scratch);
        let slot = core.slots.get(u64::from(index)).unwrap();
        // SAFETY: the task ended; nobody writes the slot.
        let output = unsafe { core.output(slot) }.unwrap_or(&[]).to_vec();
        (slot::kind(slot.state.load()), output)
    }

    #[test]
    fn a_task_runs_and_its_result_is_read_back() {
        let core = core();
        queue(&core, 0, apply_of(double), &21u64.to_ne_bytes());
        let (state, output) = run_next(&core);
        assert_eq!(state, DONE);
        assert_eq!(output, 42u64.to_ne_bytes());
        let record = core.records.get(0).unwrap();
        assert!(core.pop(9, record).is_none(), "the ring is empty");
    }

    #[test]
    fn a_scribbled_address_is_refused_not_called() {
        let core = core();
        queue(&core, 1, apply_of(double), &1u64.to_ne_bytes());
        let slot = core.slots.get(1).unwrap();
        slot.trampoline.store(0xdead_beef, Ordering::Relaxed);
        let (state, message) = run_next(&core);
        assert_eq!(state, FAILED);
        assert!(String::from_utf8_lossy(&message).contains("failed its check"));
    }

    #[test]
    fn scribbled_lengths_and_ranges_are_errors() {
        let core = core();
        // An inline length larger than the inline room.
        queue(&core, 2, apply_of(double), &1u64.to_ne_bytes());
        core.slots
            .get(2)
            .unwrap()
            .input_len
            .store(1 << 40, Ordering::Relaxed);
        let (state, message) = run_next(&core);
        assert_eq!(state, FAILED, "{}", String::from_utf8_lossy(&message));
        // A map chunk whose range lies outside its input.
        queue(&core, 3, map_of(double), &[0u8; 16]);
        core.slots
            .get(3)
            .unwrap()
            .start
            .store(u64::MAX / 4, Ordering::Relaxed);
        let (state, _) = run_next(&core);
        assert_eq!(state, FAILED);
        // An input offset outside the arena.
        queue(&core, 4, map_of(double), &[0u8; 16]);
        core.slots
            .get(4)
            .unwrap()
            .input
            .store(u64::MAX - 8, Ordering::Relaxed);
        let (state, _) = run_next(&core);
        assert_eq!(state, FAILED);
    }

    #[test]
    fn a_scribbled_ring_cell_is_skipped() {
        let core = core();
        queue(&core, 5, apply_of(double), &1u64.to_ne_bytes());
        // The cell now names a slot that does not exist.
        core.cells
            .get(0)
            .unwrap()
            .slot
            .store(1 << 40, Ordering::Relaxed);
        let record = core.records.get(0).unwrap();
        assert_eq!(core.pop(9, record), None);
        assert_eq!(record.current.load(Ordering::Relaxed), 0);
    }
}
