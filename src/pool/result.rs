//! The caller's handles on queued work: [`AsyncResult`], [`MapResult`],
//! [`IMap`], [`IMapUnordered`], and the bookkeeping of the slots and blocks
//! each one owns.

use super::shm::{Core, INLINE};
use super::slot::{self, CANCELLED, DIED, DONE, FAILED, PANICKED};
use super::worker::{Trampoline, put_frame, take_frame};
use super::{Shared, TaskSpec};
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The slots and blocks a handle owns in the pool's arena.
#[derive(Default)]
pub(crate) struct Job {
    /// (slot, the output offset the caller placed in it).
    pub(crate) slots: Vec<(u32, u64)>,
    /// Blocks the caller allocated (inputs, result arrays).
    pub(crate) blocks: Vec<u64>,
}

impl Job {
    /// True once every slot is in a final state.
    pub(crate) fn ended(&self, core: &Core) -> bool {
        self.slots.iter().all(|&(index, _)| {
            core.slots
                .get(u64::from(index))
                .map_or(true, |slot| slot::is_final(slot.state.load()))
        })
    }

    /// Frees everything (every slot must have ended).
    pub(crate) fn release(mut self, core: &Core, free: &mut Vec<u32>) {
        for (index, placed) in self.slots.drain(..) {
            release_slot(core, index, placed, free);
        }
        self.free_blocks(core);
    }

    pub(crate) fn free_blocks(&mut self, core: &Core) {
        for block in self.blocks.drain(..) {
            core.free_block(block);
        }
    }
}

/// Frees a final slot's worker-made output and returns the slot.
fn release_slot(core: &Core, index: u32, placed: u64, free: &mut Vec<u32>) {
    if let Ok(slot) = core.slots.get(u64::from(index)) {
        let output = slot.output.load(Ordering::Relaxed);
        if output != placed {
            core.free_block(output);
        }
        slot.state.release();
        free.push(index);
    }
}

impl Shared {
    /// Takes back a job whose handle is gone: now if it has ended, else
    /// once it has (see `reclaim`).
    pub(crate) fn abandon(&self, job: Job) {
        if !self.is_owner() {
            // A forked copy of a handle: the slots are the owner's to free.
            return;
        }
        let mut local = self.local();
        if job.ended(&self.core) {
            job.release(&self.core, &mut local.free);
        } else {
            local.abandoned.push(job);
        }
    }

    pub(crate) fn release_slot(&self, index: u32, placed: u64) {
        if !self.is_owner() {
            return;
        }
        let mut local = self.local();
        release_slot(&self.core, index, placed, &mut local.free);
    }
}

/// Why a task failed, kept so that `get` can be asked again.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    Panicked(String),
    Died { pid: i32, signal: i32 },
    Cancelled,
    Failed(String),
}

impl Failure {
    pub(crate) fn error(&self) -> Error {
        match self {
            Failure::Panicked(message) => Error::TaskPanicked(message.clone()),
            Failure::Died { pid, signal } => Error::WorkerDied {
                pid: *pid,
                signal: *signal,
            },
            Failure::Cancelled => Error::PoolClosed,
            Failure::Failed(message) => Error::Codec(message.clone()),
        }
    }
}

/// The failure a final, unsuccessful slot reports.
pub(crate) fn failure(core: &Core, index: u32, state: u32) -> Failure {
    let Ok(slot) = core.slots.get(u64::from(index)) else {
        return Failure::Failed("slot out of range".into());
    };
    let message = || {
        // SAFETY: the slot is final: no worker writes it any more.
        let bytes = unsafe { core.output(slot) }.unwrap_or(&[]);
        String::from_utf8_lossy(bytes).into_owned()
    };
    match slot::kind(state) {
        PANICKED => Failure::Panicked(message()),
        DIED => {
            let (pid, signal) = slot.state.death();
            Failure::Died { pid, signal }
        }
        CANCELLED => Failure::Cancelled,
        FAILED => Failure::Failed(message()),
        _ => Failure::Failed(format!("unexpected task state {state:#x}")),
    }
}

pub(crate) fn state_of(core: &Core, index: u32) -> u32 {
    core.slots
        .get(u64::from(index))
        .map_or(FAILED, |slot| slot.state.load())
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

// ---------------------------------------------------------------------------
// AsyncResult
// ---------------------------------------------------------------------------

/// The result of [`Pool::apply_async`](crate::Pool::apply_async): Python's
/// `AsyncResult`.
///
/// [`get`](AsyncResult::get) may be called more than once (each call
/// decodes the result anew from shared memory). Dropping the handle frees
/// the result (at once, or when the task ends).
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// fn double(x: i32) -> i32 {
///     x * 2
/// }
/// let pool = Pool::new(2)?;
/// let results: Vec<_> = (0..10).map(|i| pool.apply_async(double, i)).collect::<Result<_, _>>()?;
/// pool.close();
/// pool.join()?;
/// let values: Vec<i32> = results.iter().map(|r| r.get()).collect::<Result<_, _>>()?;
/// assert_eq!(values, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct AsyncResult<R> {
    shared: Arc<Shared>,
    job: Job,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<AsyncResult ready={}>", self.ready())
    }
}

impl<R> AsyncResult<R> {
    pub(crate) fn new(shared: Arc<Shared>, job: Job) -> Self {
        AsyncResult {
            shared,
            job,
            _result: PhantomData,
        }
    }

    fn index(&self) -> u32 {
        self.job.slots[0].0
    }

    fn state(&self) -> u32 {
        state_of(&self.shared.core, self.index())
    }

    /// True once the task has ended (successfully or not).
    pub fn ready(&self) -> bool {
        slot::is_final(self.state())
    }

    /// Waits until the task has ended.
    pub fn wait(&self) {
        let _ = self.shared.wait_until(None, || self.ready());
    }

    /// Waits up to `timeout`; true if the task has ended.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let _ = self
            .shared
            .wait_until(deadline_after(timeout), || self.ready());
        self.ready()
    }

    /// `Some(true)` if the task returned, `Some(false)` if it failed,
    /// `None` while it runs (Python raises `ValueError` then).
    pub fn successful(&self) -> Option<bool> {
        let state = self.state();
        slot::is_final(state).then(|| slot::kind(state) == DONE)
    }
}

impl<R: Message> AsyncResult<R> {
    /// Waits for the task and returns its result.
    ///
    /// # Errors
    /// [`Error::TaskPanicked`] with the panic message;
    /// [`Error::WorkerDied`] if its worker was killed while running it;
    /// [`Error::PoolClosed`] if the pool was terminated first;
    /// [`Error::Codec`] if the result could not be decoded.
    pub fn get(&self) -> Result<R> {
        self.shared.wait_until(None, || self.ready())?;
        self.take()
    }

    /// [`get`](AsyncResult::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the task has not ended by then (ask again
    /// later); otherwise as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.shared
            .wait_until(deadline_after(timeout), || self.ready())?;
        self.take()
    }

    fn take(&self) -> Result<R> {
        let core = &self.shared.core;
        let state = self.state();
        if slot::kind(state) != DONE {
            return Err(failure(core, self.index(), state).error());
        }
        let slot = core.slots.get(u64::from(self.index()))?;
        // SAFETY: DONE is final: no worker writes the slot any more.
        R::decode(unsafe { core.output(slot)? })
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        self.shared.abandon(std::mem::take(&mut self.job));
    }
}

// ---------------------------------------------------------------------------
// Chunks: the shared machinery of map and imap
// ---------------------------------------------------------------------------

/// Where a finished chunk's results are.
enum Out {
    /// In the job's result array (fixed-size results of `map`).
    Array,
    /// Copied out of the slot (they were inline).
    Bytes(Vec<u8>),
    /// In a block a worker allocated (offset, length); freed with the job.
    Block(u64, u64),
}

enum ChunkState {
    Pending {
        slot: u32,
        placed: u64,
    },
    Done(Out),
    Failed(Failure),
    /// Never queued (queueing failed).
    Unsent(Failure),
}

struct Chunk {
    start: u64,
    count: u64,
    state: ChunkState,
}

/// A set of chunks of one map (or one chunk of an imap).
pub(crate) struct Chunks<R> {
    shared: Arc<Shared>,
    chunks: Vec<Chunk>,
    /// Fixed-size results: the result array (offset, items).
    array: Option<(u64, u64)>,
    blocks: Vec<u64>,
    _result: PhantomData<fn() -> R>,
}

impl<R: Message> Chunks<R> {
    /// Copies `items` to shared memory and queues them in chunks of
    /// `chunksize`. With `whole` the inputs (fixed-size) and the results
    /// (fixed-size) are one array each, indexed by item; otherwise (one imap
    /// chunk) they are the chunk's own.
    pub(crate) fn submit<A: Message>(
        shared: &Arc<Shared>,
        trampoline: Trampoline,
        mut items: impl Iterator<Item = A>,
        len: usize,
        chunksize: usize,
        whole: bool,
    ) -> Result<Chunks<R>> {
        let core = &shared.core;
        let mut chunks = Chunks {
            shared: Arc::clone(shared),
            chunks: Vec::new(),
            array: None,
            blocks: Vec::new(),
            _result: PhantomData,
        };
        let mut n = len as u64;
        // Fixed-size inputs: one array (inline when tiny and alone), written
        // straight from the iterator, chunk by chunk, each chunk queued as
        // soon as it is written (the workers start while we copy the rest).
        let fixed_input = match A::FIXED_SIZE {
            Some(size) => {
                let bytes = (size as u64).checked_mul(n).ok_or_else(|| {
                    Error::InvalidArgument(format!("{n} items of {size} bytes overflow"))
                })?;
                if !whole && bytes <= INLINE as u64 {
                    Some((0, bytes, None))
                } else {
                    let block = core.arena.alloc(bytes as usize, 16)?.raw();
                    chunks.blocks.push(block);
                    Some((block, bytes, Some(core.arena.check_range(block, bytes, 1)?)))
                }
            }
            None => None,
        };
        // Fixed-size results: one array, written in place by the workers
        // (inline for a tiny lone chunk: the worker stores it there).
        let (output, output_len) = match R::FIXED_SIZE {
            Some(size) => {
                let bytes = size as u64 * n;
                if !whole && bytes <= INLINE as u64 {
                    (0, 0)
                } else {
                    let block = core.arena.alloc(bytes as usize, 16)?.raw();
                    chunks.blocks.push(block);
                    chunks.array = Some((block, n));
                    (block, bytes)
                }
            }
            None => (0, 0),
        };
        let mut frames = Vec::new();
        let chunksize = chunksize.max(1) as u64;
        if whole && n > chunksize {
            // Several chunks: wake parked workers now, so that their wake-up
            // (tens of µs) overlaps the copy of the first chunk.
            shared.wake_workers(usize::MAX);
        }
        let mut start = 0u64;
        while start < n {
            let mut count = chunksize.min(n - start);
            if let (Some(size), Some((_, _, base))) = (A::FIXED_SIZE, &fixed_input) {
                let take = count as usize;
                let written = if size == 0 {
                    items.by_ref().take(take).count()
                } else {
                    match base {
                        Some(base) => {
                            let begin = start as usize * size;
                            // SAFETY: (start + count) * size <= bytes, the
                            // checked length of `base` (start + count <= n,
                            // n * size did not overflow): `begin` is inside.
                            let at = unsafe { base.as_ptr().add(begin) };
                            // SAFETY: `at .. at + count * size` is in the
                            // checked block; no worker reads the chunk before
                            // it is queued, and nothing else here refers to it.
                            let out = unsafe { core::slice::from_raw_parts_mut(at, take * size) };
                            A::encode_fixed(&mut items, out)?
                        }
                        None => {
                            frames.clear();
                            frames.resize(take * size, 0);
                            let written = A::encode_fixed(&mut items, &mut frames)?;
                            frames.truncate(written * size);
                            written
                        }
                    }
                } as u64;
                if written < count {
                    // The iterator ended early (its size hint lied).
                    count = written;
                    n = start + written;
                    if count == 0 {
                        break;
                    }
                }
            }
            let mut spec = TaskSpec {
                trampoline,
                inline_input: None,
                input: 0,
                input_len: 0,
                output,
                output_len,
                start: if whole { start } else { 0 },
                count,
            };
            match &fixed_input {
                Some((block, bytes, base)) => {
                    spec.input = *block;
                    spec.input_len = *bytes;
                    if base.is_none() {
                        spec.input_len = frames.len() as u64;
                        spec.inline_input = Some(&frames);
                    }
                }
                None => {
                    frames.clear();
                    for item in items.by_ref().take(count as usize) {
                        put_frame(&item, &mut frames)?;
                    }
                    if frames.len() <= INLINE {
                        spec.inline_input = Some(&frames);
                    } else {
                        let block = core.arena.alloc(frames.len(), 8)?.raw();
                        chunks.blocks.push(block);
                        let at = core.arena.check_range(block, frames.len() as u64, 1)?;
                        // SAFETY: `at` has room (checked); the block is fresh.
                        unsafe {
                            core::ptr::copy_nonoverlapping(
                                frames.as_ptr(),
                                at.as_ptr(),
                                frames.len(),
                            )
                        };
                        spec.input = block;
                    }
                    spec.input_len = frames.len() as u64;
                }
            }
            let state = loop {
                match shared.try_submit(&spec) {
                    Ok(Some(slot)) => {
                        shared.wake_workers(1);
                        break ChunkState::Pending {
                            slot,
                            placed: output,
                        };
                    }
                    Ok(None) => {
                        // No slot free: let the workers go, collect what
                        // ended (our own chunks included), then wait.
                        if chunks.harvest() == 0 {
                            shared.wait_for_any(None, || false)?;
                        }
                    }
                    Err(error) => {
                        let failure = match error {
                            Error::PoolClosed => Failure::Cancelled,
                            other => Failure::Failed(other.to_string()),
                        };
                        if chunks.chunks.is_empty() {
                            return Err(failure.error());
                        }
                        break ChunkState::Unsent(failure);
                    }
                }
            };
            chunks.chunks.push(Chunk {
                start,
                count,
                state,
            });
            start += count;
        }
        Ok(chunks)
    }

    /// Turns ended pending chunks into outcomes and frees their slots;
    /// returns how many.
    fn harvest(&mut self) -> usize {
        let core = Arc::clone(&self.shared.core);
        let mut harvested = 0;
        for chunk in &mut self.chunks {
            let ChunkState::Pending {
                slot: index,
                placed,
            } = chunk.state
            else {
                continue;
            };
            let state = state_of(&core, index);
            if !slot::is_final(state) {
                continue;
            }
            chunk.state = if slot::kind(state) == DONE {
                match core.slots.get(u64::from(index)) {
                    Ok(slot) => {
                        let output = slot.output.load(Ordering::Relaxed);
                        let len = slot.output_len.load(Ordering::Relaxed);
                        if output != 0 && output == placed {
                            ChunkState::Done(Out::Array)
                        } else if output == 0 {
                            // SAFETY: DONE is final; nobody writes the slot.
                            match unsafe { core.output(slot) } {
                                Ok(bytes) => ChunkState::Done(Out::Bytes(bytes.to_vec())),
                                Err(e) => ChunkState::Failed(Failure::Failed(e.to_string())),
                            }
                        } else {
                            // Keep the worker's block: the slot forgets it.
                            slot.output.store(placed, Ordering::Relaxed);
                            self.blocks.push(output);
                            ChunkState::Done(Out::Block(output, len))
                        }
                    }
                    Err(e) => ChunkState::Failed(Failure::Failed(e.to_string())),
                }
            } else {
                ChunkState::Failed(failure(&core, index, state))
            };
            self.shared.release_slot(index, placed);
            harvested += 1;
        }
        harvested
    }

    fn all_final(&self) -> bool {
        let core = &self.shared.core;
        self.chunks.iter().all(|c| match c.state {
            ChunkState::Pending { slot, .. } => slot::is_final(state_of(core, slot)),
            _ => true,
        })
    }

    /// Waits for every chunk (or `deadline`).
    fn wait_all(&mut self, deadline: Option<Instant>) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        shared.wait_until(deadline, || self.all_final())?;
        self.harvest();
        Ok(())
    }

    /// Waits for each chunk in turn and decodes its results, so decoding
    /// overlaps the workers' later chunks; the first failed chunk's error
    /// otherwise.
    fn collect(&mut self, deadline: Option<Instant>) -> Result<Vec<R>> {
        let shared = Arc::clone(&self.shared);
        let total = self.chunks.iter().map(|c| c.count).sum::<u64>();
        let mut results = Vec::with_capacity(total as usize);
        for i in 0..self.chunks.len() {
            if let ChunkState::Pending { slot, .. } = self.chunks[i].state {
                shared.wait_until(deadline, || slot::is_final(state_of(&shared.core, slot)))?;
                self.harvest();
            }
            let chunk = &self.chunks[i];
            match R::FIXED_SIZE {
                // Fixed-size results: one bulk copy (plain-old-data) per chunk.
                Some(size) if size > 0 => {
                    let bytes = self.chunk_bytes(chunk)?;
                    check_chunk_len(chunk, size, bytes)?;
                    R::decode_fixed(bytes, &mut results)?;
                }
                _ => self.decode_chunk(chunk, |r| results.push(r))?,
            }
        }
        Ok(results)
    }

    /// Decodes one ended chunk's results into `out`.
    fn decode_chunk(&self, chunk: &Chunk, mut out: impl FnMut(R)) -> Result<()> {
        let out_bytes = self.chunk_bytes(chunk)?;
        match R::FIXED_SIZE {
            Some(0) => {
                for _ in 0..chunk.count {
                    out(R::decode(&[])?);
                }
            }
            Some(size) => {
                check_chunk_len(chunk, size, out_bytes)?;
                for item in out_bytes.chunks_exact(size) {
                    out(R::decode(item)?);
                }
            }
            None => {
                let mut rest = out_bytes;
                for _ in 0..chunk.count {
                    out(R::decode(take_frame(&mut rest)?)?);
                }
            }
        }
        Ok(())
    }

    /// The bytes of one ended chunk's results (its error if it failed).
    fn chunk_bytes<'c>(&'c self, chunk: &'c Chunk) -> Result<&'c [u8]> {
        let core = &self.shared.core;
        Ok(match &chunk.state {
            ChunkState::Failed(failure) | ChunkState::Unsent(failure) => {
                return Err(failure.error());
            }
            ChunkState::Pending { .. } => {
                return Err(Error::Corrupt {
                    what: "a pool chunk was read before it ended".into(),
                });
            }
            ChunkState::Done(Out::Array) => {
                let (block, n) = self.array.ok_or_else(|| Error::Corrupt {
                    what: "a pool chunk has no result array".into(),
                })?;
                let size = R::FIXED_SIZE.unwrap_or(0) as u64;
                let base = core.arena.check_range(block, n * size, 1)?;
                let begin = chunk.start * size;
                let end = begin + chunk.count * size;
                if end > n * size {
                    return Err(Error::Corrupt {
                        what: "a pool chunk lies outside its result array".into(),
                    });
                }
                // SAFETY: inside the checked array; every chunk writing it
                // has ended, so nobody writes these bytes now.
                {
                    // SAFETY: begin <= end <= the checked array's length.
                    let from = unsafe { base.as_ptr().add(begin as usize) };
                    // SAFETY: as above, in bounds; no writer any more.
                    unsafe { core::slice::from_raw_parts(from, (end - begin) as usize) }
                }
            }
            ChunkState::Done(Out::Bytes(bytes)) => bytes,
            ChunkState::Done(Out::Block(block, len)) => {
                let at = core.arena.check_range(*block, *len, 1)?;
                // SAFETY: checked range; the worker that wrote it has finished.
                unsafe { core::slice::from_raw_parts(at.as_ptr(), *len as usize) }
            }
        })
    }
}

/// Fixed-size results: a chunk of `count` came back as `count × size` bytes.
fn check_chunk_len(chunk: &Chunk, size: usize, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 == chunk.count * size as u64 {
        Ok(())
    } else {
        Err(Error::Codec(format!(
            "a chunk of {} results came back as {} bytes",
            chunk.count,
            bytes.len()
        )))
    }
}

impl<R> Drop for Chunks<R> {
    fn drop(&mut self) {
        let mut job = Job {
            slots: Vec::new(),
            blocks: std::mem::take(&mut self.blocks),
        };
        for chunk in self.chunks.drain(..) {
            if let ChunkState::Pending { slot, placed } = chunk.state {
                job.slots.push((slot, placed));
            }
        }
        self.shared.abandon(job);
    }
}

// ---------------------------------------------------------------------------
// MapResult
// ---------------------------------------------------------------------------

/// The result of [`Pool::map_async`](crate::Pool::map_async): every item's
/// result, in order, once all chunks have ended.
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// let pool = Pool::new(2)?;
/// let pending = pool.map_async(|x: u32| x + 1, vec![1u32, 2, 3])?;
/// assert_eq!(pending.get()?, [2, 3, 4]);
/// assert_eq!(pending.successful(), Some(true));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct MapResult<R> {
    chunks: Mutex<Chunks<R>>,
}

impl<R> fmt::Debug for MapResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<MapResult>")
    }
}

impl<R: Message> MapResult<R> {
    pub(crate) fn new(chunks: Chunks<R>) -> Self {
        MapResult {
            chunks: Mutex::new(chunks),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Chunks<R>> {
        self.chunks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True once every chunk has ended.
    pub fn ready(&self) -> bool {
        self.lock().all_final()
    }

    /// Waits until every chunk has ended.
    pub fn wait(&self) {
        let _ = self.lock().wait_all(None);
    }

    /// Waits up to `timeout`; true if every chunk has ended.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.lock().wait_all(deadline_after(timeout)).is_ok()
    }

    /// `Some(true)` if every chunk succeeded, `None` while some still run.
    pub fn successful(&self) -> Option<bool> {
        let mut chunks = self.lock();
        if !chunks.all_final() {
            return None;
        }
        chunks.harvest();
        Some(
            chunks
                .chunks
                .iter()
                .all(|c| matches!(c.state, ChunkState::Done(_))),
        )
    }

    /// Waits for every chunk and returns the results in order.
    ///
    /// # Errors
    /// The first failed chunk's error (see [`AsyncResult::get`]).
    pub fn get(&self) -> Result<Vec<R>> {
        self.lock().collect(None)
    }

    /// [`get`](MapResult::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`]; otherwise as [`get`](MapResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<R>> {
        let mut chunks = self.lock();
        let deadline = deadline_after(timeout);
        chunks.wait_all(deadline)?;
        chunks.collect(deadline)
    }
}

// ---------------------------------------------------------------------------
// IMap, IMapUnordered
// ---------------------------------------------------------------------------

/// The iterator [`Pool::imap`](crate::Pool::imap) returns: results in
/// input order, computed a window of chunks ahead of the consumer.
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// let pool = Pool::new(2)?;
/// // An endless input: items are pulled only as the window needs them.
/// let mut squares = pool.imap(|x: u64| x * x, 1u64..)?;
/// assert_eq!(squares.next().unwrap()?, 1);
/// assert_eq!(squares.next().unwrap()?, 4);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct IMap<'a, A, R> {
    shared: Arc<Shared>,
    trampoline: Trampoline,
    input: Box<dyn Iterator<Item = A> + 'a>,
    chunksize: usize,
    ordered: bool,
    exhausted: bool,
    window: VecDeque<Chunks<R>>,
    max_window: usize,
    ready: VecDeque<Result<R>>,
}

impl<A, R> fmt::Debug for IMap<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<IMap ordered={} in_flight={}>",
            self.ordered,
            self.window.len()
        )
    }
}

impl<'a, A: Message, R: Message> IMap<'a, A, R> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        trampoline: Trampoline,
        input: Box<dyn Iterator<Item = A> + 'a>,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        let max_window = (4 * shared.processes).max(8);
        IMap {
            shared,
            trampoline,
            input,
            chunksize,
            ordered,
            exhausted: false,
            window: VecDeque::new(),
            max_window,
            ready: VecDeque::new(),
        }
    }

    /// Queues chunks until the window is full or the input ends.
    fn fill(&mut self) -> Result<()> {
        while !self.exhausted && self.window.len() < self.max_window {
            let items: Vec<A> = self.input.by_ref().take(self.chunksize).collect();
            if items.is_empty() {
                self.exhausted = true;
                break;
            }
            if items.len() < self.chunksize {
                self.exhausted = true;
            }
            let len = items.len();
            let chunks = Chunks::<R>::submit(
                &self.shared,
                self.trampoline,
                items.into_iter(),
                len,
                len,
                false,
            )?;
            self.window.push_back(chunks);
        }
        Ok(())
    }

    fn advance(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(result) = self.ready.pop_front() {
                return Some(result);
            }
            if let Err(error) = self.fill() {
                self.exhausted = true;
                return Some(Err(error));
            }
            if self.window.is_empty() {
                return None;
            }
            let position = if self.ordered {
                let shared = Arc::clone(&self.shared);
                let first = &self.window[0];
                if let Err(error) = shared.wait_until(None, || first.all_final()) {
                    return Some(Err(error));
                }
                0
            } else {
                let shared = Arc::clone(&self.shared);
                let window = &self.window;
                let found = || window.iter().position(|c| c.all_final());
                if let Err(error) = shared.wait_until(None, || found().is_some()) {
                    return Some(Err(error));
                }
                found().unwrap_or(0)
            };
            let mut chunks = self.window.remove(position)?;
            chunks.harvest();
            let mut ready = VecDeque::new();
            for chunk in &chunks.chunks {
                if let Err(error) = chunks.decode_chunk(chunk, |r| ready.push_back(Ok(r))) {
                    ready.push_back(Err(error));
                }
            }
            self.ready = ready;
            drop(chunks);
        }
    }
}

impl<A: Message, R: Message> Iterator for IMap<'_, A, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.advance()
    }
}

/// The iterator [`Pool::imap_unordered`](crate::Pool::imap_unordered)
/// returns: results in the order the tasks complete.
///
/// # Examples
/// ```
/// use shmproc::Pool;
/// let pool = Pool::new(2)?;
/// let mut lengths: Vec<u64> = pool
///     .imap_unordered(|s: String| s.len() as u64, ["a", "bb", "ccc"].map(String::from))?
///     .collect::<Result<_, _>>()?;
/// lengths.sort();
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct IMapUnordered<'a, A, R>(pub(crate) IMap<'a, A, R>);

impl<A, R> fmt::Debug for IMapUnordered<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<A: Message, R: Message> Iterator for IMapUnordered<'_, A, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.0.advance()
    }
}
