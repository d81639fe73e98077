//! Sync primitives across processes, each case under the harness watchdog.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit};
use shmproc::{Arena, Lock, Offset};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() {
    common::main(
        &[
            case!(lock_counter_4_processes, 120),
            case!(lock_owner_killed_is_recovered, 30),
            case!(lock_owner_thread_of_killed_process_is_recovered, 30),
            case!(lock_timeout_reports_timeout, 30),
            case!(lock_published_by_name, 30),
        ],
        &[helper!(hold_named_lock)],
    );
}

/// Spins (sleeping 1 ms) until `flag` holds `value` or 10 s pass.
fn wait_flag(arena: &Arena, flag: Offset<u32>, value: u32) {
    let word = arena.atomic_u32(flag).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while word.load(Ordering::Acquire) != value {
        assert!(Instant::now() < until, "flag never became {value}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn set_flag(arena: &Arena, flag: Offset<u32>, value: u32) {
    arena
        .atomic_u32(flag)
        .unwrap()
        .store(value, Ordering::Release);
}

fn kill(pid: i32) {
    // SAFETY: kill(2) on a child we forked.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn lock_counter_4_processes() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let counter: Offset<u64> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    for _ in 0..4 {
        let (lock, arena) = (lock.clone(), arena.clone());
        kids.fork(move || {
            for _ in 0..100_000 {
                let _guard = lock.acquire().unwrap();
                // A plain (non-atomic) read-modify-write: only the lock makes it exact.
                let v = arena.read(counter).unwrap();
                arena.write(counter, v + 1).unwrap();
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(100));
    assert_eq!(arena.read(counter).unwrap(), 400_000);
    assert!(!lock.is_locked());
}

fn lock_owner_killed_is_recovered() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let flag: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    let holder = {
        let (lock, arena) = (lock.clone(), arena.clone());
        kids.fork(move || {
            let guard = lock.acquire().unwrap();
            set_flag(&arena, flag, 1);
            std::thread::sleep(Duration::from_secs(60));
            drop(guard);
        })
    };
    wait_flag(&arena, flag, 1);
    // A sibling waits for the lock while the holder is killed.
    let sibling = {
        let lock = lock.clone();
        kids.fork(move || {
            let died = lock
                .acquire()
                .expect_err("the holder died: OwnerDied expected");
            assert_eq!(died.pid(), holder);
            let guard = died.into_inner();
            drop(guard);
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    kill(holder);
    // Not reaped yet: the holder is a zombie while the sibling recovers.
    assert_eq!(kids.wait(sibling, Duration::from_secs(10)), Exit::Code(0));
    assert_eq!(
        kids.wait(holder, Duration::from_secs(10)),
        Exit::Signal(libc::SIGKILL)
    );
    // Recovered and released cleanly: the next acquire is a plain one.
    assert!(lock.acquire().is_ok());
}

fn lock_owner_thread_of_killed_process_is_recovered() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let flag: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    let holder = {
        let (lock, arena) = (lock.clone(), arena.clone());
        kids.fork(move || {
            // A second thread of the child holds the lock when it is killed.
            std::thread::spawn(move || {
                let _guard = lock.acquire().unwrap();
                set_flag(&arena, flag, 1);
                std::thread::sleep(Duration::from_secs(60));
            });
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    wait_flag(&arena, flag, 1);
    kill(holder);
    assert_eq!(
        kids.wait(holder, Duration::from_secs(10)),
        Exit::Signal(libc::SIGKILL)
    );
    let started = Instant::now();
    let died = lock
        .acquire_timeout(Duration::from_secs(10))
        .expect("the lock of a dead holder must be recovered, not time out")
        .expect_err("OwnerDied expected");
    assert_eq!(died.pid(), holder);
    eprintln!("recovered in {:?}", started.elapsed());
    drop(died.into_inner());
    assert!(!lock.is_locked());
}

fn lock_timeout_reports_timeout() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let flag: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    let holder = {
        let (lock, arena) = (lock.clone(), arena.clone());
        kids.fork(move || {
            let _guard = lock.acquire().unwrap();
            set_flag(&arena, flag, 1);
            wait_flag(&arena, flag, 2);
        })
    };
    wait_flag(&arena, flag, 1);
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(5),
        Duration::from_millis(50),
    ] {
        let started = Instant::now();
        assert!(lock.acquire_timeout(timeout).is_none());
        let took = started.elapsed();
        // Loose: never early; late only by scheduling noise.
        assert!(
            took >= timeout,
            "returned after {took:?}, before {timeout:?}"
        );
    }
    assert!(lock.try_acquire().is_none());
    set_flag(&arena, flag, 2);
    assert_eq!(kids.wait(holder, Duration::from_secs(10)), Exit::Code(0));
    assert!(lock.acquire_timeout(Duration::from_secs(5)).is_some());
}

fn lock_published_by_name() {
    let name = common::shm_name("lock");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    arena.publish("the-lock", &lock).unwrap();
    let counter: Offset<u64> = arena.alloc_value(0).unwrap();
    arena.publish("counter", &counter).unwrap();
    let helper = common::spawn_helper("hold_named_lock", &[&name]);
    {
        for _ in 0..10_000 {
            let _guard = lock.acquire().unwrap();
            let v = arena.read(counter).unwrap();
            arena.write(counter, v + 1).unwrap();
        }
    }
    assert!(common::wait_helper(helper, Duration::from_secs(20)));
    assert_eq!(arena.read(counter).unwrap(), 20_000);
}

/// An unrelated process: attaches by name and adds 10,000 under the lock.
fn hold_named_lock(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    let lock: Lock = arena.lookup("the-lock").unwrap();
    let counter: Offset<u64> = arena.lookup("counter").unwrap();
    for _ in 0..10_000 {
        let _guard = lock.acquire().unwrap();
        let v = arena.read(counter).unwrap();
        arena.write(counter, v + 1).unwrap();
    }
}
