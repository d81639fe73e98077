//! Channels between two processes against the floors of this machine and
//! what users would use otherwise, all in one run.
//!
//! `cargo bench --bench channel`
//!
//! * `roundtrip_8B`: one round trip of an 8-byte message (parent → child →
//!   parent). Floors: two processes spinning on one shared cache line, and
//!   a raw futex ping-pong (one word each way, every hand-off a sleep and a
//!   `FUTEX_WAKE`). Alternatives: a Unix pipe pair and a socketpair.
//!   shmproc: a duplex `Pipe` in spin, default (spin 20 µs, then park) and
//!   park-only mode, and two `Queue`s.
//! * `throughput_64B`: 64-byte messages one way, parent → child: a simplex
//!   `Pipe` and a `Queue` across processes, vs crossbeam-channel bounded
//!   between two threads of one process and a Unix pipe across processes.
//! * `payload_1MiB`: 1 MiB messages one way: `floor_memcpy` (one memcpy in
//!   one process) vs a loan filled in place and read in place (zero-copy)
//!   and `send_bytes` (one copy in) read in place.
//! * `mpmc_64B`: two producer and two consumer processes over one `Queue`.
//!
//! Every cross-process measurement forks its children inside `iter_custom`
//! (criterion runs no threads of its own here), starts the clock only once
//! every child runs (they raise a shared flag), does exactly `iters`
//! iterations on each side, and reaps the children. Figures are
//! provisional on a loaded 2-vCPU VM; compare ratios within one run.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shmproc::{Arena, Pipe, Queue, WaitStrategy, futex};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Anonymous shared memory (inherited by forked children).
fn shared_pages(bytes: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous shared mapping; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    ptr.cast()
}

struct Page(*mut u8);
// SAFETY: the page is a shared mapping that is never unmapped.
unsafe impl Sync for Page {}
// SAFETY: as for Sync.
unsafe impl Send for Page {}

fn page() -> &'static Page {
    static PAGE: std::sync::OnceLock<Page> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| Page(shared_pages(4096)))
}

/// The u32 at byte `offset` of the shared page; each on its own 128-byte line.
fn word(offset: usize) -> &'static AtomicU32 {
    assert!(offset % 4 == 0 && offset + 4 <= 4096);
    // SAFETY: inside the never-unmapped, zero-initialised shared page, aligned.
    unsafe { &*page().0.wrapping_add(offset).cast::<AtomicU32>() }
}

fn word64(offset: usize) -> &'static AtomicU64 {
    assert!(offset % 8 == 0 && offset + 8 <= 4096);
    // SAFETY: as in `word`.
    unsafe { &*page().0.wrapping_add(offset).cast::<AtomicU64>() }
}

const READY: usize = 0;

/// Forks one child per body, waits until all run, times `parent`, then
/// reaps them (each must exit 0).
fn processes(children: Vec<Box<dyn FnOnce()>>, parent: impl FnOnce()) -> Duration {
    let ready = word(READY);
    ready.store(0, Ordering::SeqCst);
    let n = children.len() as u32;
    let mut pids = Vec::new();
    for body in children {
        // SAFETY: the bench process runs no other threads at this point
        // (criterion runs none here, crossbeam's are joined), so the child
        // may run anything.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            ready.fetch_add(1, Ordering::SeqCst);
            while ready.load(Ordering::SeqCst) < n {
                std::hint::spin_loop();
            }
            body();
            // SAFETY: leave the child without the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    while ready.load(Ordering::SeqCst) < n {
        std::thread::yield_now();
    }
    let start = Instant::now();
    parent();
    let took = start.elapsed();
    for pid in pids {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed"
        );
    }
    took
}

fn one_child(child: impl FnOnce() + 'static, parent: impl FnOnce()) -> Duration {
    processes(vec![Box::new(child)], parent)
}

/// Spins on `f` until true; after 256 looks (several µs, far above a
/// cache-line round trip) yields between looks, so that a peer preempted on
/// an oversubscribed machine costs a yield, not a whole time slice of
/// spinning (which made an earlier spin floor read milliseconds).
#[inline]
fn spin_until(mut f: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !f() {
        std::hint::spin_loop();
        n = n.saturating_add(1);
        if n > 256 {
            std::thread::yield_now();
        }
    }
}

fn fd_pair(kind: &str) -> (i32, i32) {
    let mut fds = [0i32; 2];
    let r = if kind == "pipe" {
        // SAFETY: pipe(2) writes two fds into the array.
        unsafe { libc::pipe(fds.as_mut_ptr()) }
    } else {
        // SAFETY: socketpair(2) writes two fds into the array.
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }
    };
    assert_eq!(r, 0);
    (fds[0], fds[1])
}

fn read_exact(fd: i32, buf: &mut [u8]) {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the pointer/length pair is a live slice tail.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        assert!(n > 0, "read failed");
        got += n as usize;
    }
}

fn write_all(fd: i32, buf: &[u8]) {
    let mut put = 0;
    while put < buf.len() {
        // SAFETY: the pointer/length pair is a live slice tail.
        let n = unsafe { libc::write(fd, buf[put..].as_ptr().cast(), buf.len() - put) };
        assert!(n > 0, "write failed");
        put += n as usize;
    }
}

fn close(fd: i32) {
    // SAFETY: closing an fd we own (a second close of a socketpair end fails harmlessly).
    unsafe { libc::close(fd) };
}

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip_8B");
    group.sample_size(20);

    group.bench_function("floor_spin_cache_line", |b| {
        let turn = word64(128);
        b.iter_custom(|iters| {
            turn.store(0, Ordering::SeqCst);
            one_child(
                move || {
                    for i in 0..iters {
                        spin_until(|| turn.load(Ordering::Acquire) == 2 * i + 1);
                        turn.store(2 * i + 2, Ordering::Release);
                    }
                },
                || {
                    for i in 0..iters {
                        turn.store(2 * i + 1, Ordering::Release);
                        spin_until(|| turn.load(Ordering::Acquire) == 2 * i + 2);
                    }
                },
            )
        });
    });

    // The floor for any channel that gives each direction its own memory
    // (a duplex Pipe is two rings): each side stores to its own line and
    // spins on the other's, so a round trip moves two lines, not one.
    group.bench_function("floor_spin_two_lines", |b| {
        let (ping, pong) = (word64(1024), word64(1152));
        b.iter_custom(|iters| {
            ping.store(0, Ordering::SeqCst);
            pong.store(0, Ordering::SeqCst);
            one_child(
                move || {
                    for i in 1..=iters {
                        spin_until(|| ping.load(Ordering::Acquire) == i);
                        pong.store(i, Ordering::Release);
                    }
                },
                || {
                    for i in 1..=iters {
                        ping.store(i, Ordering::Release);
                        spin_until(|| pong.load(Ordering::Acquire) == i);
                    }
                },
            )
        });
    });

    group.bench_function("floor_futex_pingpong", |b| {
        let (ping, pong) = (word(256), word(384));
        b.iter_custom(|iters| {
            ping.store(0, Ordering::SeqCst);
            pong.store(0, Ordering::SeqCst);
            one_child(
                move || {
                    for i in 1..=iters as u32 {
                        while ping.load(Ordering::Acquire) != i {
                            futex::wait(ping, i - 1, None);
                        }
                        pong.store(i, Ordering::Release);
                        futex::wake_one(pong);
                    }
                },
                || {
                    for i in 1..=iters as u32 {
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

    for kind in ["pipe", "socketpair"] {
        group.bench_function(format!("alt_{kind}"), |b| {
            b.iter_custom(|iters| {
                let (to_child_r, to_child_w, to_parent_r, to_parent_w) = if kind == "pipe" {
                    let (a, b) = fd_pair("pipe");
                    let (c, d) = fd_pair("pipe");
                    (a, b, c, d)
                } else {
                    let (a, b) = fd_pair("socketpair");
                    (b, a, a, b)
                };
                let took = one_child(
                    move || {
                        let mut buf = [0u8; 8];
                        for _ in 0..iters {
                            read_exact(to_child_r, &mut buf);
                            write_all(to_parent_w, &buf);
                        }
                    },
                    || {
                        let mut buf = [0u8; 8];
                        for i in 0..iters {
                            buf.copy_from_slice(&i.to_le_bytes());
                            write_all(to_child_w, &buf);
                            read_exact(to_parent_r, &mut buf);
                        }
                    },
                );
                for fd in [to_child_r, to_child_w, to_parent_r, to_parent_w] {
                    close(fd);
                }
                took
            });
        });
    }

    let arena = Arena::anonymous(64 << 20).unwrap();
    for (name, strategy) in [
        ("spin", WaitStrategy::Spin),
        ("default", WaitStrategy::DEFAULT),
        ("park", WaitStrategy::Park),
    ] {
        group.bench_function(format!("shmproc_pipe_{name}"), |b| {
            let (a, z) = Pipe::with_capacity_in(&arena, 4096).unwrap();
            let a = a.with_wait_strategy(strategy);
            let z = z.with_wait_strategy(strategy);
            b.iter_custom(|iters| {
                let z = z.clone();
                one_child(
                    move || {
                        for _ in 0..iters {
                            let v: u64 = z.recv().unwrap();
                            z.send(v).unwrap();
                        }
                    },
                    || {
                        for i in 0..iters {
                            a.send(i).unwrap();
                            black_box(a.recv::<u64>().unwrap());
                        }
                    },
                )
            });
        });
    }

    group.bench_function("shmproc_queue_default", |b| {
        let ping = Queue::<u64>::with_capacity_in(&arena, 16).unwrap();
        let pong = Queue::<u64>::with_capacity_in(&arena, 16).unwrap();
        b.iter_custom(|iters| {
            let (ping2, pong2) = (ping.clone(), pong.clone());
            one_child(
                move || {
                    for _ in 0..iters {
                        let v = ping2.get().unwrap();
                        pong2.put(v).unwrap();
                    }
                },
                || {
                    for i in 0..iters {
                        ping.put(i).unwrap();
                        black_box(pong.get().unwrap());
                    }
                },
            )
        });
    });
    group.finish();
}

const DONE: usize = 512;

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput_64B");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    let arena = Arena::anonymous(64 << 20).unwrap();
    let done = word(DONE);

    group.bench_function("shmproc_spsc", |b| {
        let (rx, tx) = Pipe::simplex_in(&arena, 64 << 10).unwrap();
        b.iter_custom(|iters| {
            done.store(0, Ordering::SeqCst);
            let rx = rx.clone();
            one_child(
                move || {
                    for _ in 0..iters {
                        black_box(rx.recv::<[u8; 64]>().unwrap());
                    }
                    done.store(1, Ordering::Release);
                },
                || {
                    let msg = [7u8; 64];
                    for _ in 0..iters {
                        tx.send(msg).unwrap();
                    }
                    spin_until(|| done.load(Ordering::Acquire) == 1);
                },
            )
        });
    });

    group.bench_function("shmproc_queue", |b| {
        let queue = Queue::<[u8; 64]>::with_capacity_in(&arena, 1024).unwrap();
        b.iter_custom(|iters| {
            done.store(0, Ordering::SeqCst);
            let q = queue.clone();
            one_child(
                move || {
                    for _ in 0..iters {
                        black_box(q.get().unwrap());
                    }
                    done.store(1, Ordering::Release);
                },
                || {
                    let msg = [7u8; 64];
                    for _ in 0..iters {
                        queue.put(msg).unwrap();
                    }
                    spin_until(|| done.load(Ordering::Acquire) == 1);
                },
            )
        });
    });

    group.bench_function("alt_pipe", |b| {
        b.iter_custom(|iters| {
            let (r, w) = fd_pair("pipe");
            let took = one_child(
                move || {
                    let mut buf = [0u8; 64];
                    for _ in 0..iters {
                        read_exact(r, &mut buf);
                    }
                },
                || {
                    let msg = [7u8; 64];
                    for _ in 0..iters {
                        write_all(w, &msg);
                    }
                },
            );
            close(r);
            close(w);
            took
        });
    });

    group.bench_function("alt_crossbeam", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = crossbeam_channel::bounded::<[u8; 64]>(1024);
            let start = Instant::now();
            let consumer = std::thread::spawn(move || {
                for _ in 0..iters {
                    black_box(rx.recv().unwrap());
                }
            });
            let msg = [7u8; 64];
            for _ in 0..iters {
                tx.send(msg).unwrap();
            }
            consumer.join().unwrap();
            start.elapsed()
        });
    });
    group.finish();
}

fn payload(c: &mut Criterion) {
    const MIB: usize = 1 << 20;
    let mut group = c.benchmark_group("payload_1MiB");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(MIB as u64));
    let arena = Arena::anonymous(256 << 20).unwrap();
    let done = word(DONE);

    group.bench_function("floor_memcpy", |b| {
        let src = vec![3u8; MIB];
        let mut dst = vec![0u8; MIB];
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        });
    });

    for mode in ["loan", "send"] {
        group.bench_function(format!("shmproc_{mode}"), |b| {
            let (rx, tx) = Pipe::simplex_in(&arena, 8 * MIB).unwrap();
            let src = vec![5u8; MIB];
            b.iter_custom(|iters| {
                done.store(0, Ordering::SeqCst);
                let mut rx = rx.clone();
                let mut tx = tx.clone();
                one_child(
                    move || {
                        for _ in 0..iters {
                            let frame = rx.recv_ref().unwrap();
                            // Read in place: one byte per page.
                            let sum: u64 = frame.iter().step_by(4096).map(|&b| u64::from(b)).sum();
                            black_box(sum);
                        }
                        done.store(1, Ordering::Release);
                    },
                    || {
                        for i in 0..iters {
                            if mode == "loan" {
                                // Produce the message in place (one write pass).
                                let mut loan = tx.loan(MIB).unwrap();
                                loan.fill(i as u8);
                                loan.commit().unwrap();
                            } else {
                                tx.send_bytes(&src).unwrap();
                            }
                        }
                        spin_until(|| done.load(Ordering::Acquire) == 1);
                    },
                )
            });
        });
    }
    group.finish();
}

fn mpmc(c: &mut Criterion) {
    let mut group = c.benchmark_group("mpmc_64B");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let arena = Arena::anonymous(64 << 20).unwrap();
    let queue = Queue::<[u8; 64]>::with_capacity_in(&arena, 1024).unwrap();
    group.bench_with_input(BenchmarkId::new("shmproc_queue", "2x2"), &2, |b, &n| {
        b.iter_custom(|iters| {
            let per = iters / n;
            let total = per * n;
            let got = word64(640);
            got.store(0, Ordering::SeqCst);
            let mut children: Vec<Box<dyn FnOnce()>> = Vec::new();
            for _ in 0..n {
                let q = queue.clone();
                children.push(Box::new(move || {
                    for _ in 0..per {
                        q.put([1u8; 64]).unwrap();
                    }
                }));
            }
            for _ in 0..n {
                let q = queue.clone();
                children.push(Box::new(move || {
                    // Count locally; publish every 256 messages and on a lull.
                    let mut mine = 0u64;
                    while got.load(Ordering::Relaxed) < total {
                        match q.get_timeout(Duration::from_millis(1)) {
                            Ok(m) => {
                                black_box(m);
                                mine += 1;
                                if mine == 256 {
                                    got.fetch_add(mine, Ordering::Relaxed);
                                    mine = 0;
                                }
                            }
                            Err(_) => {
                                got.fetch_add(mine, Ordering::Relaxed);
                                mine = 0;
                            }
                        }
                    }
                }));
            }
            processes(children, || {
                spin_until(|| got.load(Ordering::Relaxed) >= total);
            })
            .mul_f64(iters as f64 / total.max(1) as f64)
        });
    });
    group.finish();
}

criterion_group!(benches, roundtrip, throughput, payload, mpmc);
criterion_main!(benches);
