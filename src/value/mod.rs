//! Typed shared memory: Python's `Value`, `Array`, `RawValue` and `RawArray`,
//! plus atomic integer values for lock-free counters.
//!
//! | type | shm layout | synchronisation |
//! |---|---|---|
//! | [`RawValue<T>`] | a bare `T` | none: the caller synchronises |
//! | [`RawArray<T>`] | [`ArrayHeader`] then `len` × `T` | none |
//! | [`AtomicValue<T>`] | one `u32` or `u64` word | every call is one atomic instruction |
//! | [`Value<T>`] | [`LockedHeader`] (a lock) then a `T` | its own lock |
//! | [`Array<T>`] | [`LockedHeader`] then `len` × `T` | its own lock |
//!
//! `T` is plain old data, proven by [`bytemuck::Pod`]: numbers, `bool`-free
//! `#[repr(C)]` structs deriving `Pod` and `Zeroable`, and arrays of them.
//! Anything else (a `String`, a `Vec`, a reference) does not compile.
//!
//! Every handle is an `Arc` around one arena block: cloning is cheap, clones
//! and forked copies all see the same memory, and the block returns to the
//! arena when the last handle *in the process that created it* is dropped
//! (handles in forked children or found by [`Arena::lookup`] never free it).
//!
//! An array's length lives in shared memory (so that [`Arena::lookup`] can
//! find it from an unrelated process); it is read once, checked against the
//! arena, and cached in the handle. A peer that later scribbles on it cannot
//! make this process read or write outside the block.

mod atomic;
mod locked;
mod raw;

pub use atomic::{AtomicInteger, AtomicValue};
pub use locked::{Array, ArrayGuard, Value, ValueGuard};
pub use raw::{RawArray, RawValue};

use crate::arena::{Arena, Offset, ShmState};
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use core::ops::{Bound, Range, RangeBounds};
use zerocopy::{FromBytes, KnownLayout};

/// Largest alignment of `T` a shared value can have (the arena's largest block alignment).
const MAX_ALIGN: usize = 4096;

/// Arrays start their elements on a cache line of their own.
const ARRAY_DATA_ALIGN: usize = 64;

/// The header in front of a [`RawArray`]'s elements.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | len | number of elements; written once by the creator |
/// | 8 | elem_size | `size_of::<T>()`, checked on attach |
/// | 12 | elem_align | `align_of::<T>()`, checked on attach |
///
/// The elements start at the next multiple of `max(64, align_of::<T>())`.
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct ArrayHeader {
    pub(crate) len: AtomicU64,
    pub(crate) elem_size: AtomicU32,
    pub(crate) elem_align: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<ArrayHeader>() == 16);

// SAFETY: repr(C), FromBytes, every field an atomic; no pointers.
unsafe impl ShmState for ArrayHeader {}

impl ArrayHeader {
    /// Records the shape of an array of `len` `T`s (creator only, before sharing).
    fn init<T>(&self, len: usize) {
        self.len.store(len as u64, Ordering::Relaxed);
        self.elem_size
            .store(core::mem::size_of::<T>() as u32, Ordering::Relaxed);
        self.elem_align
            .store(core::mem::align_of::<T>() as u32, Ordering::Relaxed);
    }

    /// Reads the length and checks the element shape against `T`.
    ///
    /// The length is only *read* here; the caller checks that the elements
    /// fit in the arena (`data_ptr`).
    fn checked_len<T>(&self, offset: u64) -> Result<usize> {
        let size = self.elem_size.load(Ordering::Relaxed);
        let align = self.elem_align.load(Ordering::Relaxed);
        if size as usize != core::mem::size_of::<T>()
            || align as usize != core::mem::align_of::<T>()
        {
            return Err(Error::Corrupt {
                what: format!(
                    "array at {offset:#x} holds elements of {size} bytes (align {align}), not {} ({} bytes, align {})",
                    core::any::type_name::<T>(),
                    core::mem::size_of::<T>(),
                    core::mem::align_of::<T>()
                ),
            });
        }
        let len = self.len.load(Ordering::Relaxed);
        usize::try_from(len).map_err(|_| Error::Corrupt {
            what: format!("array at {offset:#x} claims {len} elements"),
        })
    }
}

/// Where the parts of one block go: a header `H` at 0, the data at `data`.
#[derive(Clone, Copy, Debug)]
struct BlockLayout {
    /// Offset of the first element from the block's start.
    data: usize,
    /// Bytes to allocate.
    bytes: usize,
    /// Alignment to allocate with.
    align: usize,
}

impl BlockLayout {
    /// The layout of a header `H` followed by `len` `T`s whose first element
    /// is aligned to at least `data_align`.
    fn of<H, T>(len: usize, data_align: usize) -> Result<BlockLayout> {
        let data_align = core::mem::align_of::<T>().max(data_align);
        let align = data_align.max(core::mem::align_of::<H>());
        if align > MAX_ALIGN {
            return Err(Error::InvalidArgument(format!(
                "{} needs an alignment of {align} bytes; shared values can be aligned to at most {MAX_ALIGN}",
                core::any::type_name::<T>()
            )));
        }
        let data = core::mem::size_of::<H>().next_multiple_of(data_align);
        let bytes = core::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(data))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "an array of {len} elements of {} overflows the address space",
                    core::any::type_name::<T>()
                ))
            })?;
        Ok(BlockLayout { data, bytes, align })
    }
}

/// One arena block shared by all clones of a handle.
///
/// Frees the block when dropped in the process that allocated it; a copy
/// inherited by a forked child, or one attached by `lookup`, never frees.
pub(crate) struct Block {
    arena: Arena,
    offset: u64,
    /// The pid that frees the block on drop (`None`: attached, never frees).
    creator: Option<i32>,
}

impl Block {
    /// Allocates a block for `layout` in `arena`; the bytes are not initialised.
    fn alloc(arena: &Arena, layout: BlockLayout) -> Result<Block> {
        let at = arena.alloc(layout.bytes, layout.align)?;
        Ok(Block {
            arena: arena.clone(),
            offset: at.raw(),
            creator: Some(crate::sys::getpid()),
        })
    }

    /// A block someone else allocated (found by `lookup`): never freed by us.
    fn attached(arena: &Arena, offset: u64) -> Block {
        Block {
            arena: arena.clone(),
            offset,
            creator: None,
        }
    }

    /// The block's offset plus `delta`, checked against overflow.
    fn at(&self, delta: usize) -> Result<u64> {
        self.offset
            .checked_add(delta as u64)
            .ok_or_else(|| Error::OutOfBounds {
                offset: self.offset,
                len: delta as u64,
                align: 1,
                arena_len: self.arena.size() as u64,
            })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.creator == Some(crate::sys::getpid()) {
            // Nothing useful can be done with an error here: the block was
            // ours, so an error means a peer corrupted the allocator, and the
            // block simply leaks.
            let _ = self.arena.free(Offset::<u8>::from_raw(self.offset));
        }
    }
}

/// Picks the arena of a default-arena constructor.
fn default_arena() -> Result<&'static Arena> {
    Arena::default_arena()
}

/// Turns any range into `start..end` inside `0..len`, or an error naming both.
fn checked_range(range: impl RangeBounds<usize>, len: usize) -> Result<Range<usize>> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(start), Some(end)) if start <= end && end <= len => Ok(start..end),
        _ => Err(Error::InvalidArgument(format!(
            "range {:?}..{:?} is out of bounds for an array of {len} elements",
            range.start_bound(),
            range.end_bound()
        ))),
    }
}

/// The range `start..start + count`, checked against `len`.
fn checked_span(start: usize, count: usize, len: usize) -> Result<Range<usize>> {
    match start.checked_add(count) {
        Some(end) if end <= len => Ok(start..end),
        _ => Err(Error::InvalidArgument(format!(
            "{count} elements from index {start} do not fit in an array of {len} elements"
        ))),
    }
}

/// An index checked against `len`.
fn checked_index(index: usize, len: usize) -> Result<usize> {
    if index < len {
        Ok(index)
    } else {
        Err(Error::InvalidArgument(format!(
            "index {index} is out of range for an array of {len} elements (valid: 0..{len})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(checked_range(.., 5).unwrap(), 0..5);
        assert_eq!(checked_range(1..=2, 5).unwrap(), 1..3);
        assert_eq!(checked_range(5.., 5).unwrap(), 5..5);
        assert!(checked_range(0..6, 5).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..2;
        assert!(checked_range(backwards, 5).is_err());
        assert!(checked_range(0..=usize::MAX, 5).is_err());
        assert!(checked_span(usize::MAX, 2, 5).is_err());
        assert!(checked_index(5, 5).is_err());
        assert_eq!(checked_index(4, 5).unwrap(), 4);
    }

    #[test]
    fn layouts() {
        let l = BlockLayout::of::<ArrayHeader, f64>(10, ARRAY_DATA_ALIGN).unwrap();
        assert_eq!((l.data, l.bytes, l.align), (64, 64 + 80, 64));
        let l = BlockLayout::of::<(), u16>(1, 1).unwrap();
        assert_eq!((l.data, l.bytes, l.align), (0, 2, 2));
        assert!(BlockLayout::of::<ArrayHeader, u64>(usize::MAX / 4, 64).is_err());
        #[derive(Clone, Copy)]
        #[repr(C, align(8192))]
        struct Huge(u8);
        assert!(BlockLayout::of::<(), Huge>(1, 1).is_err());
    }
}
