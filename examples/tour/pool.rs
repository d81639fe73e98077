//! Pool: map a function over worker processes, and survive a worker crash.

use shmproc::{Error, Pool};
use std::time::Instant;

fn square(x: u64) -> u64 {
    x * x
}

fn whoami(i: u32) -> String {
    format!("item {i} squared by pid {}", std::process::id())
}

/// Task 3 kills its own worker, as a segfault or the OOM killer would.
fn fragile(i: u32) -> u32 {
    if i == 3 {
        // SAFETY: kill(2) on our own pid touches no memory.
        unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
    }
    i * 10
}

fn nap(i: u32) -> u32 {
    std::thread::sleep(std::time::Duration::from_millis(100));
    i
}

pub fn run() -> crate::Result {
    println!("== pool");
    let pool = Pool::new(2)?;
    let squares = pool.map(square, 1..=10u64)?;
    // The manager forks the workers in the background; the map may finish
    // on the first one before the second has registered.
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    while pool.worker_pids().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    println!(
        "  Pool(2): manager pid {}, workers {:?} (forked by the manager)",
        pool.manager_pid(),
        pool.worker_pids()
    );
    println!("  map(square, 1..=10) = {squares:?}");
    assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);

    for line in pool.imap(whoami, 0..3u32)? {
        println!("  imap: {}", line?);
    }

    for round in [
        "first call, fresh shared pages",
        "again, warm blocks reused",
    ] {
        let t = Instant::now();
        let big = pool.map(square, 0..1_000_000u64)?;
        println!(
            "  map over 1,000,000 items in {:.2?} ({round}; last = {})",
            t.elapsed(),
            big[999_999]
        );
    }

    let input = shmproc::RawArray::from_iter(0..1_000_000u64)?;
    let output = shmproc::RawArray::<u64>::zeroed(1_000_000)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        pool.map_array_into(square, &input, &output, None)?;
        times.push(t.elapsed());
    }
    println!(
        "  map_array_into, 1,000,000 items already in shared memory, 5 calls: {times:.2?} \
         (the first ones fault the pages into each worker; last = {})",
        output.get(999_999)?
    );

    println!("  six apply_async tasks; task 3 SIGKILLs its own worker:");
    let results: Vec<_> = (0..6u32)
        .map(|i| pool.apply_async(fragile, i))
        .collect::<Result<_, _>>()?;
    let mut died = 0;
    for (i, result) in results.iter().enumerate() {
        match result.get() {
            Ok(value) => println!("    task {i}: {value}"),
            Err(Error::WorkerDied { pid, signal }) => {
                died += 1;
                println!(
                    "    task {i}: its worker {pid} died (signal {signal}); the pool replaced it"
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    assert_eq!(died, 1);
    let after = pool.map(square, 1..=3u64)?;
    println!(
        "  the pool goes on: map(square, 1..=3) = {after:?}, workers now {:?}",
        pool.worker_pids()
    );
    assert_eq!(after, [1, 4, 9]);
    pool.close();
    pool.join()?;
    println!("  close + join: every pool process reaped");

    let pool = Pool::new(2)?;
    let pending = pool.map_async_chunksize(nap, 0..1000u32, Some(1))?;
    while pool.worker_pids().is_empty() {
        std::thread::yield_now();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let t = Instant::now();
    pool.terminate()?;
    println!(
        "  terminate during a map of 1,000 naps: {:.2?}, then get() = {:?}",
        t.elapsed(),
        pending.get().err()
    );

    let table: Vec<u64> = (0..1_000_000).collect();
    let sums = shmproc::fork_map(2, &[0usize, 500_000, 999_999], |&i| table[i] * 2)?;
    println!("  fork_map over a dataset the children inherit (copy-on-write): {sums:?}");
    assert_eq!(sums, [0, 1_000_000, 1_999_998]);
    Ok(())
}
