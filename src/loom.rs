//! The facade for atomics and spin hints.
//!
//! Nothing else in the crate imports `std::sync::atomic` directly: under
//! `--cfg loom` these names resolve to loom's model-checked versions, so the
//! lock-free index logic of the sync primitives and rings can be explored by
//! `tests/loom_*.rs` (see docs/ARCHITECTURE.md, "Model checking").

#[cfg(not(loom))]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}

#[cfg(loom)]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}

/// A hint that we are spinning; under loom it yields so the model can advance.
#[inline(always)]
#[allow(dead_code)]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives up the CPU for a moment (used between spin rounds).
#[inline]
#[allow(dead_code)]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}
