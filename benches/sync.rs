//! Sync primitives: uncontended cost in one process, and cross-process
//! hand-off round trips against the floors of this machine.
//!
//! `cargo bench --bench sync`
//!
//! * `lock_uncontended/*`: one acquire + release of shmproc's `Lock` vs
//!   `std::sync::Mutex` and `parking_lot::Mutex` (floor: one CAS and one
//!   store on a word); `event_is_set/*`: one `Event::is_set`.
//! * `roundtrip/*`: one round trip between two processes (parent → child →
//!   parent), for: two processes spinning on one cache line (the spin
//!   floor); a raw futex ping-pong, one word each way, always sleeping (the
//!   futex floor); `Event` ping-pong; a `Lock` + `Condition` hand-off; and
//!   `pthread_mutex` + `pthread_cond` with `PTHREAD_PROCESS_SHARED` in shm.
//!   shmproc's primitives run twice: `park` (`WaitStrategy::Park`) and
//!   `spin` (the default: spin up to 20 µs, then park).
//!
//! Function ids: `floor_*` (the physical floor), `alt_*` (what one would use
//! instead), `shmproc_*` (ours); `scripts/bench_report.py` relies on it.
//!
//! Children are forked inside `iter_custom` (criterion runs no threads of
//! its own here), do the same number of rounds, and are reaped each time.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use shmproc::{Arena, Condition, Event, Lock, WaitStrategy, futex};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn uncontended(c: &mut Criterion) {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let mut group = c.benchmark_group("lock_uncontended");
    let lock = Lock::new_in(&arena).unwrap();
    group.bench_function("shmproc_lock", |b| {
        b.iter(|| drop(black_box(&lock).acquire()));
    });
    // The floor of any lock: one CAS to take it, one store to give it back.
    let word = AtomicU32::new(0);
    group.bench_function("floor_cas_store", |b| {
        b.iter(|| {
            let word = black_box(&word);
            let taken = word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed);
            word.store(0, Ordering::Release);
            taken
        });
    });
    let std_mutex = std::sync::Mutex::new(0u64);
    group.bench_function("alt_std_mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock()));
    });
    let pl_mutex = parking_lot::Mutex::new(0u64);
    group.bench_function("alt_parking_lot_mutex", |b| {
        b.iter(|| drop(black_box(&pl_mutex).lock()));
    });
    group.finish();
    let mut group = c.benchmark_group("event_is_set");
    let event = Event::new_in(&arena).unwrap();
    group.bench_function("shmproc_event_is_set", |b| {
        b.iter(|| black_box(&event).is_set());
    });
    group.finish();
}

/// A page of anonymous shared memory (inherited by forked children).
fn shared_page() -> *mut u8 {
    // SAFETY: an anonymous shared mapping; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    ptr.cast()
}

/// The word at byte `offset` of a shared page.
fn word(page: *mut u8, offset: usize) -> &'static AtomicU32 {
    assert!(offset % 4 == 0 && offset + 4 <= 4096);
    let ptr = page.wrapping_add(offset).cast::<AtomicU32>();
    // SAFETY: the page is never unmapped and is zero-initialised; the word
    // is 4-aligned and inside it (checked above).
    unsafe { &*ptr }
}

/// Spins until `word` holds `value`, the way shmproc's spin does: 16 looks
/// per clock read, and after the first ~2 µs a `sched_yield` between looks.
///
/// A pure spin would measure time slices, not the cache line, whenever both
/// processes land on one CPU (a loaded 2-vCPU machine: ~8 ms per round trip
/// under `taskset -c 0`), because the spinner burns its whole slice before
/// the peer can answer. The yield only starts well after a cache-line
/// transfer (~0.1–0.5 µs) would have arrived, so it does not change the
/// figure when both processes have a CPU.
fn spin_until(word: &AtomicU32, value: u32) {
    let start = Instant::now();
    let mut rounds = 0u32;
    loop {
        for _ in 0..16 {
            // Acquire: pairs with the peer's Release store of `value`.
            if word.load(Ordering::Acquire) == value {
                return;
            }
            std::hint::spin_loop();
        }
        rounds += 1;
        if rounds > 8 && start.elapsed() >= Duration::from_micros(2) {
            std::thread::yield_now();
        }
    }
}

/// Forks a child running `child(iters)`, runs `parent(iters)`, reaps the
/// child and returns the parent's time.
///
/// The clock starts only once the child runs (it raises a shared flag), so
/// the fork and the child's first page faults are not counted.
fn cross_process(iters: u64, child: impl FnOnce(u64), parent: impl FnOnce(u64)) -> Duration {
    static READY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let ready = word(*READY.get_or_init(|| shared_page() as usize) as *mut u8, 0);
    ready.store(0, Ordering::SeqCst);
    // SAFETY: the bench process runs no other threads, so the child may run anything.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        ready.store(1, Ordering::SeqCst);
        child(iters);
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    while ready.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let start = Instant::now();
    parent(iters);
    let took = start.elapsed();
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    took
}

fn roundtrips(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip");
    group.sample_size(20);
    let page = shared_page();

    // The spin floor: one cache line, a counter bumped by each side in turn.
    group.bench_function("floor_spin_cache_line", |b| {
        let turn = word(page, 0);
        b.iter_custom(|iters| {
            // The counter reaches 2 * iters: it must not wrap, or a round
            // trip would be skipped and the time divided by too many.
            assert!(
                iters < u64::from(u32::MAX / 2),
                "{iters} round trips overflow the counter"
            );
            turn.store(0, Ordering::SeqCst);
            cross_process(
                iters,
                // One round trip per `i`: the parent writes 2i+1, the child
                // answers 2i+2; `n` round trips in all, as iter_custom wants.
                |n| {
                    for i in 0..n as u32 {
                        spin_until(turn, 2 * i + 1);
                        // Release: pairs with the parent's Acquire in spin_until.
                        turn.store(2 * i + 2, Ordering::Release);
                    }
                },
                |n| {
                    for i in 0..n as u32 {
                        // Release: pairs with the child's Acquire in spin_until.
                        turn.store(2 * i + 1, Ordering::Release);
                        spin_until(turn, 2 * i + 2);
                    }
                },
            )
        });
    });

    // The futex floor: a word each way, every hand-off a FUTEX_WAKE + sleep.
    group.bench_function("floor_futex", |b| {
        let (ping, pong) = (word(page, 64), word(page, 128));
        b.iter_custom(|iters| {
            ping.store(0, Ordering::SeqCst);
            pong.store(0, Ordering::SeqCst);
            cross_process(
                iters,
                |n| {
                    for i in 1..=n as u32 {
                        while ping.load(Ordering::Acquire) != i {
                            futex::wait(ping, i - 1, None);
                        }
                        pong.store(i, Ordering::Release);
                        futex::wake_one(pong);
                    }
                },
                |n| {
                    for i in 1..=n as u32 {
                        ping.store(i, Ordering::Release);
                        futex::wake_one(ping);
                        while pong.load(Ordering::Acquire) != i {
                            futex::wait(pong, i - 1, None);
                        }
                    }
                },
            )
        });
    });

    let arena = Arena::anonymous(1 << 20).unwrap();
    for (name, strategy) in [
        ("park", WaitStrategy::Park),
        ("spin", WaitStrategy::DEFAULT),
    ] {
        group.bench_function(format!("shmproc_event_ping_pong_{name}"), |b| {
            let ping = Event::new_in(&arena).unwrap().with_wait_strategy(strategy);
            let pong = Event::new_in(&arena).unwrap().with_wait_strategy(strategy);
            b.iter_custom(|iters| {
                cross_process(
                    iters,
                    |n| {
                        for _ in 0..n {
                            ping.wait();
                            ping.clear();
                            pong.set();
                        }
                    },
                    |n| {
                        for _ in 0..n {
                            ping.set();
                            pong.wait();
                            pong.clear();
                        }
                    },
                )
            });
        });

        group.bench_function(format!("shmproc_lock_condition_{name}"), |b| {
            let lock = Lock::new_in(&arena).unwrap().with_wait_strategy(strategy);
            let cond = Condition::with_lock(&lock).unwrap();
            let turn = word(page, 192);
            b.iter_custom(|iters| {
                turn.store(0, Ordering::SeqCst);
                cross_process(
                    iters,
                    |n| {
                        for _ in 0..n {
                            let guard = cond.acquire().unwrap();
                            let guard = cond
                                .wait_while(guard, || turn.load(Ordering::Relaxed) == 0)
                                .unwrap();
                            turn.store(0, Ordering::Relaxed);
                            cond.notify_one();
                            drop(guard);
                        }
                    },
                    |n| {
                        for _ in 0..n {
                            let guard = cond.acquire().unwrap();
                            turn.store(1, Ordering::Relaxed);
                            cond.notify_one();
                            let guard = cond
                                .wait_while(guard, || turn.load(Ordering::Relaxed) == 1)
                                .unwrap();
                            drop(guard);
                        }
                    },
                )
            });
        });
    }

    group.bench_function("alt_pthread_mutex_cond_pshared", |b| {
        let shm = shared_page();
        let mutex = shm.cast::<libc::pthread_mutex_t>();
        let cond = shm.wrapping_add(256).cast::<libc::pthread_cond_t>();
        let turn = word(shm, 1024);
        // Each call below: pthread attribute objects on this stack frame, and
        // a mutex and a condition that fit the shared page at aligned
        // offsets (40 and 48 bytes at 0 and 256).
        // SAFETY: an all-zero attribute object is valid to pass to _init.
        let mut mattr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::pthread_mutexattr_init(&mut mattr) };
        // SAFETY: as above.
        unsafe { libc::pthread_mutexattr_setpshared(&mut mattr, libc::PTHREAD_PROCESS_SHARED) };
        // SAFETY: as above.
        unsafe { libc::pthread_mutex_init(mutex, &mattr) };
        // SAFETY: as above.
        let mut cattr: libc::pthread_condattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::pthread_condattr_init(&mut cattr) };
        // SAFETY: as above.
        unsafe { libc::pthread_condattr_setpshared(&mut cattr, libc::PTHREAD_PROCESS_SHARED) };
        // SAFETY: as above.
        unsafe { libc::pthread_cond_init(cond, &cattr) };
        // The pthread objects were initialised above and live in a mapping
        // shared by both processes, for the whole bench.
        // SAFETY: an initialised process-shared mutex.
        let lock = || unsafe { libc::pthread_mutex_lock(mutex) };
        // SAFETY: as above; called only by the holder.
        let unlock = || unsafe { libc::pthread_mutex_unlock(mutex) };
        // SAFETY: an initialised process-shared condition, with the mutex held.
        let wait = || unsafe { libc::pthread_cond_wait(cond, mutex) };
        // SAFETY: an initialised process-shared condition.
        let signal = || unsafe { libc::pthread_cond_signal(cond) };
        b.iter_custom(|iters| {
            turn.store(0, Ordering::SeqCst);
            cross_process(
                iters,
                |n| {
                    for _ in 0..n {
                        lock();
                        while turn.load(Ordering::Relaxed) == 0 {
                            wait();
                        }
                        turn.store(0, Ordering::Relaxed);
                        signal();
                        unlock();
                    }
                },
                |n| {
                    for _ in 0..n {
                        lock();
                        turn.store(1, Ordering::Relaxed);
                        signal();
                        while turn.load(Ordering::Relaxed) == 1 {
                            wait();
                        }
                        unlock();
                    }
                },
            )
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended, roundtrips);
criterion_main!(benches);
