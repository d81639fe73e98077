//! The SPSC byte ring: one sender, one receiver, variable-size frames.
//!
//! # Layout
//!
//! A 384-byte [`SpscHeader`] followed by `capacity` data bytes (a power of
//! two, at least 64). Indices are byte counts since creation (`u64`, never
//! wrap in practice); a position in the data area is `index % capacity`.
//!
//! | line | written by | fields |
//! |---|---|---|
//! | 0 | sender | `tail` (bytes committed), `head_cache` (the sender's last look at `head`) |
//! | 1 | receiver | `head` (bytes released), `tail_cache` |
//! | 2 | both (rarely) | futex words and sleeper counts, `closed` bits, `capacity`, the stamps (pid, start time) of the processes using each end |
//!
//! # Frames
//!
//! Every frame starts on a multiple of 8 with an 8-byte header
//! `len: u32 | kind: u32 << 32`, then `len` payload bytes, padded to 8.
//! A frame never wraps: when it does not fit before the end of the data
//! area, the sender writes a `PAD` header there and the frame starts at
//! position 0; the pad and the frame are published by one store of `tail`.
//! A frame is at most `capacity / 2` bytes, so a pad and a frame always fit
//! an empty ring together.
//!
//! # Validation (receiver)
//!
//! `tail - head` must be a multiple of 8 and at most `capacity`; a header's
//! kind must be known; a frame (or pad) must end inside both the data area
//! and the published bytes. Anything else is [`Error::Corrupt`](crate::Error::Corrupt).
//! The sender checks `tail - head` the same way.

use super::{Sleepers, corrupt};
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use core::ptr::NonNull;

/// Frame kinds (the high half of a frame header).
pub const KIND_PAD: u32 = 0x3144_4150; // "PAD1"
/// A frame whose payload is the message.
pub const KIND_INLINE: u32 = 0x314d_5246; // "FRM1"
/// A frame whose 16-byte payload names an arena block (offset, length).
pub const KIND_BLOCK: u32 = 0x314b_4c42; // "BLK1"

/// `closed` bit: the sender end was closed.
pub const SENDER_CLOSED: u32 = 1;
/// `closed` bit: the receiver end was closed.
pub const RECEIVER_CLOSED: u32 = 2;

/// Bytes of a frame header.
pub const FRAME_HEADER: u64 = 8;

/// The shared header of an SPSC ring (see the module docs for the lines).
#[repr(C, align(128))]
#[cfg_attr(not(loom), derive(zerocopy::FromBytes, zerocopy::KnownLayout))]
pub struct SpscHeader {
    tail: AtomicU64,
    head_cache: AtomicU64,
    _sender_line: [u64; 14],
    head: AtomicU64,
    tail_cache: AtomicU64,
    _receiver_line: [u64; 14],
    data_word: AtomicU32,
    data_sleepers: AtomicU32,
    space_word: AtomicU32,
    space_sleepers: AtomicU32,
    closed: AtomicU32,
    sender_pid: AtomicU32,
    receiver_pid: AtomicU32,
    _reserved: AtomicU32,
    capacity: AtomicU64,
    sender_start: AtomicU64,
    receiver_start: AtomicU64,
    _control_line: [u64; 9],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<SpscHeader>() == 384);

// SAFETY: repr(C), FromBytes (derived); every field another process writes
// is an atomic (the padding arrays are never written after creation).
#[cfg(not(loom))]
unsafe impl crate::arena::ShmState for SpscHeader {}

#[allow(dead_code)]
impl SpscHeader {
    /// A fresh header on the heap (loom models).
    pub fn new(capacity: u64) -> Self {
        SpscHeader {
            tail: AtomicU64::new(0),
            head_cache: AtomicU64::new(0),
            _sender_line: [0; 14],
            head: AtomicU64::new(0),
            tail_cache: AtomicU64::new(0),
            _receiver_line: [0; 14],
            data_word: AtomicU32::new(0),
            data_sleepers: AtomicU32::new(0),
            space_word: AtomicU32::new(0),
            space_sleepers: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            sender_pid: AtomicU32::new(0),
            receiver_pid: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            capacity: AtomicU64::new(capacity),
            sender_start: AtomicU64::new(0),
            receiver_start: AtomicU64::new(0),
            _control_line: [0; 9],
        }
    }

    /// Stores every field (the block may hold an earlier object's bytes).
    pub fn init(&self, capacity: u64) {
        for word in [
            &self.data_word,
            &self.data_sleepers,
            &self.space_word,
            &self.space_sleepers,
            &self.closed,
            &self.sender_pid,
            &self.receiver_pid,
            &self._reserved,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        for word in [
            &self.tail,
            &self.head_cache,
            &self.head,
            &self.tail_cache,
            &self.sender_start,
            &self.receiver_start,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        // SYNC POINT: Release pairs with the Acquire load in `capacity`
        // (an attacher sees a fully initialised header).
        self.capacity.store(capacity, Ordering::Release);
    }

    /// The capacity recorded at creation (validate before use).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Acquire)
    }

    /// The `closed` bits.
    #[inline]
    pub fn closed(&self) -> u32 {
        // SYNC POINT: Acquire pairs with the SeqCst fetch_or in `close`:
        // whoever sees the bit sees every frame committed before it.
        self.closed.load(Ordering::Acquire)
    }

    /// Sets a `closed` bit and wakes both sides.
    pub fn close(&self, bit: u32) {
        self.closed.fetch_or(bit, Ordering::SeqCst);
        self.data_sleepers().wake(true);
        self.space_sleepers().wake(true);
    }

    /// The receiver sleeps here.
    pub fn data_sleepers(&self) -> Sleepers<'_> {
        Sleepers {
            word: &self.data_word,
            count: &self.data_sleepers,
        }
    }

    /// The sender sleeps here.
    pub fn space_sleepers(&self) -> Sleepers<'_> {
        Sleepers {
            word: &self.space_word,
            count: &self.space_sleepers,
        }
    }

    /// The stamp `(pid, start)` of the process using the sender end (0: none yet).
    pub fn sender_stamp(&self) -> (u32, u64) {
        let pid = self.sender_pid.load(Ordering::Acquire);
        (pid, self.sender_start.load(Ordering::Relaxed))
    }

    /// The stamp of the process using the receiver end.
    pub fn receiver_stamp(&self) -> (u32, u64) {
        let pid = self.receiver_pid.load(Ordering::Acquire);
        (pid, self.receiver_start.load(Ordering::Relaxed))
    }

    /// Records that process `pid` (started at `start`) uses the sender end.
    pub fn stamp_sender(&self, pid: u32, start: u64) {
        self.sender_start.store(start, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire in `sender_stamp`.
        self.sender_pid.store(pid, Ordering::Release);
    }

    /// Records that process `pid` uses the receiver end.
    pub fn stamp_receiver(&self, pid: u32, start: u64) {
        self.receiver_start.store(start, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire in `receiver_stamp`.
        self.receiver_pid.store(pid, Ordering::Release);
    }

    /// Bytes committed and not yet released (clamped; a hint for `poll`).
    pub fn pending(&self) -> u64 {
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(self.head.load(Ordering::Acquire))
    }
}

/// Space reserved for one frame (and the pad before it, if any).
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    tail: u64,
    /// Bytes of pad before the frame.
    pad: u64,
    /// Position of the frame header in the data area.
    pos: u64,
    /// Payload bytes reserved.
    len: u64,
}

impl Reservation {
    /// Payload bytes reserved.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// A frame found by the receiver.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    head: u64,
    /// Bytes to release (pad + frame).
    consumed: u64,
    pos: u64,
    /// Payload bytes.
    pub len: u32,
    /// `KIND_INLINE` or `KIND_BLOCK`.
    pub kind: u32,
}

/// An SPSC ring: a header and its data area.
pub struct SpscRing<'a> {
    header: &'a SpscHeader,
    data: NonNull<u8>,
    capacity: u64,
}

/// Rounds a payload length up to the frame size (header + payload + padding).
#[inline]
fn frame_size(len: u64) -> u64 {
    FRAME_HEADER + len.next_multiple_of(8)
}

impl<'a> SpscRing<'a> {
    /// Checks a capacity read from shared memory.
    pub fn valid_capacity(capacity: u64) -> bool {
        capacity.is_power_of_two() && (64..=1 << 40).contains(&capacity)
    }

    /// A ring over `header` and `capacity` bytes at `data`.
    ///
    /// # Safety
    /// `data` is valid for reads and writes of `capacity` bytes for `'a`,
    /// 8-aligned, and only ever accessed by this ring protocol (the sender
    /// writes only reserved, unpublished bytes; the receiver reads only
    /// published, unreleased bytes). `capacity` passed `valid_capacity`.
    pub unsafe fn new(header: &'a SpscHeader, data: NonNull<u8>, capacity: u64) -> Self {
        debug_assert!(Self::valid_capacity(capacity));
        SpscRing {
            header,
            data,
            capacity,
        }
    }

    /// The header.
    pub fn header(&self) -> &'a SpscHeader {
        self.header
    }

    /// Data bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest payload of one frame.
    pub fn max_frame_payload(&self) -> u64 {
        self.capacity / 2 - FRAME_HEADER
    }

    #[inline]
    fn mask(&self, index: u64) -> u64 {
        index & (self.capacity - 1)
    }

    /// Reserves room for a frame of `len` payload bytes (`len` at most
    /// [`max_frame_payload`](Self::max_frame_payload)); `Ok(None)` when the
    /// ring is full for now.
    #[inline]
    pub fn try_reserve(&self, len: u64) -> Result<Option<Reservation>> {
        if len > self.max_frame_payload() {
            return Err(Error::MessageTooLarge {
                len: len as usize,
                max: self.max_frame_payload() as usize,
            });
        }
        let need = frame_size(len);
        let tail = self.header.tail.load(Ordering::Relaxed);
        let pos = self.mask(tail);
        let pad = if pos + need > self.capacity {
            self.capacity - pos
        } else {
            0
        };
        let want = pad + need;
        let mut used = tail.wrapping_sub(self.header.head_cache.load(Ordering::Relaxed));
        if used > self.capacity || self.capacity - used < want {
            // SYNC POINT: Acquire pairs with the SeqCst store of `head` in
            // `release`: the receiver is done with the bytes it released.
            let head = self.header.head.load(Ordering::Acquire);
            self.header.head_cache.store(head, Ordering::Relaxed);
            used = tail.wrapping_sub(head);
            if used > self.capacity || tail % 8 != 0 || head % 8 != 0 {
                return Err(corrupt(format!(
                    "SPSC ring indices head {head}, tail {tail} for capacity {}",
                    self.capacity
                )));
            }
            if self.capacity - used < want {
                return Ok(None);
            }
        }
        if pad != 0 {
            // SAFETY: `pos + 8 <= capacity` (pos is a multiple of 8 below
            // capacity) and the bytes at `pos` are free (reserved above, not
            // yet published), so no reader looks at them.
            unsafe { self.write_header(pos, 0, KIND_PAD) };
        }
        Ok(Some(Reservation {
            tail,
            pad,
            pos: if pad != 0 { 0 } else { pos },
            len,
        }))
    }

    /// The reserved payload bytes.
    #[inline]
    pub fn payload_mut(&self, reservation: &Reservation) -> *mut u8 {
        // pos + 8 + len <= capacity (checked in `try_reserve`): in bounds.
        self.data
            .as_ptr()
            .wrapping_add((reservation.pos + FRAME_HEADER) as usize)
    }

    /// Publishes a reserved frame of `len <= reserved` payload bytes as `kind`.
    #[inline]
    pub fn commit(&self, reservation: Reservation, len: u64, kind: u32) {
        let len = len.min(reservation.len);
        // SAFETY: the header slot is reserved and unpublished (try_reserve).
        unsafe { self.write_header(reservation.pos, len as u32, kind) };
        let tail = reservation.tail + reservation.pad + frame_size(len);
        // SYNC POINT: SeqCst store pairs with the Acquire loads of `tail` in
        // `try_peek` (the frame bytes are visible to whoever sees the index)
        // and, with `wake`, with the receiver's sleeper handshake.
        self.header.tail.store(tail, Ordering::SeqCst);
        self.header.data_sleepers().wake(false);
    }

    /// # Safety
    /// `pos` is a multiple of 8 below `capacity` and the 8 bytes there are
    /// reserved by the caller (not readable by the receiver).
    #[inline]
    unsafe fn write_header(&self, pos: u64, len: u32, kind: u32) {
        let word = u64::from(len) | (u64::from(kind) << 32);
        let ptr = self.data.as_ptr().wrapping_add(pos as usize).cast::<u64>();
        // SAFETY: in bounds and 8-aligned (caller + `new`'s contract).
        unsafe { ptr.write_volatile(word) };
    }

    #[inline]
    fn read_header(&self, pos: u64) -> (u32, u32) {
        let ptr = self.data.as_ptr().wrapping_add(pos as usize).cast::<u64>();
        // SAFETY: callers pass a multiple of 8 below capacity (so the 8
        // bytes are in bounds and aligned); the bytes are published (a plain
        // read of published data; volatile so it is read exactly once).
        let word = unsafe { ptr.read_volatile() };
        (word as u32, (word >> 32) as u32)
    }

    /// Looks for the next frame; `Ok(None)` if none is published.
    #[inline]
    pub fn try_peek(&self) -> Result<Option<Frame>> {
        let head = self.header.head.load(Ordering::Relaxed);
        let mut tail = self.header.tail_cache.load(Ordering::Relaxed);
        let avail = tail.wrapping_sub(head);
        if avail == 0 || avail > self.capacity {
            // SYNC POINT: Acquire pairs with the SeqCst store in `commit`.
            tail = self.header.tail.load(Ordering::Acquire);
            if tail == head {
                return Ok(None);
            }
            self.header.tail_cache.store(tail, Ordering::Relaxed);
        }
        self.frame_at(head, tail)
    }

    #[inline]
    fn frame_at(&self, head: u64, tail: u64) -> Result<Option<Frame>> {
        let mut avail = tail.wrapping_sub(head);
        if avail > self.capacity || avail % 8 != 0 || head % 8 != 0 {
            return Err(self.bad(head, tail, "indices"));
        }
        let mut pos = self.mask(head);
        let mut consumed = 0;
        let (mut len, mut kind) = self.read_header(pos);
        if kind == KIND_PAD {
            let pad = self.capacity - pos;
            if pad > avail || pos == 0 {
                return Err(self.bad(head, tail, "pad"));
            }
            consumed = pad;
            avail -= pad;
            pos = 0;
            if avail == 0 {
                return Err(self.bad(head, tail, "pad without a frame"));
            }
            (len, kind) = self.read_header(0);
        }
        let need = frame_size(u64::from(len));
        let fits = match kind {
            KIND_INLINE => u64::from(len) <= self.max_frame_payload(),
            KIND_BLOCK => len == 16,
            _ => false,
        };
        if !fits || need > avail || pos + need > self.capacity {
            return Err(self.bad(head, tail, "frame header"));
        }
        Ok(Some(Frame {
            head,
            consumed: consumed + need,
            pos,
            len,
            kind,
        }))
    }

    #[cold]
    fn bad(&self, head: u64, tail: u64, what: &str) -> Error {
        corrupt(format!(
            "SPSC ring {what} (head {head}, tail {tail}, capacity {})",
            self.capacity
        ))
    }

    /// The payload of a frame found by `try_peek` (valid until `release`).
    #[inline]
    pub fn payload(&self, frame: &Frame) -> *const u8 {
        // pos + 8 + len <= capacity (validated in `frame_at`).
        self.data
            .as_ptr()
            .wrapping_add((frame.pos + FRAME_HEADER) as usize)
    }

    /// Gives a frame's bytes back to the sender.
    #[inline]
    pub fn release(&self, frame: Frame) {
        // SYNC POINT: SeqCst store pairs with the Acquire load of `head` in
        // `try_reserve` (we are done reading) and, with `wake`, with the
        // sender's sleeper handshake.
        self.header
            .head
            .store(frame.head.wrapping_add(frame.consumed), Ordering::SeqCst);
        self.header.space_sleepers().wake(false);
    }
}
