//! Value and Array: Python's `multiprocessing.Value`/`Array`, across processes.

use shmproc::{Arena, Array, AtomicValue, Value};
use std::sync::atomic::Ordering;

#[allow(clippy::approx_constant)] // the seed's own 3.14
pub fn run() -> crate::Result {
    println!("== value and array");

    // The seed example: `num = Value('d', 0.0); arr = Array('i', range(10))`,
    // a child sets `num.value = 3.14` and `arr[0] = 5`.
    let num = Value::new(0.0f64)?;
    let arr = Array::from_iter(0..10i32)?;
    let (n, a) = (num.clone(), arr.clone());
    let pid = crate::fork(move || {
        n.set(3.14);
        a.set(0, 5).expect("index 0 is in range");
    });
    crate::wait(pid)?;
    println!(
        "  child {pid} set the Value and a[0]: parent sees {} and {:?}",
        num.get(),
        arr.to_vec()
    );
    assert_eq!(num.get(), 3.14);
    assert_eq!(arr.to_vec(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    println!(
        "  a[10] is an error, not a crash: {}",
        arr.get(10).unwrap_err()
    );

    // `with counter.get_lock(): counter.value += 1` in four processes, and a
    // lock-free counter next to it.
    let counter = Value::new(0u64)?;
    let hits = AtomicValue::new(0u64)?;
    let pids: Vec<i32> = (0..4)
        .map(|_| {
            let (c, h) = (counter.clone(), hits.clone());
            crate::fork(move || {
                for _ in 0..100_000 {
                    *c.lock().expect("no holder dies here") += 1;
                    h.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for pid in pids {
        crate::wait(pid)?;
    }
    println!(
        "  4 processes x 100000 increments: locked Value = {}, AtomicValue = {}",
        counter.get(),
        hits.get()
    );
    assert_eq!(counter.get(), 400_000);
    assert_eq!(hits.get(), 400_000);

    // A #[repr(C)] struct updated field by field under the lock.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Account {
        balance: i64,
        deposits: u64,
    }
    let account = Value::new(Account {
        balance: 0,
        deposits: 0,
    })?;
    let acc = account.clone();
    let pid = crate::fork(move || {
        for _ in 0..1000 {
            let mut a = acc.lock().expect("lock");
            a.balance += 10;
            a.deposits += 1;
        }
    });
    crate::wait(pid)?;
    println!(
        "  a #[repr(C)] struct changed under the lock: {:?}",
        account.get()
    );
    assert_eq!(
        account.get(),
        Account {
            balance: 10_000,
            deposits: 1000
        }
    );

    // Found by name in a named arena, as an unrelated process would.
    let name = format!("shmproc-tour-value-{}", std::process::id());
    let named = Arena::create(&name, 1 << 20)?;
    let temps = Array::from_slice_in(&named, &[21.5f32, 22.0, 19.5])?;
    named.publish("temperatures", &temps)?;
    let elsewhere = Arena::open(&name)?;
    let found: Array<f32> = elsewhere.lookup("temperatures")?;
    found
        .lock()
        .map_err(shmproc::Error::from)?
        .iter_mut()
        .for_each(|t| *t += 1.0);
    println!(
        "  Array published as \"temperatures\", looked up by name and changed: {:?}",
        temps.to_vec()
    );
    assert_eq!(temps.to_vec(), [22.5, 23.0, 20.5]);
    Ok(())
}
