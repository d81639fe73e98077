//! `Offset<T>`: the only kind of reference stored in shared memory.

use core::fmt;
use core::marker::PhantomData;

/// A position in an [`Arena`](crate::Arena), in bytes from its base, typed.
///
/// Shared memory holds no pointers (each process maps a segment at its own
/// address); it holds offsets. Resolving one always checks that `T` fits
/// inside the arena at that offset and that the offset is aligned for `T`, so
/// an offset read from a corrupt or hostile segment gives an error, never an
/// out-of-bounds access.
///
/// # Examples
///
/// ```
/// use shmproc::{Arena, Offset};
///
/// let arena = Arena::anonymous(1 << 20)?;
/// // A typed place in the arena: the same number means the same bytes in
/// // every process that maps it, wherever the mapping is.
/// let at: Offset<u32> = arena.alloc_value(7u32)?;
/// arena.write(at, 8)?;
/// assert_eq!(arena.read(at)?, 8);
///
/// // Offsets are plain numbers, so they can themselves live in shared memory.
/// let stored: Offset<u64> = arena.alloc_value(at.raw())?;
/// let back = Offset::<u32>::from_raw(arena.read(stored)?);
/// assert_eq!(back, at);
///
/// // A bogus offset is an error, never a wild read.
/// assert!(arena.read(Offset::<u32>::from_raw(u64::MAX - 2)).is_err());
/// arena.free(at)?;
/// # Ok::<(), shmproc::Error>(())
/// ```
#[repr(transparent)]
pub struct Offset<T: ?Sized> {
    raw: u64,
    _type: PhantomData<fn() -> *const T>,
}

impl<T: ?Sized> Offset<T> {
    /// An offset from its raw byte value (unchecked: checks happen on resolution).
    pub const fn from_raw(raw: u64) -> Self {
        Offset {
            raw,
            _type: PhantomData,
        }
    }

    /// The byte offset from the arena's base.
    pub const fn raw(self) -> u64 {
        self.raw
    }

    /// The same position, viewed as another type.
    pub const fn cast<U>(self) -> Offset<U> {
        Offset::from_raw(self.raw)
    }
}

impl<T: ?Sized> Clone for Offset<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Offset<T> {}
impl<T: ?Sized> PartialEq for Offset<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T: ?Sized> Eq for Offset<T> {}
impl<T: ?Sized> core::hash::Hash for Offset<T> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}
impl<T: ?Sized> fmt::Debug for Offset<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Offset({:#x})", self.raw)
    }
}
