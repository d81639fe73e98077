//! The bounded MPMC slot ring (Dmitry Vyukov's sequence-numbered queue).
//!
//! # Layout
//!
//! A 384-byte [`MpmcHeader`] (`enq` alone on line 0, `deq` alone on line 1,
//! the control line 2), then `capacity` slots of `stride` bytes each: a
//! 40-byte [`SlotHeader`] and `stride - 40` payload bytes.
//!
//! # Sequence numbers
//!
//! Sequence numbers count in steps of two, so that a one-slot queue works
//! (Vyukov's `p`/`p + 1` would collide at capacity 1). Slot `i` starts with
//! `seq = 2i`. A producer at position `p` (slot `p % capacity`) may write
//! when `seq == 2p`: it claims `p` with a CAS on `enq`, stamps the slot,
//! writes, and stores `seq = 2p + 1`. A consumer at `p` may read when
//! `seq == 2p + 1`: it claims with a CAS on `deq`, stamps, reads, and
//! stores `seq = 2(p + capacity)`. Seen from a producer at `p`, the only
//! valid values are `2p` (free), `2(p - capacity) + 1` (still full, or
//! being read) and `2(p - capacity)` (the previous lap's producer still
//! writing); from a consumer at `p`: `2p + 1` (ready), `2p` (not written
//! yet) and `2(p - capacity) + 1` (the previous lap's consumer still
//! reading). Anything else, or a `seq` ahead of an index that did not move,
//! is corruption ([`Error::Corrupt`](crate::Error::Corrupt)).
//!
//! # A claimant that dies
//!
//! Right after its CAS a claimant stamps the slot with `owner = 2p + role`
//! (producer 0, consumer 1), its thread id and start time. A waiter stuck on
//! a slot for [`LIVENESS_EVERY`](super::LIVENESS_EVERY) calls
//! [`MpmcRing::recover`]: if the slot's stamp names the claim that holds it
//! and that thread is dead, the waiter completes the slot on its behalf (a
//! producer's slot becomes a `SKIP` tombstone that consumers pass over; a
//! consumer's slot is freed, its message lost). A claimant that dies in the
//! few instructions between its CAS and its stamp cannot be told from a
//! live one that is about to stamp: that slot stays stuck, so the ring
//! loses one slot of capacity per such death (documented bound).

use super::{Sleepers, corrupt};
use crate::error::Result;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use core::ptr::NonNull;

/// Slot kinds.
pub const KIND_INLINE: u32 = 1;
/// The payload is `offset: u64, len: u64` of an arena block.
pub const KIND_BLOCK: u32 = 2;
/// A tombstone left where a dead producer held the slot.
pub const KIND_SKIP: u32 = 3;

/// Roles in an owner stamp.
const PRODUCER: u64 = 0;
const CONSUMER: u64 = 1;

/// The shared header of an MPMC ring.
#[repr(C, align(128))]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct MpmcHeader {
    enq: AtomicU64,
    _enq_line: [u64; 15],
    deq: AtomicU64,
    _deq_line: [u64; 15],
    not_empty: AtomicU32,
    getters: AtomicU32,
    not_full: AtomicU32,
    putters: AtomicU32,
    closed: AtomicU32,
    /// JoinableQueue: tasks put and not yet `task_done`.
    unfinished: AtomicU32,
    joiners: AtomicU32,
    /// The futex word `join` sleeps on (bumped by the wake when `unfinished` reaches 0).
    join_word: AtomicU32,
    capacity: AtomicU64,
    stride: AtomicU64,
    max_message: AtomicU64,
    _control_line: [u64; 9],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<MpmcHeader>() == 384);

// SAFETY: repr(C), FromBytes (derived), every shared-mutable field atomic.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for MpmcHeader {}

/// The header of one slot (40 bytes); the payload follows it.
#[repr(C)]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct SlotHeader {
    seq: AtomicU64,
    /// `2 * position + role` of the last claim stamped here.
    owner: AtomicU64,
    owner_start: AtomicU64,
    owner_tid: AtomicU32,
    kind: AtomicU32,
    len: AtomicU64,
}

/// Bytes of a slot header.
pub const SLOT_HEADER: u64 = core::mem::size_of::<SlotHeader>() as u64;

// SAFETY: as for MpmcHeader.
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for SlotHeader {}

impl SlotHeader {
    /// A slot on the heap for position `index` (loom models).
    pub fn new(index: u64) -> Self {
        SlotHeader {
            seq: AtomicU64::new(index * 2),
            owner: AtomicU64::new(u64::MAX),
            owner_start: AtomicU64::new(0),
            owner_tid: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// The kind written by the producer (read after a successful claim).
    pub fn kind(&self) -> u32 {
        self.kind.load(Ordering::Relaxed)
    }

    /// The payload length written by the producer.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Sets kind and length (by the producer holding the slot).
    pub fn set(&self, kind: u32, len: u64) {
        self.kind.store(kind, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
    }
}

#[allow(dead_code)]
impl MpmcHeader {
    /// A fresh header on the heap (loom models).
    pub fn new(capacity: u64, stride: u64) -> Self {
        MpmcHeader {
            enq: AtomicU64::new(0),
            _enq_line: [0; 15],
            deq: AtomicU64::new(0),
            _deq_line: [0; 15],
            not_empty: AtomicU32::new(0),
            getters: AtomicU32::new(0),
            not_full: AtomicU32::new(0),
            putters: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            unfinished: AtomicU32::new(0),
            joiners: AtomicU32::new(0),
            join_word: AtomicU32::new(0),
            capacity: AtomicU64::new(capacity),
            stride: AtomicU64::new(stride),
            max_message: AtomicU64::new(0),
            _control_line: [0; 9],
        }
    }

    /// Stores every header field; the slots are initialised by the caller
    /// ([`MpmcRing::init_slots`]) before this publishes `capacity`.
    pub fn init(&self, capacity: u64, stride: u64, max_message: u64) {
        self.enq.store(0, Ordering::Relaxed);
        self.deq.store(0, Ordering::Relaxed);
        for word in [
            &self.not_empty,
            &self.getters,
            &self.not_full,
            &self.putters,
            &self.closed,
            &self.unfinished,
            &self.joiners,
            &self.join_word,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        self.stride.store(stride, Ordering::Relaxed);
        self.max_message.store(max_message, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire in `shape`.
        self.capacity.store(capacity, Ordering::Release);
    }

    /// `(capacity, stride, max_message)` as recorded (validate before use).
    pub fn shape(&self) -> (u64, u64, u64) {
        let capacity = self.capacity.load(Ordering::Acquire);
        (
            capacity,
            self.stride.load(Ordering::Relaxed),
            self.max_message.load(Ordering::Relaxed),
        )
    }

    /// Getters sleep here.
    pub fn not_empty(&self) -> Sleepers<'_> {
        Sleepers {
            word: &self.not_empty,
            count: &self.getters,
        }
    }

    /// Putters sleep here.
    pub fn not_full(&self) -> Sleepers<'_> {
        Sleepers {
            word: &self.not_full,
            count: &self.putters,
        }
    }

    /// True once `close` was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // SYNC POINT: Acquire pairs with the SeqCst swap in `close`.
        self.closed.load(Ordering::Acquire) != 0
    }

    /// Closes the ring and wakes everyone waiting.
    pub fn close(&self) {
        self.closed.store(1, Ordering::SeqCst);
        self.not_empty().wake(true);
        self.not_full().wake(true);
    }

    /// Positions `(enq, deq)`.
    pub fn positions(&self) -> (u64, u64) {
        let deq = self.deq.load(Ordering::Acquire);
        (self.enq.load(Ordering::Acquire), deq)
    }

    /// The JoinableQueue counter and its sleepers.
    pub fn unfinished(&self) -> (&AtomicU32, Sleepers<'_>) {
        (
            &self.unfinished,
            Sleepers {
                word: &self.join_word,
                count: &self.joiners,
            },
        )
    }
}

/// Who claims: the identity stamped into a slot.
#[derive(Clone, Copy, Debug)]
pub struct Claimant {
    /// Thread id.
    pub tid: u32,
    /// Thread start time (clock ticks since boot).
    pub start: u64,
}

/// An MPMC ring: a header and its slots.
pub struct MpmcRing<'a> {
    header: &'a MpmcHeader,
    slots: NonNull<u8>,
    capacity: u64,
    stride: u64,
}

/// What a push or pop found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// Done; the value the callback returned.
    Done(T),
    /// Full (push) or empty (pop) for now, at this position.
    Blocked(u64),
}

impl<'a> MpmcRing<'a> {
    /// Checks a shape read from shared memory.
    pub fn valid_shape(capacity: u64, stride: u64) -> bool {
        (1..=1 << 32).contains(&capacity)
            && stride % 8 == 0
            && (SLOT_HEADER + 8..=1 << 32).contains(&stride)
            && capacity.checked_mul(stride).is_some()
    }

    /// A ring over `header` and `capacity * stride` bytes of slots at `slots`.
    ///
    /// # Safety
    /// `slots` is valid for `capacity * stride` bytes for `'a`, 8-aligned,
    /// and accessed only by this protocol; the shape passed `valid_shape`.
    pub unsafe fn new(
        header: &'a MpmcHeader,
        slots: NonNull<u8>,
        capacity: u64,
        stride: u64,
    ) -> Self {
        debug_assert!(Self::valid_shape(capacity, stride));
        MpmcRing {
            header,
            slots,
            capacity,
            stride,
        }
    }

    /// The header.
    pub fn header(&self) -> &'a MpmcHeader {
        self.header
    }

    /// Slots.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Payload bytes per slot.
    pub fn slot_payload(&self) -> u64 {
        self.stride - SLOT_HEADER
    }

    /// Initialises every slot (creation, before sharing).
    pub fn init_slots(&self) {
        for i in 0..self.capacity {
            let slot = self.slot(i);
            slot.seq.store(i * 2, Ordering::Relaxed);
            slot.owner.store(u64::MAX, Ordering::Relaxed);
            slot.owner_tid.store(0, Ordering::Relaxed);
            slot.owner_start.store(0, Ordering::Relaxed);
            slot.set(0, 0);
        }
    }

    #[inline]
    fn index(&self, pos: u64) -> u64 {
        if self.capacity.is_power_of_two() {
            pos & (self.capacity - 1)
        } else {
            pos % self.capacity
        }
    }

    #[inline]
    fn slot_ptr(&self, pos: u64) -> *mut u8 {
        // index < capacity, so index * stride + stride <= capacity * stride.
        self.slots
            .as_ptr()
            .wrapping_add((self.index(pos) * self.stride) as usize)
    }

    #[inline]
    fn slot(&self, pos: u64) -> &'a SlotHeader {
        let ptr = self.slot_ptr(pos).cast::<SlotHeader>();
        // SAFETY: in bounds (see slot_ptr), 8-aligned (stride and the base
        // are multiples of 8); SlotHeader is all atomics, valid for any bytes.
        unsafe { &*ptr }
    }

    /// The payload of the slot at `pos` (`slot_payload` bytes).
    #[inline]
    pub fn payload(&self, pos: u64) -> *mut u8 {
        self.slot_ptr(pos).wrapping_add(SLOT_HEADER as usize)
    }

    /// One attempt to push: `write(slot, payload)` runs once the slot is
    /// claimed (it must not fail); `Blocked` when full.
    #[inline]
    pub fn try_push<T>(
        &self,
        me: Claimant,
        write: impl FnOnce(&SlotHeader, *mut u8) -> T,
    ) -> Result<Step<T>> {
        let mut pos = self.header.enq.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            // SYNC POINT: Acquire pairs with the Release store of `seq` by
            // the consumer that freed the slot (it is done reading).
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_mul(2)) as i64;
            if diff == 0 {
                match self.header.enq.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.stamp(slot, pos, PRODUCER, me);
                        let value = write(slot, self.payload(pos));
                        // SYNC POINT: SeqCst store pairs with the Acquire
                        // load of `seq` in `try_pop` (the payload is visible)
                        // and, with `wake`, with the getters' handshake.
                        slot.seq
                            .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::SeqCst);
                        self.header.not_empty().wake(false);
                        return Ok(Step::Done(value));
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                let last_lap = pos.wrapping_sub(self.capacity).wrapping_mul(2);
                let full = seq == last_lap.wrapping_add(1) || seq == last_lap;
                if !full {
                    return Err(corrupt(format!(
                        "MPMC slot sequence {seq} for producer position {pos}"
                    )));
                }
                return Ok(Step::Blocked(pos));
            } else {
                let now = self.header.enq.load(Ordering::Relaxed);
                if now == pos {
                    return Err(corrupt(format!(
                        "MPMC slot sequence {seq} ahead of producer position {pos}"
                    )));
                }
                pos = now;
            }
        }
    }

    /// One attempt to pop: `read(slot, payload)` runs on the claimed slot
    /// (skipping tombstones); `Blocked` when empty.
    #[inline]
    pub fn try_pop<T>(
        &self,
        me: Claimant,
        mut read: impl FnMut(&SlotHeader, *const u8) -> T,
    ) -> Result<Step<T>> {
        let mut pos = self.header.deq.load(Ordering::Relaxed);
        // Every pass claims a position or finds that `deq` moved (someone
        // else's progress); tombstones skipped are bounded by the capacity.
        let mut skipped = 0u64;
        loop {
            let slot = self.slot(pos);
            // SYNC POINT: Acquire pairs with the SeqCst store of `seq` in
            // `try_push` (the payload is visible).
            let seq = slot.seq.load(Ordering::Acquire);
            let next = pos.wrapping_add(1);
            let diff = seq.wrapping_sub(pos.wrapping_mul(2).wrapping_add(1)) as i64;
            if diff == 0 {
                match self.header.deq.compare_exchange_weak(
                    pos,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.stamp(slot, pos, CONSUMER, me);
                        let skip = slot.kind() == KIND_SKIP;
                        let value = if skip {
                            None
                        } else {
                            Some(read(slot, self.payload(pos)))
                        };
                        // SYNC POINT: SeqCst store pairs with the Acquire
                        // load of `seq` in `try_push` and, with `wake`, with
                        // the putters' handshake.
                        slot.seq.store(
                            pos.wrapping_add(self.capacity).wrapping_mul(2),
                            Ordering::SeqCst,
                        );
                        self.header.not_full().wake(false);
                        match value {
                            Some(value) => return Ok(Step::Done(value)),
                            None => {
                                skipped += 1;
                                if skipped > self.capacity {
                                    return Ok(Step::Blocked(pos));
                                }
                                pos = self.header.deq.load(Ordering::Relaxed);
                            }
                        }
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                let last_lap = pos
                    .wrapping_sub(self.capacity)
                    .wrapping_mul(2)
                    .wrapping_add(1);
                let empty = seq == pos.wrapping_mul(2) || seq == last_lap;
                if !empty {
                    return Err(corrupt(format!(
                        "MPMC slot sequence {seq} for consumer position {pos}"
                    )));
                }
                return Ok(Step::Blocked(pos));
            } else {
                let now = self.header.deq.load(Ordering::Relaxed);
                if now == pos {
                    return Err(corrupt(format!(
                        "MPMC slot sequence {seq} ahead of consumer position {pos}"
                    )));
                }
                pos = now;
            }
        }
    }

    #[inline]
    fn stamp(&self, slot: &SlotHeader, pos: u64, role: u64, me: Claimant) {
        slot.owner_tid.store(me.tid, Ordering::Relaxed);
        slot.owner_start.store(me.start, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of `owner` in `recover`.
        slot.owner
            .store(pos.wrapping_mul(2).wrapping_add(role), Ordering::Release);
    }

    /// Completes the slot a waiter is stuck on at `pos` if the claim holding
    /// it was stamped by a thread `is_dead` says is gone. Returns true if
    /// it freed something.
    pub fn recover(&self, pos: u64, is_dead: impl Fn(u32, u64) -> bool) -> bool {
        let slot = self.slot(pos);
        let seq = slot.seq.load(Ordering::Acquire);
        // SYNC POINT: Acquire pairs with the Release in `stamp`.
        let owner = slot.owner.load(Ordering::Acquire);
        let tid = slot.owner_tid.load(Ordering::Relaxed);
        let start = slot.owner_start.load(Ordering::Relaxed);
        if slot.owner.load(Ordering::Acquire) != owner {
            return false; // restamped while we read: someone is active
        }
        let (enq, deq) = self.header.positions();
        // The stamp `2q + role` equals the sequence number a claim of
        // position `q` leaves behind until it completes.
        let held = seq / 2;
        if seq % 2 == 1 && owner == seq && owner % 2 == CONSUMER && deq > held {
            // A consumer claimed `held` and never completed it.
            if is_dead(tid, start) {
                return slot
                    .seq
                    .compare_exchange(
                        seq,
                        held.wrapping_add(self.capacity).wrapping_mul(2),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                    && {
                        self.header.not_full().wake(true);
                        true
                    };
            }
        } else if seq % 2 == 0 && owner == seq && owner % 2 == PRODUCER && enq > held {
            // A producer claimed `held` and never completed it.
            if is_dead(tid, start) {
                slot.kind.store(KIND_SKIP, Ordering::Relaxed);
                return slot
                    .seq
                    .compare_exchange(
                        seq,
                        seq.wrapping_add(1),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                    && {
                        self.header.not_empty().wake(true);
                        true
                    };
            }
        }
        false
    }

    /// Messages in the ring (an estimate while others work on it).
    pub fn len(&self) -> u64 {
        let (enq, deq) = self.header.positions();
        enq.saturating_sub(deq).min(self.capacity)
    }
}
