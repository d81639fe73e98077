//! A process and its pid: the first seed's Process and Lock example.
//!
//! `cargo run --release --example process_pid`
//!
//! Python (the seed):
//!
//! ```python
//! def worker(sign, lock):
//!     lock.acquire()
//!     print(sign, os.getpid())
//!     lock.release()
//!
//! print("main:", os.getpid())
//! lock = multiprocessing.Lock()
//! for i in range(5):
//!     process = multiprocessing.Process(target=worker, args=('process', lock))
//!     process.start()
//!     record.append(process)
//! for process in record:
//!     process.join()
//! ```
//!
//! Threads print the main process's pid; processes each print their own.
//! Also from the seeds: `pid` is `None` before `start`, and `name`,
//! `is_alive`, `exitcode` behave as Python's.

use shmproc::{Lock, Process, current_process};

fn worker(sign: &str, lock: &Lock) {
    // The guard releases the lock when it goes out of scope (Python's
    // acquire/release pair).
    let _guard = lock.acquire().expect("lock");
    println!("{sign} {}", current_process().pid());
}

fn main() -> shmproc::Result<()> {
    println!("main: {}", current_process().pid());

    // Processes first: shmproc refuses to fork while other threads run
    // (a lock they hold would stay locked forever in the child).
    let lock = Lock::new()?;
    let mut record = Vec::new();
    for _ in 0..5 {
        let lock = lock.clone();
        let mut process = Process::new(move || worker("process", &lock));
        assert_eq!(process.pid(), None, "no pid before start, as in Python");
        process.start()?;
        record.push(process);
    }
    let mut pids = Vec::new();
    for process in &record {
        assert_eq!(process.join()?, 0);
        pids.push(process.pid().expect("started"));
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 5, "every process has its own pid");

    // The same with threads, after the processes: one pid for all.
    let threads: Vec<_> = (0..5)
        .map(|_| {
            let lock = lock.clone();
            std::thread::spawn(move || worker("thread", &lock))
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }

    // The attributes the seeds print: name, pid, is_alive, exitcode.
    let mut p = Process::new(|| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        println!("{} running", current_process().name());
    });
    println!("pid before start: {:?}", p.pid());
    // The threads above were joined, so forking is allowed again.
    p.start()?;
    println!("Process name: {}", p.get_name());
    println!("Process PID: {:?}", p.pid());
    println!("Process alive: {}", p.is_alive());
    p.join()?;
    println!("Process alive: {}", p.is_alive());
    println!("Process exitcode: {:?}", p.exitcode());
    Ok(())
}
