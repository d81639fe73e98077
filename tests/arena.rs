//! Arena tests across processes (harness = false: see tests/common/mod.rs).

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit, shm_name, spawn_helper, wait_helper};
use shmproc::{Arena, Error, Offset};
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

fn main() {
    common::main(
        &[
            case!(parent_allocates_child_writes, 20),
            case!(child_allocates_parent_reads_and_frees, 20),
            case!(unrelated_process_reads_published_object, 30),
            case!(open_missing_segment, 10),
            case!(open_permission_denied, 10),
            case!(open_foreign_segment, 10),
            case!(open_truncated_segment, 10),
            case!(open_newer_layout, 10),
            case!(open_corrupt_allocator, 10),
            case!(four_processes_alloc_free_stress, 120),
            case!(create_twice_is_an_error_and_drop_unlinks, 10),
        ],
        &[helper!(read_published)],
    );
}

const WAIT: Duration = Duration::from_secs(15);

fn parent_allocates_child_writes() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let at = arena.alloc_array::<u64>(512).unwrap();
    for i in 0..512 {
        arena
            .write(Offset::<u64>::from_raw(at.raw() + 8 * i), 0)
            .unwrap();
    }
    let mut kids = Children::new();
    let child_arena = arena.clone();
    let pid = kids.fork(move || {
        for i in 0..512u64 {
            child_arena
                .write(Offset::from_raw(at.raw() + 8 * i), i * 3 + 1)
                .unwrap();
        }
    });
    assert_eq!(kids.wait(pid, WAIT), Exit::Code(0));
    for i in 0..512u64 {
        assert_eq!(
            arena
                .read(Offset::<u64>::from_raw(at.raw() + 8 * i))
                .unwrap(),
            i * 3 + 1
        );
    }
    arena.free(at).unwrap();
    assert_eq!(arena.used(), 0);
}

fn child_allocates_parent_reads_and_frees() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let slot = arena.alloc_value(0u64).unwrap();
    let before = arena.used();
    let mut kids = Children::new();
    let child_arena = arena.clone();
    let pid = kids.fork(move || {
        let block = child_arena.alloc_value(0xDEAD_BEEF_u64).unwrap();
        child_arena.write(slot, block.raw()).unwrap();
    });
    assert_eq!(kids.wait(pid, WAIT), Exit::Code(0));
    let block = Offset::<u64>::from_raw(arena.read(slot).unwrap());
    assert_ne!(block.raw(), 0, "the child published its block");
    assert_eq!(arena.read(block).unwrap(), 0xDEAD_BEEF);
    assert!(arena.used() > before);
    arena.free(block).unwrap();
    assert_eq!(
        arena.used(),
        before,
        "a block from a child is freed by the parent"
    );
}

fn unrelated_process_reads_published_object() {
    let name = shm_name("published");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let value = arena.alloc_value([7u64, 11, 13, 0]).unwrap();
    arena.publish("primes", &value).unwrap();
    let helper = spawn_helper("read_published", &[&name]);
    assert!(wait_helper(helper, WAIT), "the helper failed");
    // The helper wrote the product of the three primes into the last slot.
    assert_eq!(arena.read(value).unwrap(), [7, 11, 13, 1001]);
}

/// Runs in a process started by `Command` (not forked).
fn read_published(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    assert!(matches!(
        arena.lookup::<Offset<[u32; 4]>>("primes"),
        Err(Error::TypeMismatch { .. })
    ));
    let value: Offset<[u64; 4]> = arena.lookup("primes").unwrap();
    let mut v = arena.read(value).unwrap();
    v[3] = v[0] * v[1] * v[2];
    arena.write(value, v).unwrap();
}

fn open_missing_segment() {
    let err = Arena::open(&shm_name("missing")).unwrap_err();
    assert!(matches!(err, Error::NoSuchSegment { .. }), "{err}");
}

fn write_shm_file(name: &str, offset: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

fn open_permission_denied() {
    let name = shm_name("perm");
    let _arena = Arena::create(&name, 1 << 16).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut kids = Children::new();
    let check = move || {
        let err = Arena::open(&name).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    };
    let pid = if root {
        // Root bypasses the mode bits: drop to `nobody` in a child first.
        kids.fork(move || {
            // SAFETY: setgid/setuid take plain ids.
            unsafe {
                assert_eq!(libc::setgid(65534), 0);
            }
            // SAFETY: as above.
            unsafe {
                assert_eq!(libc::setuid(65534), 0);
            }
            check();
        })
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            format!("/dev/shm/{}", shm_name("perm")),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        kids.fork(check)
    };
    assert_eq!(kids.wait(pid, WAIT), Exit::Code(0));
}

fn open_foreign_segment() {
    let name = shm_name("foreign");
    let path = format!("/dev/shm/{name}");
    std::fs::write(&path, vec![0x5Au8; 16384]).unwrap();
    let err = Arena::open(&name).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, Error::NotShmproc { .. }), "{err}");
}

fn open_truncated_segment() {
    // Shorter than a header.
    let name = shm_name("tiny");
    let path = format!("/dev/shm/{name}");
    std::fs::write(&path, b"SHMPROC\x01").unwrap();
    let err = Arena::open(&name).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");

    // A real arena cut short.
    let name = shm_name("cut");
    let _arena = Arena::create(&name, 1 << 20).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.set_len(64 << 10).unwrap();
    let err = Arena::open(&name).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { expected, actual, .. } if expected == 1 << 20 && actual == 64 << 10),
        "{err}"
    );
}

fn open_newer_layout() {
    let name = shm_name("newer");
    let _arena = Arena::create(&name, 1 << 16).unwrap();
    write_shm_file(&name, 8, &2u32.to_le_bytes());
    let err = Arena::open(&name).unwrap_err();
    assert!(matches!(err, Error::NewerLayout { found: 2, .. }), "{err}");
}

fn open_corrupt_allocator() {
    // Header offsets (docs/ARCHITECTURE.md): alloc state at 32: heap_start,
    // heap_end, bump, used, then the free-list heads.
    let cases: [(u64, u64); 4] = [
        (32, 12345),       // heap_start not the header size
        (48, 1 << 40),     // bump pointer past the heap
        (56, u64::MAX),    // more in use than the heap
        (64, 0x1234_5678), // free list outside the heap
    ];
    for (i, (offset, value)) in cases.into_iter().enumerate() {
        let name = shm_name(&format!("corrupt{i}"));
        let _arena = Arena::create(&name, 1 << 16).unwrap();
        write_shm_file(&name, offset, &value.to_le_bytes());
        let err = Arena::open(&name).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "case {i}: {err}");
    }
}

fn create_twice_is_an_error_and_drop_unlinks() {
    let name = shm_name("twice");
    let arena = Arena::create(&name, 1 << 16).unwrap();
    let err = Arena::create(&name, 1 << 16).unwrap_err();
    assert!(matches!(err, Error::SegmentExists { .. }), "{err}");
    let attached = Arena::open(&name).unwrap();
    drop(arena);
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    // An attached handle keeps working after the name is gone.
    let at = attached.alloc_value(5u32).unwrap();
    assert_eq!(attached.read(at).unwrap(), 5);
    assert!(matches!(
        Arena::open(&name),
        Err(Error::NoSuchSegment { .. })
    ));
}

/// 4 processes x 100,000 alloc / write pattern / verify / free cycles of mixed
/// sizes: a block handed to two processes at once would fail a pattern check.
fn four_processes_alloc_free_stress() {
    let arena = Arena::anonymous(256 << 20).unwrap();
    let start = arena.used();
    let mut kids = Children::new();
    for p in 0..4u64 {
        let arena = arena.clone();
        kids.fork(move || {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (p << 32);
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut live: Vec<(Offset<u8>, usize, u8)> = Vec::new();
            for i in 0..100_000u64 {
                let r = next();
                let size = match r % 100 {
                    0 => (16 << 10) | ((r as usize >> 8) % 50_000),
                    1..=20 => (r as usize >> 8) % 4096,
                    _ => (r as usize >> 8) % 256,
                };
                let at = arena.alloc(size, 1 << ((r >> 60) % 5)).unwrap();
                let fill = ((p as u8) << 6) | (i as u8 & 0x3F);
                let bytes = Offset::<u8>::from_raw(at.raw());
                fill_block(&arena, bytes, size, fill);
                live.push((at, size, fill));
                if live.len() > 16 || r & 1 == 0 {
                    let (at, size, fill) = live.swap_remove((next() % live.len() as u64) as usize);
                    check_block(&arena, at, size, fill);
                    arena.free(at).unwrap();
                }
            }
            for (at, size, fill) in live {
                check_block(&arena, at, size, fill);
                arena.free(at).unwrap();
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(110));
    assert_eq!(arena.used(), start, "usage back to its starting value");
}

fn fill_block(arena: &Arena, at: Offset<u8>, size: usize, fill: u8) {
    // Whole words where possible to keep the stress test quick.
    for i in (0..size).step_by(512) {
        arena
            .write(Offset::<u8>::from_raw(at.raw() + i as u64), fill)
            .unwrap();
    }
    if size > 0 {
        arena
            .write(Offset::<u8>::from_raw(at.raw() + size as u64 - 1), fill)
            .unwrap();
    }
}

fn check_block(arena: &Arena, at: Offset<u8>, size: usize, fill: u8) {
    for i in (0..size).step_by(512) {
        assert_eq!(
            arena
                .read(Offset::<u8>::from_raw(at.raw() + i as u64))
                .unwrap(),
            fill,
            "block {at:?} overwritten"
        );
    }
    if size > 0 {
        assert_eq!(
            arena
                .read(Offset::<u8>::from_raw(at.raw() + size as u64 - 1))
                .unwrap(),
            fill
        );
    }
}
