//! The shared-memory arena: a segment, its header, an allocator and a name registry.
//!
//! Layout of a segment (see docs/ARCHITECTURE.md for the full table):
//!
//! ```text
//! 0      4096                                                   size
//! | header | heap: blocks carved by the bump pointer, recycled   |
//! |        | through per-size-class lock-free free lists         |
//! ```

mod alloc;
mod header;
mod offset;
mod registry;
mod segment;

pub use offset::Offset;
pub use registry::Publish;
pub use segment::Segment;

pub(crate) use header::HEADER_SIZE;
use header::{Header, LAYOUT_VERSION, MAGIC, MAX_ARENA};

use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use core::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use zerocopy::{FromBytes, KnownLayout};

/// Types that may be viewed in place in shared memory through `&T`.
///
/// # Safety
/// An implementor is `#[repr(C)]`, valid for every bit pattern (its
/// `FromBytes` proves that), holds no pointers or references, and every field
/// that any process may write after the object is published is an atomic (or
/// inside an `UnsafeCell` that the type's own protocol guards), so that
/// handing out `&T` to memory other processes mutate is sound.
pub unsafe trait ShmState: FromBytes + KnownLayout + Sized {}

// SAFETY: a lone atomic is FromBytes and tolerates concurrent mutation.
unsafe impl ShmState for crate::loom::atomic::AtomicU32 {}
// SAFETY: as for AtomicU32.
unsafe impl ShmState for crate::loom::atomic::AtomicU64 {}

/// A shared-memory arena: where every shared object of shmproc lives.
///
/// Cloning an `Arena` is cheap (a reference count); all clones and every
/// object allocated in it keep the mapping alive.
///
/// # Examples
/// ```
/// use shmproc::Arena;
/// let arena = Arena::anonymous(1 << 20)?;
/// let counter = arena.alloc_value(41u64)?;
/// arena.write(counter, arena.read(counter)? + 1)?;
/// assert_eq!(arena.read(counter)?, 42);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Arena {
    inner: Arc<Inner>,
}

struct Inner {
    segment: Segment,
    base: NonNull<u8>,
    /// Usable length: the smaller of the mapping and the header's size.
    len: usize,
}

// SAFETY: `base` points into `segment`'s shared mapping, which lives as long
// as `Inner`; all access through it goes via atomics or raw pointers whose
// synchronisation is the caller's protocol, never via `&mut` aliasing.
unsafe impl Send for Inner {}
// SAFETY: as for Send: `Inner` has no interior state of its own.
unsafe impl Sync for Inner {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("name", &self.name())
            .field("size", &self.size())
            .field("used", &self.used())
            .finish()
    }
}

fn round_size(bytes: usize) -> Result<usize> {
    let page = 4096usize;
    let min = HEADER_SIZE + page;
    let rounded = bytes
        .max(min)
        .checked_next_multiple_of(page)
        .filter(|&b| b as u64 <= MAX_ARENA)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "arena size {bytes} is larger than the {MAX_ARENA} bytes an arena can address"
            ))
        })?;
    Ok(rounded)
}

impl Arena {
    /// Creates an anonymous (memfd) arena of at least `bytes` bytes.
    ///
    /// Forked children share it; unrelated processes cannot reach it (use
    /// [`Arena::create`] for that). Pages are backed only when touched.
    pub fn anonymous(bytes: usize) -> Result<Arena> {
        let size = round_size(bytes)?;
        Arena::init(Segment::anonymous(size)?)
    }

    /// Creates the named arena `name` (`/dev/shm/NAME`, mode 0600) of at least `bytes` bytes.
    ///
    /// Unrelated processes attach with [`Arena::open`]. The name is unlinked
    /// when this handle (and its clones) are dropped in this process.
    ///
    /// # Errors
    /// [`Error::SegmentExists`] if the name is taken.
    pub fn create(name: &str, bytes: usize) -> Result<Arena> {
        let size = round_size(bytes)?;
        Arena::init(Segment::create(name, size)?)
    }

    /// Attaches to the named arena `name` made by [`Arena::create`] in any process.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`], [`Error::PermissionDenied`],
    /// [`Error::NotShmproc`], [`Error::Truncated`], [`Error::NewerLayout`] and
    /// [`Error::Corrupt`] (allocator state inconsistent), each explained.
    pub fn open(name: &str) -> Result<Arena> {
        let segment = Segment::open(name)?;
        Arena::attach(segment)
    }

    fn from_segment(segment: Segment) -> Arena {
        let base = NonNull::new(segment.as_ptr()).expect("mmap never returns null");
        let len = segment.len();
        Arena {
            inner: Arc::new(Inner { segment, base, len }),
        }
    }

    fn init(segment: Segment) -> Result<Arena> {
        let arena = Arena::from_segment(segment);
        let size = arena.inner.len as u64;
        let header = arena.header();
        header.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        header
            .header_size
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        header.size.store(size, Ordering::Relaxed);
        header
            .creator_pid
            .store(crate::sys::getpid() as u32, Ordering::Relaxed);
        alloc::init(&header.alloc, HEADER_SIZE as u64, size);
        // SYNC POINT: pairs with the Acquire load of `magic` in `attach`:
        // an opener that sees the magic sees the whole header.
        header.magic.store(MAGIC, Ordering::Release);
        Ok(arena)
    }

    /// Checks every header field of a segment someone else made.
    pub(crate) fn attach(segment: Segment) -> Result<Arena> {
        let name = segment.name().unwrap_or("<anonymous>").to_owned();
        let actual = segment.len() as u64;
        if (actual as usize) < HEADER_SIZE {
            return Err(Error::Truncated {
                name,
                expected: HEADER_SIZE as u64,
                actual,
            });
        }
        let mut arena = Arena::from_segment(segment);
        let header = arena.header();
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::NotShmproc { name });
        }
        let version = header.version.load(Ordering::Relaxed);
        if version > LAYOUT_VERSION {
            return Err(Error::NewerLayout {
                name,
                found: version,
                supported: LAYOUT_VERSION,
            });
        }
        if version == 0 || header.header_size.load(Ordering::Relaxed) != HEADER_SIZE as u32 {
            return Err(Error::Corrupt {
                what: format!("header of {name} has version {version} or a wrong header size"),
            });
        }
        let size = header.size.load(Ordering::Relaxed);
        if size > actual {
            return Err(Error::Truncated {
                name,
                expected: size,
                actual,
            });
        }
        if size < (HEADER_SIZE as u64) * 2 {
            return Err(Error::Corrupt {
                what: format!("header of {name} claims a size of {size} bytes"),
            });
        }
        alloc::check(&header.alloc, HEADER_SIZE as u64, size)?;
        Arc::get_mut(&mut arena.inner)
            .expect("fresh arena has one handle")
            .len = size as usize;
        Ok(arena)
    }

    /// The header (page 0), checked to fit when the arena was made or opened.
    fn header(&self) -> &Header {
        self.resolve::<Header>(0)
            .expect("every arena is at least HEADER_SIZE bytes")
    }

    /// The process-wide default arena that `Queue::new`-style constructors use.
    ///
    /// An anonymous arena, created on first use, of `SHMPROC_ARENA_SIZE` bytes
    /// (a number with an optional `K`, `M` or `G` suffix) or 4 GiB by default;
    /// it costs only the pages that are touched. Children forked after it was
    /// created share it; create shared objects *before* forking the processes
    /// that use them.
    pub fn default_arena() -> Result<&'static Arena> {
        static DEFAULT: OnceLock<Arena> = OnceLock::new();
        if let Some(arena) = DEFAULT.get() {
            return Ok(arena);
        }
        let size = match std::env::var("SHMPROC_ARENA_SIZE") {
            Ok(text) => parse_size(&text).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "SHMPROC_ARENA_SIZE={text:?} is not a size (use e.g. 268435456, 256M or 4G)"
                ))
            })?,
            Err(_) => 4 << 30,
        };
        let arena = Arena::anonymous(size)?;
        Ok(DEFAULT.get_or_init(|| arena))
    }

    /// Bytes in the arena (header included).
    pub fn size(&self) -> usize {
        self.inner.len
    }

    /// The `/name` of a named arena, `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        self.inner.segment.name()
    }

    /// Pid of the process that created the arena.
    pub fn creator_pid(&self) -> i32 {
        self.header().creator_pid.load(Ordering::Relaxed) as i32
    }

    /// True if `self` and `other` are handles to the same mapping.
    pub fn same_as(&self, other: &Arena) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Checks that `len` bytes at `offset` lie inside the arena and that
    /// `offset` is a multiple of `align`; returns the address.
    pub(crate) fn check_range(&self, offset: u64, len: u64, align: u64) -> Result<NonNull<u8>> {
        let arena_len = self.inner.len as u64;
        let fits = offset.checked_add(len).is_some_and(|end| end <= arena_len);
        if !fits || align == 0 || offset % align != 0 {
            return Err(Error::OutOfBounds {
                offset,
                len,
                align,
                arena_len,
            });
        }
        // SAFETY: offset + len <= the mapping's length (checked above), so the
        // result stays inside (or one past) the mapping that `base` starts.
        Ok(unsafe { self.inner.base.add(offset as usize) })
    }

    /// The audited cast from shared bytes to a shared-state struct.
    ///
    /// Checks bounds and alignment; the returned reference lives as long as
    /// this handle.
    pub(crate) fn resolve<T: ShmState>(&self, offset: u64) -> Result<&T> {
        let ptr = self.check_range(
            offset,
            core::mem::size_of::<T>() as u64,
            core::mem::align_of::<T>() as u64,
        )?;
        // SAFETY: the range is inside the live mapping and aligned for T
        // (checked by `check_range`); `T: ShmState` is valid for any bytes and
        // tolerates concurrent mutation by other processes (atomics only).
        Ok(unsafe { ptr.cast::<T>().as_ref() })
    }

    /// Checks and returns the address of a `T` (any type) at `offset`.
    ///
    /// The caller decides how to access it (it may be mutated by others).
    pub(crate) fn resolve_ptr<T>(&self, offset: Offset<T>) -> Result<NonNull<T>> {
        let ptr = self.check_range(
            offset.raw(),
            core::mem::size_of::<T>() as u64,
            core::mem::align_of::<T>() as u64,
        )?;
        Ok(ptr.cast())
    }

    /// Checks and returns the address of `len` consecutive `T`s at `offset`.
    #[allow(dead_code)]
    pub(crate) fn resolve_slice_ptr<T>(&self, offset: Offset<T>, len: usize) -> Result<NonNull<T>> {
        let bytes = (core::mem::size_of::<T>() as u64)
            .checked_mul(len as u64)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("a slice of {len} elements overflows"))
            })?;
        let ptr = self.check_range(offset.raw(), bytes, core::mem::align_of::<T>() as u64)?;
        Ok(ptr.cast())
    }

    /// The atomic `u32` at `offset` (for example a futex word shared by hand).
    pub fn atomic_u32(&self, offset: Offset<u32>) -> Result<&crate::loom::atomic::AtomicU32> {
        self.resolve(offset.raw())
    }

    /// The atomic `u64` at `offset`.
    pub fn atomic_u64(&self, offset: Offset<u64>) -> Result<&crate::loom::atomic::AtomicU64> {
        self.resolve(offset.raw())
    }

    /// Allocates a block holding `value` and returns its offset.
    pub fn alloc_value<T: bytemuck::Pod>(&self, value: T) -> Result<Offset<T>> {
        let at = self
            .alloc(core::mem::size_of::<T>(), core::mem::align_of::<T>())?
            .cast::<T>();
        self.write(at, value)?;
        Ok(at)
    }

    /// Copies the `T` at `offset` out of the arena.
    ///
    /// No lock is taken: if another process writes it at the same time the
    /// copy may be torn (as Python's `RawValue`); use `Value` for a locked one.
    pub fn read<T: bytemuck::Pod>(&self, offset: Offset<T>) -> Result<T> {
        let ptr = self.resolve_ptr(offset)?;
        // SAFETY: `ptr` is in bounds and aligned for T (resolve_ptr), and any
        // bytes are a valid T (Pod). Volatile: other processes may change it.
        Ok(unsafe { ptr.as_ptr().read_volatile() })
    }

    /// Stores `value` at `offset` (no lock; see [`Arena::read`]).
    pub fn write<T: bytemuck::Pod>(&self, offset: Offset<T>, value: T) -> Result<()> {
        let ptr = self.resolve_ptr(offset)?;
        // SAFETY: `ptr` is in bounds and aligned for T (resolve_ptr); the
        // arena is writable shared memory and T has no drop glue (Pod).
        unsafe { ptr.as_ptr().write_volatile(value) };
        Ok(())
    }
}

/// Parses `123`, `64K`, `256M`, `4G` (powers of 1024).
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'k' | 'K') => (&text[..i], 10),
        (i, 'm' | 'M') => (&text[..i], 20),
        (i, 'g' | 'G') => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: usize = digits.trim().parse().ok()?;
    n.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("256m"), Some(256 << 20));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("x1"), None);
    }

    #[test]
    fn resolve_checks_bounds_and_alignment() {
        let arena = Arena::anonymous(64 << 10).unwrap();
        let len = arena.size() as u64;
        assert!(arena.resolve_ptr(Offset::<u64>::from_raw(len - 8)).is_ok());
        assert!(matches!(
            arena.resolve_ptr(Offset::<u64>::from_raw(len - 4)),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            arena.resolve_ptr(Offset::<u64>::from_raw(HEADER_SIZE as u64 + 4)),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            arena.resolve_ptr(Offset::<u64>::from_raw(u64::MAX - 3)),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            arena.resolve_slice_ptr(Offset::<u64>::from_raw(HEADER_SIZE as u64), usize::MAX),
            Err(Error::InvalidArgument(_))
        ));
    }
}
