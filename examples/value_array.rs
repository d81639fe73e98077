//! Shared memory: the seed's `Value` and `Array` example.
//!
//! `cargo run --release --example value_array`
//!
//! Python (the seed):
//!
//! ```python
//! def f(n, a):
//!     n.value = 3.14
//!     a[0] = 5
//!
//! num = multiprocessing.Value('d', 0.0)
//! arr = multiprocessing.Array('i', range(10))
//! p = multiprocessing.Process(target=f, args=(num, arr))
//! p.start()
//! p.join()
//! print(num.value)   # 3.14
//! print(arr[:])      # [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! ```
//!
//! The type code `'d'` is the Rust type `f64`, `'i'` is `i32`. Then, as a
//! second part, the increment Python writes as `with n.get_lock(): n.value += 1`,
//! from four processes at once.

// The seed stores 3.14 (a number, not an approximation of π).
#![allow(clippy::approx_constant)]

use shmproc::{Array, Process, Value};

fn f(n: &Value<f64>, a: &Array<i32>) -> shmproc::Result<()> {
    n.set(3.14);
    a.set(0, 5)
}

fn main() -> shmproc::Result<()> {
    // Shared objects are created before the processes that use them.
    let num = Value::new(0.0f64)?;
    let arr = Array::from_iter(0..10i32)?;

    let (n, a) = (num.clone(), arr.clone());
    let mut p = Process::new(move || f(&n, &a).expect("shared write"));
    p.start()?;
    p.join()?;

    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    assert_eq!(num.get(), 3.14);
    assert_eq!(arr.to_vec(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // Read-modify-write needs the lock: `*counter.lock()? += 1` is Python's
    // `with counter.get_lock(): counter.value += 1`.
    let counter = Value::new(0u64)?;
    let mut workers: Vec<Process> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            Process::new(move || {
                for _ in 0..10_000 {
                    *counter.lock().expect("lock") += 1;
                }
            })
        })
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    for w in &workers {
        assert_eq!(w.join()?, 0);
    }
    println!("4 processes x 10000 locked increments = {}", counter.get());
    assert_eq!(counter.get(), 40_000);
    Ok(())
}
