//! Entry points shared by the `cargo fuzz` targets in `fuzz/` and by
//! `tests/fuzz_corpus.rs`, which replays each target's corpus as an ordinary
//! test. Not part of the public API.

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::{Arena, Offset};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Lays `data` down as the whole contents of a named segment, then opens it
/// as an arena and exercises `lookup`, `read`, `alloc` and `free` on it.
///
/// Whatever the bytes, this must return (errors are fine) without a panic or
/// an out-of-bounds access.
pub fn arena_open(data: &[u8]) {
    let name = format!(
        "shmproc-fuzz-{}-{}",
        crate::sys::getpid(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = format!("/dev/shm/{name}");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let opened = Arena::open(&name);
    let _ = std::fs::remove_file(&path);
    let Ok(arena) = opened else {
        return;
    };
    for key in ["x", "queue", "answer", "primes"] {
        if let Ok(at) = arena.lookup::<Offset<u64>>(key) {
            let _ = arena.read(at);
            let _ = arena.write(at, 1);
            let _ = arena.free(at);
        }
        let _ = arena.lookup::<Offset<[u8; 3]>>(key);
    }
    for size in [0usize, 40, 5000, 1 << 20] {
        if let Ok(at) = arena.alloc(size, 16) {
            let _ = arena.free(at);
        }
    }
    let _ = arena.free(Offset::<u8>::from_raw(4096 + 16));
    let _ = arena.used();
}

/// Test hook for tests/queue.rs: claims a slot of `queue` (as a putter or a
/// getter) and SIGKILLs the calling process while holding it, the worst
/// moment for a process to die.
pub fn queue_die_holding_slot<T: crate::Message>(queue: &crate::Queue<T>, putter: bool) -> ! {
    queue.die_holding_slot(putter)
}
