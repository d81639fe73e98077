//! `AtomicValue<T>`: an integer in shared memory changed by single atomic
//! instructions, for lock-free counters and flags across processes.

use super::{Block, BlockLayout, default_arena};
use crate::arena::{Arena, Offset, Publish};
use crate::error::Result;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;

mod sealed {
    /// How an [`AtomicInteger`](super::AtomicInteger) maps onto a 32- or 64-bit word.
    pub trait Sealed: Copy {
        /// Stored in a 64-bit word (else a 32-bit one).
        const WIDE: bool;
        /// The value's bits, zero-extended to 64.
        fn to_bits(self) -> u64;
        /// Back from the (low) bits of a word.
        fn from_bits(bits: u64) -> Self;
    }
}

/// The integer types an [`AtomicValue`] can hold: `u32`, `i32`, `u64`,
/// `i64`, `usize` and `isize`.
///
/// Sealed: the atomic operations depend on how each maps onto a machine word.
pub trait AtomicInteger:
    sealed::Sealed + bytemuck::Pod + Ord + core::fmt::Debug + Send + Sync
{
}

macro_rules! atomic_integer {
    ($($t:ty => $wide:expr, $unsigned:ty;)*) => {$(
        impl sealed::Sealed for $t {
            const WIDE: bool = $wide;
            #[inline(always)]
            fn to_bits(self) -> u64 {
                // Reinterpret as unsigned of the same width, then widen.
                self as $unsigned as u64
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                // Keep the low bits of the word, reinterpret as the type.
                bits as $unsigned as $t
            }
        }
        impl AtomicInteger for $t {}
    )*};
}

atomic_integer! {
    u32 => false, u32;
    i32 => false, u32;
    u64 => true, u64;
    i64 => true, u64;
    usize => usize::BITS == 64, usize;
    isize => usize::BITS == 64, usize;
}

/// An integer in shared memory whose every operation is one atomic
/// instruction: a lock-free counter or flag shared by processes.
///
/// `T` is one of `u32`, `i32`, `u64`, `i64`, `usize`, `isize`. The methods
/// are those of [`std::sync::atomic::AtomicU64`] (`load`, `store`,
/// `fetch_add`, `fetch_sub`, `swap`, `compare_exchange`, ...) with the same
/// orderings; additions wrap around on overflow, as std's do. [`get`]
/// and [`set`] are the `SeqCst` load and store under the names
/// [`Value`](crate::Value) uses, so a counter can switch between the two.
///
/// Python has no atomic value: a `multiprocessing.Value('q', 0)` counter is
/// incremented under its lock (`with v.get_lock(): v.value += 1`); here
/// `counter.fetch_add(1, Ordering::Relaxed)` does the same without a lock.
///
/// [`get`]: AtomicValue::get
/// [`set`]: AtomicValue::set
///
/// # Examples
/// ```
/// use shmproc::AtomicValue;
/// use std::sync::atomic::Ordering;
/// let hits = AtomicValue::new(0u64)?;
/// hits.fetch_add(5, Ordering::Relaxed);
/// assert_eq!(hits.compare_exchange(5, 7, Ordering::AcqRel, Ordering::Acquire), Ok(5));
/// assert_eq!(hits.get(), 7);
/// let temperature = AtomicValue::new(-3i32)?;
/// temperature.fetch_sub(2, Ordering::Relaxed);
/// assert_eq!(temperature.fetch_max(0, Ordering::Relaxed), -5);
/// assert_eq!(temperature.get(), 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct AtomicValue<T: AtomicInteger> {
    block: Arc<Block>,
    /// The word: an `AtomicU64` if `T::WIDE`, else an `AtomicU32`.
    word: NonNull<u8>,
    _type: PhantomData<T>,
}

// SAFETY: all access goes through atomics in shared memory; the block is
// reference counted by `Arc`.
unsafe impl<T: AtomicInteger> Send for AtomicValue<T> {}
// SAFETY: as for Send.
unsafe impl<T: AtomicInteger> Sync for AtomicValue<T> {}

impl<T: AtomicInteger> Clone for AtomicValue<T> {
    fn clone(&self) -> Self {
        AtomicValue {
            block: Arc::clone(&self.block),
            word: self.word,
            _type: PhantomData,
        }
    }
}

/// Applies the same operation to whichever word `T` lives in.
macro_rules! on_word {
    ($self:ident, |$w:ident| $op:expr) => {
        if T::WIDE {
            let $w = $self.wide();
            $op
        } else {
            let $w = $self.narrow();
            $op as u64
        }
    };
}

/// Narrows a 64-bit operand for a 32-bit word (a no-op for a 64-bit one).
macro_rules! operand {
    ($v:expr) => {
        $v.to_bits() as _
    };
}

impl<T: AtomicInteger> AtomicValue<T> {
    /// A word's size and alignment.
    fn word_size() -> usize {
        if T::WIDE { 8 } else { 4 }
    }

    /// Places `value` in the process-wide default arena.
    ///
    /// # Errors
    /// [`Error::ArenaFull`](crate::Error::ArenaFull); whatever creating the
    /// default arena gives.
    pub fn new(value: T) -> Result<Self> {
        Self::new_in(default_arena()?, value)
    }

    /// Places `value` in `arena`.
    ///
    /// # Errors
    /// [`Error::ArenaFull`](crate::Error::ArenaFull).
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        let layout = if T::WIDE {
            BlockLayout::of::<(), u64>(1, 8)?
        } else {
            BlockLayout::of::<(), u32>(1, 4)?
        };
        let block = Block::alloc(arena, layout)?;
        let offset = block.offset;
        let handle = Self::from_block(block, offset)?;
        handle.store(value, Ordering::Relaxed);
        Ok(handle)
    }

    /// Resolves the word of `block` (checked: bounds and alignment).
    fn from_block(block: Block, offset: u64) -> Result<Self> {
        let word = if T::WIDE {
            NonNull::from(block.arena.resolve::<AtomicU64>(offset)?).cast()
        } else {
            NonNull::from(block.arena.resolve::<AtomicU32>(offset)?).cast()
        };
        Ok(AtomicValue {
            block: Arc::new(block),
            word,
            _type: PhantomData,
        })
    }

    #[inline(always)]
    fn wide(&self) -> &AtomicU64 {
        debug_assert!(T::WIDE);
        // SAFETY: for a wide `T` the word was resolved as an `AtomicU64`
        // (bounds and alignment checked) in the arena `block` keeps mapped.
        unsafe { self.word.cast::<AtomicU64>().as_ref() }
    }

    #[inline(always)]
    fn narrow(&self) -> &AtomicU32 {
        debug_assert!(!T::WIDE);
        // SAFETY: for a narrow `T` the word was resolved as an `AtomicU32`
        // (bounds and alignment checked) in the arena `block` keeps mapped.
        unsafe { self.word.cast::<AtomicU32>().as_ref() }
    }

    /// Loads the value (`SeqCst`): `Value::get`'s name.
    #[inline]
    pub fn get(&self) -> T {
        self.load(Ordering::SeqCst)
    }

    /// Stores `value` (`SeqCst`): `Value::set`'s name.
    #[inline]
    pub fn set(&self, value: T) {
        self.store(value, Ordering::SeqCst)
    }

    /// Loads the value, as [`AtomicU64::load`].
    #[inline]
    pub fn load(&self, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.load(order)))
    }

    /// Stores `value`, as [`AtomicU64::store`].
    #[inline]
    pub fn store(&self, value: T, order: Ordering) {
        if T::WIDE {
            self.wide().store(value.to_bits(), order)
        } else {
            self.narrow().store(value.to_bits() as u32, order)
        }
    }

    /// Stores `value` and returns the previous value, as [`AtomicU64::swap`].
    #[inline]
    pub fn swap(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.swap(operand!(value), order)))
    }

    /// Adds `value` (wrapping) and returns the previous value, as [`AtomicU64::fetch_add`].
    #[inline]
    pub fn fetch_add(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.fetch_add(operand!(value), order)))
    }

    /// Subtracts `value` (wrapping) and returns the previous value, as [`AtomicU64::fetch_sub`].
    #[inline]
    pub fn fetch_sub(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.fetch_sub(operand!(value), order)))
    }

    /// Bitwise and; returns the previous value, as [`AtomicU64::fetch_and`].
    #[inline]
    pub fn fetch_and(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.fetch_and(operand!(value), order)))
    }

    /// Bitwise or; returns the previous value, as [`AtomicU64::fetch_or`].
    #[inline]
    pub fn fetch_or(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.fetch_or(operand!(value), order)))
    }

    /// Bitwise xor; returns the previous value, as [`AtomicU64::fetch_xor`].
    #[inline]
    pub fn fetch_xor(&self, value: T, order: Ordering) -> T {
        T::from_bits(on_word!(self, |w| w.fetch_xor(operand!(value), order)))
    }

    /// Stores `new` if the value is `current`, as [`AtomicU64::compare_exchange`].
    ///
    /// # Errors
    /// `Err(actual)` with the value found when it was not `current`.
    #[inline]
    pub fn compare_exchange(
        &self,
        current: T,
        new: T,
        success: Ordering,
        failure: Ordering,
    ) -> core::result::Result<T, T> {
        let result = if T::WIDE {
            self.wide()
                .compare_exchange(current.to_bits(), new.to_bits(), success, failure)
        } else {
            self.narrow()
                .compare_exchange(
                    current.to_bits() as u32,
                    new.to_bits() as u32,
                    success,
                    failure,
                )
                .map(u64::from)
                .map_err(u64::from)
        };
        result.map(T::from_bits).map_err(T::from_bits)
    }

    /// As [`compare_exchange`](AtomicValue::compare_exchange), but may fail
    /// spuriously (for retry loops), as [`AtomicU64::compare_exchange_weak`].
    ///
    /// # Errors
    /// `Err(actual)` when the value was not `current`, or spuriously.
    #[inline]
    pub fn compare_exchange_weak(
        &self,
        current: T,
        new: T,
        success: Ordering,
        failure: Ordering,
    ) -> core::result::Result<T, T> {
        let result = if T::WIDE {
            self.wide()
                .compare_exchange_weak(current.to_bits(), new.to_bits(), success, failure)
        } else {
            self.narrow()
                .compare_exchange_weak(
                    current.to_bits() as u32,
                    new.to_bits() as u32,
                    success,
                    failure,
                )
                .map(u64::from)
                .map_err(u64::from)
        };
        result.map(T::from_bits).map_err(T::from_bits)
    }

    /// Replaces the value by `f(value)` until that sticks (a CAS loop), as
    /// [`AtomicU64::fetch_update`]; `f` returning `None` stops.
    ///
    /// # Errors
    /// `Err(value)` with the value `f` refused.
    pub fn fetch_update(
        &self,
        set_order: Ordering,
        fetch_order: Ordering,
        mut f: impl FnMut(T) -> Option<T>,
    ) -> core::result::Result<T, T> {
        let mut current = self.load(fetch_order);
        while let Some(new) = f(current) {
            match self.compare_exchange_weak(current, new, set_order, fetch_order) {
                Ok(previous) => return Ok(previous),
                Err(seen) => current = seen,
            }
        }
        Err(current)
    }

    /// Stores the larger of the value and `value`; returns the previous value.
    #[inline]
    pub fn fetch_max(&self, value: T, order: Ordering) -> T {
        self.fetch_update(order, load_order(order), |v| (value > v).then_some(value))
            .unwrap_or_else(|v| v)
    }

    /// Stores the smaller of the value and `value`; returns the previous value.
    #[inline]
    pub fn fetch_min(&self, value: T, order: Ordering) -> T {
        self.fetch_update(order, load_order(order), |v| (value < v).then_some(value))
            .unwrap_or_else(|v| v)
    }

    /// Where the word lives in its arena.
    pub fn offset(&self) -> Offset<T> {
        Offset::from_raw(self.block.offset)
    }

    /// The arena the value lives in.
    pub fn arena(&self) -> &Arena {
        &self.block.arena
    }
}

/// The strongest ordering a failed compare-exchange may use for `order`.
fn load_order(order: Ordering) -> Ordering {
    match order {
        Ordering::Release | Ordering::Relaxed => Ordering::Relaxed,
        Ordering::AcqRel | Ordering::Acquire => Ordering::Acquire,
        _ => Ordering::SeqCst,
    }
}

impl<T: AtomicInteger> core::fmt::Debug for AtomicValue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("AtomicValue")
            .field(&self.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: AtomicInteger> Publish for AtomicValue<T> {
    fn shared_offset(&self) -> u64 {
        self.block.offset
    }
    fn shared_size() -> u64 {
        Self::word_size() as u64
    }
    fn shared_align() -> u64 {
        Self::word_size() as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        Self::from_block(Block::attached(arena, offset), offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_and_sign() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = AtomicValue::new_in(&arena, i32::MAX).unwrap();
        assert_eq!(a.fetch_add(1, Ordering::Relaxed), i32::MAX);
        assert_eq!(a.get(), i32::MIN, "wraps like std");
        assert_eq!(a.fetch_min(-7, Ordering::Relaxed), i32::MIN);
        assert_eq!(a.get(), i32::MIN);
        assert_eq!(a.fetch_max(-7, Ordering::Relaxed), i32::MIN);
        assert_eq!(a.get(), -7);
        assert_eq!(
            a.compare_exchange(-8, 1, Ordering::SeqCst, Ordering::SeqCst),
            Err(-7)
        );
        assert_eq!(a.swap(3, Ordering::SeqCst), -7);
        assert_eq!(a.fetch_or(4, Ordering::SeqCst), 3);
        assert_eq!(a.fetch_and(6, Ordering::SeqCst), 7);
        assert_eq!(a.fetch_xor(6, Ordering::SeqCst), 6);
        assert_eq!(a.get(), 0);

        let b = AtomicValue::new_in(&arena, 0i64).unwrap();
        assert_eq!(b.fetch_sub(5, Ordering::Relaxed), 0);
        assert_eq!(b.get(), -5);
        assert_eq!(b.fetch_max(-10, Ordering::Relaxed), -5);
        assert_eq!(b.get(), -5);
        let c = AtomicValue::new_in(&arena, u32::MAX).unwrap();
        assert_eq!(c.fetch_add(2, Ordering::Relaxed), u32::MAX);
        assert_eq!(c.get(), 1);
        let d = AtomicValue::new_in(&arena, usize::MAX).unwrap();
        d.set(d.get() - 1);
        assert_eq!(d.load(Ordering::Acquire), usize::MAX - 1);
        let e = AtomicValue::new_in(&arena, -1isize).unwrap();
        assert_eq!(e.fetch_add(1, Ordering::Relaxed), -1);
        assert_eq!(
            e.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v + 10)),
            Ok(0)
        );
        assert_eq!(e.get(), 10);
        drop((a, b, c, d, e));
        assert_eq!(arena.used(), 0);
    }

    #[test]
    fn publish_and_lookup() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = AtomicValue::new_in(&arena, 41u64).unwrap();
        arena.publish("hits", &a).unwrap();
        let b: AtomicValue<u64> = arena.lookup("hits").unwrap();
        b.fetch_add(1, Ordering::Relaxed);
        assert_eq!(a.get(), 42);
        assert!(arena.lookup::<AtomicValue<u32>>("hits").is_err());
        assert!(arena.lookup::<AtomicValue<i64>>("hits").is_err());
        drop(b);
        assert!(arena.used() > 0, "an attached handle never frees");
        drop(a);
        assert_eq!(arena.used(), 0);
    }
}
