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

/// Bytes of a fuzzed SPSC ring: header (384) and 256 data bytes.
const SPSC_IMAGE: usize = 384 + 256;
/// Bytes of a fuzzed MPMC ring: header (384) and 4 slots of 128 bytes.
const MPMC_IMAGE: usize = 384 + 4 * 128;

/// Lays `data[1..]` over a real ring's shared bytes and drives a receiver
/// (and a few non-blocking sends) over it: byte 0 even = an SPSC ring
/// (`Receiver`), odd = an MPMC ring (`Queue`).
///
/// The rules (checked here; the fuzzer adds no-panic and, with its
/// sanitizer, no out-of-bounds access): every call returns (bounded
/// calls, each non-blocking), every message handed out is no longer than
/// the ring allows, and a ring that gave `Corrupt` keeps failing or gives
/// valid messages, never anything out of bounds.
pub fn ring_recv(data: &[u8]) {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let Ok(arena) = Arena::anonymous(1 << 20) else {
        return;
    };
    if mode % 2 == 0 {
        spsc_recv(&arena, image);
    } else {
        mpmc_recv(&arena, image);
    }
}

fn overwrite(arena: &Arena, offset: u64, image: &[u8], len: usize) {
    let n = image.len().min(len);
    if let Ok(dst) = arena.check_range(offset, n as u64, 1) {
        // SAFETY: `n` bytes inside the arena (checked), in a block this
        // function's caller allocated and nobody else uses.
        unsafe { core::ptr::copy_nonoverlapping(image.as_ptr(), dst.as_ptr(), n) };
    }
}

fn spsc_recv(arena: &Arena, image: &[u8]) {
    use crate::Publish;
    use std::time::Duration;
    let Ok((rx, _tx)) = crate::Pipe::simplex_in(arena, 256) else {
        return;
    };
    let offset = rx.shared_offset();
    overwrite(arena, offset, image, SPSC_IMAGE);
    // A fresh handle re-reads (and validates) the scribbled header.
    let Ok(mut rx) = crate::Receiver::attach(arena, offset) else {
        return;
    };
    rx.set_wait_strategy(crate::WaitStrategy::Park);
    for i in 0..64 {
        let got = if i % 2 == 0 {
            rx.recv_timeout::<Vec<u8>>(Duration::ZERO)
        } else if rx.poll(Duration::ZERO).unwrap_or(true) {
            // Data or end of stream: recv_ref returns at once.
            rx.recv_ref().map(|frame| frame.to_vec())
        } else {
            break;
        };
        match got {
            Ok(bytes) => assert!(bytes.len() <= arena.size(), "message longer than the arena"),
            Err(crate::Error::Timeout) => break,
            Err(_) => {}
        }
    }
}

fn mpmc_recv(arena: &Arena, image: &[u8]) {
    use crate::Publish;
    let Ok(queue) = crate::Queue::<Vec<u8>>::with_capacity_in(arena, 4) else {
        return;
    };
    let offset = queue.shared_offset();
    overwrite(arena, offset, image, MPMC_IMAGE);
    let Ok(queue) = crate::Queue::<Vec<u8>>::attach(arena, offset) else {
        return;
    };
    for i in 0..64u8 {
        match queue.try_get() {
            Ok(bytes) => assert!(bytes.len() <= queue.max_message()),
            Err(crate::Error::Empty | crate::Error::Closed) if i > 8 => break,
            Err(_) => {}
        }
        if i % 8 == 0 {
            let _ = queue.try_put(vec![i; usize::from(i)]);
        }
    }
    assert!(queue.qsize() <= queue.capacity());
}

/// Images of real rings for the `ring_recv` corpus (`examples/make_fuzz_seeds.rs`).
pub fn ring_recv_seeds() -> Vec<Vec<u8>> {
    use crate::Publish;
    let mut seeds = Vec::new();
    let image = |arena: &Arena, offset: u64, len: usize, mode: u8| -> Option<Vec<u8>> {
        let src = arena.check_range(offset, len as u64, 1).ok()?;
        let mut bytes = vec![mode];
        // SAFETY: `len` bytes inside the arena (checked), read while no
        // other thread or process uses the ring.
        bytes.extend_from_slice(unsafe { core::slice::from_raw_parts(src.as_ptr(), len) });
        Some(bytes)
    };
    // SPSC rings after various traffic: empty, pending frames, wrapped
    // with a pad, a block frame, closed.
    // Each number sends that many bytes; -1 receives one message.
    let traffic: [&[i64]; 8] = [
        &[],
        &[0],
        &[5, 17, 40],
        &[100, 100],
        &[100, -1, 100, -1, 100],
        &[64, 64, -1, 64, -1, 100],
        &[300, 7],
        &[120, -1, 120, -1, 30, 90],
    ];
    for (t, ops) in traffic.iter().enumerate() {
        for close in [false, true] {
            let Ok(arena) = Arena::anonymous(1 << 20) else {
                continue;
            };
            let Ok((rx, tx)) = crate::Pipe::simplex_in(&arena, 256) else {
                continue;
            };
            for (i, &op) in ops.iter().enumerate() {
                if op < 0 {
                    let _ = rx.recv_bytes();
                } else {
                    let _ = tx.send_bytes(&vec![(t * 16 + i) as u8; op as usize]);
                }
            }
            if close {
                tx.close();
            }
            if let Some(seed) = image(&arena, rx.shared_offset(), SPSC_IMAGE, 0) {
                seeds.push(seed);
            }
        }
    }
    // MPMC rings: empty, partly full, full, wrapped, with a block, closed.
    for (puts, gets, big, close) in [
        (0, 0, false, false),
        (2, 0, false, false),
        (4, 0, false, false),
        (6, 3, false, false),
        (3, 1, true, false),
        (9, 7, false, true),
    ] {
        let Ok(arena) = Arena::anonymous(1 << 20) else {
            continue;
        };
        let Ok(queue) = crate::Queue::<Vec<u8>>::with_capacity_in(&arena, 4) else {
            continue;
        };
        for i in 0..puts {
            if i >= 4 {
                let _ = queue.try_get();
            }
            let len = if big && i == 1 { 500 } else { i * 7 };
            let _ = queue.try_put(vec![i as u8; len]);
        }
        for _ in 0..gets.min(puts) {
            let _ = queue.try_get();
        }
        if close {
            queue.close();
        }
        if let Some(seed) = image(&arena, queue.shared_offset(), MPMC_IMAGE, 1) {
            seeds.push(seed);
        }
    }
    seeds
}
