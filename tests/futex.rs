//! futex(2) wrapper tests across processes (harness = false: see tests/common).

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit};
use shmproc::Arena;
use shmproc::futex::{self, WaitResult};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() {
    common::main(
        &[
            case!(changed_value_returns_at_once, 10),
            case!(deadline_is_reported, 10),
            case!(wakes_a_sleeper_in_another_process, 20),
            case!(signals_do_not_move_the_deadline, 20),
            case!(wake_counts_sleepers, 20),
        ],
        &[],
    );
}

fn changed_value_returns_at_once() {
    let arena = Arena::anonymous(1 << 16).unwrap();
    let word = arena.atomic_u32(arena.alloc_value(5u32).unwrap()).unwrap();
    assert_eq!(futex::wait(word, 4, None), WaitResult::Changed);
    let past = Instant::now() - Duration::from_millis(1);
    assert_eq!(futex::wait(word, 5, Some(past)), WaitResult::TimedOut);
}

fn deadline_is_reported() {
    let arena = Arena::anonymous(1 << 16).unwrap();
    let word = arena.atomic_u32(arena.alloc_value(0u32).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(30);
    loop {
        match futex::wait(word, 0, Some(deadline)) {
            WaitResult::TimedOut => break,
            // Spurious: callers loop, as here.
            WaitResult::Woken | WaitResult::Changed => continue,
        }
    }
    assert!(
        Instant::now() >= deadline,
        "never returns TimedOut before the deadline"
    );
}

fn wakes_a_sleeper_in_another_process() {
    let arena = Arena::anonymous(1 << 16).unwrap();
    let at = arena.alloc_value(0u32).unwrap();
    let mut kids = Children::new();
    let child_arena = arena.clone();
    let pid = kids.fork(move || {
        let word = child_arena.atomic_u32(at).unwrap();
        while word.load(Ordering::Acquire) == 0 {
            futex::wait(word, 0, None);
        }
        assert_eq!(word.load(Ordering::Acquire), 7);
    });
    let word = arena.atomic_u32(at).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    word.store(7, Ordering::Release);
    futex::wake_all(word);
    assert_eq!(kids.wait(pid, Duration::from_secs(10)), Exit::Code(0));
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// A waiter interrupted by signals (EINTR) keeps its absolute deadline: it
/// neither returns TimedOut early nor sleeps past it by the interruptions.
fn signals_do_not_move_the_deadline() {
    let arena = Arena::anonymous(1 << 16).unwrap();
    let at = arena.alloc_value(0u32).unwrap();
    let ready = arena.alloc_value(0u32).unwrap();
    let mut kids = Children::new();
    let child_arena = arena.clone();
    let pid = kids.fork(move || {
        // SAFETY: installs a handler that does nothing, without SA_RESTART.
        unsafe { libc::signal(libc::SIGUSR1, on_usr1 as *const () as usize) };
        let word = child_arena.atomic_u32(at).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(300);
        child_arena
            .atomic_u32(ready)
            .unwrap()
            .store(1, Ordering::Release);
        let mut interrupted = 0;
        loop {
            match futex::wait(word, 0, Some(deadline)) {
                WaitResult::TimedOut => break,
                _ => interrupted += 1,
            }
        }
        assert!(Instant::now() >= deadline);
        assert!(interrupted > 0, "the signals did interrupt the wait");
    });
    let ready = arena.atomic_u32(ready).unwrap();
    while ready.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(10));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGUSR1) };
    }
    assert_eq!(kids.wait(pid, Duration::from_secs(10)), Exit::Code(0));
}

fn wake_counts_sleepers() {
    let arena = Arena::anonymous(1 << 16).unwrap();
    let at = arena.alloc_value(0u32).unwrap();
    let asleep = arena.alloc_value(0u32).unwrap();
    let mut kids = Children::new();
    for _ in 0..3 {
        let child_arena = arena.clone();
        kids.fork(move || {
            let word = child_arena.atomic_u32(at).unwrap();
            child_arena
                .atomic_u32(asleep)
                .unwrap()
                .fetch_add(1, Ordering::AcqRel);
            while word.load(Ordering::Acquire) == 0 {
                futex::wait(word, 0, None);
            }
        });
    }
    let word = arena.atomic_u32(at).unwrap();
    let asleep = arena.atomic_u32(asleep).unwrap();
    while asleep.load(Ordering::Acquire) < 3 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(50));
    // Without a store, the sleepers go back to sleep: wake one at a time.
    let mut woken = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while woken < 3 && Instant::now() < until {
        woken += futex::wake_one(word);
    }
    assert!(woken >= 3, "each sleeper is woken ({woken})");
    word.store(1, Ordering::Release);
    futex::wake_all(word);
    kids.join_all_ok(Duration::from_secs(10));
}
