//! The name registry: `publish`/`lookup`, so a second program finds shared objects by name.
//!
//! Each entry records the object's offset plus a type check: a tag hashed from
//! the handle type's name and the size and alignment of its shared state.
//! Writers (`publish`, `unpublish`) hold a small spin lock that records their
//! pid; a writer that finds the holder dead takes the lock over. Readers take
//! no lock: an entry's `state` works as a sequence lock (odd while it is
//! being written), read before and after the fields.

use super::header::{NAME_LEN, REGISTRY_SLOTS, RegistryEntry, RegistryState};
use super::{Arena, Offset};
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;

/// A handle type whose shared state can be published in an arena's registry.
///
/// Implemented by shmproc's shared types (`Queue<T>`, `Value<T>`, `Lock`,
/// [`Offset<T>`] of plain data, ...). `lookup::<H>` checks that the entry was
/// published as the same `H`, with the same size and alignment of shared
/// state, before calling [`Publish::attach`].
pub trait Publish: Sized {
    /// Offset of this object's shared state in its arena.
    fn shared_offset(&self) -> u64;
    /// Size in bytes of the shared state.
    fn shared_size() -> u64;
    /// Alignment of the shared state.
    fn shared_align() -> u64;
    /// Rebuilds a handle from a published offset (checked again here).
    ///
    /// # Errors
    /// Whatever resolving the offset in `arena` gives.
    fn attach(arena: &Arena, offset: u64) -> Result<Self>;
    /// The name used in type checks and errors.
    fn type_name() -> &'static str {
        core::any::type_name::<Self>()
    }
}

impl<T: bytemuck::Pod> Publish for Offset<T> {
    fn shared_offset(&self) -> u64 {
        self.raw()
    }
    fn shared_size() -> u64 {
        core::mem::size_of::<T>() as u64
    }
    fn shared_align() -> u64 {
        core::mem::align_of::<T>() as u64
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let at = Offset::from_raw(offset);
        arena.resolve_ptr::<T>(at)?;
        Ok(at)
    }
}

/// FNV-1a: a stable 64-bit hash of a type name.
fn type_tag(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_LEN {
        return Err(Error::InvalidArgument(format!(
            "published name {name:?} must be 1 to {NAME_LEN} bytes"
        )));
    }
    Ok(())
}

fn name_matches(entry: &RegistryEntry, name: &str) -> bool {
    let len = entry.name_len.load(Ordering::Relaxed) as usize;
    len == name.len()
        && entry
            .name
            .iter()
            .zip(name.bytes())
            .all(|(cell, b)| cell.load(Ordering::Relaxed) == b)
}

struct WriterLock<'a> {
    word: &'a crate::loom::atomic::AtomicU32,
}

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        self.word.store(0, Ordering::Release);
    }
}

fn lock(registry: &RegistryState) -> WriterLock<'_> {
    let me = crate::sys::getpid() as u32;
    let mut spins = 0u32;
    loop {
        match registry
            .lock
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                return WriterLock {
                    word: &registry.lock,
                };
            }
            Err(holder) => {
                spins += 1;
                if spins % 1024 == 0 && holder != 0 && !crate::sys::pid_alive(holder as i32) {
                    // The holder died inside publish/unpublish: take over. Its
                    // half-written entry is odd (being written) and is reset below.
                    if registry
                        .lock
                        .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        for entry in &registry.entries {
                            let state = entry.state.load(Ordering::Relaxed);
                            if state % 2 == 1 {
                                entry.state.store(state.wrapping_add(1), Ordering::Release);
                                entry.name_len.store(0, Ordering::Release);
                            }
                        }
                        return WriterLock {
                            word: &registry.lock,
                        };
                    }
                }
                if spins % 64 == 0 {
                    crate::loom::yield_now();
                } else {
                    crate::loom::spin_loop();
                }
            }
        }
    }
}

impl Arena {
    fn registry(&self) -> &RegistryState {
        &self.header().registry
    }

    /// Publishes `object` under `name`, so that any process mapping this
    /// arena can find it with [`Arena::lookup`].
    ///
    /// The object must live in this arena and outlive its users: the
    /// registry records where it is, it does not keep it alive.
    ///
    /// # Errors
    /// [`Error::AlreadyPublished`], [`Error::RegistryFull`], or
    /// [`Error::InvalidArgument`] for a name that is empty or over 48 bytes.
    pub fn publish<H: Publish>(&self, name: &str, object: &H) -> Result<()> {
        check_name(name)?;
        let registry = self.registry();
        let _guard = lock(registry);
        let live = |e: &RegistryEntry| {
            e.state.load(Ordering::Relaxed) % 2 == 0 && e.name_len.load(Ordering::Relaxed) != 0
        };
        if registry
            .entries
            .iter()
            .any(|e| live(e) && name_matches(e, name))
        {
            return Err(Error::AlreadyPublished { name: name.into() });
        }
        let Some(entry) = registry.entries.iter().find(|e| !live(e)) else {
            return Err(Error::RegistryFull {
                capacity: REGISTRY_SLOTS,
            });
        };
        let state = entry.state.load(Ordering::Relaxed) & !1;
        // Odd while written: readers retry or skip.
        entry.state.store(state.wrapping_add(1), Ordering::Relaxed);
        crate::loom::atomic::fence(Ordering::Release);
        for (cell, b) in entry.name.iter().zip(name.bytes()) {
            cell.store(b, Ordering::Relaxed);
        }
        entry
            .type_tag
            .store(type_tag(H::type_name()), Ordering::Relaxed);
        entry.size.store(H::shared_size(), Ordering::Relaxed);
        entry.align.store(H::shared_align(), Ordering::Relaxed);
        entry
            .offset
            .store(object.shared_offset(), Ordering::Relaxed);
        entry.name_len.store(name.len() as u32, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire load of `state` in `lookup`.
        entry.state.store(state.wrapping_add(2), Ordering::Release);
        Ok(())
    }

    /// Removes `name` from the registry (the object itself is untouched).
    ///
    /// # Errors
    /// [`Error::NotPublished`].
    pub fn unpublish(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let registry = self.registry();
        let _guard = lock(registry);
        for entry in &registry.entries {
            let state = entry.state.load(Ordering::Relaxed);
            if state % 2 == 0
                && entry.name_len.load(Ordering::Relaxed) != 0
                && name_matches(entry, name)
            {
                entry.state.store(state.wrapping_add(1), Ordering::Relaxed);
                entry.name_len.store(0, Ordering::Relaxed);
                entry.state.store(state.wrapping_add(2), Ordering::Release);
                return Ok(());
            }
        }
        Err(Error::NotPublished { name: name.into() })
    }

    /// Finds the object published under `name` and attaches a handle to it.
    ///
    /// # Errors
    /// [`Error::NotPublished`]; [`Error::TypeMismatch`] if it was published
    /// as another type (or with another layout); an offset error if the
    /// registry entry points outside the arena.
    pub fn lookup<H: Publish>(&self, name: &str) -> Result<H> {
        check_name(name)?;
        for entry in &self.registry().entries {
            // A bounded number of retries: a writer holds an entry odd only
            // for a few stores, and a dead writer's entry is skipped.
            for _attempt in 0..1000 {
                // SYNC POINT: pairs with the Release store in `publish`.
                let before = entry.state.load(Ordering::Acquire);
                if before % 2 == 1 {
                    crate::loom::spin_loop();
                    continue;
                }
                if entry.name_len.load(Ordering::Relaxed) == 0 || !name_matches(entry, name) {
                    break;
                }
                let tag = entry.type_tag.load(Ordering::Relaxed);
                let size = entry.size.load(Ordering::Relaxed);
                let align = entry.align.load(Ordering::Relaxed);
                let offset = entry.offset.load(Ordering::Relaxed);
                crate::loom::atomic::fence(Ordering::Acquire);
                if entry.state.load(Ordering::Relaxed) != before {
                    continue;
                }
                if tag != type_tag(H::type_name())
                    || size != H::shared_size()
                    || align != H::shared_align()
                {
                    return Err(Error::TypeMismatch {
                        name: name.into(),
                        expected: H::type_name(),
                        found: format!(
                            "object of another type (tag {tag:#x}, {size} bytes, align {align})"
                        ),
                    });
                }
                return H::attach(self, offset);
            }
        }
        Err(Error::NotPublished { name: name.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_lookup_unpublish() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let at = arena.alloc_value(7u32).unwrap();
        arena.publish("seven", &at).unwrap();
        assert!(matches!(
            arena.publish("seven", &at),
            Err(Error::AlreadyPublished { .. })
        ));
        let found: Offset<u32> = arena.lookup("seven").unwrap();
        assert_eq!(arena.read(found).unwrap(), 7);
        assert!(matches!(
            arena.lookup::<Offset<u64>>("seven"),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(matches!(
            arena.lookup::<Offset<u32>>("eight"),
            Err(Error::NotPublished { .. })
        ));
        arena.unpublish("seven").unwrap();
        assert!(matches!(
            arena.lookup::<Offset<u32>>("seven"),
            Err(Error::NotPublished { .. })
        ));
        assert!(arena.publish("", &at).is_err());
        assert!(arena.publish(&"x".repeat(49), &at).is_err());
    }

    #[test]
    fn registry_fills_up() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let at = arena.alloc_value(1u8).unwrap();
        for i in 0..REGISTRY_SLOTS {
            arena.publish(&format!("n{i}"), &at).unwrap();
        }
        assert!(matches!(
            arena.publish("one-more", &at),
            Err(Error::RegistryFull { .. })
        ));
        arena.unpublish("n3").unwrap();
        arena.publish("one-more", &at).unwrap();
    }
}
