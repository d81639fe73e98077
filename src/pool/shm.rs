//! The pool's shared memory: header, task slots, the task ring and the
//! worker records, all in the pool's own anonymous arena.
//!
//! Sizes and addresses live in [`Core`], which every process of the pool
//! holds a forked copy of; nothing that decides an address is read from
//! shared memory except slot indices and block offsets, and those are
//! bounds-checked (see docs/ARCHITECTURE.md, "Pool").

use super::slot::{self, Notify, SlotState};
use crate::arena::{Arena, Offset, ShmState};
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use core::ptr::NonNull;
use std::hash::{BuildHasher, RandomState};

/// `Header::flags`: close() was called; workers leave once the ring is empty.
pub(crate) const DRAINING: u32 = 1;
/// `Header::flags`: terminate() was called; the manager kills every worker.
pub(crate) const TERMINATING: u32 = 2;

/// Bytes of argument or result that travel inside the slot itself.
pub(crate) const INLINE: usize = 48;

/// The pool's header block: each hot word on its own 128-byte line.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
pub(crate) struct Header {
    /// Workers sleep here; the caller notifies after queueing.
    pub(crate) work: Notify,
    _pad0: [u8; 120],
    /// Callers sleep here; workers and the manager notify after a slot
    /// reaches a final state.
    pub(crate) done: Notify,
    _pad1: [u8; 120],
    /// The next ring position to consume (workers CAS it forward).
    pub(crate) head: AtomicU64,
    _pad2: [u8; 120],
    /// The next ring position to fill (the caller only).
    pub(crate) tail: AtomicU64,
    _pad3: [u8; 120],
    /// `DRAINING | TERMINATING`.
    pub(crate) flags: AtomicU32,
    _pad4: [u8; 124],
}
const _: () = assert!(core::mem::size_of::<Header>() == 640);
// SAFETY: repr(C), FromBytes (derived), every shared field an atomic.
unsafe impl ShmState for Header {}

/// One task: its state, what to run, where its input and output are.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
pub(crate) struct Slot {
    pub(crate) state: SlotState,
    _reserved: AtomicU32,
    /// Address of the monomorphised trampoline that runs the task.
    pub(crate) trampoline: AtomicU64,
    /// Keyed hash of `trampoline` (see [`Core::seal`]).
    pub(crate) seal: AtomicU64,
    /// Offset of the input bytes; 0 = in `inline`.
    pub(crate) input: AtomicU64,
    pub(crate) input_len: AtomicU64,
    /// Offset of the output bytes; 0 = in `inline`.
    pub(crate) output: AtomicU64,
    pub(crate) output_len: AtomicU64,
    /// Items `start .. start + count` of the input (map chunks).
    pub(crate) start: AtomicU64,
    pub(crate) count: AtomicU64,
    /// Small inputs, then small outputs, in place. Written by one side
    /// before a Release of `state`, read by the other after its Acquire.
    pub(crate) inline: [AtomicU64; INLINE / 8],
}
const _: () = assert!(core::mem::size_of::<Slot>() == 128);
// SAFETY: repr(C), FromBytes, every field an atomic.
unsafe impl ShmState for Slot {}

/// One cell of the task ring (Vyukov's sequence-numbered cell).
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
pub(crate) struct Cell {
    pub(crate) seq: AtomicU64,
    pub(crate) slot: AtomicU64,
}
// SAFETY: repr(C), FromBytes, atomics only.
unsafe impl ShmState for Cell {}

/// What a worker incarnation tells the manager.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::KnownLayout)]
pub(crate) struct Record {
    /// The incarnation's ticket (written by the manager before the fork).
    pub(crate) ticket: AtomicU32,
    /// 1 + the slot it is claiming or running; 0 = none.
    pub(crate) current: AtomicU32,
    /// Its pid (the manager's copy; for tests and debugging).
    pub(crate) pid: AtomicI32,
    _reserved: AtomicU32,
    _pad: [u8; 48],
}
// SAFETY: repr(C), FromBytes, atomics only.
unsafe impl ShmState for Record {}

/// A checked view of `len` `T`s in the arena, resolved once.
pub(crate) struct ShmSlice<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T: ShmState> ShmSlice<T> {
    pub(crate) fn alloc(arena: &Arena, len: usize) -> Result<Self> {
        let offset: Offset<T> = arena.alloc_array(len)?;
        let ptr = arena.resolve_slice_ptr(offset, len)?;
        Ok(ShmSlice { ptr, len })
    }

    /// Element `index`, or `Corrupt` when it is out of range.
    #[inline]
    pub(crate) fn get(&self, index: u64) -> Result<&T> {
        if index >= self.len as u64 {
            return Err(Error::Corrupt {
                what: format!("pool index {index} out of range 0..{}", self.len),
            });
        }
        // T: ShmState is valid for any bytes and shared mutation goes through
        // its atomics; the arena outlives every `Core` that holds this slice.
        // SAFETY: index < len, and `ptr .. ptr + len` was checked to lie in
        // the arena, aligned for T (resolve_slice_ptr).
        let ptr = unsafe { self.ptr.add(index as usize) };
        // SAFETY: as above: in bounds, aligned, ShmState, arena alive.
        Ok(unsafe { ptr.as_ref() })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Everything a process of the pool needs to reach its shared memory.
///
/// Built by the caller before the manager is forked; the manager and the
/// workers use their forked copies (so nothing here is read from shm).
pub(crate) struct Core {
    pub(crate) arena: Arena,
    header: NonNull<Header>,
    pub(crate) slots: ShmSlice<Slot>,
    pub(crate) cells: ShmSlice<Cell>,
    pub(crate) records: ShmSlice<Record>,
    /// The key of the trampoline seals (random per pool, never in shm).
    key: RandomState,
    /// The process-wide default arena, mapped before the manager was
    /// forked, so `RawArray`s created in it later are at the same address
    /// in every pool process (`Pool::map_array`).
    pub(crate) default_arena: Arena,
}

// SAFETY: every pointer points into `arena`'s mapping, which `Core` keeps
// alive; shared state is reached only through atomics (ShmState).
unsafe impl Send for Core {}
// SAFETY: as for Send.
unsafe impl Sync for Core {}

impl Core {
    pub(crate) fn new(
        arena: Arena,
        default_arena: Arena,
        slots: usize,
        processes: usize,
    ) -> Result<Core> {
        let header_at: Offset<Header> = arena.alloc_array(1)?;
        let header = arena.resolve_ptr(header_at)?;
        let ring = (slots * 2).next_power_of_two();
        let core = Core {
            header,
            slots: ShmSlice::alloc(&arena, slots)?,
            cells: ShmSlice::alloc(&arena, ring)?,
            records: ShmSlice::alloc(&arena, processes)?,
            arena,
            key: RandomState::new(),
            default_arena,
        };
        let h = core.header();
        for word in [&h.head, &h.tail] {
            word.store(0, Ordering::Relaxed);
        }
        h.flags.store(0, Ordering::Relaxed);
        h.work.init();
        h.done.init();
        for i in 0..ring {
            let cell = core.cells.get(i as u64)?;
            cell.seq.store(i as u64, Ordering::Relaxed);
            cell.slot.store(0, Ordering::Relaxed);
        }
        // Slots are stored when first used; a fresh block may hold old bytes.
        for i in 0..slots {
            core.slots.get(i as u64)?.state.release();
        }
        for i in 0..processes {
            let record = core.records.get(i as u64)?;
            record.ticket.store(0, Ordering::Relaxed);
            record.current.store(0, Ordering::Relaxed);
            record.pid.store(0, Ordering::Relaxed);
        }
        Ok(core)
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: resolved (bounds, alignment) in `new`; Header is ShmState
        // and the arena lives as long as `self`.
        unsafe { self.header.as_ref() }
    }

    /// The keyed hash a slot carries next to its trampoline address, so a
    /// scribbled address is refused instead of called.
    pub(crate) fn seal(&self, trampoline: u64) -> u64 {
        self.key.hash_one(trampoline ^ 0x5ea1_u64)
    }

    #[inline]
    pub(crate) fn ring_mask(&self) -> u64 {
        self.cells.len() as u64 - 1
    }

    /// Caller (serialised by the pool's lock): appends slot `index` to the ring.
    ///
    /// Waits (yielding) only while the cell it needs still holds a task of
    /// the previous lap whose slot is queued, which needs more queued tasks
    /// than slots: it cannot happen while the pool works; `stop` ends the
    /// wait when it does not.
    pub(crate) fn push(&self, index: u32, stop: impl Fn() -> bool) -> Result<()> {
        let header = self.header();
        let cap = self.cells.len() as u64;
        let pos = header.tail.load(Ordering::Relaxed);
        let cell = self.cells.get(pos & self.ring_mask())?;
        loop {
            // SYNC POINT: Acquire pairs with the Release CAS that releases
            // the cell in `pop` (or below): its last reader is done with it.
            let seq = cell.seq.load(Ordering::Acquire);
            if seq == pos {
                break;
            }
            if seq == pos.wrapping_sub(cap).wrapping_add(1) {
                // Filled one lap ago and never released: its claimer died
                // between claim and release, or it is just slow. Once its
                // slot is not queued, nobody needs the cell any more.
                let old = cell.slot.load(Ordering::Relaxed);
                let queued = self
                    .slots
                    .get(old)
                    .is_ok_and(|s| slot::kind(s.state.load()) == slot::QUEUED);
                if !queued {
                    // SYNC POINT: Release as in `pop`'s release of a cell.
                    let _ =
                        cell.seq
                            .compare_exchange(seq, pos, Ordering::Release, Ordering::Relaxed);
                    continue;
                }
            }
            if stop() {
                return Err(Error::PoolClosed);
            }
            crate::loom::yield_now();
        }
        cell.slot.store(u64::from(index), Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of `seq` in `pop`:
        // a worker that sees the cell filled sees the slot index.
        cell.seq.store(pos.wrapping_add(1), Ordering::Release);
        header.tail.store(pos.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// True if no cell is waiting to be consumed.
    pub(crate) fn ring_empty(&self) -> bool {
        let header = self.header();
        // Acquire: pairs with the Release stores of `tail` (push) and the
        // Release CAS of `head` (pop).
        let tail = header.tail.load(Ordering::Acquire);
        let head = header.head.load(Ordering::Acquire);
        head.wrapping_sub(tail) as i64 >= 0
    }

    /// Worker: takes the next queued task and claims it with `ticket`,
    /// recording it in `record` first (so the manager can fail it if this
    /// process dies). `None` when the ring is empty.
    ///
    /// The slot's CAS is the claim: a cell whose slot someone else claimed
    /// (or whose claimer died before releasing it) is released and skipped
    /// by whoever finds it, so no cell is stuck behind a dead worker.
    pub(crate) fn pop(&self, ticket: u32, record: &Record) -> Option<u32> {
        let header = self.header();
        let cap = self.cells.len() as u64;
        // Bounded: every round either returns or moves `head` on (or sees
        // another process move it); scribbled indices cannot loop forever.
        for _ in 0..(4 * cap) {
            // SYNC POINT: Acquire pairs with the Release CAS of `head` below.
            let pos = header.head.load(Ordering::Acquire);
            let cell = self.cells.get(pos & self.ring_mask()).ok()?;
            // SYNC POINT: Acquire pairs with the Release store in `push`.
            let seq = cell.seq.load(Ordering::Acquire);
            let ahead = seq.wrapping_sub(pos.wrapping_add(1)) as i64;
            if ahead < 0 {
                return None; // not filled yet: empty
            }
            if ahead == 0 {
                let index = cell.slot.load(Ordering::Relaxed);
                let mut won = false;
                if let Ok(slot) = self.slots.get(index) {
                    // Tell the manager before claiming. Relaxed: it reads
                    // this only after reaping us (the exit and the waitid
                    // order it).
                    record.current.store(index as u32 + 1, Ordering::Relaxed);
                    won = slot.state.claim(ticket);
                    if !won {
                        record.current.store(0, Ordering::Relaxed);
                    }
                }
                // SYNC POINT: Release pairs with the Acquire in `push`.
                let _ = cell.seq.compare_exchange(
                    seq,
                    pos.wrapping_add(cap),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                // SYNC POINT: Release pairs with the Acquire load of `head`.
                let _ = header.head.compare_exchange(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                if won {
                    return Some(index as u32);
                }
                continue;
            }
            // Released already (or a lap ahead): `head` is stale; help it on.
            let _ = header.head.compare_exchange(
                pos,
                pos.wrapping_add(1),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
        None
    }

    /// The bytes of a task's input (inline or a checked block).
    ///
    /// # Safety
    /// The caller owns the slot in a state where nobody writes its input
    /// (a worker that claimed it, or the caller before queueing it).
    pub(crate) unsafe fn input<'a>(&'a self, slot: &'a Slot) -> Result<&'a [u8]> {
        let offset = slot.input.load(Ordering::Relaxed);
        let len = slot.input_len.load(Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { self.bytes(slot, offset, len) }
    }

    /// The bytes of a task's output.
    ///
    /// # Safety
    /// As [`input`](Core::input): the slot is in a final state (or claimed
    /// by the calling worker) and nobody writes the output.
    pub(crate) unsafe fn output<'a>(&'a self, slot: &'a Slot) -> Result<&'a [u8]> {
        let offset = slot.output.load(Ordering::Relaxed);
        let len = slot.output_len.load(Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { self.bytes(slot, offset, len) }
    }

    /// # Safety
    /// Nobody writes the bytes while the returned slice lives.
    unsafe fn bytes<'a>(&'a self, slot: &'a Slot, offset: u64, len: u64) -> Result<&'a [u8]> {
        let ptr = self.region(slot, offset, len)?;
        // SAFETY: `region` checked the range lies in the mapping (or in the
        // slot's inline words); the caller guarantees no concurrent writer;
        // any bytes are valid u8s.
        Ok(unsafe { core::slice::from_raw_parts(ptr.as_ptr(), len as usize) })
    }

    /// The checked address of `len` bytes at `offset` (0 = the slot's inline words).
    pub(crate) fn region(&self, slot: &Slot, offset: u64, len: u64) -> Result<NonNull<u8>> {
        if offset == 0 {
            if len > INLINE as u64 {
                return Err(Error::Corrupt {
                    what: format!("inline task data of {len} bytes"),
                });
            }
            return Ok(NonNull::from(&slot.inline).cast());
        }
        self.arena.check_range(offset, len, 1)
    }

    /// Copies `bytes` to a fresh place for a slot's output: inline when they
    /// fit, else a new arena block. Returns (offset, len).
    pub(crate) fn store_output(&self, slot: &Slot, bytes: &[u8]) -> Result<()> {
        let offset = if bytes.len() <= INLINE {
            0
        } else {
            self.arena.alloc(bytes.len(), 8)?.raw()
        };
        let ptr = self.region(slot, offset, bytes.len() as u64)?;
        // SAFETY: `ptr` has room for bytes.len() bytes (checked by region);
        // this worker owns the slot's output until it finishes the slot.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        slot.output.store(offset, Ordering::Relaxed);
        slot.output_len.store(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Frees a block (ignores 0, the inline place).
    pub(crate) fn free_block(&self, offset: u64) {
        if offset != 0 {
            let _ = self.arena.free(Offset::<u8>::from_raw(offset));
        }
    }
}
