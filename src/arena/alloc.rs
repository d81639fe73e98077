//! The cross-process allocator.
//!
//! Blocks are powers of two from 64 B to 256 GiB, each naturally aligned (up
//! to a page). A block is carved once from the bump pointer and, when freed,
//! pushed on the lock-free free list (a Treiber stack) of its size class,
//! from which any process may pop it again. No lock is held at any point, so
//! a process killed mid-call can at worst leak the one block it was moving.
//!
//! Each payload is preceded by a 16-byte [`BlockHeader`] giving its class and
//! state, which `free` checks: a double free or a foreign offset is an error.
//! Free-list heads carry a 32-bit tag bumped on every pop, so a stale head
//! cannot be swapped back in (ABA).

use super::header::{
    AllocState, BLOCK_FREE, BLOCK_USED, BlockHeader, Header, MAX_CLASS, MIN_CLASS,
};
use super::{Arena, Offset, ShmState};
use crate::error::{Error, Result};
use crate::freelist;
use crate::loom::atomic::Ordering;

// SAFETY: repr(C), FromBytes, every field atomic (see header.rs).
unsafe impl ShmState for Header {}
// SAFETY: repr(C), FromBytes, every field atomic.
unsafe impl ShmState for BlockHeader {}

/// Largest payload alignment `alloc` takes (blocks are aligned to at most a page).
pub(crate) const MAX_ALIGN: usize = 4096;
/// Blocks of this class and larger give their pages back to the kernel when freed.
const RELEASE_CLASS: u32 = 24;

fn class_align(class: u32) -> u64 {
    (1u64 << class).min(MAX_ALIGN as u64)
}

pub(super) fn init(state: &AllocState, heap_start: u64, heap_end: u64) {
    state.heap_start.store(heap_start, Ordering::Relaxed);
    state.heap_end.store(heap_end, Ordering::Relaxed);
    state.bump.store(heap_start, Ordering::Relaxed);
    state.used.store(0, Ordering::Relaxed);
    for head in &state.heads {
        head.store(0, Ordering::Relaxed);
    }
}

/// Validates allocator state read from a segment someone else made.
pub(super) fn check(state: &AllocState, heap_start: u64, size: u64) -> Result<()> {
    let corrupt = |what: String| Err(Error::Corrupt { what });
    let start = state.heap_start.load(Ordering::Relaxed);
    let end = state.heap_end.load(Ordering::Relaxed);
    let bump = state.bump.load(Ordering::Relaxed);
    let used = state.used.load(Ordering::Relaxed);
    if start != heap_start || end > size || end < start {
        return corrupt(format!(
            "allocator heap {start:#x}..{end:#x} does not fit segment of {size} bytes"
        ));
    }
    if bump < start || bump > end {
        return corrupt(format!(
            "allocator bump pointer {bump:#x} outside heap {start:#x}..{end:#x}"
        ));
    }
    if used > end - start {
        return corrupt(format!(
            "allocator claims {used} bytes used of a {} byte heap",
            end - start
        ));
    }
    for (i, head) in state.heads.iter().enumerate() {
        let class = MIN_CLASS + i as u32;
        let raw = head.load(Ordering::Relaxed);
        if let Some(block) = block_of(raw) {
            if !block_in_heap(block, class, start, end) {
                return corrupt(format!(
                    "free list of {}-byte blocks starts at {block:#x}, outside the heap",
                    1u64 << class
                ));
            }
        }
    }
    Ok(())
}

/// The block a free-list word names, if any.
fn block_of(word: u64) -> Option<u64> {
    freelist::top(word).map(|unit| unit << MIN_CLASS)
}

fn block_in_heap(block: u64, class: u32, start: u64, end: u64) -> bool {
    block >= start
        && block % class_align(class) == 0
        && block.checked_add(1 << class).is_some_and(|e| e <= end)
}

impl Arena {
    fn alloc_state(&self) -> &AllocState {
        &self.header().alloc
    }

    /// Heap bounds, re-checked against the mapping on every call.
    fn heap(&self) -> Result<(u64, u64)> {
        let state = self.alloc_state();
        let start = state.heap_start.load(Ordering::Relaxed);
        let end = state.heap_end.load(Ordering::Relaxed);
        if start < super::HEADER_SIZE as u64 || end > self.size() as u64 || end < start {
            return Err(Error::Corrupt {
                what: format!("allocator heap bounds {start:#x}..{end:#x}"),
            });
        }
        Ok((start, end))
    }

    /// Allocates `size` bytes aligned to `align` (a power of two up to 4096).
    ///
    /// Works from any process that maps the arena; the block may be freed by
    /// any of them. The bytes are not zeroed.
    ///
    /// # Errors
    /// [`Error::ArenaFull`] when no block fits; [`Error::InvalidArgument`] for
    /// a bad alignment.
    pub fn alloc(&self, size: usize, align: usize) -> Result<Offset<u8>> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(Error::InvalidArgument(format!(
                "alignment {align} must be a power of two no larger than {MAX_ALIGN}"
            )));
        }
        let pad = align.max(16) as u64;
        let need = (size.max(1) as u64).saturating_add(pad);
        let class = (64 - (need - 1).leading_zeros()).max(MIN_CLASS);
        if class > MAX_CLASS {
            return Err(self.full(size as u64));
        }
        let (start, end) = self.heap()?;
        let block = match self.pop(class, start, end)? {
            Some(block) => block,
            None => self.carve(class, start, end, size as u64)?,
        };
        let payload = block + pad;
        let header = self.resolve::<BlockHeader>(payload - 16)?;
        header.link.store(pad, Ordering::Relaxed);
        header.class.store(class, Ordering::Relaxed);
        header.state.store(BLOCK_USED, Ordering::Release);
        self.alloc_state()
            .used
            .fetch_add(1 << class, Ordering::Relaxed);
        Ok(Offset::from_raw(payload))
    }

    /// Allocates room for `len` values of `T` (uninitialised).
    pub fn alloc_array<T>(&self, len: usize) -> Result<Offset<T>> {
        let bytes = core::mem::size_of::<T>().checked_mul(len).ok_or_else(|| {
            Error::InvalidArgument(format!("an array of {len} elements overflows"))
        })?;
        Ok(self.alloc(bytes, core::mem::align_of::<T>())?.cast())
    }

    fn full(&self, requested: u64) -> Error {
        let state = self.alloc_state();
        let start = state.heap_start.load(Ordering::Relaxed);
        let end = state.heap_end.load(Ordering::Relaxed);
        Error::ArenaFull {
            requested,
            used: state.used.load(Ordering::Relaxed),
            capacity: end.saturating_sub(start),
        }
    }

    fn pop(&self, class: u32, start: u64, end: u64) -> Result<Option<u64>> {
        let head = &self.alloc_state().heads[(class - MIN_CLASS) as usize];
        let link_of = |unit: u64| {
            let block = unit << MIN_CLASS;
            if !block_in_heap(block, class, start, end) {
                return None;
            }
            self.resolve::<BlockHeader>(block).ok().map(|h| &h.link)
        };
        let block = match freelist::pop(head, link_of) {
            Ok(None) => return Ok(None),
            Ok(Some(unit)) => unit << MIN_CLASS,
            Err(unit) => {
                return Err(Error::Corrupt {
                    what: format!("free-list block {:#x} outside the heap", unit << MIN_CLASS),
                });
            }
        };
        let free = self.resolve::<BlockHeader>(block)?;
        if free.state.load(Ordering::Relaxed) != BLOCK_FREE
            || free.class.load(Ordering::Relaxed) != class
        {
            return Err(Error::Corrupt {
                what: format!("block {block:#x} on a free list is not marked free"),
            });
        }
        Ok(Some(block))
    }

    fn carve(&self, class: u32, start: u64, end: u64, requested: u64) -> Result<u64> {
        let bump = &self.alloc_state().bump;
        let mut cur = bump.load(Ordering::Relaxed);
        loop {
            if cur < start || cur > end {
                return Err(Error::Corrupt {
                    what: format!("allocator bump pointer {cur:#x} outside the heap"),
                });
            }
            let block = cur.next_multiple_of(class_align(class));
            let Some(next) = block.checked_add(1 << class).filter(|&n| n <= end) else {
                return Err(self.full(requested));
            };
            match bump.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(block),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Returns a block from [`Arena::alloc`] to the arena.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if `offset` is not a live block of this arena (a
    /// double free, or an offset that was never allocated).
    pub fn free<T>(&self, offset: Offset<T>) -> Result<()> {
        let payload = offset.raw();
        let (start, end) = self.heap()?;
        let bad = |why: &str| Error::Corrupt {
            what: format!("free({payload:#x}): {why}"),
        };
        if payload < start + 16 || payload > end || payload % 16 != 0 {
            return Err(bad("not a block of this arena"));
        }
        let header = self.resolve::<BlockHeader>(payload - 16)?;
        let class = header.class.load(Ordering::Relaxed);
        let pad = header.link.load(Ordering::Relaxed);
        if !(MIN_CLASS..=MAX_CLASS).contains(&class)
            || !pad.is_power_of_two()
            || !(16..=MAX_ALIGN as u64).contains(&pad)
            || pad >= 1 << class
        {
            return Err(bad("block header is not an allocated block"));
        }
        let block = payload - pad;
        if !block_in_heap(block, class, start, end) {
            return Err(bad("block lies outside the heap"));
        }
        if header
            .state
            .compare_exchange(BLOCK_USED, BLOCK_FREE, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Err(bad("double free, or not an allocated block"));
        }
        if class >= RELEASE_CLASS {
            self.release_pages(block, class);
        }
        let free = self.resolve::<BlockHeader>(block)?;
        free.class.store(class, Ordering::Relaxed);
        free.state.store(BLOCK_FREE, Ordering::Relaxed);
        self.push(free, block, class);
        self.alloc_state()
            .used
            .fetch_sub(1 << class, Ordering::Relaxed);
        Ok(())
    }

    fn push(&self, free: &BlockHeader, block: u64, class: u32) {
        let head = &self.alloc_state().heads[(class - MIN_CLASS) as usize];
        freelist::push(head, block >> MIN_CLASS, &free.link);
    }

    /// Gives the pages of a large free block (all but its first page, which
    /// holds the free-list link) back to the kernel (`madvise(MADV_REMOVE)`).
    fn release_pages(&self, block: u64, class: u32) {
        let page = 4096u64;
        let from = block + page;
        let len = (1u64 << class) - page;
        if let Ok(ptr) = self.check_range(from, len, page) {
            // SAFETY: the range is a page-aligned part of our shared mapping
            // (checked) inside a block nobody owns (we just marked it free);
            // MADV_REMOVE zero-fills it, which nobody can observe but a new owner.
            let _ = unsafe {
                rustix::mm::madvise(
                    ptr.as_ptr().cast(),
                    len as usize,
                    rustix::mm::Advice::LinuxRemove,
                )
            };
        }
    }

    /// Bytes currently allocated (in whole blocks, headers included).
    pub fn used(&self) -> u64 {
        self.alloc_state().used.load(Ordering::Relaxed)
    }

    /// Bytes the allocator can hand out in all (the heap).
    pub fn capacity(&self) -> u64 {
        let state = self.alloc_state();
        state
            .heap_end
            .load(Ordering::Relaxed)
            .saturating_sub(state.heap_start.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_reuses_blocks() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = arena.alloc(100, 8).unwrap();
        assert_eq!(arena.used(), 128);
        arena.free(a).unwrap();
        assert_eq!(arena.used(), 0);
        let b = arena.alloc(100, 8).unwrap();
        assert_eq!(a, b, "a freed block is reused for the same class");
        assert!(matches!(
            arena.free(Offset::<u8>::from_raw(8)),
            Err(Error::Corrupt { .. })
        ));
        arena.free(b).unwrap();
        assert!(
            matches!(arena.free(b), Err(Error::Corrupt { .. })),
            "double free"
        );
    }

    #[test]
    fn honours_alignment() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        for align in [1, 2, 8, 16, 64, 128, 4096] {
            let at = arena.alloc(24, align).unwrap();
            assert_eq!(at.raw() % align as u64, 0, "align {align}");
            arena.free(at).unwrap();
        }
        assert!(arena.alloc(8, 3).is_err());
        assert!(arena.alloc(8, 8192).is_err());
    }

    #[test]
    fn full_is_an_error() {
        let arena = Arena::anonymous(64 << 10).unwrap();
        let err = arena.alloc(1 << 20, 8).unwrap_err();
        assert!(matches!(err, Error::ArenaFull { .. }), "{err}");
        assert!(matches!(
            arena.alloc(usize::MAX, 8),
            Err(Error::ArenaFull { .. })
        ));
        let mut held = Vec::new();
        while let Ok(at) = arena.alloc(1000, 8) {
            held.push(at);
        }
        assert!(!held.is_empty());
        for at in held {
            arena.free(at).unwrap();
        }
        assert_eq!(arena.used(), 0);
    }

    #[test]
    fn large_blocks_release_and_reuse() {
        let arena = Arena::anonymous(64 << 20).unwrap();
        let big = arena.alloc_array::<u64>(1 << 20).unwrap();
        let ptr = arena.resolve_slice_ptr(big, 1 << 20).unwrap();
        // SAFETY: `ptr` covers 2^20 u64s inside the arena (checked), owned by this test.
        unsafe { ptr.as_ptr().write_bytes(0xAB, 1 << 20) };
        arena.free(big).unwrap();
        let again = arena.alloc_array::<u64>(1 << 20).unwrap();
        assert_eq!(again, big);
        arena.free(again).unwrap();
    }
}
