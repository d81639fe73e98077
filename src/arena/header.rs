//! Page 0 of every segment: identity, allocator state and the name registry.
//!
//! Every field is an atomic: a peer process may write the header at any time,
//! so this process only ever reads it through atomic loads and checks each
//! value before use.

use crate::loom::atomic::{AtomicU8, AtomicU32, AtomicU64};
use zerocopy::{FromBytes, KnownLayout};

/// Bytes reserved for the header: the heap starts right after.
pub(crate) const HEADER_SIZE: usize = 4096;
/// `b"SHMPROC"` and a format byte: the first 8 bytes of every segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC\x01");
/// The layout this build writes and the newest it reads.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Size classes are powers of two from 2^MIN_CLASS bytes...
pub(crate) const MIN_CLASS: u32 = 6;
/// ...to 2^MAX_CLASS bytes.
pub(crate) const MAX_CLASS: u32 = 38;
/// Number of size classes (free lists).
pub(crate) const NUM_CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
/// Free-list heads name blocks in 64-byte units in 32 bits: 256 GiB at most.
pub(crate) const MAX_ARENA: u64 = (u32::MAX as u64) << MIN_CLASS;
/// Slots in the name registry.
pub(crate) const REGISTRY_SLOTS: usize = 40;
/// Longest published name in bytes.
pub(crate) const NAME_LEN: usize = 48;

/// The segment header (page 0).
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | magic | `SHMPROC\x01`, written last by the creator |
/// | 8 | version | layout version ([`LAYOUT_VERSION`]) |
/// | 12 | header_size | 4096 |
/// | 16 | size | segment bytes |
/// | 24 | creator_pid | pid of the creating process |
/// | 32 | alloc | [`AllocState`] |
/// | .. | registry | [`RegistryState`] |
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_size: AtomicU32,
    pub size: AtomicU64,
    pub creator_pid: AtomicU32,
    pub reserved: AtomicU32,
    pub alloc: AllocState,
    pub registry: RegistryState,
}

/// The allocator's shared state: a bump pointer and one lock-free free list
/// (Treiber stack with an ABA tag) per power-of-two size class.
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct AllocState {
    /// First heap byte (== HEADER_SIZE).
    pub heap_start: AtomicU64,
    /// One past the last heap byte (== size).
    pub heap_end: AtomicU64,
    /// Next never-used byte.
    pub bump: AtomicU64,
    /// Bytes in live blocks (class sizes, headers included).
    pub used: AtomicU64,
    /// Free-list heads: `tag << 32 | block_offset >> MIN_CLASS`, 0 = empty.
    pub heads: [AtomicU64; NUM_CLASSES],
}

/// The 16 bytes in front of every block's payload (and at the start of a free block).
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct BlockHeader {
    /// Allocated: bytes from the block's start to the payload. Free: the next
    /// free block (`offset >> MIN_CLASS`, 0 = end).
    pub link: AtomicU64,
    /// [`BLOCK_USED`] or [`BLOCK_FREE`].
    pub state: AtomicU32,
    /// The block's size class (log2 of its size).
    pub class: AtomicU32,
}

/// `state` of an allocated block.
pub(crate) const BLOCK_USED: u32 = 0xA110_C8ED;
/// `state` of a block on a free list.
pub(crate) const BLOCK_FREE: u32 = 0xF4EE_B10C;

/// The name registry: `publish`/`lookup`.
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct RegistryState {
    /// Pid of the process inside `publish`/`unpublish`, 0 when free.
    pub lock: AtomicU32,
    pub reserved: AtomicU32,
    pub entries: [RegistryEntry; REGISTRY_SLOTS],
}

/// One published name.
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct RegistryEntry {
    /// [`ENTRY_EMPTY`] or [`ENTRY_READY`]; bumped by 2 per change (seqlock).
    pub state: AtomicU32,
    pub name_len: AtomicU32,
    pub name: [AtomicU8; NAME_LEN],
    /// FNV-1a of the handle type's name.
    pub type_tag: AtomicU64,
    /// Size of the object's shared state.
    pub size: AtomicU64,
    /// Alignment of the object's shared state.
    pub align: AtomicU64,
    /// Offset of the object's shared state.
    pub offset: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<BlockHeader>() == 16);
const _: () = assert!(core::mem::size_of::<RegistryEntry>() == 88);
