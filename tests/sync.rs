//! Sync primitives across processes, each case under the harness watchdog.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit};
use shmproc::{
    Arena, Barrier, BoundedSemaphore, Condition, Error, Event, Lock, Offset, RLock, Semaphore,
    futex,
};
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
            case!(fast_paths_make_no_syscall, 30),
            case!(seed_five_processes_print_under_one_lock, 60),
            case!(rlock_owner_killed_is_recovered, 30),
            case!(rlock_release_by_non_owner_is_an_error, 30),
            case!(semaphore_3_shared_by_8_processes, 120),
            case!(bounded_semaphore_refuses_overflow, 30),
            case!(condition_producer_consumer, 120),
            case!(event_ping_pong_10000_rounds, 120),
            case!(barrier_6_processes_1000_rounds, 120),
            case!(barrier_abort_wakes_everyone, 30),
            case!(barrier_timeout_breaks_it, 30),
            case!(waits_time_out_in_time, 60),
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

fn fast_paths_make_no_syscall() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let rlock = RLock::new_in(&arena).unwrap();
    let event = Event::new_in(&arena).unwrap();
    let sem = Semaphore::new_in(&arena, 2).unwrap();
    let bounded = BoundedSemaphore::new_in(&arena, 1).unwrap();
    let cond = Condition::new_in(&arena).unwrap();
    let barrier = Barrier::new_in(&arena, 1).unwrap();
    // Warm up (the first acquire of a thread reads /proc once, not a futex call).
    drop(lock.acquire().unwrap());
    let before = futex::syscall_count();
    for _ in 0..1000 {
        drop(lock.acquire().unwrap());
        drop(lock.try_acquire().unwrap());
        drop(
            lock.acquire_timeout(Duration::from_secs(1))
                .unwrap()
                .unwrap(),
        );
        let outer = rlock.acquire().unwrap();
        drop(rlock.acquire().unwrap());
        drop(outer);
        assert!(!event.is_set());
        event.set();
        event.set();
        assert!(event.is_set());
        event.wait();
        assert!(event.wait_timeout(Duration::from_secs(1)));
        event.clear();
        drop(sem.acquire());
        drop(sem.try_acquire().unwrap());
        drop(bounded.acquire());
        let guard = cond.acquire().unwrap();
        cond.notify_one();
        cond.notify_all();
        drop(guard);
        assert_eq!(barrier.wait().unwrap(), 0);
    }
    assert_eq!(
        futex::syscall_count(),
        before,
        "a fast path made a futex call"
    );
    // And the counter does count: a timed wait that must sleep.
    assert!(!event.wait_timeout(Duration::from_millis(1)));
    assert!(futex::syscall_count() > before);
}

/// The seed: five processes print under one Lock; no line is interleaved.
fn seed_five_processes_print_under_one_lock() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [read_end, write_end] = fds;
    let mut kids = Children::new();
    for worker in 0..5 {
        let lock = lock.clone();
        kids.fork(move || {
            for line in 0..50 {
                let _guard = lock.acquire().unwrap();
                // Each line in many small writes: only the lock keeps it whole.
                let text = format!("worker {worker} line {line:02} says hello\n");
                for piece in text.as_bytes().chunks(3) {
                    // SAFETY: write(2) from a live buffer to our pipe's write end.
                    let n = unsafe { libc::write(write_end, piece.as_ptr().cast(), piece.len()) };
                    assert_eq!(n, piece.len() as isize);
                    std::thread::yield_now();
                }
            }
        });
    }
    // SAFETY: closing our copy of the write end, so the read sees EOF.
    unsafe { libc::close(write_end) };
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: read(2) into a live buffer.
        let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n >= 0);
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n as usize]);
    }
    kids.join_all_ok(Duration::from_secs(50));
    let text = String::from_utf8(output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 250);
    for line in &lines {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            words.len() == 6
                && words[0] == "worker"
                && words[2] == "line"
                && words[4..] == ["says", "hello"],
            "interleaved line: {line:?}"
        );
    }
    for worker in 0..5 {
        let mine = lines
            .iter()
            .filter(|l| l.starts_with(&format!("worker {worker} ")))
            .count();
        assert_eq!(mine, 50);
    }
}

fn rlock_owner_killed_is_recovered() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let lock = RLock::new_in(&arena).unwrap();
    let flag: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    let holder = {
        let (lock, arena) = (lock.clone(), arena.clone());
        kids.fork(move || {
            let _outer = lock.acquire().unwrap();
            let _inner = lock.acquire().unwrap();
            set_flag(&arena, flag, 1);
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    wait_flag(&arena, flag, 1);
    assert!(lock.try_acquire().is_none());
    kill(holder);
    let died = lock.acquire().expect_err("OwnerDied expected");
    assert_eq!(died.pid(), holder);
    let guard = died.into_inner();
    assert_eq!(lock.depth(), 1, "taking over resets the depth");
    drop(guard);
    assert!(!lock.is_locked());
    assert_eq!(
        kids.wait(holder, Duration::from_secs(10)),
        Exit::Signal(libc::SIGKILL)
    );
}

fn rlock_release_by_non_owner_is_an_error() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let rlock = RLock::new_in(&arena).unwrap();
    let lock = Lock::new_in(&arena).unwrap();
    assert!(matches!(rlock.release(), Err(Error::NotOwner(_))));
    assert!(matches!(lock.release(), Err(Error::NotOwner(_))));
    lock.acquire().unwrap().forget();
    rlock.acquire().unwrap().forget();
    let mut kids = Children::new();
    {
        let (lock, rlock) = (lock.clone(), rlock.clone());
        kids.fork(move || {
            // Another process does not hold them.
            assert!(matches!(lock.release(), Err(Error::NotOwner(_))));
            assert!(matches!(rlock.release(), Err(Error::NotOwner(_))));
        });
    }
    kids.join_all_ok(Duration::from_secs(10));
    assert!(lock.is_locked() && rlock.is_locked());
    lock.release().unwrap();
    rlock.release().unwrap();
    assert!(!lock.is_locked() && !rlock.is_locked());
}

fn semaphore_3_shared_by_8_processes() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let sem = Semaphore::new_in(&arena, 3).unwrap();
    let holders: Offset<u32> = arena.alloc_value(0).unwrap();
    let most: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    for _ in 0..8 {
        let (sem, arena) = (sem.clone(), arena.clone());
        kids.fork(move || {
            let holders = arena.atomic_u32(holders).unwrap();
            let most = arena.atomic_u32(most).unwrap();
            for i in 0..2_000 {
                let _unit = sem.acquire();
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                holders.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(100));
    let most = arena.atomic_u32(most).unwrap().load(Ordering::SeqCst);
    assert!(most <= 3, "{most} processes held a Semaphore(3) at once");
    assert!(most >= 1);
    assert_eq!(sem.value(), 3);
}

fn bounded_semaphore_refuses_overflow() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let sem = BoundedSemaphore::new_in(&arena, 2).unwrap();
    assert!(matches!(
        sem.release(),
        Err(Error::SemaphoreOverflow { bound: 2 })
    ));
    sem.acquire().forget();
    let mut kids = Children::new();
    {
        let sem = sem.clone();
        kids.fork(move || {
            sem.release().unwrap();
            assert!(matches!(
                sem.release(),
                Err(Error::SemaphoreOverflow { bound: 2 })
            ));
        });
    }
    kids.join_all_ok(Duration::from_secs(10));
    assert_eq!(sem.value(), 2);
    let plain = Semaphore::new_in(&arena, 0).unwrap();
    // A failed try or timed acquire takes nothing and gives nothing back.
    assert!(plain.try_acquire().is_none());
    assert!(plain.acquire_timeout(Duration::from_millis(1)).is_none());
    assert_eq!(plain.value(), 0);
    plain.release_n(5).unwrap();
    assert_eq!(plain.value(), 5);
}

fn condition_producer_consumer() {
    const ITEMS: u64 = 20_000;
    const SLOTS: u64 = 8;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let cond = Condition::new_in(&arena).unwrap();
    // A bounded buffer guarded by the condition's lock: [head, tail, slots..].
    let buffer: Offset<[u64; 2 + SLOTS as usize]> =
        arena.alloc_value([0; 2 + SLOTS as usize]).unwrap();
    let mut kids = Children::new();
    let producer = {
        let (cond, arena) = (cond.clone(), arena.clone());
        kids.fork(move || {
            for item in 1..=ITEMS {
                let guard = cond.acquire().unwrap();
                let guard = cond
                    .wait_while(guard, || {
                        let b = arena.read(buffer).unwrap();
                        b[1] - b[0] == SLOTS
                    })
                    .unwrap();
                let mut b = arena.read(buffer).unwrap();
                b[2 + (b[1] % SLOTS) as usize] = item;
                b[1] += 1;
                arena.write(buffer, b).unwrap();
                cond.notify_all();
                drop(guard);
            }
        })
    };
    let consumer = {
        let (cond, arena) = (cond.clone(), arena.clone());
        kids.fork(move || {
            for expected in 1..=ITEMS {
                let guard = cond.acquire().unwrap();
                let guard = cond
                    .wait_while(guard, || {
                        let b = arena.read(buffer).unwrap();
                        b[1] == b[0]
                    })
                    .unwrap();
                let mut b = arena.read(buffer).unwrap();
                let item = b[2 + (b[0] % SLOTS) as usize];
                assert_eq!(item, expected, "items arrive once each, in order");
                b[0] += 1;
                arena.write(buffer, b).unwrap();
                cond.notify_all();
                drop(guard);
            }
        })
    };
    assert_eq!(kids.wait(producer, Duration::from_secs(100)), Exit::Code(0));
    assert_eq!(kids.wait(consumer, Duration::from_secs(100)), Exit::Code(0));
    let b = arena.read(buffer).unwrap();
    assert_eq!((b[0], b[1]), (ITEMS, ITEMS));
}

fn event_ping_pong_10000_rounds() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let ping = Event::new_in(&arena).unwrap();
    let pong = Event::new_in(&arena).unwrap();
    let rounds: Offset<u64> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    {
        let (ping, pong, arena) = (ping.clone(), pong.clone(), arena.clone());
        kids.fork(move || {
            for round in 0..10_000u64 {
                ping.wait();
                ping.clear();
                assert_eq!(arena.read(rounds).unwrap(), round);
                arena.write(rounds, round + 1).unwrap();
                pong.set();
            }
        });
    }
    for round in 0..10_000u64 {
        ping.set();
        pong.wait();
        pong.clear();
        assert_eq!(arena.read(rounds).unwrap(), round + 1);
    }
    kids.join_all_ok(Duration::from_secs(10));
}

fn barrier_6_processes_1000_rounds() {
    const PARTIES: u32 = 6;
    const ROUNDS: u32 = 1_000;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let barrier = Barrier::new_in(&arena, PARTIES).unwrap();
    let arrivals: Offset<u32> = arena.alloc_value(0).unwrap();
    let index_sums: Offset<u32> = arena.alloc_value(0).unwrap();
    let mut kids = Children::new();
    for _ in 0..PARTIES {
        let (barrier, arena) = (barrier.clone(), arena.clone());
        kids.fork(move || {
            let arrivals = arena.atomic_u32(arrivals).unwrap();
            let sums = arena.atomic_u32(index_sums).unwrap();
            for round in 0..ROUNDS {
                arrivals.fetch_add(1, Ordering::SeqCst);
                let index = barrier.wait().unwrap();
                assert!(index < PARTIES);
                sums.fetch_add(index, Ordering::SeqCst);
                // Nobody passes before every party of this round arrived.
                assert!(arrivals.load(Ordering::SeqCst) >= PARTIES * (round + 1));
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(100));
    let sums = arena.atomic_u32(index_sums).unwrap().load(Ordering::SeqCst);
    // Each round hands out 0..6 once each: 15 per round.
    assert_eq!(sums, ROUNDS * (0..PARTIES).sum::<u32>());
    assert!(!barrier.is_broken());
}

fn barrier_abort_wakes_everyone() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let barrier = Barrier::new_in(&arena, 6).unwrap();
    let mut kids = Children::new();
    for _ in 0..5 {
        let barrier = barrier.clone();
        kids.fork(move || {
            assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
        });
    }
    let until = Instant::now() + Duration::from_secs(10);
    while barrier.n_waiting() < 5 {
        assert!(Instant::now() < until, "the parties never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    barrier.abort();
    kids.join_all_ok(Duration::from_secs(10));
    assert!(barrier.is_broken());
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    assert!(!barrier.is_broken());
    // Usable again: a full round across processes.
    for _ in 0..5 {
        let barrier = barrier.clone();
        kids.fork(move || {
            barrier.wait().unwrap();
        });
    }
    barrier.wait().unwrap();
    kids.join_all_ok(Duration::from_secs(10));
}

fn barrier_timeout_breaks_it() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let barrier = Barrier::new_in(&arena, 3).unwrap();
    let mut kids = Children::new();
    {
        let barrier = barrier.clone();
        kids.fork(move || {
            assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
        });
    }
    let until = Instant::now() + Duration::from_secs(10);
    while barrier.n_waiting() < 1 {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    kids.join_all_ok(Duration::from_secs(10));
    assert!(barrier.is_broken());
}

/// Every timed wait returns after its deadline (never before), reporting it.
fn waits_time_out_in_time() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let event = Event::new_in(&arena).unwrap();
    let sem = Semaphore::new_in(&arena, 0).unwrap();
    let cond = Condition::new_in(&arena).unwrap();
    let barrier = Barrier::new_in(&arena, 2).unwrap();
    let timeout = Duration::from_millis(30);
    let check = |what: &str, took: Duration| {
        assert!(
            took >= timeout,
            "{what} returned after {took:?}, before its {timeout:?}"
        );
        // Loose: a few ms is the goal, seconds would mean a missed deadline.
        assert!(
            took < timeout + Duration::from_secs(2),
            "{what} took {took:?}"
        );
        eprintln!("{what}: {:?} late", took - timeout);
    };
    let t = Instant::now();
    assert!(!event.wait_timeout(timeout));
    check("Event::wait_timeout", t.elapsed());
    let t = Instant::now();
    assert!(sem.acquire_timeout(timeout).is_none());
    check("Semaphore::acquire_timeout", t.elapsed());
    let guard = cond.acquire().unwrap();
    let t = Instant::now();
    let (guard, notified) = cond.wait_timeout(guard, timeout).unwrap();
    check("Condition::wait_timeout", t.elapsed());
    assert!(!notified);
    let t = Instant::now();
    let (guard, satisfied) = cond.wait_while_timeout(guard, timeout, || true).unwrap();
    check("Condition::wait_while_timeout", t.elapsed());
    assert!(!satisfied);
    drop(guard);
    let t = Instant::now();
    assert!(matches!(barrier.wait_timeout(timeout), Err(Error::Timeout)));
    check("Barrier::wait_timeout", t.elapsed());
    // The lock held by another live process.
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
    let t = Instant::now();
    assert!(lock.acquire_timeout(timeout).is_none());
    check("Lock::acquire_timeout", t.elapsed());
    set_flag(&arena, flag, 2);
    assert_eq!(kids.wait(holder, Duration::from_secs(10)), Exit::Code(0));
}
