//! `RawValue<T>` and `RawArray<T>`: shared memory without a lock.

use super::{
    ARRAY_DATA_ALIGN, ArrayHeader, Block, BlockLayout, checked_index, checked_range, checked_span,
    default_arena,
};
use crate::arena::{Arena, Offset, Publish};
use crate::error::{Error, Result};
use bytemuck::Pod;
use core::marker::PhantomData;
use core::ops::RangeBounds;
use core::ptr::NonNull;
use std::sync::Arc;

/// A `T` in shared memory with no lock: Python's `multiprocessing.RawValue`.
///
/// [`get`](RawValue::get) and [`set`](RawValue::set) copy the whole `T` in
/// or out; nothing orders them against another process's calls, so a `T`
/// larger than a machine word may be read half-old, half-new while another
/// process writes it (it is still a valid `T`: every bit pattern is). Use
/// [`Value`](crate::Value) for a value with a lock, or
/// [`AtomicValue`](crate::AtomicValue) for a lock-free counter.
///
/// # Examples
/// ```
/// use shmproc::RawValue;
/// let x = RawValue::new(2.5f64)?;
/// x.set(x.get() * 2.0);
/// assert_eq!(x.get(), 5.0);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct RawValue<T: Pod> {
    block: Arc<Block>,
    ptr: NonNull<T>,
}

// SAFETY: the handle only copies `T`s in and out of shared memory by value
// (as another process would); the block is reference counted by `Arc`.
unsafe impl<T: Pod> Send for RawValue<T> {}
// SAFETY: as for Send: `&RawValue` gives no reference into the shared `T`.
unsafe impl<T: Pod> Sync for RawValue<T> {}

impl<T: Pod> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            block: Arc::clone(&self.block),
            ptr: self.ptr,
        }
    }
}

impl<T: Pod> RawValue<T> {
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
        let layout = BlockLayout::of::<(), T>(1, 1)?;
        let block = Block::alloc(arena, layout)?;
        let ptr = arena.resolve_ptr(Offset::<T>::from_raw(block.offset))?;
        let raw = RawValue {
            block: Arc::new(block),
            ptr,
        };
        raw.set(value);
        Ok(raw)
    }

    /// Copies the value out.
    pub fn get(&self) -> T {
        // SAFETY: `ptr` was checked in bounds and aligned for `T` against the
        // arena this handle keeps mapped; any bytes are a valid `T` (Pod).
        // Volatile: other processes write this memory behind our back.
        unsafe { self.ptr.as_ptr().read_volatile() }
    }

    /// Stores `value`.
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; the arena is writable shared memory and `T`
        // has no drop glue.
        unsafe { self.ptr.as_ptr().write_volatile(value) }
    }

    /// The address of the value in this process's mapping.
    ///
    /// Valid while any handle to this value lives in this process (and, in
    /// the process that created it, until the last handle drops).
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Where the value lives in its arena.
    pub fn offset(&self) -> Offset<T> {
        Offset::from_raw(self.block.offset)
    }

    /// The arena the value lives in.
    pub fn arena(&self) -> &Arena {
        &self.block.arena
    }
}

impl<T: Pod + core::fmt::Debug> core::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T: Pod> Publish for RawValue<T> {
    fn shared_offset(&self) -> u64 {
        self.block.offset
    }
    fn shared_size() -> u64 {
        core::mem::size_of::<T>() as u64
    }
    fn shared_align() -> u64 {
        core::mem::align_of::<T>() as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let ptr = arena.resolve_ptr(Offset::<T>::from_raw(offset))?;
        Ok(RawValue {
            block: Arc::new(Block::attached(arena, offset)),
            ptr,
        })
    }
}

/// A fixed-length array of `T` in shared memory with no lock: Python's
/// `multiprocessing.RawArray`.
///
/// Element and slice copies ([`get`](RawArray::get), [`set`](RawArray::set),
/// [`read_into`](RawArray::read_into), [`write_slice`](RawArray::write_slice),
/// ...) are bounds-checked and return an error for an index out of range;
/// nothing orders them against other processes' copies (the caller
/// synchronises, for example by giving each process its own part). Use
/// [`Array`](crate::Array) for an array with a lock.
///
/// # Examples
/// ```
/// use shmproc::RawArray;
/// let a = RawArray::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// assert!(a.get(3).is_err());
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct RawArray<T: Pod> {
    block: Arc<Block>,
    data: NonNull<T>,
    len: usize,
    _type: PhantomData<T>,
}

// SAFETY: as for RawValue: elements are copied in and out by value.
unsafe impl<T: Pod> Send for RawArray<T> {}
// SAFETY: as for Send.
unsafe impl<T: Pod> Sync for RawArray<T> {}

impl<T: Pod> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            block: Arc::clone(&self.block),
            data: self.data,
            len: self.len,
            _type: PhantomData,
        }
    }
}

/// Allocates an array block, writes its header, and returns it with the
/// address of its (uninitialised) elements.
fn alloc_array<T: Pod>(arena: &Arena, len: usize) -> Result<(Block, NonNull<T>)> {
    let layout = BlockLayout::of::<ArrayHeader, T>(len, ARRAY_DATA_ALIGN)?;
    let block = Block::alloc(arena, layout)?;
    arena.resolve::<ArrayHeader>(block.offset)?.init::<T>(len);
    let data = arena.resolve_slice_ptr(Offset::<T>::from_raw(block.at(layout.data)?), len)?;
    Ok((block, data))
}

/// Reads and checks the header of an array someone else made.
fn attach_array<T: Pod>(arena: &Arena, offset: u64) -> Result<(Block, NonNull<T>, usize)> {
    let len = arena
        .resolve::<ArrayHeader>(offset)?
        .checked_len::<T>(offset)?;
    let layout =
        BlockLayout::of::<ArrayHeader, T>(len, ARRAY_DATA_ALIGN).map_err(|_| Error::Corrupt {
            what: format!("array at {offset:#x} claims {len} elements"),
        })?;
    let block = Block::attached(arena, offset);
    let data = arena.resolve_slice_ptr(Offset::<T>::from_raw(block.at(layout.data)?), len)?;
    Ok((block, data, len))
}

/// Copies `src` into `len` fresh elements at `data`.
///
/// # Safety
/// `data` points to `src.len()` writable `T`s that nothing else references.
unsafe fn fill_from<T: Pod>(data: NonNull<T>, src: &[T]) {
    // SAFETY: the caller gives `src.len()` writable elements at `data`, in
    // shared memory, which never overlaps the private slice `src`.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), data.as_ptr(), src.len()) }
}

impl<T: Pod> RawArray<T> {
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
        let (block, data) = alloc_array::<T>(arena, values.len())?;
        // SAFETY: `data` holds `values.len()` elements of a block only we know of.
        unsafe { fill_from(data, values) };
        Ok(RawArray {
            block: Arc::new(block),
            data,
            len: values.len(),
            _type: PhantomData,
        })
    }

    /// An array of the items of `iter`, in the default arena.
    ///
    /// # Errors
    /// As [`RawArray::from_slice`].
    #[allow(clippy::should_implement_trait)] // fallible, so not FromIterator
    pub fn from_iter(iter: impl IntoIterator<Item = T>) -> Result<Self> {
        Self::from_iter_in(default_arena()?, iter)
    }

    /// An array of the items of `iter`, in `arena`.
    ///
    /// # Errors
    /// As [`RawArray::from_slice_in`].
    pub fn from_iter_in(arena: &Arena, iter: impl IntoIterator<Item = T>) -> Result<Self> {
        let values: Vec<T> = iter.into_iter().collect();
        Self::from_slice_in(arena, &values)
    }

    /// An array of `len` zeroed elements, in the default arena.
    ///
    /// # Errors
    /// As [`RawArray::from_slice`].
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::zeroed_in(default_arena()?, len)
    }

    /// An array of `len` zeroed elements, in `arena`.
    ///
    /// # Errors
    /// As [`RawArray::from_slice_in`].
    pub fn zeroed_in(arena: &Arena, len: usize) -> Result<Self> {
        let (block, data) = alloc_array::<T>(arena, len)?;
        // SAFETY: `data` holds `len` elements of a block only we know of, and
        // all-zero bytes are a valid `T` (Pod implies Zeroable).
        unsafe { data.as_ptr().write_bytes(0, len) };
        Ok(RawArray {
            block: Arc::new(block),
            data,
            len,
            _type: PhantomData,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies element `index` out.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `index >= len()`.
    pub fn get(&self, index: usize) -> Result<T> {
        let index = checked_index(index, self.len)?;
        // SAFETY: index < len, and `data` holds `len` elements checked to lie
        // in the arena this handle keeps mapped; any bytes are a valid `T`.
        // Volatile: other processes write this memory behind our back.
        Ok(unsafe { self.data.as_ptr().wrapping_add(index).read_volatile() })
    }

    /// Stores `value` at `index`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `index >= len()`.
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let index = checked_index(index, self.len)?;
        // SAFETY: as in `get`; `T` has no drop glue.
        unsafe { self.data.as_ptr().wrapping_add(index).write_volatile(value) };
        Ok(())
    }

    /// Copies every element out.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        // SAFETY: `data` holds `len` elements in the live mapping; `out` is a
        // private buffer of the same length.
        unsafe { core::ptr::copy_nonoverlapping(self.data.as_ptr(), out.as_mut_ptr(), self.len) };
        out
    }

    /// Copies the elements in `range` out (Python's `a[i:j]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the range is not inside `0..len()`.
    pub fn get_range(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let range = checked_range(range, self.len)?;
        let mut out = vec![T::zeroed(); range.len()];
        self.read_into(range.start, &mut out)?;
        Ok(out)
    }

    /// Copies `out.len()` elements starting at `start` into `out` (one memcpy).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if they do not all lie inside the array.
    pub fn read_into(&self, start: usize, out: &mut [T]) -> Result<()> {
        let span = checked_span(start, out.len(), self.len)?;
        // SAFETY: `span` lies inside the `len` elements at `data` (checked
        // above), in the live mapping; `out` is private memory.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.data.as_ptr().wrapping_add(span.start),
                out.as_mut_ptr(),
                span.len(),
            )
        };
        Ok(())
    }

    /// Copies `values` into the array starting at `start` (one memcpy).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if they do not all fit inside the array.
    pub fn write_slice(&self, start: usize, values: &[T]) -> Result<()> {
        let span = checked_span(start, values.len(), self.len)?;
        // SAFETY: as in `read_into`, copying the other way.
        unsafe {
            core::ptr::copy_nonoverlapping(
                values.as_ptr(),
                self.data.as_ptr().wrapping_add(span.start),
                span.len(),
            )
        };
        Ok(())
    }

    /// The address of the first element in this process's mapping.
    pub fn as_ptr(&self) -> *mut T {
        self.data.as_ptr()
    }

    /// Borrows the elements in place.
    ///
    /// # Safety
    /// While the slice lives, no process may write the array (this one
    /// through another handle included): Rust assumes a `&[T]` does not
    /// change under it.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `data` holds `len` initialised elements in the mapping this
        // handle keeps alive; the caller rules out concurrent writers.
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// Borrows the elements in place, mutably.
    ///
    /// # Safety
    /// While the slice lives, no other process or handle may read or write
    /// the array: Rust assumes a `&mut [T]` is the only access.
    #[allow(clippy::mut_from_ref)] // shared memory: exclusivity is the caller's promise
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: as in `as_slice`; the caller promises exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }

    /// Where the array (its header) lives in its arena.
    pub fn offset(&self) -> Offset<u8> {
        Offset::from_raw(self.block.offset)
    }

    /// The arena the array lives in.
    pub fn arena(&self) -> &Arena {
        &self.block.arena
    }
}

impl<T: Pod> core::fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawArray")
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len)
            .field("offset", &self.offset())
            .finish()
    }
}

impl<T: Pod> Publish for RawArray<T> {
    fn shared_offset(&self) -> u64 {
        self.block.offset
    }
    fn shared_size() -> u64 {
        core::mem::size_of::<ArrayHeader>() as u64
    }
    fn shared_align() -> u64 {
        core::mem::align_of::<T>().max(ARRAY_DATA_ALIGN) as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let (block, data, len) = attach_array::<T>(arena, offset)?;
        Ok(RawArray {
            block: Arc::new(block),
            data,
            len,
            _type: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_value_roundtrip_and_reclaim() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let v = RawValue::new_in(&arena, [1u16, 2, 3]).unwrap();
        let w = v.clone();
        w.set([4, 5, 6]);
        assert_eq!(v.get(), [4, 5, 6]);
        assert!(arena.used() > 0);
        drop(v);
        assert!(arena.used() > 0, "a clone still lives");
        drop(w);
        assert_eq!(arena.used(), 0);
    }

    #[test]
    fn raw_array_bounds() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let a = RawArray::from_iter_in(&arena, 0..10i32).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a.get(9).unwrap(), 9);
        assert!(matches!(a.get(10), Err(Error::InvalidArgument(_))));
        assert!(a.set(10, 0).is_err());
        assert_eq!(a.get_range(2..5).unwrap(), [2, 3, 4]);
        assert!(a.get_range(8..11).is_err());
        let mut buf = [0; 3];
        a.read_into(7, &mut buf).unwrap();
        assert_eq!(buf, [7, 8, 9]);
        assert!(a.read_into(8, &mut buf).is_err());
        assert!(a.write_slice(usize::MAX, &buf).is_err());
        a.write_slice(0, &[9, 9]).unwrap();
        assert_eq!(a.to_vec(), [9, 9, 2, 3, 4, 5, 6, 7, 8, 9]);
        let z = RawArray::<u64>::zeroed_in(&arena, 0).unwrap();
        assert!(z.is_empty());
        assert!(z.to_vec().is_empty());
    }
}
