//! Value, Array, their Raw forms and AtomicValue across processes
//! (harness = false: see tests/common/mod.rs).

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit, shm_name, spawn_helper, wait_helper};
use shmproc::{Arena, Array, AtomicValue, Error, RawArray, RawValue, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn main() {
    common::main(
        &[
            case!(seed_example_child_sets_value_and_array, 30),
            case!(two_processes_million_locked_increments_each, 180),
            case!(two_processes_million_atomic_increments_each, 120),
            case!(struct_updated_under_lock_is_never_torn, 120),
            case!(array_64_mib_written_in_halves_by_two_children, 120),
            case!(unrelated_process_looks_up_every_kind, 30),
            case!(lookup_of_a_scribbled_array_is_an_error, 30),
            case!(only_the_creating_process_frees, 30),
            case!(holder_killed_inside_the_lock_is_reported, 60),
        ],
        &[helper!(lookup_and_modify), helper!(lookup_scribbled)],
    );
}

const WAIT: Duration = Duration::from_secs(60);

/// Makes forked children start their loops together (so they contend):
/// each arrives, then waits until `parties` have arrived.
fn start_together(gate: &AtomicValue<u32>, parties: u32) {
    gate.fetch_add(1, Ordering::AcqRel);
    while gate.load(Ordering::Acquire) < parties {
        std::hint::spin_loop();
    }
}

/// The seed: Python's `Value('d', 0.0)` and `Array('i', range(10))`, changed by a child.
#[allow(clippy::approx_constant)] // the seed's own literal, not an approximation of pi
fn seed_example_child_sets_value_and_array() {
    let num = Value::new(0.0f64).unwrap();
    let arr = Array::from_iter(0..10i32).unwrap();
    let mut kids = Children::new();
    let (n, a) = (num.clone(), arr.clone());
    kids.fork(move || {
        n.set(3.14);
        a.set(0, 5).unwrap();
    });
    kids.join_all_ok(WAIT);
    assert_eq!(num.get(), 3.14);
    assert_eq!(arr.to_vec(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

fn two_processes_million_locked_increments_each() {
    const N: u64 = 1_000_000;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let counter = Value::new_in(&arena, 0u64).unwrap();
    let gate = AtomicValue::new_in(&arena, 0u32).unwrap();
    let mut kids = Children::new();
    for _ in 0..2 {
        let (c, gate) = (counter.clone(), gate.clone());
        kids.fork(move || {
            start_together(&gate, 2);
            for _ in 0..N {
                // A plain (non-atomic) read-modify-write: only the lock makes it exact.
                let mut value = c.lock().unwrap();
                *value += 1;
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(170));
    assert_eq!(counter.get(), 2 * N);
}

fn two_processes_million_atomic_increments_each() {
    const N: u64 = 1_000_000;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let counter = AtomicValue::new_in(&arena, 0u64).unwrap();
    let signed = AtomicValue::new_in(&arena, 0i32).unwrap();
    let gate = AtomicValue::new_in(&arena, 0u32).unwrap();
    let mut kids = Children::new();
    for _ in 0..2 {
        let (c, s, gate) = (counter.clone(), signed.clone(), gate.clone());
        kids.fork(move || {
            start_together(&gate, 2);
            for _ in 0..N {
                c.fetch_add(1, Ordering::Relaxed);
                s.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    kids.join_all_ok(Duration::from_secs(110));
    assert_eq!(counter.load(Ordering::Acquire), 2 * N);
    assert_eq!(signed.get(), -2 * N as i32);
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quad {
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: [u32; 8],
}

impl Quad {
    fn consistent(&self) -> bool {
        let x = self.a;
        self.b == x && self.c == x && self.d == x && self.e.iter().all(|&e| e == x as u32)
    }
}

fn struct_updated_under_lock_is_never_torn() {
    const UPDATES: u64 = 200_000;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let quad = Value::new_in(&arena, <Quad as bytemuck::Zeroable>::zeroed()).unwrap();
    let gate = AtomicValue::new_in(&arena, 0u32).unwrap();
    let mut kids = Children::new();
    let (q, g) = (quad.clone(), gate.clone());
    let writer = kids.fork(move || {
        start_together(&g, 2);
        for _ in 0..UPDATES {
            let mut guard = q.lock().unwrap();
            // Field by field, with the lock held: a reader without the lock
            // would catch it half-way.
            guard.a += 1;
            std::hint::black_box(&mut *guard);
            guard.b += 1;
            guard.c += 1;
            guard.d += 1;
            for e in &mut guard.e {
                *e += 1;
            }
        }
    });
    // Two readers: this process through `get`, a child through `lock`.
    let q = quad.clone();
    let reader = kids.fork(move || {
        let mut last = 0;
        while last < UPDATES {
            let guard = q.lock().unwrap();
            assert!(guard.consistent(), "torn under the lock: {:?}", *guard);
            assert!(guard.a >= last, "went backwards");
            last = guard.a;
        }
    });
    start_together(&gate, 2);
    let mut reads = 0u64;
    let mut last = 0;
    while last < UPDATES {
        let seen = quad.get();
        assert!(seen.consistent(), "get() returned a torn value: {seen:?}");
        assert!(seen.a >= last);
        last = seen.a;
        reads += 1;
    }
    assert!(reads > 1);
    assert_eq!(kids.wait(writer, WAIT), Exit::Code(0));
    assert_eq!(kids.wait(reader, WAIT), Exit::Code(0));
    assert_eq!(quad.get().a, UPDATES);
}

fn array_64_mib_written_in_halves_by_two_children() {
    const LEN: usize = (64 << 20) / 8;
    const CHUNK: usize = 1 << 16;
    let arena = Arena::anonymous(256 << 20).unwrap();
    let array = Array::<f64>::zeroed_in(&arena, LEN).unwrap();
    let gate = AtomicValue::new_in(&arena, 0u32).unwrap();
    let mut kids = Children::new();
    for half in 0..2 {
        let a = array.clone();
        let gate = gate.clone();
        kids.fork(move || {
            start_together(&gate, 2);
            let mut chunk = vec![0.0f64; CHUNK];
            let start = half * LEN / 2;
            for base in (start..start + LEN / 2).step_by(CHUNK) {
                for (i, x) in chunk.iter_mut().enumerate() {
                    *x = (base + i) as f64;
                }
                // One lock and one memcpy per chunk: the halves interleave.
                a.write_slice(base, &chunk).unwrap();
            }
        });
    }
    kids.join_all_ok(WAIT);
    let sum: f64 = array.lock().unwrap().iter().sum();
    // Every partial sum is an integer below 2^53: the f64 sum is exact.
    let n = LEN as f64;
    assert_eq!(sum, n * (n - 1.0) / 2.0);
    let mut tail = [0.0; 4];
    array.read_into(LEN - 4, &mut tail).unwrap();
    assert_eq!(tail, [n - 4.0, n - 3.0, n - 2.0, n - 1.0]);
    drop((array, gate));
    assert_eq!(arena.used(), 0);
}

fn unrelated_process_looks_up_every_kind() {
    let name = shm_name("kinds");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let value = Value::new_in(&arena, 1.5f64).unwrap();
    let array = Array::from_slice_in(&arena, &[1i32, 2, 3]).unwrap();
    let raw_value = RawValue::new_in(&arena, [7u16; 3]).unwrap();
    let raw_array = RawArray::from_iter_in(&arena, 0..5u64).unwrap();
    let atomic = AtomicValue::new_in(&arena, 10i64).unwrap();
    arena.publish("value", &value).unwrap();
    arena.publish("array", &array).unwrap();
    arena.publish("raw_value", &raw_value).unwrap();
    arena.publish("raw_array", &raw_array).unwrap();
    arena.publish("atomic", &atomic).unwrap();
    let helper = spawn_helper("lookup_and_modify", &[&name]);
    assert!(wait_helper(helper, WAIT), "the helper failed");
    assert_eq!(value.get(), 3.0);
    assert_eq!(array.to_vec(), [3, 2, 1]);
    assert_eq!(raw_value.get(), [7, 8, 9]);
    assert_eq!(raw_array.to_vec(), [0, 1, 2, 3, 40]);
    assert_eq!(atomic.get(), -5);
}

/// Runs in a process started by `Command` (not forked).
fn lookup_and_modify(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    assert!(matches!(
        arena.lookup::<Value<f32>>("value"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        arena.lookup::<RawArray<i32>>("array"),
        Err(Error::TypeMismatch { .. })
    ));
    let value: Value<f64> = arena.lookup("value").unwrap();
    *value.lock().unwrap() *= 2.0;
    let array: Array<i32> = arena.lookup("array").unwrap();
    assert_eq!(array.len(), 3);
    assert!(array.get(3).is_err());
    array.lock().unwrap().reverse();
    let raw_value: RawValue<[u16; 3]> = arena.lookup("raw_value").unwrap();
    raw_value.set([7, 8, 9]);
    let raw_array: RawArray<u64> = arena.lookup("raw_array").unwrap();
    raw_array.set(4, 40).unwrap();
    let atomic: AtomicValue<i64> = arena.lookup("atomic").unwrap();
    atomic.fetch_sub(15, Ordering::SeqCst);
}

fn lookup_of_a_scribbled_array_is_an_error() {
    let name = shm_name("scribbled");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let array = Array::from_slice_in(&arena, &[1u64, 2, 3]).unwrap();
    let raw = RawArray::from_slice_in(&arena, &[1u64, 2, 3]).unwrap();
    arena.publish("array", &array).unwrap();
    arena.publish("raw", &raw).unwrap();
    // A peer scribbles a huge length into both headers (the `len` word:
    // byte 24 of a locked header, byte 0 of a raw one).
    let header = arena.atomic_u64(shmproc::Offset::from_raw(array.offset().raw() + 24));
    header.unwrap().store(1 << 40, Ordering::Relaxed);
    let raw_header = arena.atomic_u64(shmproc::Offset::from_raw(raw.offset().raw()));
    raw_header.unwrap().store(u64::MAX, Ordering::Relaxed);
    let helper = spawn_helper("lookup_scribbled", &[&name]);
    assert!(wait_helper(helper, WAIT), "the helper failed");
    // Handles made before the scribble keep their checked length.
    assert_eq!(array.len(), 3);
    assert_eq!(array.to_vec(), [1, 2, 3]);
    assert!(raw.get(3).is_err());
}

fn lookup_scribbled(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    let err = arena.lookup::<Array<u64>>("array").unwrap_err();
    assert!(matches!(err, Error::OutOfBounds { .. }), "{err}");
    let err = arena.lookup::<RawArray<u64>>("raw").unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::OutOfBounds { .. }),
        "{err}"
    );
}

fn only_the_creating_process_frees() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let value = Value::new_in(&arena, 1u32).unwrap();
    let array = Array::<u8>::zeroed_in(&arena, 1000).unwrap();
    let atomic = AtomicValue::new_in(&arena, 0u64).unwrap();
    let used = arena.used();
    assert!(used > 0);
    let mut kids = Children::new();
    let handles = std::cell::RefCell::new(Some((value, array, atomic)));
    kids.fork(|| {
        // The child drops every handle it has (its copies of the parent's),
        // so their counts reach zero here: nothing may be freed.
        let (value, array, atomic) = handles.borrow_mut().take().unwrap();
        let clones = (value.clone(), array.clone(), atomic.clone());
        drop((value, array, atomic));
        drop(clones);
        assert_eq!(arena.used(), used);
    });
    kids.join_all_ok(WAIT);
    assert_eq!(arena.used(), used, "a child's drops freed shared memory");
    drop(handles);
    assert_eq!(arena.used(), 0, "the creator's last drop frees");
    let v2 = Value::<u32>::new_in(&arena, 0).unwrap();
    drop(v2);
    assert_eq!(arena.used(), 0);
}

fn holder_killed_inside_the_lock_is_reported() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let value = Value::new_in(&arena, [0u64; 2]).unwrap();
    let (ready, go_on) = (
        AtomicValue::new_in(&arena, 0u32).unwrap(),
        AtomicValue::new_in(&arena, 0u32).unwrap(),
    );
    let mut kids = Children::new();
    let (v, r, g) = (value.clone(), ready.clone(), go_on.clone());
    let pid = kids.fork(move || {
        let mut guard = v.lock().unwrap();
        guard[0] = 1; // half an update
        r.set(1);
        while g.get() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    while ready.get() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(kids.wait(pid, WAIT), Exit::Signal(libc::SIGKILL));
    match value.lock() {
        Ok(_) => panic!("the death of the holder was not reported"),
        Err(died) => {
            assert_eq!(died.pid(), pid);
            let mut guard = died.into_inner();
            assert_eq!(*guard, [1, 0], "the half-written update is visible");
            guard[1] = 1; // repaired
        }
    }
    assert_eq!(value.get(), [1, 1]);
    value.set([2, 2]);
    assert!(value.lock().is_ok(), "taken over once, then normal again");
}
