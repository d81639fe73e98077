//! `Shared<T>`: the part every sync handle has in common.
//!
//! An arena, the offset of a core struct in it, and the address resolved
//! (bounds- and alignment-checked) once. The block is freed when the last
//! handle in the process that allocated it is dropped; handles in forked
//! children or attached by name never free it.

use crate::arena::{Arena, Offset, ShmState};
use crate::error::Result;
use core::ptr::NonNull;

pub(crate) struct Shared<T: ShmState> {
    arena: Arena,
    offset: u64,
    ptr: NonNull<T>,
    /// Pid of the allocating process, or 0 for an attached handle.
    creator: i32,
}

// SAFETY: `ptr` points into `arena`'s mapping, which `arena` keeps alive;
// `T: ShmState` holds only atomics, which any thread may use through `&T`.
unsafe impl<T: ShmState + Sync> Send for Shared<T> {}
// SAFETY: as for Send: shared access goes through `&T` to atomics only.
unsafe impl<T: ShmState + Sync> Sync for Shared<T> {}

impl<T: ShmState> Shared<T> {
    /// Allocates a `T` in `arena` and initialises it with `init` (the block
    /// may hold an earlier object's bytes: `init` must store every field).
    pub(crate) fn alloc(arena: &Arena, init: impl FnOnce(&T)) -> Result<Self> {
        let offset = arena
            .alloc(core::mem::size_of::<T>(), core::mem::align_of::<T>())?
            .raw();
        let shared = match Shared::resolve(arena, offset, crate::sys::getpid()) {
            Ok(shared) => shared,
            Err(e) => {
                let _ = arena.free(Offset::<u8>::from_raw(offset));
                return Err(e);
            }
        };
        init(shared.get());
        Ok(shared)
    }

    /// A handle on a `T` someone else allocated at `offset` (checked).
    pub(crate) fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        Shared::resolve(arena, offset, 0)
    }

    fn resolve(arena: &Arena, offset: u64, creator: i32) -> Result<Self> {
        let ptr = NonNull::from(arena.resolve::<T>(offset)?);
        Ok(Shared {
            arena: arena.clone(),
            offset,
            ptr,
            creator,
        })
    }

    /// The core struct in shared memory.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `ptr` came from `Arena::resolve` (in bounds, aligned, a
        // valid T for any bytes) and the mapping lives as long as
        // `self.arena`, which `self` owns.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }
}

impl<T: ShmState> Drop for Shared<T> {
    fn drop(&mut self) {
        if self.creator != 0 && self.creator == crate::sys::getpid() {
            let _ = self.arena.free(Offset::<u8>::from_raw(self.offset));
        }
    }
}
