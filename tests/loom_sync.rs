//! Loom models of the sync cores (src/sync), with the futex stand-in.
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_sync`
//!
//! A lost wake-up shows up as a loom deadlock (the stand-in has no
//! time-outs), a broken mutual exclusion as a failed assertion.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shmproc::sync::{
    BarrierWait, RawBarrier, RawCondition, RawEvent, RawLock, RawRLock, RawSemaphore, WaitStrategy,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(5);
    builder.check(f);
}

/// Two threads increment a counter with a load and a store under the lock.
#[test]
fn lock_is_mutually_exclusive_and_wakes_sleepers() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let counter = Arc::new(AtomicU32::new(0));
        let other = {
            let (lock, counter) = (lock.clone(), counter.clone());
            thread::spawn(move || {
                lock.lock_with(WaitStrategy::Park).unwrap();
                let v = counter.load(Ordering::Relaxed);
                counter.store(v + 1, Ordering::Relaxed);
                lock.unlock().unwrap();
            })
        };
        lock.lock_with(WaitStrategy::DEFAULT).unwrap();
        let v = counter.load(Ordering::Relaxed);
        counter.store(v + 1, Ordering::Relaxed);
        lock.unlock().unwrap();
        other.join().unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        assert!(!lock.is_locked());
    });
}

/// The re-entrant lock: nested levels, then a contender.
#[test]
fn rlock_nests_and_excludes() {
    model(|| {
        let lock = Arc::new(RawRLock::new());
        let counter = Arc::new(AtomicU32::new(0));
        let other = {
            let (lock, counter) = (lock.clone(), counter.clone());
            thread::spawn(move || {
                lock.lock_until(None, WaitStrategy::Park).unwrap().unwrap();
                let v = counter.load(Ordering::Relaxed);
                counter.store(v + 1, Ordering::Relaxed);
                lock.unlock().unwrap();
            })
        };
        lock.lock_until(None, WaitStrategy::Park).unwrap().unwrap();
        assert!(lock.try_lock());
        assert_eq!(lock.depth(), 2);
        let v = counter.load(Ordering::Relaxed);
        counter.store(v + 1, Ordering::Relaxed);
        lock.unlock().unwrap();
        lock.unlock().unwrap();
        other.join().unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        assert!(!lock.is_locked());
    });
}

/// A set is never lost: the waiter may sleep before or after it.
#[test]
fn event_set_wakes_waiter() {
    model(|| {
        let event = Arc::new(RawEvent::new());
        let data = Arc::new(AtomicU32::new(0));
        let setter = {
            let (event, data) = (event.clone(), data.clone());
            thread::spawn(move || {
                data.store(7, Ordering::Relaxed);
                event.set();
            })
        };
        assert!(event.wait_until(None, WaitStrategy::Park));
        // What the setter wrote before `set` is visible after `wait`.
        assert_eq!(data.load(Ordering::Relaxed), 7);
        assert!(event.is_set());
        setter.join().unwrap();
    });
}

/// One set wakes every waiter (two sleepers, one setter).
#[test]
fn event_set_wakes_all_waiters() {
    model(|| {
        let event = Arc::new(RawEvent::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let event = event.clone();
                thread::spawn(move || event.wait_until(None, WaitStrategy::Park))
            })
            .collect();
        event.set();
        for waiter in waiters {
            assert!(waiter.join().unwrap());
        }
    });
}

/// Releases reach sleepers: two takers, two releases from another thread.
#[test]
fn semaphore_release_wakes_takers() {
    model(|| {
        let sem = Arc::new(RawSemaphore::new(0, 1));
        let taker = {
            let sem = sem.clone();
            thread::spawn(move || assert!(sem.acquire_until(None, WaitStrategy::Park)))
        };
        let giver = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.release(1).unwrap();
            })
        };
        giver.join().unwrap();
        taker.join().unwrap();
        assert_eq!(sem.value(), 0);
        sem.release(1).unwrap();
        assert!(sem.release(1).is_err(), "bound 1 must refuse a second unit");
    });
}

/// The classic lost-wake-up scenario: flag + notify under the lock.
#[test]
fn condition_notify_after_registration_is_not_lost() {
    model(|| {
        let lock = Arc::new(RawLock::new());
        let cond = Arc::new(RawCondition::new());
        let flag = Arc::new(AtomicU32::new(0));
        let notifier = {
            let (lock, cond, flag) = (lock.clone(), cond.clone(), flag.clone());
            thread::spawn(move || {
                lock.lock_with(WaitStrategy::Park).unwrap();
                flag.store(1, Ordering::Relaxed);
                cond.notify(1);
                lock.unlock().unwrap();
            })
        };
        lock.lock_with(WaitStrategy::Park).unwrap();
        while flag.load(Ordering::Relaxed) == 0 {
            let ticket = cond.register();
            lock.unlock().unwrap();
            cond.sleep(ticket, None, WaitStrategy::Park);
            lock.lock_with(WaitStrategy::Park).unwrap();
        }
        lock.unlock().unwrap();
        notifier.join().unwrap();
        assert_eq!(cond.waiters(), 0);
    });
}

/// Notify without the lock, after the waiter registered: still seen.
#[test]
fn condition_notify_without_lock_after_register() {
    model(|| {
        let cond = Arc::new(RawCondition::new());
        let ticket = cond.register();
        let notifier = {
            let cond = cond.clone();
            thread::spawn(move || cond.notify(u32::MAX))
        };
        assert!(cond.sleep(ticket, None, WaitStrategy::Park));
        notifier.join().unwrap();
    });
}

/// Two parties: both pass with distinct indices; the next round works.
#[test]
fn barrier_two_parties_pass_with_distinct_indices() {
    model(|| {
        let barrier = Arc::new(RawBarrier::new(2));
        let other = {
            let barrier = barrier.clone();
            thread::spawn(move || barrier.wait_until(None, WaitStrategy::Park))
        };
        let mine = barrier.wait_until(None, WaitStrategy::Park);
        let theirs = other.join().unwrap();
        let mut indices = match (mine, theirs) {
            (BarrierWait::Passed(a), BarrierWait::Passed(b)) => [a, b],
            other => panic!("both must pass: {other:?}"),
        };
        indices.sort();
        assert_eq!(indices, [0, 1]);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.is_broken());
    });
}

/// Abort wakes a waiter with Broken (or it finds the barrier broken).
#[test]
fn barrier_abort_wakes_waiter() {
    model(|| {
        let barrier = Arc::new(RawBarrier::new(2));
        let waiter = {
            let barrier = barrier.clone();
            thread::spawn(move || barrier.wait_until(None, WaitStrategy::Park))
        };
        barrier.abort();
        assert_eq!(waiter.join().unwrap(), BarrierWait::Broken);
        assert!(barrier.is_broken());
        barrier.reset();
        assert!(!barrier.is_broken());
    });
}

/// Reset while a party waits: it fails with Broken, and the barrier works after.
#[test]
fn barrier_reset_breaks_waiter_then_reopens() {
    model(|| {
        let barrier = Arc::new(RawBarrier::new(2));
        let waiter = {
            let barrier = barrier.clone();
            thread::spawn(move || barrier.wait_until(None, WaitStrategy::Park))
        };
        // Reset only once the waiter is inside (otherwise it would wait for
        // a second party forever).
        while barrier.n_waiting() == 0 {
            thread::yield_now();
        }
        barrier.reset();
        assert_eq!(waiter.join().unwrap(), BarrierWait::Broken);
        assert!(!barrier.is_broken());
        assert_eq!(barrier.n_waiting(), 0);
    });
}
