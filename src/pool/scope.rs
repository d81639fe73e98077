//! [`fork_map`]: data-parallel work over data the children inherit.

use super::shm::ShmSlice;
use super::worker::{bytes_of, panic_message, put_frame, take_frame};
use crate::arena::{Arena, ShmState};
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicU64, Ordering};
use crate::process::{ExitStatus, ForkOptions, Name, fork_child, next_identity};
use std::panic::{AssertUnwindSafe, catch_unwind};

const RUNNING: u64 = 0;
const DONE: u64 = 1;
const PANICKED: u64 = 2;

/// One chunk's outcome in shared memory.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
struct ChunkRecord {
    state: AtomicU64,
    /// Encoded results (or the panic message): block offset and length.
    offset: AtomicU64,
    len: AtomicU64,
}
// SAFETY: repr(C), FromBytes, atomics only.
unsafe impl ShmState for ChunkRecord {}

/// Forks `processes` children that share out `data` in chunks and call `f`
/// on each item; returns the results in order.
///
/// Unlike [`Pool`](crate::Pool) tasks, `f` may capture anything, and `data`
/// may be any slice: the children are forked *now*, so they inherit both by
/// copy-on-write (a large read-only dataset is not copied). Results travel
/// back through shared memory as [`Message`]s (fixed-size ones in place).
/// The children are reaped before this returns.
///
/// Call it from a single-threaded process (fork's rule).
///
/// # Errors
/// [`Error::TaskPanicked`] if `f` panicked on some item;
/// [`Error::WorkerDied`] if a child was killed; [`Error::ThreadedFork`];
/// [`Error::Codec`]; [`Error::Os`].
///
/// # Examples
/// ```
/// let table: Vec<u64> = (0..100_000).collect(); // inherited, not copied
/// let offset = 7; // captured
/// let sums = shmproc::fork_map(2, &[0usize, 1, 2], |&i| table[i] + offset)?;
/// assert_eq!(sums, [7, 8, 9]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn fork_map<T, R, F>(processes: usize, data: &[T], f: F) -> Result<Vec<R>>
where
    R: Message,
    F: Fn(&T) -> R,
{
    let n = data.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let processes = processes.clamp(1, n);
    let chunksize = n.div_ceil(4 * processes);
    let chunks = n.div_ceil(chunksize);
    let fixed = R::FIXED_SIZE;
    let array_bytes = fixed.unwrap_or(0).saturating_mul(n);
    let arena = Arena::anonymous(array_bytes.saturating_add(64 << 20).max(4 << 30))?;
    let records = ShmSlice::<ChunkRecord>::alloc(&arena, chunks)?;
    let next = ShmSlice::<AtomicU64>::alloc(&arena, 1)?;
    let array = arena.alloc(array_bytes.max(1), 16)?.raw();
    for i in 0..chunks {
        let record = records.get(i as u64)?;
        record.state.store(RUNNING, Ordering::Relaxed);
        record.offset.store(0, Ordering::Relaxed);
        record.len.store(0, Ordering::Relaxed);
    }
    next.get(0)?.store(0, Ordering::Relaxed);

    let child_body = || {
        let Ok(next) = next.get(0) else { return };
        let mut scratch = Vec::new();
        loop {
            let chunk = next.fetch_add(1, Ordering::Relaxed) as usize;
            if chunk >= chunks {
                return;
            }
            let Ok(record) = records.get(chunk as u64) else {
                return;
            };
            let begin = chunk * chunksize;
            let end = (begin + chunksize).min(n);
            let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Option<Vec<u8>>> {
                match fixed {
                    Some(size) => {
                        let base = arena.check_range(array, array_bytes as u64, 1)?;
                        let mut spare = Vec::new();
                        for (i, item) in data[begin..end].iter().enumerate() {
                            let value = f(item);
                            let bytes = bytes_of(&value, &mut spare)?;
                            if bytes.len() != size {
                                return Err(Error::Codec(
                                    "fixed-size result of another size".into(),
                                ));
                            }
                            // SAFETY: (begin + i + 1) * size <= n * size =
                            // array_bytes (checked range); each chunk's items
                            // are written by one process only.
                            let to = unsafe { base.as_ptr().add((begin + i) * size) };
                            // SAFETY: as above: `size` bytes at `to` are ours.
                            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to, size) };
                        }
                        Ok(None)
                    }
                    None => {
                        scratch.clear();
                        for item in &data[begin..end] {
                            put_frame(&f(item), &mut scratch)?;
                        }
                        Ok(Some(std::mem::take(&mut scratch)))
                    }
                }
            }));
            let (state, bytes) = match outcome {
                Ok(Ok(bytes)) => (DONE, bytes),
                Ok(Err(error)) => (PANICKED, Some(error.to_string().into_bytes())),
                Err(payload) => {
                    let message = panic_message(&*payload);
                    std::mem::forget(payload);
                    (PANICKED, Some(message.into_bytes()))
                }
            };
            if let Some(bytes) = bytes {
                if let Ok(block) = arena.alloc(bytes.len(), 8) {
                    if let Ok(at) = arena.check_range(block.raw(), bytes.len() as u64, 1) {
                        // SAFETY: a fresh block with room for the bytes.
                        unsafe {
                            core::ptr::copy_nonoverlapping(bytes.as_ptr(), at.as_ptr(), bytes.len())
                        };
                        record.offset.store(block.raw(), Ordering::Relaxed);
                        record.len.store(bytes.len() as u64, Ordering::Relaxed);
                    }
                }
            }
            // SYNC POINT: Release pairs with the parent's Acquire load of
            // `state` (after reaping, which orders it anyway).
            record.state.store(state, Ordering::Release);
            if state == PANICKED {
                return;
            }
        }
    };

    let mut children = Vec::with_capacity(processes);
    let mut error = None;
    for _ in 0..processes {
        let identity = next_identity();
        let mut options = ForkOptions {
            name: Name::default_for("ForkMapWorker"),
            identity,
            daemon: true,
            allow_threads: false,
            register: false,
        };
        let mut body = Some(&child_body);
        match fork_child(&mut options, &mut body) {
            Ok(child) => children.push(child),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let mut died = None;
    for child in &children {
        if let Some(status) = child.wait_deadline(None)? {
            if died.is_none() && !matches!(status, ExitStatus::Code(0)) {
                died = Some((child.pid(), status.signal().unwrap_or(0)));
            }
        }
    }
    if let Some(error) = error {
        return Err(error);
    }
    let mut results = Vec::with_capacity(n);
    for chunk in 0..chunks {
        let record = records.get(chunk as u64)?;
        let count = chunksize.min(n - chunk * chunksize);
        let bytes = || -> Result<&[u8]> {
            let len = record.len.load(Ordering::Relaxed);
            let at = arena.check_range(record.offset.load(Ordering::Relaxed), len, 1)?;
            // SAFETY: checked range; every child has been reaped.
            Ok(unsafe { core::slice::from_raw_parts(at.as_ptr(), len as usize) })
        };
        match record.state.load(Ordering::Acquire) {
            DONE => match fixed {
                Some(size) => {
                    let base = arena.check_range(array, array_bytes as u64, 1)?;
                    let begin = chunk * chunksize * size;
                    // SAFETY: inside the checked array; children are reaped.
                    let from = unsafe { base.as_ptr().add(begin) };
                    // SAFETY: begin + count * size <= array_bytes (checked);
                    // every child has been reaped.
                    let items = unsafe { core::slice::from_raw_parts(from, count * size) };
                    if size == 0 {
                        for _ in 0..count {
                            results.push(R::decode(&[])?);
                        }
                    } else {
                        for item in items.chunks_exact(size) {
                            results.push(R::decode(item)?);
                        }
                    }
                }
                None => {
                    let mut rest = bytes()?;
                    for _ in 0..count {
                        results.push(R::decode(take_frame(&mut rest)?)?);
                    }
                }
            },
            PANICKED => {
                return Err(Error::TaskPanicked(
                    String::from_utf8_lossy(bytes()?).into_owned(),
                ));
            }
            _ => {
                let (pid, signal) = died.unwrap_or((0, 0));
                return Err(Error::WorkerDied { pid, signal });
            }
        }
    }
    Ok(results)
}
