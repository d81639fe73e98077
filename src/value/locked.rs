//! `Value<T>` and `Array<T>`: shared memory with a lock of its own.

use super::{
    ARRAY_DATA_ALIGN, ArrayHeader, Block, BlockLayout, checked_index, checked_range, checked_span,
    default_arena,
};
use crate::arena::{Arena, Offset, Publish, ShmState};
use crate::error::{Error, Result};
use crate::sync::{Lock, LockResult, OwnerDied, OwnerDiedInfo, RawLock};
use bytemuck::Pod;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut, RangeBounds};
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;
use zerocopy::{FromBytes, KnownLayout};

/// The header of a [`Value`] or [`Array`]: its lock, then its shape.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | lock | a [`RawLock`] (24 bytes; all-zero = free) |
/// | 24 | shape.len | elements (1 for a `Value`); written once by the creator |
/// | 32 | shape.elem_size | `size_of::<T>()`, checked on attach |
/// | 36 | shape.elem_align | `align_of::<T>()`, checked on attach |
///
/// A `Value`'s `T` follows at the next multiple of `align_of::<T>()` (byte
/// 40 for an `f64`: lock and value share a cache line); an `Array`'s
/// elements start at the next multiple of `max(64, align_of::<T>())`.
#[repr(C)]
#[derive(FromBytes, KnownLayout)]
pub(crate) struct LockedHeader {
    lock: RawLock,
    shape: ArrayHeader,
}

const _: () = assert!(core::mem::size_of::<LockedHeader>() == 40);

// SAFETY: repr(C), FromBytes, made of a RawLock and an ArrayHeader, both
// ShmState (atomics only).
unsafe impl ShmState for LockedHeader {}

/// A locked block: header resolved once, elements after it.
struct Locked<T> {
    block: Arc<Block>,
    header: NonNull<LockedHeader>,
    data: NonNull<T>,
    len: usize,
}

impl<T> Clone for Locked<T> {
    fn clone(&self) -> Self {
        Locked {
            block: Arc::clone(&self.block),
            header: self.header,
            data: self.data,
            len: self.len,
        }
    }
}

impl<T: Pod> Locked<T> {
    /// Allocates the block for `len` elements with the data aligned to
    /// `data_align`, with a free lock; the elements are not initialised.
    fn alloc(arena: &Arena, len: usize, data_align: usize) -> Result<Self> {
        let layout = BlockLayout::of::<LockedHeader, T>(len, data_align)?;
        let block = Block::alloc(arena, layout)?;
        let header = arena.resolve::<LockedHeader>(block.offset)?;
        header.lock.init();
        header.shape.init::<T>(len);
        let header = NonNull::from(header);
        let data = arena.resolve_slice_ptr(Offset::<T>::from_raw(block.at(layout.data)?), len)?;
        Ok(Locked {
            block: Arc::new(block),
            header,
            data,
            len,
        })
    }

    /// Attaches to a block someone else made; the length read from shared
    /// memory is checked against the arena before anything else uses it.
    fn attach(arena: &Arena, offset: u64, data_align: usize) -> Result<Self> {
        let header = arena.resolve::<LockedHeader>(offset)?;
        let len = header.shape.checked_len::<T>(offset)?;
        let layout =
            BlockLayout::of::<LockedHeader, T>(len, data_align).map_err(|_| Error::Corrupt {
                what: format!("shared array at {offset:#x} claims {len} elements"),
            })?;
        let header = NonNull::from(header);
        let block = Block::attached(arena, offset);
        let data = arena.resolve_slice_ptr(Offset::<T>::from_raw(block.at(layout.data)?), len)?;
        Ok(Locked {
            block: Arc::new(block),
            header,
            data,
            len,
        })
    }

    #[inline]
    fn raw_lock(&self) -> &RawLock {
        // SAFETY: `header` came from `Arena::resolve` (in bounds, aligned,
        // valid for any bytes, atomics only) in the mapping `block` keeps alive.
        &unsafe { self.header.as_ref() }.lock
    }

    /// Takes the lock; `died` says whether a dead holder's lock was taken over.
    #[inline]
    fn acquire(&self) -> LockedGuard<'_, T> {
        let died = self.raw_lock().lock().err();
        LockedGuard::new(self, died)
    }

    #[inline]
    fn try_acquire(&self) -> Option<LockedGuard<'_, T>> {
        self.raw_lock()
            .try_lock()
            .then(|| LockedGuard::new(self, None))
    }

    fn acquire_timeout(&self, timeout: Duration) -> Option<LockedGuard<'_, T>> {
        let result = self.raw_lock().lock_timeout(timeout)?;
        Some(LockedGuard::new(self, result.err()))
    }

    /// The embedded lock as a [`Lock`] handle.
    fn get_lock(&self) -> Result<Lock> {
        Lock::attach_at(&self.block.arena, self.block.offset)
    }
}

/// The lock of a [`Locked`] block, held; released on drop.
struct LockedGuard<'a, T> {
    lock: &'a RawLock,
    data: NonNull<T>,
    len: usize,
    died: Option<OwnerDiedInfo>,
    /// Not Send (the lock belongs to this thread); borrows the elements mutably.
    _marker: PhantomData<(&'a mut T, *const ())>,
}

impl<'a, T: Pod> LockedGuard<'a, T> {
    fn new(locked: &'a Locked<T>, died: Option<OwnerDiedInfo>) -> Self {
        LockedGuard {
            lock: locked.raw_lock(),
            data: locked.data,
            len: locked.len,
            died,
            _marker: PhantomData,
        }
    }

    #[inline]
    fn slice(&self) -> &[T] {
        // SAFETY: `data` holds `len` initialised elements inside the mapping
        // the handle (borrowed for 'a) keeps alive, and we hold the lock that
        // every accessor of them takes, so no one writes them meanwhile.
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    #[inline]
    fn slice_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `slice`; the lock makes this the only access, and
        // `&mut self` makes this borrow unique within the guard.
        unsafe { core::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }

    /// Splits into the `LockResult` shape of sync's `acquire`.
    fn into_result<G>(self, wrap: impl FnOnce(Self) -> G) -> LockResult<G> {
        match self.died {
            None => Ok(wrap(self)),
            Some(died) => Err(OwnerDied::new(wrap(self), died.pid)),
        }
    }
}

impl<T> Drop for LockedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock_held();
    }
}

/// A `T` in shared memory with a lock of its own: Python's
/// `multiprocessing.Value`.
///
/// [`get`](Value::get) and [`set`](Value::set) take the lock around one
/// copy of the whole `T`, so a reader never sees half of a writer's `T`.
/// For a read-modify-write, hold the lock: [`lock`](Value::lock) returns a
/// guard that derefs to `&mut T` (Python's `with v.get_lock(): v.value += 1`).
///
/// `T` is plain old data ([`bytemuck::Pod`]): numbers, arrays, `#[repr(C)]`
/// structs deriving `Pod` and `Zeroable`. Anything else does not compile:
///
/// ```compile_fail
/// let name = shmproc::Value::new(String::from("no pointers in shared memory"));
/// ```
///
/// Handles are cheap to clone and work in forked children; an unrelated
/// process finds the value with `arena.lookup::<Value<T>>(name)` after
/// `arena.publish(name, &value)`. The memory returns to the arena when the
/// last handle in the creating process drops.
///
/// If a process dies holding the lock, the next `lock` reports it
/// ([`OwnerDied`], holding the guard); `get` and `set` take such a lock over
/// silently (the `T` is still a valid `T`, perhaps half-updated). The lock
/// is not re-entrant: locking it again from the thread that holds it waits
/// forever, as `std::sync::Mutex` does.
///
/// # Examples
/// ```
/// use shmproc::Value;
/// let v = Value::new(3.0f64)?;
/// *v.lock()? += 0.14;
/// assert_eq!(v.get(), 3.14);
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Point { x: i32, y: i32 }
/// let p = Value::new(Point { x: 1, y: 2 })?;
/// {
///     let mut point = p.lock()?;
///     point.x += 10;
///     point.y += 20;
/// }
/// assert_eq!(p.get(), Point { x: 11, y: 22 });
/// # Ok::<(), shmproc::Error>(())
/// ```
///
/// Across processes (Python's `with v.get_lock(): v.value += 1`): create the
/// value before starting the processes; each gets a handle by `clone`.
/// ```
/// use shmproc::{Process, Value};
/// let counter = Value::new(0u64)?;
/// let mut children: Vec<Process> = (0..2)
///     .map(|_| {
///         let counter = counter.clone();
///         Process::new(move || {
///             for _ in 0..1000 {
///                 *counter.lock().unwrap() += 1;
///             }
///         })
///     })
///     .collect();
/// for child in &mut children {
///     child.start()?;
/// }
/// for child in &children {
///     assert_eq!(child.join()?, 0);
/// }
/// assert_eq!(counter.get(), 2000);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Value<T: Pod> {
    locked: Locked<T>,
}

// SAFETY: the handle reaches the shared `T` only under its lock (or copies
// it in and out by value); the block is reference counted by `Arc`.
unsafe impl<T: Pod> Send for Value<T> {}
// SAFETY: as for Send: `&Value` gives access to the `T` only via the lock.
unsafe impl<T: Pod> Sync for Value<T> {}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            locked: self.locked.clone(),
        }
    }
}

impl<T: Pod> Value<T> {
    /// Places `value` in the process-wide default arena.
    ///
    /// # Errors
    /// [`Error::ArenaFull`]; whatever creating the default arena gives.
    pub fn new(value: T) -> Result<Self> {
        Self::new_in(default_arena()?, value)
    }

    /// Places `value` in `arena`.
    ///
    /// # Errors
    /// [`Error::ArenaFull`]; [`Error::InvalidArgument`] if `T` is aligned to
    /// more than 4096 bytes.
    pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
        let locked = Locked::<T>::alloc(arena, 1, 1)?;
        // SAFETY: `data` holds one element of a block no one else knows yet.
        unsafe { locked.data.as_ptr().write(value) };
        Ok(Value { locked })
    }

    /// Copies the value out, under the lock (Python's `v.value`).
    #[inline]
    pub fn get(&self) -> T {
        self.locked.acquire().slice()[0]
    }

    /// Stores `value`, under the lock (Python's `v.value = x`).
    #[inline]
    pub fn set(&self, value: T) {
        self.locked.acquire().slice_mut()[0] = value;
    }

    /// Blocks until this thread holds the value's lock; the guard derefs to
    /// `&mut T` and releases the lock when dropped.
    ///
    /// # Errors
    /// [`OwnerDied`] holding the guard if the previous holder died holding
    /// the lock: the lock *is* held, but the `T` may be half-updated.
    /// `?` turns it into [`Error::OwnerDied`] (releasing the lock).
    #[inline]
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.locked.acquire().into_result(ValueGuard)
    }

    /// Takes the lock if it is free, without waiting; `None` if it is held.
    #[inline]
    pub fn try_lock(&self) -> Option<ValueGuard<'_, T>> {
        self.locked.try_acquire().map(ValueGuard)
    }

    /// Waits up to `timeout` for the lock; `None` if it timed out.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockResult<ValueGuard<'_, T>>> {
        Some(
            self.locked
                .acquire_timeout(timeout)?
                .into_result(ValueGuard),
        )
    }

    /// The value's lock as a [`Lock`] (Python's `get_lock()`), for example
    /// to guard several values with one lock.
    ///
    /// The handle refers to the lock inside this value's memory and does not
    /// keep it alive: use it while a handle to the value lives.
    ///
    /// # Errors
    /// Only if the arena was corrupted.
    pub fn get_lock(&self) -> Result<Lock> {
        self.locked.get_lock()
    }

    /// The arena the value lives in.
    pub fn arena(&self) -> &Arena {
        &self.locked.block.arena
    }

    /// Where the value (its header) lives in its arena.
    pub fn offset(&self) -> Offset<u8> {
        Offset::from_raw(self.locked.block.offset)
    }
}

impl<T: Pod> core::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Value")
            .field("type", &core::any::type_name::<T>())
            .field("offset", &self.offset())
            .finish()
    }
}

impl<T: Pod> Publish for Value<T> {
    fn shared_offset(&self) -> u64 {
        self.locked.block.offset
    }
    fn shared_size() -> u64 {
        core::mem::size_of::<LockedHeader>() as u64
    }
    fn shared_align() -> u64 {
        core::mem::align_of::<LockedHeader>().max(core::mem::align_of::<T>()) as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let locked = Locked::<T>::attach(arena, offset, 1)?;
        if locked.len != 1 {
            return Err(Error::Corrupt {
                what: format!(
                    "Value at {offset:#x} claims {} elements instead of 1",
                    locked.len
                ),
            });
        }
        Ok(Value { locked })
    }
}

/// The lock of a [`Value`], held: derefs to the `T`; releases on drop.
///
/// Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod>(LockedGuard<'a, T>);

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0.slice()[0]
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0.slice_mut()[0]
    }
}

impl<T: Pod + core::fmt::Debug> core::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

/// A fixed-length array of `T` in shared memory with a lock of its own:
/// Python's `multiprocessing.Array`.
///
/// Every call takes the lock: [`get`](Array::get), [`set`](Array::set),
/// [`to_vec`](Array::to_vec), and the bulk copies
/// [`read_into`](Array::read_into) / [`write_slice`](Array::write_slice)
/// (one `memcpy` each). Indexes are checked: out of range is an
/// [`Error::InvalidArgument`], never a panic. [`lock`](Array::lock) gives a
/// guard that derefs to `&mut [T]`, a plain slice: indexing *it* out of
/// range panics, as any slice does (use `guard.get(i)` for an `Option`).
///
/// `T` is plain old data ([`bytemuck::Pod`]); anything else does not compile:
///
/// ```compile_fail
/// let names = shmproc::Array::from_slice(&[String::new()]);
/// ```
///
/// The length is stored in shared memory, so an unrelated process can
/// `arena.lookup::<Array<T>>(name)` the array; it is checked against the
/// arena when a handle attaches and cached in the handle.
///
/// Owner death and re-entrance are as for [`Value`].
///
/// # Examples
/// ```
/// use shmproc::Array;
/// let a = Array::from_iter(0..10i32)?;
/// a.set(0, 5)?;
/// assert_eq!(a.get(0)?, 5);
/// assert!(a.get(10).is_err());
/// {
///     let mut items = a.lock()?;
///     items[1..4].copy_from_slice(&[7, 7, 7]);
///     items.sort();
/// }
/// assert_eq!(a.to_vec(), [4, 5, 5, 6, 7, 7, 7, 7, 8, 9]);
/// assert_eq!(a.get_range(..3)?, [4, 5, 5]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Array<T: Pod> {
    locked: Locked<T>,
}

// SAFETY: as for Value: elements are reached only under the lock.
unsafe impl<T: Pod> Send for Array<T> {}
// SAFETY: as for Send.
unsafe impl<T: Pod> Sync for Array<T> {}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            locked: self.locked.clone(),
        }
    }
}

impl<T: Pod> Array<T> {
    /// An array holding a copy of `values`, in the default arena.
    ///
    /// # Errors
    /// [`Error::ArenaFull`]; whatever creating the default arena gives.
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::from_slice_in(default_arena()?, values)
    }

    /// An array holding a copy of `values`, in `arena`.
    ///
    /// # Errors
    /// [`Error::ArenaFull`]; [`Error::InvalidArgument`] if `T` is aligned to
    /// more than 4096 bytes.
    pub fn from_slice_in(arena: &Arena, values: &[T]) -> Result<Self> {
        let locked = Locked::<T>::alloc(arena, values.len(), ARRAY_DATA_ALIGN)?;
        // SAFETY: `data` holds `values.len()` elements of a block no one else
        // knows yet; shared memory never overlaps the private `values`.
        unsafe {
            core::ptr::copy_nonoverlapping(values.as_ptr(), locked.data.as_ptr(), values.len())
        };
        Ok(Array { locked })
    }

    /// An array of the items of `iter`, in the default arena.
    ///
    /// # Errors
    /// As [`Array::from_slice`].
    #[allow(clippy::should_implement_trait)] // fallible, so not FromIterator
    pub fn from_iter(iter: impl IntoIterator<Item = T>) -> Result<Self> {
        Self::from_iter_in(default_arena()?, iter)
    }

    /// An array of the items of `iter`, in `arena`.
    ///
    /// # Errors
    /// As [`Array::from_slice_in`].
    pub fn from_iter_in(arena: &Arena, iter: impl IntoIterator<Item = T>) -> Result<Self> {
        let values: Vec<T> = iter.into_iter().collect();
        Self::from_slice_in(arena, &values)
    }

    /// An array of `len` zeroed elements, in the default arena.
    ///
    /// # Errors
    /// As [`Array::from_slice`].
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::zeroed_in(default_arena()?, len)
    }

    /// An array of `len` zeroed elements, in `arena`.
    ///
    /// # Errors
    /// As [`Array::from_slice_in`].
    pub fn zeroed_in(arena: &Arena, len: usize) -> Result<Self> {
        let locked = Locked::<T>::alloc(arena, len, ARRAY_DATA_ALIGN)?;
        // SAFETY: `data` holds `len` elements of a block no one else knows
        // yet; all-zero bytes are a valid `T` (Pod implies Zeroable).
        unsafe { locked.data.as_ptr().write_bytes(0, len) };
        Ok(Array { locked })
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.locked.len
    }

    /// True if the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.locked.len == 0
    }

    /// Copies element `index` out, under the lock (Python's `a[i]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `index >= len()`.
    #[inline]
    pub fn get(&self, index: usize) -> Result<T> {
        let index = checked_index(index, self.len())?;
        Ok(self.locked.acquire().slice()[index])
    }

    /// Stores `value` at `index`, under the lock (Python's `a[i] = x`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `index >= len()`.
    #[inline]
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let index = checked_index(index, self.len())?;
        self.locked.acquire().slice_mut()[index] = value;
        Ok(())
    }

    /// Copies every element out, under the lock (Python's `a[:]`).
    pub fn to_vec(&self) -> Vec<T> {
        self.locked.acquire().slice().to_vec()
    }

    /// Copies the elements in `range` out, under the lock (Python's `a[i:j]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the range is not inside `0..len()`.
    pub fn get_range(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let range = checked_range(range, self.len())?;
        Ok(self.locked.acquire().slice()[range].to_vec())
    }

    /// Copies `out.len()` elements starting at `start` into `out`, under the
    /// lock: one `memcpy`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if they do not all lie inside the array.
    pub fn read_into(&self, start: usize, out: &mut [T]) -> Result<()> {
        let span = checked_span(start, out.len(), self.len())?;
        out.copy_from_slice(&self.locked.acquire().slice()[span]);
        Ok(())
    }

    /// Copies `values` into the array from `start` on, under the lock: one
    /// `memcpy` (Python's `a[i:j] = values`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if they do not all fit inside the array.
    pub fn write_slice(&self, start: usize, values: &[T]) -> Result<()> {
        let span = checked_span(start, values.len(), self.len())?;
        self.locked.acquire().slice_mut()[span].copy_from_slice(values);
        Ok(())
    }

    /// Blocks until this thread holds the array's lock; the guard derefs to
    /// `&mut [T]` and releases the lock when dropped.
    ///
    /// # Errors
    /// [`OwnerDied`] holding the guard if the previous holder died holding
    /// the lock (the elements may be half-updated); `?` turns it into
    /// [`Error::OwnerDied`].
    #[inline]
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.locked.acquire().into_result(ArrayGuard)
    }

    /// Takes the lock if it is free, without waiting; `None` if it is held.
    pub fn try_lock(&self) -> Option<ArrayGuard<'_, T>> {
        self.locked.try_acquire().map(ArrayGuard)
    }

    /// Waits up to `timeout` for the lock; `None` if it timed out.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockResult<ArrayGuard<'_, T>>> {
        Some(
            self.locked
                .acquire_timeout(timeout)?
                .into_result(ArrayGuard),
        )
    }

    /// The array's lock as a [`Lock`] (Python's `get_lock()`).
    ///
    /// The handle refers to the lock inside this array's memory and does not
    /// keep it alive: use it while a handle to the array lives.
    ///
    /// # Errors
    /// Only if the arena was corrupted.
    pub fn get_lock(&self) -> Result<Lock> {
        self.locked.get_lock()
    }

    /// The arena the array lives in.
    pub fn arena(&self) -> &Arena {
        &self.locked.block.arena
    }

    /// Where the array (its header) lives in its arena.
    pub fn offset(&self) -> Offset<u8> {
        Offset::from_raw(self.locked.block.offset)
    }
}

impl<T: Pod> core::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Array")
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len())
            .field("offset", &self.offset())
            .finish()
    }
}

impl<T: Pod> Publish for Array<T> {
    fn shared_offset(&self) -> u64 {
        self.locked.block.offset
    }
    fn shared_size() -> u64 {
        core::mem::size_of::<LockedHeader>() as u64
    }
    fn shared_align() -> u64 {
        core::mem::align_of::<T>().max(ARRAY_DATA_ALIGN) as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        Ok(Array {
            locked: Locked::attach(arena, offset, ARRAY_DATA_ALIGN)?,
        })
    }
}

/// The lock of an [`Array`], held: derefs to `[T]`; releases on drop.
///
/// Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod>(LockedGuard<'a, T>);

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        self.0.slice()
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.0.slice_mut()
    }
}

impl<T: Pod + core::fmt::Debug> core::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_get_set_lock_and_reclaim() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let v = Value::new_in(&arena, 1u64).unwrap();
        v.set(5);
        *v.lock().unwrap() += 1;
        assert_eq!(v.get(), 6);
        {
            let _held = v.lock().unwrap();
            assert!(v.try_lock().is_none());
            assert!(v.lock_timeout(Duration::from_millis(5)).is_none());
        }
        assert!(v.try_lock().is_some());
        let lock = v.get_lock().unwrap();
        {
            let _held = lock.acquire().unwrap();
            assert!(v.try_lock().is_none(), "get_lock is the value's own lock");
        }
        drop(lock);
        let w = v.clone();
        drop(v);
        assert_eq!(w.get(), 6);
        assert!(arena.used() > 0);
        drop(w);
        assert_eq!(arena.used(), 0);
    }

    #[test]
    fn value_publish_lookup_checks_shape() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let v = Value::new_in(&arena, 2.5f64).unwrap();
        arena.publish("v", &v).unwrap();
        let found: Value<f64> = arena.lookup("v").unwrap();
        found.set(3.5);
        assert_eq!(v.get(), 3.5);
        assert!(arena.lookup::<Value<u64>>("v").is_err());
        assert!(arena.lookup::<Array<f64>>("v").is_err());
        drop(found);
        drop(v);
        assert_eq!(arena.used(), 0);
    }

    #[test]
    fn array_operations() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = Array::from_slice_in(&arena, &[1u8, 2, 3, 4]).unwrap();
        assert_eq!(a.len(), 4);
        assert!(a.get(4).is_err());
        assert!(a.set(4, 0).is_err());
        assert!(a.write_slice(3, &[1, 2]).is_err());
        let mut out = [0u8; 2];
        assert!(a.read_into(3, &mut out).is_err());
        a.read_into(2, &mut out).unwrap();
        assert_eq!(out, [3, 4]);
        a.write_slice(1, &[9, 9]).unwrap();
        assert_eq!(a.to_vec(), [1, 9, 9, 4]);
        assert_eq!(a.get_range(1..=2).unwrap(), [9, 9]);
        assert!(a.get_range(3..5).is_err());
        let z = Array::<f32>::zeroed_in(&arena, 3).unwrap();
        assert_eq!(z.to_vec(), [0.0; 3]);
        let e = Array::<u64>::from_iter_in(&arena, []).unwrap();
        assert!(e.is_empty());
        assert!(e.get(0).is_err());
        assert!(e.lock().unwrap().is_empty());
        arena.publish("a", &a).unwrap();
        let b: Array<u8> = arena.lookup("a").unwrap();
        assert_eq!(b.len(), 4);
        b.lock().unwrap()[0] = 100;
        assert_eq!(a.get(0).unwrap(), 100);
        assert!(arena.lookup::<Array<u16>>("a").is_err());
    }

    #[test]
    fn scribbled_length_is_an_error_not_an_overrun() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = Array::from_slice_in(&arena, &[1u32, 2, 3]).unwrap();
        arena.publish("a", &a).unwrap();
        let header = arena.resolve::<LockedHeader>(a.offset().raw()).unwrap();
        for bad in [1 << 20, u64::MAX / 4, u64::MAX] {
            header
                .shape
                .len
                .store(bad, crate::loom::atomic::Ordering::Relaxed);
            assert!(arena.lookup::<Array<u32>>("a").is_err(), "len {bad}");
        }
        header
            .shape
            .len
            .store(3, crate::loom::atomic::Ordering::Relaxed);
        header
            .shape
            .elem_size
            .store(8, crate::loom::atomic::Ordering::Relaxed);
        assert!(matches!(
            arena.lookup::<Array<u32>>("a"),
            Err(Error::Corrupt { .. })
        ));
        header
            .shape
            .elem_size
            .store(4, crate::loom::atomic::Ordering::Relaxed);
        assert_eq!(arena.lookup::<Array<u32>>("a").unwrap().to_vec(), [1, 2, 3]);
        // The creator's handle cached its length: a scribble cannot move it.
        header
            .shape
            .len
            .store(1 << 40, crate::loom::atomic::Ordering::Relaxed);
        assert_eq!(a.len(), 3);
        assert!(a.get(3).is_err());
    }
}
