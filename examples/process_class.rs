//! A process written as a type: the seed's `ClockProcess(Process)` with its
//! own `__init__` and `run`.
//!
//! `cargo run --release --example process_class`
//!
//! Python (the seed):
//!
//! ```python
//! class ClockProcess(Process):
//!     def __init__(self, value):
//!         self.value = value
//!         super().__init__()
//!
//!     def run(self):
//!         for i in range(5):
//!             print("The time is {}".format(ctime()))
//!             sleep(self.value)
//!
//! p = ClockProcess(2)
//! p.start()
//! p.join()
//! ```
//!
//! In Rust the type holds its own fields and implements [`Run`];
//! `Process::new` takes it like a closure. (The interval is shortened so the
//! example ends in about a second.)

use shmproc::{Process, Run, current_process};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A process that prints the time `ticks` times, `interval` apart.
struct ClockProcess {
    interval: Duration,
    ticks: u32,
}

impl ClockProcess {
    fn new(interval: Duration) -> Self {
        ClockProcess { interval, ticks: 5 }
    }
}

impl Run for ClockProcess {
    /// Runs in the child, once `start` has forked it.
    fn run(self) {
        for _ in 0..self.ticks {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            println!(
                "[{} pid {}] The time is {}.{:03}",
                current_process().name(),
                current_process().pid(),
                now.as_secs(),
                now.subsec_millis()
            );
            std::thread::sleep(self.interval);
        }
    }
}

fn main() -> shmproc::Result<()> {
    let mut p = Process::new(ClockProcess::new(Duration::from_millis(200))).name("ClockProcess");
    p.start()?; // runs ClockProcess::run in the child
    let code = p.join()?;
    println!("{} exited with {code}", p.get_name());
    assert_eq!(code, 0);
    Ok(())
}
