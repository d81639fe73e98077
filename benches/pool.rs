//! Pool benchmarks: `map` of a trivial function over 1,000,000 `u64`s, and
//! the `apply_async(..).get()` round trip on an idle and a busy pool,
//! against rayon (threads, the ceiling), Python's `multiprocessing.Pool`
//! (benches/python_pool.py, run from here) and the physical floors (one
//! `memcpy` of the data; a futex ping-pong and a spin ping-pong between two
//! processes).
//!
//! `cargo bench --bench pool`. Without python3 the Python figures are
//! skipped with a message.

mod common;

use common::python_available;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shmproc::{Arena, Offset, Pool, Process};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const N: u64 = 1_000_000;

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// Total time `benches/python_pool.py` reports for `iters` operations.
fn python(what: &str, iters: u64) -> Option<Duration> {
    common::python_total("python_pool.py", what, iters)
}

/// Two processes handing a token back and forth through one shared word.
struct PingPong {
    word: &'static AtomicU32,
    _child: Process,
}

fn ping_pong(spin: bool) -> PingPong {
    let arena = Box::leak(Box::new(Arena::anonymous(1 << 20).unwrap()));
    let at: Offset<u32> = arena.alloc_value(0u32).unwrap();
    let word: &'static AtomicU32 = arena.atomic_u32(at).unwrap();
    let mut child = Process::new(move || {
        // Sleep until the first round trip: a spinning child would burn one
        // of the CPUs through every other group of this bench.
        while word.load(Ordering::Acquire) == 0 {
            shmproc::futex::wait(word, 0, None);
        }
        let mut expect = 1u32;
        loop {
            let mut now = word.load(Ordering::Acquire);
            while now != expect {
                if now == u32::MAX {
                    return;
                }
                if spin {
                    std::hint::spin_loop();
                } else {
                    shmproc::futex::wait(word, now, None);
                }
                now = word.load(Ordering::Acquire);
            }
            word.store(expect + 1, Ordering::Release);
            if !spin {
                shmproc::futex::wake_one(word);
            }
            expect += 2;
        }
    })
    .daemon(true);
    child.start().unwrap();
    PingPong {
        word,
        _child: child,
    }
}

impl PingPong {
    fn round_trip(&self, spin: bool) {
        let word = self.word;
        let next = word.load(Ordering::Relaxed) + 1;
        word.store(next, Ordering::Release);
        if !spin || next == 1 {
            shmproc::futex::wake_one(word);
        }
        let mut now = word.load(Ordering::Acquire);
        while now != next + 1 {
            if spin {
                std::hint::spin_loop();
            } else {
                shmproc::futex::wait(word, now, None);
            }
            now = word.load(Ordering::Acquire);
        }
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.word.store(u32::MAX, Ordering::Release);
        shmproc::futex::wake_all(self.word);
    }
}

fn benches(c: &mut Criterion) {
    // Fork first: rayon's threads would make forking unsound (and refused).
    let pool = Pool::new(2).unwrap();
    let futex_pp = ping_pong(false);
    let spin_pp = ping_pong(true);
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let with_python = benchmarking && python_available();
    let input: Vec<u64> = (0..N).collect();

    let mut group = c.benchmark_group("map_1M_trivial");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    group.bench_function("shmproc_map", |b| {
        b.iter(|| black_box(pool.map(trivial, input.iter().copied()).unwrap()))
    });
    // The zero-copy form: input and results live in shared memory already.
    let shared_input = shmproc::RawArray::from_slice(&input).unwrap();
    let shared_output = shmproc::RawArray::<u64>::zeroed(N as usize).unwrap();
    group.bench_function("shmproc_map_array_into", |b| {
        b.iter(|| {
            pool.map_array_into(trivial, &shared_input, &shared_output, None)
                .unwrap()
        })
    });
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    group.bench_function("alt_rayon", |b| {
        use rayon::prelude::*;
        b.iter(|| {
            rayon.install(|| black_box(input.par_iter().map(|&x| trivial(x)).collect::<Vec<u64>>()))
        })
    });
    let mut out = vec![0u64; N as usize];
    group.bench_function("alt_rayon_into", |b| {
        use rayon::prelude::*;
        b.iter(|| {
            rayon.install(|| {
                out.par_iter_mut()
                    .zip(input.par_iter())
                    .for_each(|(o, &x)| *o = trivial(x))
            })
        })
    });
    // One copy of the data: `map`'s caller must make two (items into shared
    // memory, results out of it), one core's memory bandwidth each.
    group.bench_function("floor_memcpy", |b| {
        b.iter(|| out.copy_from_slice(black_box(&input)))
    });
    if with_python {
        group.sample_size(10);
        group.bench_function("alt_python", |b| {
            b.iter_custom(|iters| python("map", iters).unwrap_or(Duration::MAX / 1000))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("apply_async_roundtrip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("shmproc_busy", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            black_box(pool.apply_async(trivial, i).unwrap().get().unwrap())
        })
    });
    group.bench_function("shmproc_idle", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                // Let the workers finish spinning and sleep.
                std::thread::sleep(Duration::from_millis(2));
                let t0 = Instant::now();
                black_box(pool.apply_async(trivial, i).unwrap().get().unwrap());
                total += t0.elapsed();
            }
            total
        })
    });
    if with_python {
        group.sample_size(10);
        group.bench_function("alt_python_idle", |b| {
            b.iter_custom(|iters| python("apply", iters).unwrap_or(Duration::MAX / 1000))
        });
        group.sample_size(100);
    }
    group.bench_function("floor_futex_pingpong", |b| {
        b.iter(|| futex_pp.round_trip(false))
    });
    group.bench_function("floor_spin", |b| b.iter(|| spin_pp.round_trip(true)));
    group.finish();
    drop(pool);
}

criterion_group!(pool_benches, benches);
criterion_main!(pool_benches);
