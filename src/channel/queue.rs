//! `Queue`, `JoinableQueue`, `SimpleQueue`: the bounded MPMC ring as Python's queues.

use super::with_bytes;
use crate::arena::{Arena, Offset, Publish};
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use crate::ring::mpmc::{
    Claimant, KIND_BLOCK, KIND_INLINE, MpmcHeader, MpmcRing, SLOT_HEADER, SlotHeader, Step,
};
use crate::ring::{self};
use crate::sync::WaitStrategy;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEADER_BYTES: u64 = core::mem::size_of::<MpmcHeader>() as u64;

/// Payload bytes per slot unless the message type is bigger (up to 4 KiB).
const DEFAULT_SLOT_PAYLOAD: u64 = 88;

/// Slots of a `Queue::new(0)` / `SimpleQueue` ("unbounded" in Python).
pub const UNBOUNDED_CAPACITY: usize = 1 << 15;

struct QueueBlock {
    arena: Arena,
    offset: u64,
    header: NonNull<MpmcHeader>,
    slots: NonNull<u8>,
    capacity: u64,
    stride: u64,
    max_message: u64,
    creator: i32,
}

// SAFETY: pointers into `arena`'s mapping, kept alive by `arena`; all
// shared access is atomics or slot bytes owned through the ring protocol.
unsafe impl Send for QueueBlock {}
// SAFETY: as for Send.
unsafe impl Sync for QueueBlock {}

impl QueueBlock {
    fn header(&self) -> &MpmcHeader {
        // SAFETY: resolved by `Arena::resolve` (bounds, alignment, ShmState);
        // the mapping lives as long as `self.arena`.
        unsafe { self.header.as_ref() }
    }

    #[inline]
    fn ring(&self) -> MpmcRing<'_> {
        // SAFETY: `slots` covers `capacity * stride` checked bytes after the
        // header, alive with `self`; the shape passed `valid_shape`.
        unsafe { MpmcRing::new(self.header(), self.slots, self.capacity, self.stride) }
    }

    fn resolve(
        arena: &Arena,
        offset: u64,
        creating: Option<(u64, u64, u64)>,
    ) -> Result<QueueBlock> {
        let header: &MpmcHeader = arena.resolve(offset)?;
        let (capacity, stride, max_message) = creating.unwrap_or_else(|| header.shape());
        if !MpmcRing::valid_shape(capacity, stride) {
            return Err(ring::corrupt(format!(
                "queue at {offset:#x} claims {capacity} slots of {stride} bytes"
            )));
        }
        let slots = arena.check_range(offset + HEADER_BYTES, capacity * stride, 8)?;
        Ok(QueueBlock {
            arena: arena.clone(),
            offset,
            header: NonNull::from(header),
            slots,
            capacity,
            stride,
            max_message: max_message.min(u64::from(u32::MAX)),
            creator: if creating.is_some() {
                crate::sys::getpid()
            } else {
                0
            },
        })
    }
}

impl Drop for QueueBlock {
    fn drop(&mut self) {
        if self.creator != 0 && self.creator == crate::sys::getpid() {
            let _ = self.arena.free(Offset::<u8>::from_raw(self.offset));
        }
    }
}

#[inline]
fn claimant() -> Claimant {
    let me = crate::sync::owner_current();
    Claimant {
        tid: me.tid,
        start: me.start,
    }
}

/// A bounded multi-producer multi-consumer queue between processes
/// (Python's `multiprocessing.Queue`).
///
/// A ring of fixed-size slots in shared memory (Vyukov's sequence-numbered
/// queue): a message that fits a slot (88 bytes, or the size of a larger
/// plain-old-data `T` up to 4 KiB) is copied into it; a larger one is copied
/// into an arena block whose offset travels in the slot, and the getter
/// frees the block. Handles are `Clone + Send + Sync`; a clone (or a copy
/// in a forked child) is the same queue.
///
/// * `put` waits while full; `try_put` gives [`Error::Full`]; `put_timeout`
///   gives `Full` at the deadline (as Python's `queue.Full`).
/// * `get` waits while empty; `try_get` gives [`Error::Empty`];
///   `get_timeout` gives `Empty` at the deadline.
/// * `close`: later puts give [`Error::Closed`]; getters drain what is left
///   and then get `Closed` (iteration ends there).
/// * A message longer than [`max_message`](Queue::max_message) (a quarter of
///   the arena, at most 4 GiB) is [`Error::MessageTooLarge`].
/// * A process killed while it held a slot (between claiming and completing
///   it) is detected by the waiters stuck behind it within 20 ms, and the
///   slot is completed for it (see docs/ARCHITECTURE.md for the one narrow
///   window where that is impossible).
///
/// # Examples
/// ```
/// use shmproc::{Error, Queue};
/// let queue = Queue::<String>::new(2)?;
/// queue.put("a".to_string())?;
/// queue.put("b".to_string())?;
/// assert!(matches!(queue.try_put("c".to_string()), Err(Error::Full)));
/// assert_eq!(queue.get()?, "a");
/// queue.close();
/// assert_eq!(queue.iter().collect::<Vec<_>>(), ["b"]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Queue<T> {
    block: Arc<QueueBlock>,
    strategy: WaitStrategy,
    joinable: bool,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            block: self.block.clone(),
            strategy: self.strategy,
            joinable: self.joinable,
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.block.capacity)
            .field("qsize", &self.block.ring().len())
            .field("closed", &self.block.header().is_closed())
            .finish()
    }
}

impl<T: Message> Queue<T> {
    /// A queue of `capacity` messages in the process-wide default arena
    /// (`0`: 32,768 slots, as Python's `Queue()` is unbounded).
    ///
    /// # Errors
    /// The default arena could not be created, or is full.
    pub fn new(capacity: usize) -> Result<Queue<T>> {
        Queue::with_capacity_in(Arena::default_arena()?, capacity)
    }

    /// A queue of `capacity` messages in `arena`.
    ///
    /// # Errors
    /// [`Error::ArenaFull`]; [`Error::InvalidArgument`] for more than 2^32 slots.
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<Queue<T>> {
        let capacity = if capacity == 0 {
            UNBOUNDED_CAPACITY as u64
        } else {
            capacity as u64
        };
        let payload = T::FIXED_SIZE
            .map_or(0, |n| n as u64)
            .clamp(DEFAULT_SLOT_PAYLOAD, 4096);
        let stride = (SLOT_HEADER + payload).next_multiple_of(64);
        if !MpmcRing::valid_shape(capacity, stride) {
            return Err(Error::InvalidArgument(format!(
                "a queue of {capacity} slots is too large"
            )));
        }
        let bytes = capacity
            .checked_mul(stride)
            .and_then(|b| b.checked_add(HEADER_BYTES))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("a queue of {capacity} slots is too large"))
            })?;
        let max_message = (arena.size() as u64 / 4)
            .max(stride - SLOT_HEADER)
            .min(u64::from(u32::MAX));
        let offset = arena.alloc(bytes as usize, 128)?.raw();
        let block = match QueueBlock::resolve(arena, offset, Some((capacity, stride, max_message)))
        {
            Ok(block) => block,
            Err(e) => {
                let _ = arena.free(Offset::<u8>::from_raw(offset));
                return Err(e);
            }
        };
        block.ring().init_slots();
        block.header().init(capacity, stride, max_message);
        Ok(Queue {
            block: Arc::new(block),
            strategy: WaitStrategy::DEFAULT,
            joinable: false,
            _type: PhantomData,
        })
    }

    /// How waits on this handle wait (see [`WaitStrategy`]).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// This handle with another wait strategy.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The arena the queue lives in.
    pub fn arena(&self) -> &Arena {
        &self.block.arena
    }

    /// Slots (Python's `maxsize`).
    pub fn capacity(&self) -> usize {
        self.block.capacity as usize
    }

    /// The longest message (bytes as it travels) this queue takes.
    pub fn max_message(&self) -> usize {
        self.block.max_message as usize
    }

    /// Puts a message, waiting while the queue is full.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::MessageTooLarge`], [`Error::Codec`],
    /// [`Error::ArenaFull`] (a large message's block), [`Error::Corrupt`].
    #[inline]
    pub fn put(&self, value: T) -> Result<()> {
        self.put_until(&value, None, true)
    }

    /// Puts a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Full`] at the deadline; otherwise as [`put`](Self::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<()> {
        self.put_until(&value, crate::sync::deadline_after(timeout), true)
    }

    /// Puts a message if there is room now.
    ///
    /// # Errors
    /// [`Error::Full`]; otherwise as [`put`](Self::put).
    pub fn try_put(&self, value: T) -> Result<()> {
        self.put_until(&value, None, false)
    }

    fn put_until(&self, value: &T, deadline: Option<Instant>, block: bool) -> Result<()> {
        with_bytes(value, |bytes| self.put_bytes(bytes, deadline, block))
    }

    #[inline]
    fn put_bytes(&self, bytes: &[u8], deadline: Option<Instant>, block: bool) -> Result<()> {
        let queue = &*self.block;
        let header = queue.header();
        if header.is_closed() {
            return Err(Error::Closed);
        }
        let len = bytes.len() as u64;
        if len > queue.max_message {
            return Err(Error::MessageTooLarge {
                len: bytes.len(),
                max: queue.max_message as usize,
            });
        }
        let ring = queue.ring();
        let (kind, arena_block) = if len <= ring.slot_payload() {
            (KIND_INLINE, None)
        } else {
            (KIND_BLOCK, Some(self.copy_to_block(bytes)?))
        };
        let me = claimant();
        let write = |slot: &SlotHeader, payload: *mut u8| match arena_block {
            None => {
                // SAFETY: the slot is ours (claimed) and its payload holds
                // `slot_payload() >= len` bytes; `bytes` is our memory.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), payload, bytes.len()) };
                slot.set(kind, len);
            }
            Some(offset) => {
                let mut raw = [0u8; 16];
                raw[..8].copy_from_slice(&offset.to_le_bytes());
                raw[8..].copy_from_slice(&len.to_le_bytes());
                // SAFETY: as above; every slot holds at least 16 bytes.
                unsafe { core::ptr::copy_nonoverlapping(raw.as_ptr(), payload, 16) };
                slot.set(kind, 16);
            }
        };
        if self.joinable {
            header.unfinished().0.fetch_add(1, Ordering::SeqCst);
        }
        let mut write = Some(write);
        let mut once = |slot: &SlotHeader, payload: *mut u8| {
            if let Some(write) = write.take() {
                write(slot, payload);
            }
        };
        let pushed = match ring.try_push(me, &mut once) {
            Ok(Step::Done(())) => Ok(()),
            Ok(Step::Blocked(_)) if !block => Err(Error::Full),
            Ok(Step::Blocked(_)) => {
                let waited = ring::wait(
                    self.strategy,
                    deadline,
                    header.not_full(),
                    || {
                        if header.is_closed() {
                            return Err(Error::Closed);
                        }
                        match ring.try_push(me, &mut once)? {
                            Step::Done(()) => Ok(Some(())),
                            Step::Blocked(_) => Ok(None),
                        }
                    },
                    || {
                        ring.recover(header.positions().0, super::is_dead);
                        Ok(())
                    },
                );
                match waited {
                    Ok(Some(())) => Ok(()),
                    Ok(None) => Err(Error::Full),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if pushed.is_err() {
            if let Some(offset) = arena_block {
                let _ = queue.arena.free(Offset::<u8>::from_raw(offset));
            }
            if self.joinable {
                header.unfinished().0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        pushed
    }

    #[cold]
    fn copy_to_block(&self, bytes: &[u8]) -> Result<u64> {
        let arena = &self.block.arena;
        let block = arena.alloc(bytes.len(), 64)?;
        match arena.check_range(block.raw(), bytes.len() as u64, 1) {
            Ok(dst) => {
                // SAFETY: a fresh block of `bytes.len()` bytes only we know.
                unsafe {
                    core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_ptr(), bytes.len())
                };
                Ok(block.raw())
            }
            Err(e) => {
                let _ = arena.free(block);
                Err(e)
            }
        }
    }

    /// Takes the next message, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`Error::Closed`] once closed and drained; [`Error::Codec`] if the
    /// bytes are not a `T` (the message is consumed); [`Error::Corrupt`].
    #[inline]
    pub fn get(&self) -> Result<T> {
        self.get_until(None, true)
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] at the deadline; otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(crate::sync::deadline_after(timeout), true)
    }

    /// Takes the next message if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`] (or [`Error::Closed`] when closed and drained).
    pub fn try_get(&self) -> Result<T> {
        self.get_until(None, false)
    }

    #[inline]
    fn get_until(&self, deadline: Option<Instant>, block: bool) -> Result<T> {
        let queue = &*self.block;
        let header = queue.header();
        let ring = queue.ring();
        let me = claimant();
        let slot_payload = ring.slot_payload();
        let read = |slot: &SlotHeader, payload: *const u8| -> Result<T> {
            let len = slot.len();
            match slot.kind() {
                KIND_INLINE if len <= slot_payload && len <= queue.max_message => {
                    // SAFETY: the slot is ours (claimed) and `len` bytes of
                    // its payload lie inside it (checked).
                    let bytes = unsafe { core::slice::from_raw_parts(payload, len as usize) };
                    T::decode(bytes)
                }
                KIND_BLOCK if len == 16 => {
                    let mut raw = [0u8; 16];
                    // SAFETY: 16 bytes inside the claimed slot's payload.
                    unsafe { core::ptr::copy_nonoverlapping(payload, raw.as_mut_ptr(), 16) };
                    let offset = u64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8]));
                    let len = u64::from_le_bytes(raw[8..].try_into().unwrap_or([0; 8]));
                    if len > queue.max_message {
                        return Err(ring::corrupt(format!(
                            "queue slot names a block of {len} bytes, more than the {} a message may have",
                            queue.max_message
                        )));
                    }
                    let ptr = queue.arena.check_range(offset, len, 1).map_err(|_| {
                        ring::corrupt(format!(
                            "queue slot names block {offset:#x} of {len} bytes outside the arena"
                        ))
                    })?;
                    // SAFETY: inside the arena (checked); the block was
                    // handed to us with the slot and nobody else frees it.
                    let bytes = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), len as usize) };
                    let value = T::decode(bytes);
                    let _ = queue.arena.free(Offset::<u8>::from_raw(offset));
                    value
                }
                kind => Err(ring::corrupt(format!(
                    "queue slot of kind {kind} with length {len}"
                ))),
            }
        };
        match ring.try_pop(me, read)? {
            Step::Done(value) => return value,
            Step::Blocked(_) if !block => {
                return if header.is_closed() {
                    match ring.try_pop(me, read)? {
                        Step::Done(value) => value,
                        Step::Blocked(_) => Err(Error::Closed),
                    }
                } else {
                    Err(Error::Empty)
                };
            }
            Step::Blocked(_) => {}
        }
        let waited = ring::wait(
            self.strategy,
            deadline,
            header.not_empty(),
            || match ring.try_pop(me, read)? {
                Step::Done(value) => Ok(Some(value)),
                Step::Blocked(_) if header.is_closed() => match ring.try_pop(me, read)? {
                    Step::Done(value) => Ok(Some(value)),
                    Step::Blocked(_) => Err(Error::Closed),
                },
                Step::Blocked(_) => Ok(None),
            },
            || {
                ring.recover(header.positions().1, super::is_dead);
                Ok(())
            },
        )?;
        waited.unwrap_or(Err(Error::Empty))
    }

    /// Messages in the queue (Python's `qsize`; a snapshot).
    pub fn qsize(&self) -> usize {
        self.block.ring().len() as usize
    }

    /// True if no message is in the queue (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True if every slot is taken (a snapshot).
    pub fn is_full(&self) -> bool {
        self.qsize() >= self.capacity()
    }

    /// Closes the queue: puts fail with [`Error::Closed`], gets drain what
    /// is left and then fail with `Closed`. Every waiter is woken.
    pub fn close(&self) {
        self.block.header().close();
    }

    /// True once [`close`](Self::close) was called (by any process).
    pub fn is_closed(&self) -> bool {
        self.block.header().is_closed()
    }

    /// Test hook: claims a slot (as a putter, or as a getter) and kills
    /// this process with SIGKILL while holding it. Never returns.
    #[doc(hidden)]
    pub(crate) fn die_holding_slot(&self, putter: bool) -> ! {
        let ring = self.block.ring();
        let die = || -> ! {
            // SAFETY: raise(2) with a signal number; kills this process.
            unsafe { libc::raise(libc::SIGKILL) };
            unreachable!("SIGKILL cannot be caught")
        };
        loop {
            let step = if putter {
                ring.try_push(claimant(), |_, _| die())
            } else {
                ring.try_pop(claimant(), |_, _| die())
            };
            if step.is_err() {
                die();
            }
            std::thread::yield_now();
        }
    }

    /// Blocking iterator over messages; ends when the queue is closed and
    /// drained (or on any other error, which `get` would report).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { queue: self }
    }
}

/// Iterator returned by [`Queue::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T: Message> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.queue.get().ok()
    }
}

impl<'a, T: Message> IntoIterator for &'a Queue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: Message> Publish for Queue<T> {
    fn shared_offset(&self) -> u64 {
        self.block.offset
    }
    fn shared_size() -> u64 {
        HEADER_BYTES
    }
    fn shared_align() -> u64 {
        128
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        Ok(Queue {
            block: Arc::new(QueueBlock::resolve(arena, offset, None)?),
            strategy: WaitStrategy::DEFAULT,
            joinable: false,
            _type: PhantomData,
        })
    }
}

/// A [`Queue`] that counts unfinished tasks (Python's `JoinableQueue`):
/// every `put` adds one, [`task_done`](JoinableQueue::task_done) removes
/// one, [`join`](JoinableQueue::join) waits for zero. Derefs to its `Queue`.
///
/// # Examples
/// ```
/// use shmproc::JoinableQueue;
/// let queue = JoinableQueue::<u32>::new(4)?;
/// queue.put(1)?;
/// assert_eq!(queue.get()?, 1);
/// queue.task_done()?;
/// queue.join();
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct JoinableQueue<T>(Queue<T>);

impl<T: Message> JoinableQueue<T> {
    /// A joinable queue of `capacity` messages in the default arena.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new(capacity: usize) -> Result<Self> {
        JoinableQueue::with_capacity_in(Arena::default_arena()?, capacity)
    }

    /// A joinable queue of `capacity` messages in `arena`.
    ///
    /// # Errors
    /// As [`Queue::with_capacity_in`].
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<Self> {
        let mut queue = Queue::with_capacity_in(arena, capacity)?;
        queue.joinable = true;
        Ok(JoinableQueue(queue))
    }

    /// This handle with another wait strategy (see [`WaitStrategy`]).
    pub fn with_wait_strategy(self, strategy: WaitStrategy) -> Self {
        JoinableQueue(self.0.with_wait_strategy(strategy))
    }

    /// Marks one task taken with `get` as done.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if called more times than there were puts
    /// (Python's `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        let (count, sleepers) = self.0.block.header().unfinished();
        let mut now = count.load(Ordering::Relaxed);
        loop {
            if now == 0 {
                return Err(Error::InvalidArgument(
                    "task_done() called more times than items were put".into(),
                ));
            }
            match count.compare_exchange_weak(now, now - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        if now == 1 {
            sleepers.wake(true);
        }
        Ok(())
    }

    /// Waits until every message put has been marked done.
    pub fn join(&self) {
        while !self.join_until(None) {}
    }

    /// As [`join`](Self::join), giving up after `timeout`; true if all done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(crate::sync::deadline_after(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        let (count, sleepers) = self.0.block.header().unfinished();
        matches!(
            ring::wait(
                self.0.strategy,
                deadline,
                sleepers,
                || Ok((count.load(Ordering::Acquire) == 0).then_some(())),
                || Ok(()),
            ),
            Ok(Some(()))
        )
    }
}

impl<T> core::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T: Message> Publish for JoinableQueue<T> {
    fn shared_offset(&self) -> u64 {
        self.0.block.offset
    }
    fn shared_size() -> u64 {
        HEADER_BYTES
    }
    fn shared_align() -> u64 {
        128
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let mut queue = Queue::attach(arena, offset)?;
        queue.joinable = true;
        Ok(JoinableQueue(queue))
    }
}

/// Python's `SimpleQueue`: `put`, `get`, `empty`, `close`, nothing else.
///
/// Backed by a [`Queue`] of 32,768 slots, so `put` only
/// waits when that many messages are pending.
///
/// # Examples
/// ```
/// use shmproc::SimpleQueue;
/// let queue = SimpleQueue::<i64>::new()?;
/// queue.put(-1)?;
/// assert!(!queue.empty());
/// assert_eq!(queue.get()?, -1);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SimpleQueue<T>(Queue<T>);

impl<T: Message> SimpleQueue<T> {
    /// A simple queue in the default arena.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue(Queue::new(0)?))
    }

    /// A simple queue in `arena`.
    ///
    /// # Errors
    /// As [`Queue::with_capacity_in`].
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Ok(SimpleQueue(Queue::with_capacity_in(arena, 0)?))
    }

    /// See [`Queue::put`].
    ///
    /// # Errors
    /// As `Queue::put`.
    pub fn put(&self, value: T) -> Result<()> {
        self.0.put(value)
    }

    /// See [`Queue::get`].
    ///
    /// # Errors
    /// As `Queue::get`.
    pub fn get(&self) -> Result<T> {
        self.0.get()
    }

    /// True if no message is pending (Python's `empty`).
    pub fn empty(&self) -> bool {
        self.0.is_empty()
    }

    /// See [`Queue::close`].
    pub fn close(&self) {
        self.0.close();
    }
}
