//! The lock-free free list (a Treiber stack with an ABA tag) behind the arena
//! allocator, written over plain atomics so that `tests/loom_freelist.rs` can
//! model-check it on heap memory.
//!
//! The head word is `tag << 32 | unit`, where `unit` names a block (0 = empty)
//! and `tag` is bumped by every pop: a pop that read a head, was delayed, and
//! then finds the same `unit` on top again (popped and pushed back meanwhile,
//! possibly with another successor) fails its CAS because the tag moved.
//! Each block's link word holds the unit of the next block. A popper may read
//! the link of a block that another process has popped and overwritten in the
//! meantime; that value is never installed, because the tag check fails.

use crate::loom::atomic::{AtomicU64, Ordering};

const UNIT_MASK: u64 = 0xFFFF_FFFF;

/// The unit on top of a head word, if any.
pub fn top(word: u64) -> Option<u64> {
    match word & UNIT_MASK {
        0 => None,
        unit => Some(unit),
    }
}

/// Pushes block `unit` (non-zero, < 2^32) whose link word is `link`.
pub fn push(head: &AtomicU64, unit: u64, link: &AtomicU64) {
    let mut word = head.load(Ordering::Relaxed);
    loop {
        link.store(word & UNIT_MASK, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire in `pop`: the link
        // stored above is visible to whoever pops this block.
        match head.compare_exchange_weak(
            word,
            (word & !UNIT_MASK) | (unit & UNIT_MASK),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => return,
            Err(seen) => word = seen,
        }
    }
}

/// Pops a block: `Ok(Some(unit))`, `Ok(None)` when empty, or `Err(unit)` when
/// the unit on top is one `link_of` rejects (out of bounds: a corrupt list).
pub fn pop<'a>(
    head: &AtomicU64,
    link_of: impl Fn(u64) -> Option<&'a AtomicU64>,
) -> Result<Option<u64>, u64> {
    // SYNC POINT: Acquire pairs with the Release CAS in `push`.
    let mut word = head.load(Ordering::Acquire);
    loop {
        let Some(unit) = top(word) else {
            return Ok(None);
        };
        let link = link_of(unit).ok_or(unit)?;
        let next = link.load(Ordering::Relaxed) & UNIT_MASK;
        let tag = (word >> 32).wrapping_add(1);
        match head.compare_exchange_weak(
            word,
            (tag << 32) | next,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(Some(unit)),
            Err(seen) => word = seen,
        }
    }
}
