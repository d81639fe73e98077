//! Loom models of the pool's task-slot state machine and its sleep/wake
//! handshake (src/pool/slot.rs), through the atomics facade.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_pool`
//!
//! A lost wake-up shows up as a loom deadlock (the futex stand-in has no
//! time-outs); a task run twice or a result lost as a failed assertion.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shmproc::pool::slot::{
    self, CANCELLED, DIED, DONE, FREE, Notify, SlotState, is_final, running,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(4);
    builder.check(f);
}

/// Two workers race to claim one queued task: exactly one wins.
#[test]
fn a_task_is_claimed_once() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        slot.queue();
        let other = {
            let slot = slot.clone();
            thread::spawn(move || slot.claim(2))
        };
        let mine = slot.claim(1);
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one claim wins");
        let expected = if mine { running(1) } else { running(2) };
        assert_eq!(slot.load(), expected);
    });
}

/// The worker finishing its task races the manager declaring that worker
/// dead: exactly one wins, and the slot shows the winner's outcome (with
/// the pid and signal when the manager won).
#[test]
fn finish_and_death_verdict_exactly_one_wins() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        slot.queue();
        assert!(slot.claim(7));
        let manager = {
            let slot = slot.clone();
            thread::spawn(move || slot.fail_dead(7, 4242, 9))
        };
        let finished = slot.finish(7, DONE);
        let failed = manager.join().unwrap();
        assert!(
            finished ^ failed,
            "exactly one of finish and fail_dead wins"
        );
        let state = slot.load();
        if finished {
            assert_eq!(state, DONE);
        } else {
            assert_eq!(slot::kind(state), DIED);
            assert_eq!(slot.death(), (4242, 9));
        }
    });
}

/// A verdict about a dead incarnation never touches the next use of the
/// slot by another worker (the ticket differs).
#[test]
fn a_stale_verdict_misses_the_next_task() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        slot.queue();
        assert!(slot.claim(1));
        assert!(slot.finish(1, DONE));
        slot.release();
        slot.queue();
        let manager = {
            let slot = slot.clone();
            // Worker 1 died after finishing: its verdict comes late.
            thread::spawn(move || slot.fail_dead(1, 99, 9))
        };
        let claimed = slot.claim(2);
        assert!(claimed);
        assert!(slot.finish(2, DONE));
        assert!(!manager.join().unwrap(), "the stale verdict must miss");
        assert_eq!(slot.load(), DONE);
    });
}

/// terminate's cancel races a worker: a finished task keeps its result, an
/// unfinished one is cancelled, never both.
#[test]
fn cancel_and_finish_exactly_one_wins() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        slot.queue();
        let worker = {
            let slot = slot.clone();
            thread::spawn(move || slot.claim(3) && slot.finish(3, DONE))
        };
        let cancelled = slot.cancel();
        let finished = worker.join().unwrap();
        assert!(cancelled ^ finished);
        assert_eq!(slot.load(), if finished { DONE } else { CANCELLED });
    });
}

/// The caller sleeps on the pool's completion word while a worker finishes
/// the task: the caller always wakes and sees the result written before.
#[test]
fn a_waiting_caller_is_woken_with_the_result() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        let done = Arc::new(Notify::new());
        let result = Arc::new(AtomicU32::new(0));
        slot.queue();
        let worker = {
            let (slot, done, result) = (slot.clone(), done.clone(), result.clone());
            thread::spawn(move || {
                assert!(slot.claim(5));
                result.store(42, Ordering::Relaxed);
                assert!(slot.finish(5, DONE));
                done.notify(u32::MAX);
            })
        };
        loop {
            if is_final(slot.load()) {
                break;
            }
            let seen = done.prepare();
            if is_final(slot.load()) {
                done.done();
                break;
            }
            done.sleep(seen, None);
            done.done();
        }
        assert_eq!(
            result.load(Ordering::Relaxed),
            42,
            "the result precedes DONE"
        );
        slot.release();
        assert_eq!(slot.load(), FREE);
        worker.join().unwrap();
    });
}

/// A worker sleeps for work while the caller queues a task and notifies:
/// the worker always wakes and claims it.
#[test]
fn a_sleeping_worker_is_woken_for_new_work() {
    model(|| {
        let slot = Arc::new(SlotState::new());
        let work = Arc::new(Notify::new());
        let worker = {
            let (slot, work) = (slot.clone(), work.clone());
            thread::spawn(move || {
                loop {
                    if slot.claim(1) {
                        return;
                    }
                    let seen = work.prepare();
                    if slot.claim(1) {
                        work.done();
                        return;
                    }
                    work.sleep(seen, None);
                    work.done();
                }
            })
        };
        slot.queue();
        work.notify(1);
        worker.join().unwrap();
        assert_eq!(slot.load(), running(1));
    });
}
