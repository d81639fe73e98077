//! Model check of the arena allocator's free list (src/freelist.rs).
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_freelist`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;
use shmproc::freelist::{pop, push};

/// Blocks 1..=N with a link word and a "held by someone" flag.
struct Heap {
    head: AtomicU64,
    links: Vec<AtomicU64>,
    held: Vec<AtomicBool>,
}

impl Heap {
    fn with_free(n: u64) -> Arc<Heap> {
        let heap = Heap {
            head: AtomicU64::new(0),
            links: (0..=n).map(|_| AtomicU64::new(0)).collect(),
            held: (0..=n).map(|_| AtomicBool::new(false)).collect(),
        };
        for unit in (1..=n).rev() {
            push(&heap.head, unit, &heap.links[unit as usize]);
        }
        Arc::new(heap)
    }

    fn pop(&self) -> Option<u64> {
        let unit = pop(&self.head, |u| self.links.get(u as usize)).expect("in bounds")?;
        assert!(
            !self.held[unit as usize].swap(true, Ordering::Relaxed),
            "block {unit} handed out twice"
        );
        Some(unit)
    }

    fn push(&self, unit: u64) {
        self.held[unit as usize].store(false, Ordering::Relaxed);
        push(&self.head, unit, &self.links[unit as usize]);
    }

    /// Drains the list single-threaded and returns the units in it.
    fn drain(&self) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(unit) = self.pop() {
            out.push(unit);
        }
        out.sort();
        out
    }
}

/// The ABA case: one thread pops A and B and pushes A back (so A is on top
/// again with another successor) while the other pops; its stale CAS must fail.
#[test]
fn aba_is_caught_by_the_tag() {
    loom::model(|| {
        let heap = Heap::with_free(3);
        let h = heap.clone();
        let t = thread::spawn(move || {
            let a = h.pop().unwrap();
            let b = h.pop();
            // The new owner scribbles over the link word, as user data would.
            h.links[a as usize].store(0xFFFF_FFFF, Ordering::Relaxed);
            h.push(a);
            if let Some(b) = b {
                h.push(b);
            }
        });
        let mine = heap.pop();
        t.join().unwrap();
        if let Some(unit) = mine {
            heap.push(unit);
        }
        assert_eq!(heap.drain(), vec![1, 2, 3], "no block lost or duplicated");
    });
}

/// Two threads each pop one block and push it back, concurrently.
#[test]
fn concurrent_pop_push() {
    loom::model(|| {
        let heap = Heap::with_free(2);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let h = heap.clone();
                thread::spawn(move || {
                    if let Some(unit) = h.pop() {
                        h.push(unit);
                    }
                })
            })
            .collect();
        for t in handles {
            t.join().unwrap();
        }
        assert_eq!(heap.drain(), vec![1, 2]);
    });
}

/// Out-of-bounds units are reported, not followed.
#[test]
fn corrupt_top_is_reported() {
    loom::model(|| {
        let heap = Heap::with_free(1);
        heap.head.store(99, Ordering::Relaxed);
        assert_eq!(pop(&heap.head, |u| heap.links.get(u as usize)), Err(99));
    });
}
