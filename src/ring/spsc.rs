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
//! | 1 | receiver | `head` (bytes released) |
//! | 2 | both (rarely) | futex words and sleeper counts, `closed` bits, `capacity`, the stamps (pid, start time) of the processes using each end |
//!
//! # Frames
//!
//! Every frame starts on a multiple of 8 with an 8-byte header
//! `len: u32 | kind: u32 << 32`, then `len` payload bytes, padded to 8.
//! A frame never wraps: when it does not fit before the end of the data
//! area, the sender writes a `PAD` header there and the frame starts at
//! position 0. A frame is at most `capacity / 2` bytes, so a pad, a frame
//! and the next header word always fit an empty ring together.
//!
//! # Publication: the header word is the flag
//!
//! The receiver does not read `tail`: it polls the header word at `head`,
//! where a zero means "nothing yet". The sender keeps that true: before it
//! publishes a frame it zeroes the header word that follows it (reserved
//! with the frame), then stores the frame's header word (or the pad's, when
//! the frame went to position 0) with one SeqCst store. So a round trip
//! moves one cache line each way (the frame's, which for a small message
//! holds header and payload), not two (the index's, then the frame's); the
//! sender's `tail` stays in the sender's cache. `tail` is still stored (for
//! `pending` and for a handle attached later).
//!
//! # Validation (receiver)
//!
//! `head` must be a multiple of 8; a header's kind must be known (a pad
//! not at 0 and followed by a frame at 0); a frame must end inside the data
//! area; [`check_indices`](SpscRing::check_indices), run while a receiver
//! waits, checks `tail - head` against the capacity (so a scribbled header
//! that moved `head` past `tail` ends a wait with an error). Anything else is
//! [`Error::Corrupt`](crate::Error::Corrupt). The sender checks `tail - head`
//! whenever it reads `head`.

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
    _unused: AtomicU64,
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
    /// Under loom the data area's header words live here (loom atomics
    /// cannot be made from a pointer into a plain buffer).
    #[cfg(loom)]
    words: Box<[AtomicU64]>,
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
            _unused: AtomicU64::new(0),
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
            #[cfg(loom)]
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Stores every field (the block may hold an earlier object's bytes).
    /// The creator also zeroes the data area (its first header word must
    /// read "nothing yet").
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
            &self._unused,
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
    /// published, unreleased bytes; header words are accessed atomically).
    /// `capacity` passed `valid_capacity`.
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

    /// The header word at data position `pos` (callers pass a multiple of
    /// 8 below `capacity`; anything else is clamped into the area, so a bad
    /// caller gets a wrong word, never a stray access).
    #[cfg(not(loom))]
    #[inline]
    fn word(&self, pos: u64) -> &'a AtomicU64 {
        let pos = self.mask(pos) & !7;
        let ptr = self.data.as_ptr().wrapping_add(pos as usize).cast::<u64>();
        // Plain payload writes reuse header bytes only after the receiver
        // released them (the ring protocol).
        // SAFETY: `pos` is 8-aligned below `capacity` (masked), `data` is
        // 8-aligned and valid for `capacity` bytes for 'a (`new`), and words
        // are accessed only atomically while they can be a header.
        unsafe { AtomicU64::from_ptr(ptr) }
    }

    #[cfg(loom)]
    #[inline]
    fn word(&self, pos: u64) -> &'a AtomicU64 {
        &self.header.words[(self.mask(pos) / 8) as usize]
    }

    /// Reserves room for a frame of `len` payload bytes (`len` at most
    /// [`max_frame_payload`](Self::max_frame_payload)); `Ok(None)` when the
    /// ring is full for now. Room includes the header word after the frame,
    /// which `commit` zeroes.
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
        let want = pad + need + FRAME_HEADER;
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
        let tail = reservation.tail + reservation.pad + frame_size(len);
        // The next frame's header word is reserved with this frame: zero it
        // before the publishing store, so the receiver, once past this
        // frame, reads "nothing yet" there until the next commit.
        self.word(tail).store(0, Ordering::Relaxed);
        let frame = header_word(len as u32, kind);
        let published = if reservation.pad != 0 {
            // The frame goes to position 0, where the receiver is not
            // looking (it waits at the pad's position, which is not 0).
            self.word(0).store(frame, Ordering::Relaxed);
            header_word(0, KIND_PAD)
        } else {
            frame
        };
        // SYNC POINT: SeqCst store pairs with the Acquire load of this word
        // in `try_peek` (payload, the frame at 0 behind a pad and the zeroed
        // next word are visible to whoever sees it) and, with `wake`, with
        // the receiver's sleeper handshake.
        self.word(reservation.tail)
            .store(published, Ordering::SeqCst);
        self.header.tail.store(tail, Ordering::Relaxed);
        self.header.data_sleepers().wake(false);
    }

    /// Looks for the next frame; `Ok(None)` if none is published.
    #[inline]
    pub fn try_peek(&self) -> Result<Option<Frame>> {
        let head = self.header.head.load(Ordering::Relaxed);
        // SYNC POINT: Acquire pairs with the SeqCst publishing store in
        // `commit`.
        let word = self.word(head).load(Ordering::Acquire);
        if word == 0 {
            return Ok(None);
        }
        self.frame_at(head, word)
    }

    #[inline]
    fn frame_at(&self, head: u64, word: u64) -> Result<Option<Frame>> {
        if head % 8 != 0 {
            return Err(self.bad(head, "head"));
        }
        let mut pos = self.mask(head);
        let mut consumed = 0;
        let (mut len, mut kind) = split_header(word);
        if kind == KIND_PAD {
            if pos == 0 || len != 0 {
                return Err(self.bad(head, "pad"));
            }
            consumed = self.capacity - pos;
            pos = 0;
            // Ordered by the Acquire load of the pad (see `commit`).
            (len, kind) = split_header(self.word(0).load(Ordering::Relaxed));
        }
        let need = frame_size(u64::from(len));
        let fits = match kind {
            KIND_INLINE => u64::from(len) <= self.max_frame_payload(),
            KIND_BLOCK => len == 16,
            _ => false,
        };
        if !fits || pos + need > self.capacity {
            return Err(self.bad(head, "frame header"));
        }
        Ok(Some(Frame {
            head,
            consumed: consumed + need,
            pos,
            len,
            kind,
        }))
    }

    /// Checks `tail - head` (run while a receiver waits; the receiver's
    /// fast path does not read `tail`).
    pub fn check_indices(&self) -> Result<()> {
        let head = self.header.head.load(Ordering::Relaxed);
        let tail = self.header.tail.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.capacity || used % 8 != 0 {
            return Err(self.bad(head, "indices"));
        }
        Ok(())
    }

    #[cold]
    fn bad(&self, head: u64, what: &str) -> Error {
        let tail = self.header.tail.load(Ordering::Relaxed);
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

/// A frame header word: `len | kind << 32` (never 0 for a known kind).
#[inline]
fn header_word(len: u32, kind: u32) -> u64 {
    u64::from(len) | (u64::from(kind) << 32)
}

#[inline]
fn split_header(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}
