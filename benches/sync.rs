//! Sync primitives: uncontended cost in one process, and cross-process
//! hand-off round trips against the floors of this machine.
//!
//! `cargo bench --bench sync`
//!
//! * `uncontended/*`: one acquire + release of shmproc's `Lock` vs
//!   `std::sync::Mutex` and `parking_lot::Mutex`.
//! * `roundtrip/*`: one round trip between two processes (parent → child →
//!   parent), for: two processes spinning on one cache line (the spin
//!   floor); a raw futex ping-pong, one word each way, always sleeping (the
//!   futex floor); `Event` ping-pong; a `Lock` + `Condition` hand-off; and
//!   `pthread_mutex` + `pthread_cond` with `PTHREAD_PROCESS_SHARED` in shm.
//!   shmproc's primitives run twice: `park` (`WaitStrategy::Park`) and
//!   `spin` (the default: spin up to 20 µs, then park).
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
    let mut group = c.benchmark_group("uncontended");
    let lock = Lock::new_in(&arena).unwrap();
    group.bench_function("shmproc_lock", |b| {
        b.iter(|| drop(black_box(&lock).acquire()));
    });
    let std_mutex = std::sync::Mutex::new(0u64);
    group.bench_function("std_mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock()));
    });
    let pl_mutex = parking_lot::Mutex::new(0u64);
    group.bench_function("parking_lot_mutex", |b| {
        b.iter(|| drop(black_box(&pl_mutex).lock()));
    });
    let event = Event::new_in(&arena).unwrap();
    group.bench_function("event_is_set", |b| {
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

/// Forks a child running `child(iters)`, runs `parent(iters)`, reaps the
/// child and returns the parent's time.
fn cross_process(iters: u64, child: impl FnOnce(u64), parent: impl FnOnce(u64)) -> Duration {
    // SAFETY: the bench process runs no other threads, so the child may run anything.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        child(iters);
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
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
            turn.store(0, Ordering::SeqCst);
            cross_process(
                iters,
                |n| {
                    for i in 0..n as u32 {
                        while turn.load(Ordering::Acquire) != 2 * i + 1 {
                            std::hint::spin_loop();
                        }
                        turn.store(2 * i + 2, Ordering::Release);
                    }
                },
                |n| {
                    for i in 0..n as u32 {
                        turn.store(2 * i + 1, Ordering::Release);
                        while turn.load(Ordering::Acquire) != 2 * i + 2 {
                            std::hint::spin_loop();
                        }
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
        group.bench_function(format!("event_ping_pong_{name}"), |b| {
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

        group.bench_function(format!("lock_condition_{name}"), |b| {
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

    group.bench_function("pthread_mutex_cond_pshared", |b| {
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
