//! The pool examples Python tutorials start with, in shmproc:
//! `Pool(4).map(square, range(1, 11))`, then five `apply_async` tasks,
//! `close`, `join`.
//!
//! `cargo run --release --example pool_map`

use shmproc::Pool;
use std::time::{Duration, Instant};

fn square(x: u64) -> u64 {
    x * x
}

fn long_time_task(name: u32) -> String {
    let pid = std::process::id();
    println!("Run task {name} ({pid})...");
    let start = Instant::now();
    // A pseudo-random pause of 0..300 ms, different per task.
    let pause = Duration::from_millis(u64::from(name.wrapping_mul(2_654_435_761) % 300));
    std::thread::sleep(pause);
    format!(
        "Task {name} ({pid}) ran {:.2} seconds.",
        start.elapsed().as_secs_f64()
    )
}

fn main() -> Result<(), shmproc::Error> {
    let pool = Pool::new(4)?;
    println!("{:?}", pool.map(square, 1..=10u64)?);

    println!("Parent process {}.", std::process::id());
    let results: Vec<_> = (0..5u32)
        .map(|i| pool.apply_async(long_time_task, i))
        .collect::<Result<_, _>>()?;
    println!("Waiting for all subprocesses done...");
    pool.close();
    pool.join()?;
    for result in &results {
        println!("{}", result.get()?);
    }
    println!("All subprocesses done.");
    Ok(())
}
