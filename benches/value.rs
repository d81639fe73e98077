//! Value, AtomicValue and Array against the floor and the alternatives, in one run.
//!
//! `cargo bench --bench value`
//!
//! * `increment_contended/*`: the cost of one increment by this process while
//!   a second party (a forked process, or a thread for the std baselines)
//!   increments the same counter in a tight loop: `Value<u64>` under its
//!   lock and `AtomicValue<u64>::fetch_add` (`shmproc_*`), against the floor
//!   (a bare `AtomicU64` in a shared page, two processes on one cache line)
//!   and the alternatives `AtomicU64` and `Mutex<u64>` shared by two threads.
//! * `increment_alone/*`: the same operations with no second party (floor:
//!   `AtomicU64::fetch_add`).
//! * `bulk_64MiB/*`: copying 64 MiB into and out of an `Array<f64>`
//!   (`write_slice` / `read_into`, one lock and one memcpy each) against the
//!   floors: a plain memcpy between private buffers, and a raw memcpy into
//!   and out of the Array's own pages (measured right before ours).
//!
//! Function ids: `floor_*` (the physical floor), `alt_*` (what one would use
//! instead), `shmproc_*` (ours); `scripts/bench_report.py` relies on it.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use shmproc::{Arena, Array, AtomicValue, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A forked process running `op` in a loop until `stop` is set; killed and
/// reaped when dropped.
struct Hammer {
    pid: i32,
    stop: AtomicValue<u32>,
}

impl Hammer {
    fn start(arena: &Arena, mut op: impl FnMut()) -> Hammer {
        let stop = AtomicValue::new_in(arena, 0u32).expect("stop flag");
        let started = AtomicValue::new_in(arena, 0u32).expect("start flag");
        let (child_stop, child_started) = (stop.clone(), started.clone());
        // SAFETY: forked before this bench starts any thread; the child only
        // runs `op` (shared-memory operations) and then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            child_started.set(1);
            while child_stop.load(Ordering::Relaxed) == 0 {
                for _ in 0..64 {
                    op();
                }
            }
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        while started.get() == 0 {
            std::hint::spin_loop();
        }
        Hammer { pid, stop }
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.set(1);
        let mut status = 0;
        // SAFETY: waitpid on our own child with a pointer to a local.
        if unsafe { libc::waitpid(self.pid, &mut status, 0) } != self.pid {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// A `u64` counter alone in a page of anonymous shared memory (inherited by
/// forked children); the page is never unmapped.
fn shared_counter() -> &'static AtomicU64 {
    // SAFETY: a fresh anonymous shared mapping; no existing memory is touched.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap failed");
    // SAFETY: the page is page-aligned, zero-filled and never unmapped, and
    // any bit pattern is a valid AtomicU64.
    unsafe { &*page.cast::<AtomicU64>() }
}

/// A thread running `op` in a loop until dropped.
struct ThreadHammer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadHammer {
    fn start(op: impl Fn() + Send + 'static) -> ThreadHammer {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (s, st) = (stop.clone(), started.clone());
        let thread = std::thread::spawn(move || {
            st.store(true, Ordering::Release);
            while !s.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    op();
                }
            }
        });
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        ThreadHammer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ThreadHammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn increments(c: &mut Criterion) {
    let arena = Arena::anonymous(16 << 20).expect("arena");
    let value = Value::new_in(&arena, 0u64).expect("value");
    let atomic = AtomicValue::new_in(&arena, 0u64).expect("atomic");

    let mut alone = c.benchmark_group("increment_alone");
    alone.bench_function("shmproc_value_lock", |b| {
        b.iter(|| *value.lock().unwrap() += 1)
    });
    alone.bench_function("shmproc_atomic_value_fetch_add", |b| {
        b.iter(|| atomic.fetch_add(1, Ordering::Relaxed))
    });
    let std_atomic = AtomicU64::new(0);
    alone.bench_function("floor_fetch_add", |b| {
        b.iter(|| black_box(&std_atomic).fetch_add(1, Ordering::Relaxed))
    });
    let std_mutex = Mutex::new(0u64);
    alone.bench_function("alt_std_mutex", |b| {
        b.iter(|| *black_box(&std_mutex).lock().unwrap() += 1)
    });
    alone.finish();

    let mut group = c.benchmark_group("increment_contended");
    {
        let other = value.clone();
        let _hammer = Hammer::start(&arena, move || *other.lock().unwrap() += 1);
        group.bench_function("shmproc_value_lock_2_processes", |b| {
            b.iter(|| *value.lock().unwrap() += 1)
        });
    }
    {
        let other = atomic.clone();
        let _hammer = Hammer::start(&arena, move || {
            other.fetch_add(1, Ordering::Relaxed);
        });
        group.bench_function("shmproc_atomic_value_2_processes", |b| {
            b.iter(|| atomic.fetch_add(1, Ordering::Relaxed))
        });
    }
    {
        // The floor: a bare `AtomicU64` in shared memory, two processes.
        let counter = shared_counter();
        let _hammer = Hammer::start(&arena, move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        group.bench_function("floor_fetch_add_2_processes", |b| {
            b.iter(|| black_box(counter).fetch_add(1, Ordering::Relaxed))
        });
    }
    // Threads last: no fork happens after a thread was started.
    {
        let counter = Arc::new(AtomicU64::new(0));
        let other = counter.clone();
        let _hammer = ThreadHammer::start(move || {
            other.fetch_add(1, Ordering::Relaxed);
        });
        group.bench_function("alt_std_atomic_2_threads", |b| {
            b.iter(|| counter.fetch_add(1, Ordering::Relaxed))
        });
    }
    {
        let counter = Arc::new(Mutex::new(0u64));
        let other = counter.clone();
        let _hammer = ThreadHammer::start(move || *other.lock().unwrap() += 1);
        group.bench_function("alt_std_mutex_2_threads", |b| {
            b.iter(|| *counter.lock().unwrap() += 1)
        });
    }
    group.finish();
}

fn bulk(c: &mut Criterion) {
    const LEN: usize = (64 << 20) / 8;
    let arena = Arena::anonymous(512 << 20).expect("arena");
    let array = Array::<f64>::zeroed_in(&arena, LEN).expect("array");
    // The floor copies into the very pages the Array uses (the same
    // physical memory, so page placement cannot tell the two apart).
    let array_pages = array.lock().expect("array lock").as_mut_ptr();
    let src: Vec<f64> = (0..LEN).map(|i| i as f64).collect();
    let mut dst = vec![0.0f64; LEN];

    let mut group = c.benchmark_group("bulk_64MiB");
    group.throughput(Throughput::Bytes((LEN * 8) as u64));
    group.sample_size(30);
    group.bench_function("floor_memcpy_private_to_private", |b| {
        b.iter(|| black_box(&mut dst).copy_from_slice(black_box(&src)))
    });
    group.bench_function("floor_memcpy_private_to_shm", |b| {
        // SAFETY: `array_pages` is the Array's data, LEN elements, mapped
        // for as long as `array` lives; nothing else touches it meanwhile.
        b.iter(|| unsafe {
            core::ptr::copy_nonoverlapping(black_box(src.as_ptr()), array_pages, LEN)
        })
    });
    group.bench_function("shmproc_array_write_slice", |b| {
        b.iter(|| array.write_slice(0, black_box(&src)).unwrap())
    });
    group.bench_function("shmproc_array_guard_copy_from_slice", |b| {
        b.iter(|| array.lock().unwrap().copy_from_slice(black_box(&src)))
    });
    group.bench_function("floor_memcpy_shm_to_private", |b| {
        // SAFETY: as above; reading the Array's LEN elements.
        b.iter(|| unsafe {
            core::ptr::copy_nonoverlapping(
                array_pages.cast_const(),
                black_box(dst.as_mut_ptr()),
                LEN,
            )
        })
    });
    group.bench_function("shmproc_array_read_into", |b| {
        b.iter(|| array.read_into(0, black_box(&mut dst)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bulk, increments);
criterion_main!(benches);
