//! Process start + join of an empty process, against the floor: a raw
//! `fork` + `_exit(0)` + `waitpid`, in the same run.
//!
//! `cargo bench --bench process`
//!
//! Groups `start_join_empty` and `start_join_empty_64MiB_parent` (the parent
//! has touched 64 MiB, so fork copies more page tables); in each,
//! `floor_fork_waitpid` is the raw fork and `shmproc_process` ours.
//!
//! `alt_python` (in `start_join_empty`) is Python's
//! `multiprocessing.Process` (fork start method) doing the same, timed by
//! `benches/process_python.py` inside this run; without python3 the row is
//! skipped with a message. `python3 benches/process_python.py` alone prints
//! Python's own raw fork beside it.
#![allow(unsafe_code)]
#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::time::Duration;

mod common;

use common::python_available;
use criterion::{Criterion, criterion_group, criterion_main};
use shmproc::Process;

fn raw_fork_waitpid() {
    // SAFETY: the bench process is single-threaded here (shmproc's start
    // below would refuse otherwise), and the child only calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: _exit ends the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waitpid with a pointer to a local status word.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert_eq!(status, 0);
}

fn start_join_empty() {
    let mut p = Process::new(|| {});
    p.start().expect("start");
    assert_eq!(p.join().expect("join"), 0);
}

/// Total time `benches/process_python.py` reports for `iters` start+joins.
fn python_start_join(iters: u64) -> Option<Duration> {
    common::python_total("process_python.py", "start_join", iters)
}

fn bench(c: &mut Criterion) {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut group = c.benchmark_group("start_join_empty");
    group.bench_function("floor_fork_waitpid", |b| b.iter(raw_fork_waitpid));
    group.bench_function("shmproc_process", |b| b.iter(start_join_empty));
    if benchmarking && python_available() {
        group.bench_function("alt_python", |b| {
            b.iter_custom(|iters| {
                python_start_join(iters).expect("benches/process_python.py failed")
            })
        });
    }
    group.finish();
    // What a parent that has touched 64 MiB pays (fork copies page tables).
    let ballast: Vec<u8> = vec![1; 64 << 20];
    std::hint::black_box(&ballast);
    let mut group = c.benchmark_group("start_join_empty_64MiB_parent");
    group.bench_function("floor_fork_waitpid", |b| b.iter(raw_fork_waitpid));
    group.bench_function("shmproc_process", |b| b.iter(start_join_empty));
    group.finish();
    drop(ballast);
}

criterion_group!(benches, bench);
criterion_main!(benches);
