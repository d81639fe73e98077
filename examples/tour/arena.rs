//! Arenas: anonymous (shared with forked children) and named (attached by name).

use shmproc::{Arena, Offset};
use std::time::{Duration, Instant};

pub fn run() -> crate::Result {
    println!("== arena");
    let arena = Arena::anonymous(64 << 20)?;
    let cell: Offset<u64> = arena.alloc_value(0)?;
    let child_arena = arena.clone();
    let pid = crate::fork(move || {
        child_arena.write(cell, 0xC0FFEE).expect("write");
    });
    crate::wait(pid)?;
    println!(
        "  anonymous arena of {} MiB: forked child {pid} wrote {:#x}, parent reads it back",
        arena.size() >> 20,
        arena.read(cell)?
    );
    assert_eq!(arena.read(cell)?, 0xC0FFEE);

    let name = format!("shmproc-tour-{}", std::process::id());
    let named = Arena::create(&name, 1 << 20)?;
    let answer = named.alloc_value(42u32)?;
    named.publish("answer", &answer)?;
    let attached = Arena::open(&name)?; // what an unrelated process does
    let found: Offset<u32> = attached.lookup("answer")?;
    println!(
        "  named arena /dev/shm/{name}: published \"answer\", attached by name, looked up {}",
        attached.read(found)?
    );
    assert_eq!(attached.read(found)?, 42);

    // Futex wake-up across processes: the child sleeps on a word in shm.
    let word = arena.alloc_value(0u32)?;
    let child_arena = arena.clone();
    let pid = crate::fork(move || {
        let atomic = child_arena.atomic_u32(word).expect("atomic");
        while atomic.load(std::sync::atomic::Ordering::Acquire) == 0 {
            shmproc::futex::wait(atomic, 0, None);
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let atomic = arena.atomic_u32(word)?;
    let t = Instant::now();
    atomic.store(1, std::sync::atomic::Ordering::Release);
    let woken = shmproc::futex::wake_all(atomic);
    crate::wait(pid)?;
    println!(
        "  futex: woke {woken} sleeping child across processes; it exited {:?} later",
        t.elapsed()
    );
    let before = arena.used();
    let blocks: Vec<_> = (0..1000)
        .map(|i| arena.alloc(i * 7 % 4000, 8))
        .collect::<Result<_, _>>()?;
    for b in blocks {
        arena.free(b)?;
    }
    assert_eq!(arena.used(), before);
    println!("  allocator: 1000 mixed blocks allocated and freed, usage back to {before} bytes");
    Ok(())
}
