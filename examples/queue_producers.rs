//! Ten producers and ten consumers over `Queue(3)`: the seed's `inputQ` /
//! `outputQ` example.
//!
//! `cargo run --release --example queue_producers`
//!
//! Python (the seed):
//!
//! ```python
//! def inputQ(queue):
//!     info = str(os.getpid()) + '(put):' + str(time.time())
//!     queue.put(info)
//!
//! def outputQ(queue, lock):
//!     info = queue.get()
//!     lock.acquire()
//!     print(str(os.getpid()) + '(get):' + info)
//!     lock.release()
//!
//! lock = multiprocessing.Lock()
//! queue = multiprocessing.Queue(3)
//! for i in range(10): start Process(target=inputQ, args=(queue,))
//! for i in range(10): start Process(target=outputQ, args=(queue, lock))
//! join the producers; queue.close(); join the consumers
//! ```
//!
//! The queue holds three messages at most: producers block in `put` until a
//! consumer makes room. `String` travels encoded (a length and its bytes).

use shmproc::{Lock, Process, Queue, current_process};
use std::time::{SystemTime, UNIX_EPOCH};

fn input_q(queue: &Queue<String>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let info = format!("{}(put):{:.2}", current_process().pid(), now.as_secs_f64());
    queue.put(info).expect("put");
}

fn output_q(queue: &Queue<String>, lock: &Lock) {
    let info = queue.get().expect("get");
    let _guard = lock.acquire().expect("lock");
    println!("{}(get):{info}", current_process().pid());
}

fn main() -> shmproc::Result<()> {
    let lock = Lock::new()?; // to prevent messy print
    let queue = Queue::<String>::new(3)?;

    let mut producers = Vec::new();
    for _ in 0..10 {
        let queue = queue.clone();
        let mut p = Process::new(move || input_q(&queue));
        p.start()?;
        producers.push(p);
    }
    let mut consumers = Vec::new();
    for _ in 0..10 {
        let (queue, lock) = (queue.clone(), lock.clone());
        let mut p = Process::new(move || output_q(&queue, &lock));
        p.start()?;
        consumers.push(p);
    }

    for p in &producers {
        assert_eq!(p.join()?, 0);
    }
    queue.close(); // no more objects will come
    for p in &consumers {
        assert_eq!(p.join()?, 0);
    }
    assert!(queue.is_empty(), "ten puts, ten gets");
    println!("10 producers, 10 consumers, capacity 3: all joined");
    Ok(())
}
