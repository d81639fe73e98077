//! Sync: a Lock, an Event and a Barrier shared by forked processes.

use shmproc::{Arena, Barrier, Event, Lock, Offset};
use std::time::{Duration, Instant};

pub fn run() -> crate::Result {
    println!("\n== sync");
    let arena = Arena::anonymous(1 << 20)?;

    // Lock: four processes add to a plain (non-atomic) counter under it.
    let lock = Lock::new_in(&arena)?;
    let counter: Offset<u64> = arena.alloc_value(0)?;
    let started = Instant::now();
    let pids: Vec<i32> = (0..4)
        .map(|_| {
            let (lock, arena) = (lock.clone(), arena.clone());
            crate::fork(move || {
                for _ in 0..25_000 {
                    let _guard = lock.acquire().expect("lock");
                    let v = arena.read(counter).expect("read");
                    arena.write(counter, v + 1).expect("write");
                }
            })
        })
        .collect();
    for pid in pids {
        crate::wait(pid)?;
    }
    let total = arena.read(counter)?;
    println!(
        "  Lock: 4 processes x 25,000 locked increments of a plain u64 = {total} ({:?})",
        started.elapsed()
    );
    assert_eq!(total, 100_000);

    // Lock owner death: a child takes the lock and is killed holding it.
    let held = Event::new_in(&arena)?;
    let child = {
        let (lock, held) = (lock.clone(), held.clone());
        crate::fork(move || {
            let _guard = lock.acquire().expect("lock");
            held.set();
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    held.wait();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let started = Instant::now();
    match lock.acquire() {
        Err(died) => {
            println!(
                "  Lock: holder {} was SIGKILLed holding it; recovered with OwnerDied in {:?}",
                died.pid(),
                started.elapsed()
            );
            assert_eq!(died.pid(), child);
            drop(died.into_inner());
        }
        Ok(_) => return Err("a dead holder's lock was handed over without OwnerDied".into()),
    }
    let mut status = 0;
    // SAFETY: reaping our own (killed) child.
    unsafe { libc::waitpid(child, &mut status, 0) };

    // Event: ping-pong between two processes.
    let (ping, pong) = (Event::new_in(&arena)?, Event::new_in(&arena)?);
    let rounds = 10_000;
    let child = {
        let (ping, pong) = (ping.clone(), pong.clone());
        crate::fork(move || {
            for _ in 0..rounds {
                ping.wait();
                ping.clear();
                pong.set();
            }
        })
    };
    let started = Instant::now();
    for _ in 0..rounds {
        ping.set();
        pong.wait();
        pong.clear();
    }
    let took = started.elapsed();
    crate::wait(child)?;
    println!(
        "  Event: {rounds} ping-pong round trips between 2 processes, {:.1} us each",
        took.as_secs_f64() * 1e6 / f64::from(rounds)
    );

    // Barrier: three processes meet 1,000 times; each round hands out 0..3.
    let barrier = Barrier::new_in(&arena, 3)?;
    let sums: Offset<u64> = arena.alloc_value(0)?;
    let sum_lock = Lock::new_in(&arena)?;
    let pids: Vec<i32> = (0..2)
        .map(|_| {
            let (barrier, arena, sum_lock) = (barrier.clone(), arena.clone(), sum_lock.clone());
            crate::fork(move || {
                for _ in 0..1_000 {
                    let index = barrier.wait().expect("barrier");
                    let _guard = sum_lock.acquire().expect("lock");
                    let v = arena.read(sums).expect("read");
                    arena.write(sums, v + u64::from(index)).expect("write");
                }
            })
        })
        .collect();
    for _ in 0..1_000 {
        let index = barrier.wait()?;
        let _guard = sum_lock.acquire().map_err(|_| "lock holder died")?;
        arena.write(sums, arena.read(sums)? + u64::from(index))?;
    }
    for pid in pids {
        crate::wait(pid)?;
    }
    let sum = arena.read(sums)?;
    println!("  Barrier: 3 processes x 1,000 rounds; indices sum to {sum} (= 1,000 x (0+1+2))");
    assert_eq!(sum, 3_000);
    barrier.abort();
    assert!(matches!(barrier.wait(), Err(shmproc::Error::BrokenBarrier)));
    println!("  Barrier: after abort(), wait() fails with BrokenBarrier, as in Python");
    Ok(())
}
