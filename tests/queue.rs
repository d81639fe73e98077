//! Queue, JoinableQueue and SimpleQueue across processes, each case under
//! the harness watchdog.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit};
use shmproc::{
    Arena, AtomicValue, Error, JoinableQueue, Lock, Offset, Process, Queue, SimpleQueue,
    WaitStrategy, futex,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn main() {
    common::main(
        &[
            case!(seed_10_producers_10_consumers_queue_3, 120),
            case!(seed_writer_reader_ended_by_terminate, 60),
            case!(four_by_four_million_each_no_loss_no_dup_fifo, 600),
            case!(mixed_sizes_0_to_4_mib, 120),
            case!(strings_travel, 60),
            case!(serde_and_pod_messages_travel, 60),
            case!(try_put_full_try_get_empty_and_sizes, 30),
            case!(timeouts_give_full_and_empty, 30),
            case!(close_drains_then_closed_and_wakes_getters, 60),
            case!(close_wakes_blocked_putters, 30),
            case!(consumer_killed_mid_stream_does_not_wedge_producers, 300),
            case!(consumer_killed_holding_a_slot_is_recovered, 60),
            case!(producer_killed_holding_a_slot_is_skipped, 60),
            case!(joinable_queue_task_done_and_join, 60),
            case!(simple_queue_across_processes, 60),
            case!(queue_found_by_name_from_unrelated_process, 60),
            case!(message_too_large_is_an_error, 30),
            case!(fast_path_makes_no_syscall, 30),
            case!(every_wait_strategy_works, 120),
        ],
        &[helper!(named_queue_worker)],
    )
}

const LONG: Duration = Duration::from_secs(120);

/// The seed: 10 processes put "pid(put):time", 10 processes get and print
/// under a lock, over Queue(3); the parent closes the queue at the end.
fn seed_10_producers_10_consumers_queue_3() {
    let queue = Queue::<String>::new(3).unwrap();
    let lock = Lock::new().unwrap();
    let got = AtomicValue::<u64>::new(0).unwrap();
    let mut producers = Vec::new();
    for _ in 0..10 {
        let queue = queue.clone();
        let mut p = Process::new(move || {
            let info = format!(
                "{}(put):{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            );
            queue.put(info).unwrap();
        });
        p.start().unwrap();
        producers.push(p);
    }
    let mut consumers = Vec::new();
    for _ in 0..10 {
        let (queue, lock, got) = (queue.clone(), lock.clone(), got.clone());
        let mut p = Process::new(move || {
            let info = queue.get().unwrap();
            let _guard = lock.acquire().unwrap();
            println!("{}(get):{info}", std::process::id());
            assert!(info.contains("(put):"));
            got.fetch_add(1, Ordering::SeqCst);
        });
        p.start().unwrap();
        consumers.push(p);
    }
    for p in &producers {
        assert_eq!(p.join().unwrap(), 0);
    }
    queue.close();
    for p in &consumers {
        assert_eq!(p.join().unwrap(), 0);
    }
    assert_eq!(got.load(Ordering::SeqCst), 10);
    assert!(matches!(queue.get(), Err(Error::Closed)));
}

/// The seed: a writer puts A, B, C; a reader loops on get forever and is
/// ended with terminate().
fn seed_writer_reader_ended_by_terminate() {
    let queue = Queue::<String>::new(0).unwrap();
    let seen = Queue::<String>::new(10).unwrap();
    let mut writer = Process::new({
        let queue = queue.clone();
        move || {
            for value in ["A", "B", "C"] {
                println!("Put {value} to queue...");
                queue.put(value.to_string()).unwrap();
            }
        }
    });
    let mut reader = Process::new({
        let (queue, seen) = (queue.clone(), seen.clone());
        move || {
            loop {
                let value = queue.get().unwrap();
                println!("Get {value} from queue.");
                seen.put(value).unwrap();
            }
        }
    });
    writer.start().unwrap();
    reader.start().unwrap();
    assert_eq!(writer.join().unwrap(), 0);
    let got: Vec<String> = (0..3).map(|_| seen.get_timeout(LONG).unwrap()).collect();
    assert_eq!(got, ["A", "B", "C"]);
    reader.terminate().unwrap();
    assert_eq!(reader.join().unwrap(), -libc::SIGTERM);
}

const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;
const EACH: u64 = 1_000_000;

/// 4 producers x 1,000,000 messages `(producer << 32) | seq`, 4 consumers:
/// each consumer checks per-producer order (FIFO) and records count, sum
/// and a hash per producer; together they must be exact.
fn four_by_four_million_each_no_loss_no_dup_fifo() {
    let arena = Arena::anonymous(64 << 20).unwrap();
    let queue = Queue::<u64>::with_capacity_in(&arena, 1024).unwrap();
    let results: Vec<Offset<[u64; 12]>> = (0..CONSUMERS)
        .map(|_| arena.alloc_value([0u64; 12]).unwrap())
        .collect();
    let mut children = Children::new();
    for &at in &results {
        let (queue, arena) = (queue.clone(), arena.clone());
        children.fork(move || {
            let mut last = [u64::MAX; PRODUCERS as usize];
            let mut out = [0u64; 12];
            for v in &queue {
                let (p, seq) = ((v >> 32) as usize, v & 0xFFFF_FFFF);
                assert!(p < PRODUCERS as usize, "bad producer {p}");
                assert!(
                    last[p] == u64::MAX || seq > last[p],
                    "producer {p}: {seq} after {}",
                    last[p]
                );
                last[p] = seq;
                out[p * 3] += 1;
                out[p * 3 + 1] += seq;
                out[p * 3 + 2] ^= seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
            arena.write(at, out).unwrap();
        });
    }
    let mut producers = Children::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        producers.fork(move || {
            for seq in 0..EACH {
                queue.put((p << 32) | seq).unwrap();
            }
        });
    }
    producers.join_all_ok(Duration::from_secs(500));
    queue.close();
    children.join_all_ok(Duration::from_secs(60));
    let hash = (0..EACH).fold(0u64, |h, s| h ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for p in 0..PRODUCERS as usize {
        let (mut count, mut sum, mut xor) = (0, 0, 0);
        for at in &results {
            let r = arena.read(*at).unwrap();
            count += r[p * 3];
            sum += r[p * 3 + 1];
            xor ^= r[p * 3 + 2];
        }
        assert_eq!(count, EACH, "producer {p}: messages received");
        assert_eq!(
            sum,
            EACH * (EACH - 1) / 2,
            "producer {p}: sum of sequence numbers"
        );
        assert_eq!(xor, hash, "producer {p}: hash of sequence numbers");
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const SIZES: [usize; 12] = [
    0,
    1,
    87,
    88,
    89,
    1000,
    4096,
    65_536,
    1 << 20,
    (4 << 20) + 1,
    5,
    0,
];

fn mixed_sizes_0_to_4_mib() {
    let arena = Arena::anonymous(256 << 20).unwrap();
    let queue = Queue::<Vec<u8>>::with_capacity_in(&arena, 4).unwrap();
    let used_before = arena.used();
    let mut children = Children::new();
    for consumer in 0..2u64 {
        let queue = queue.clone();
        children.fork(move || {
            for v in &queue {
                let (seed, len) = (u64::from(v[0]), v.len());
                assert!(SIZES.contains(&(len - 1)), "len {len}");
                assert_eq!(&v[1..], &pattern(len - 1, seed)[..], "consumer {consumer}");
            }
        });
    }
    let mut producers = Children::new();
    for p in 0..2u64 {
        let queue = queue.clone();
        producers.fork(move || {
            for round in 0..3u64 {
                for (i, &len) in SIZES.iter().enumerate() {
                    let seed = (p * 64 + round * 16 + i as u64) as u8;
                    let mut v = vec![seed];
                    v.extend(pattern(len, u64::from(seed)));
                    queue.put(v).unwrap();
                }
            }
        });
    }
    producers.join_all_ok(LONG);
    queue.close();
    children.join_all_ok(LONG);
    assert_eq!(
        arena.used(),
        used_before,
        "every block was freed by its getter"
    );
}

fn strings_travel() {
    let queue = Queue::<String>::new(8).unwrap();
    let back = Queue::<String>::new(8).unwrap();
    let mut children = Children::new();
    let (q, b) = (queue.clone(), back.clone());
    children.fork(move || {
        for s in &q {
            b.put(s.to_uppercase()).unwrap();
        }
        b.close();
    });
    let words = ["", "héllo", "x", &"long ".repeat(1000)];
    for w in words {
        queue.put(w.to_string()).unwrap();
    }
    queue.close();
    let got: Vec<String> = back.iter().collect();
    let want: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    assert_eq!(got, want);
    children.join_all_ok(LONG);
}

fn try_put_full_try_get_empty_and_sizes() {
    let queue = Queue::<u32>::new(3).unwrap();
    assert!(queue.is_empty() && !queue.is_full());
    assert!(matches!(queue.try_get(), Err(Error::Empty)));
    for i in 0..3 {
        queue.try_put(i).unwrap();
        assert_eq!(queue.qsize(), i as usize + 1);
    }
    assert!(queue.is_full());
    assert!(matches!(queue.try_put(9), Err(Error::Full)));
    assert_eq!(queue.try_get().unwrap(), 0);
    queue.try_put(3).unwrap();
    assert_eq!(
        (1..4).map(|_| queue.try_get().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(matches!(queue.try_get(), Err(Error::Empty)));
    assert_eq!(queue.capacity(), 3);
}

fn timeouts_give_full_and_empty() {
    let queue = Queue::<u8>::new(1).unwrap();
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(10)),
        Err(Error::Empty)
    ));
    queue.put(1).unwrap();
    assert!(matches!(
        queue.put_timeout(2, Duration::from_millis(10)),
        Err(Error::Full)
    ));
    assert!(matches!(
        queue.put_timeout(2, Duration::ZERO),
        Err(Error::Full)
    ));
    let mut children = Children::new();
    let q = queue.clone();
    children.fork(move || {
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(q.get().unwrap(), 1);
    });
    queue.put_timeout(2, LONG).unwrap();
    children.join_all_ok(LONG);
    assert_eq!(queue.get_timeout(LONG).unwrap(), 2);
}

fn close_drains_then_closed_and_wakes_getters() {
    let queue = Queue::<u64>::new(16).unwrap();
    let mut children = Children::new();
    // Two getters block on the empty queue; close must wake them.
    for _ in 0..2 {
        let q = queue.clone().with_wait_strategy(WaitStrategy::Park);
        children.fork(move || assert!(matches!(q.get(), Err(Error::Closed))));
    }
    std::thread::sleep(Duration::from_millis(50));
    queue.close();
    children.join_all_ok(LONG);

    let queue = Queue::<u64>::new(16).unwrap();
    for i in 0..10 {
        queue.put(i).unwrap();
    }
    queue.close();
    assert!(queue.is_closed());
    assert!(matches!(queue.put(99), Err(Error::Closed)));
    assert!(matches!(queue.try_put(99), Err(Error::Closed)));
    assert_eq!(
        queue.iter().collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(matches!(queue.get(), Err(Error::Closed)));
    assert!(matches!(queue.try_get(), Err(Error::Closed)));
}

fn close_wakes_blocked_putters() {
    let queue = Queue::<u64>::new(1).unwrap();
    queue.put(0).unwrap();
    let mut children = Children::new();
    let q = queue.clone();
    children.fork(move || assert!(matches!(q.put(1), Err(Error::Closed))));
    std::thread::sleep(Duration::from_millis(50));
    queue.close();
    children.join_all_ok(LONG);
}

/// A consumer SIGKILLed in the middle of a stream: the producers finish
/// (another consumer takes over), at most the one message the dead
/// consumer held is lost, and nothing is duplicated.
fn consumer_killed_mid_stream_does_not_wedge_producers() {
    const TOTAL: u64 = 200_000;
    let arena = Arena::anonymous(64 << 20).unwrap();
    let queue = Queue::<u64>::with_capacity_in(&arena, 8).unwrap();
    let seen_by_victim = AtomicValue::<u64>::new_in(&arena, 0).unwrap();
    let mut children = Children::new();
    let victim = {
        let (q, seen) = (queue.clone(), seen_by_victim.clone());
        children.fork(move || {
            for _ in &q {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let producer = {
        let q = queue.clone();
        children.fork(move || {
            for i in 0..TOTAL {
                q.put(i).unwrap();
            }
        })
    };
    while seen_by_victim.load(Ordering::SeqCst) < 10_000 {
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    assert_eq!(children.wait(victim, LONG), Exit::Signal(libc::SIGKILL));
    let victim_count = seen_by_victim.load(Ordering::SeqCst);
    // This process takes over as the consumer.
    let mut mine = 0u64;
    let mut last = None;
    while let Ok(v) = queue.get_timeout(Duration::from_secs(5)) {
        assert!(last.is_none_or(|l| v > l), "duplicate or reordered {v}");
        last = Some(v);
        mine += 1;
        if v == TOTAL - 1 {
            break;
        }
    }
    assert_eq!(
        children.wait(producer, LONG),
        Exit::Code(0),
        "the producer finished"
    );
    let total = victim_count + mine;
    assert!(
        total == TOTAL || total + 1 == TOTAL,
        "victim {victim_count} + survivor {mine} of {TOTAL}"
    );
}

/// A getter dies holding a claimed slot (the worst moment): putters that
/// come round to that slot complete it for the dead process and go on.
fn consumer_killed_holding_a_slot_is_recovered() {
    let queue = Queue::<u32>::new(2).unwrap();
    queue.put(1).unwrap();
    let mut children = Children::new();
    let q = queue.clone();
    let pid = children.fork(move || shmproc::fuzzing::queue_die_holding_slot(&q, false));
    assert_eq!(children.wait(pid, LONG), Exit::Signal(libc::SIGKILL));
    // Slot 0 is held by the dead getter; message 1 is lost with it.
    queue.put(2).unwrap();
    queue.put_timeout(3, LONG).unwrap(); // needs the dead getter's slot back
    assert_eq!(queue.get().unwrap(), 2);
    assert_eq!(queue.get().unwrap(), 3);
}

/// A putter dies holding a claimed slot: getters skip it after the check.
fn producer_killed_holding_a_slot_is_skipped() {
    let queue = Queue::<u32>::new(4).unwrap();
    let mut children = Children::new();
    let q = queue.clone();
    let pid = children.fork(move || shmproc::fuzzing::queue_die_holding_slot(&q, true));
    assert_eq!(children.wait(pid, LONG), Exit::Signal(libc::SIGKILL));
    queue.put(7).unwrap();
    assert_eq!(queue.get_timeout(LONG).unwrap(), 7);
    assert!(matches!(queue.try_get(), Err(Error::Empty)));
}

fn joinable_queue_task_done_and_join() {
    let queue = JoinableQueue::<u64>::new(8).unwrap();
    let done = AtomicValue::<u64>::new(0).unwrap();
    let mut children = Children::new();
    for _ in 0..3 {
        let (q, done) = (queue.clone(), done.clone());
        children.fork(move || {
            while let Ok(v) = q.get() {
                done.fetch_add(v, Ordering::SeqCst);
                q.task_done().unwrap();
            }
        });
    }
    for v in 1..=100 {
        queue.put(v).unwrap();
    }
    queue.join();
    assert_eq!(
        done.load(Ordering::SeqCst),
        5050,
        "join returned after every task_done"
    );
    assert!(queue.join_timeout(Duration::ZERO));
    assert!(matches!(queue.task_done(), Err(Error::InvalidArgument(_))));
    queue.close();
    children.join_all_ok(LONG);

    // A parked joiner is woken by the last task_done (and the wake does
    // not disturb the count).
    for strategy in [WaitStrategy::Park, WaitStrategy::DEFAULT] {
        let queue = JoinableQueue::<u64>::new(4)
            .unwrap()
            .with_wait_strategy(strategy);
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let q = queue.clone();
        children.fork(move || {
            std::thread::sleep(Duration::from_millis(50));
            for _ in 0..2 {
                q.get().unwrap();
                q.task_done().unwrap();
            }
        });
        queue.join();
        assert!(matches!(queue.task_done(), Err(Error::InvalidArgument(_))));
        children.join_all_ok(LONG);
    }
}

fn simple_queue_across_processes() {
    let queue = SimpleQueue::<i64>::new().unwrap();
    assert!(queue.empty());
    let mut children = Children::new();
    let q = queue.clone();
    children.fork(move || {
        for i in 0..10_000 {
            q.put(-i).unwrap();
        }
    });
    for i in 0..10_000 {
        assert_eq!(queue.get().unwrap(), -i);
    }
    children.join_all_ok(LONG);
    queue.close();
    assert!(matches!(queue.get(), Err(Error::Closed)));
}

fn queue_found_by_name_from_unrelated_process() {
    let name = common::shm_name("queue");
    let arena = Arena::create(&name, 16 << 20).unwrap();
    let tasks = Queue::<u64>::with_capacity_in(&arena, 16).unwrap();
    let results = Queue::<String>::with_capacity_in(&arena, 16).unwrap();
    arena.publish("tasks", &tasks).unwrap();
    arena.publish("results", &results).unwrap();
    let helper = common::spawn_helper("named_queue_worker", &[&name]);
    for n in 0..10u64 {
        tasks.put(n).unwrap();
    }
    tasks.close();
    for n in 0..10u64 {
        assert_eq!(
            results.get_timeout(LONG).unwrap(),
            format!("{n} * {n} = {}", n * n)
        );
    }
    assert!(common::wait_helper(helper, LONG));
    assert!(matches!(
        arena.lookup::<Queue<u32>>("tasks"),
        Err(Error::TypeMismatch { .. })
    ));
}

fn named_queue_worker(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    let tasks: Queue<u64> = arena.lookup("tasks").unwrap();
    let results: Queue<String> = arena.lookup("results").unwrap();
    for n in &tasks {
        results.put(format!("{n} * {n} = {}", n * n)).unwrap();
    }
}

fn message_too_large_is_an_error() {
    let arena = Arena::anonymous(8 << 20).unwrap();
    let queue = Queue::<Vec<u8>>::with_capacity_in(&arena, 4).unwrap();
    let max = queue.max_message();
    assert!(matches!(
        queue.put(vec![0; max + 1]),
        Err(Error::MessageTooLarge { len, max: m }) if len == max + 1 && m == max
    ));
    queue.put(vec![1; 1000]).unwrap();
    assert_eq!(queue.get().unwrap(), vec![1; 1000]);
}

fn fast_path_makes_no_syscall() {
    let queue = Queue::<u64>::new(64).unwrap();
    queue.put(0).unwrap();
    queue.get().unwrap();
    let before = futex::syscall_count();
    for i in 0..10_000 {
        queue.put(i).unwrap();
        assert_eq!(queue.get().unwrap(), i);
    }
    assert_eq!(futex::syscall_count(), before);
}

fn every_wait_strategy_works() {
    for strategy in [
        WaitStrategy::Park,
        WaitStrategy::Spin,
        WaitStrategy::DEFAULT,
        WaitStrategy::SpinThenPark(Duration::from_micros(1)),
    ] {
        let queue = Queue::<u64>::new(2).unwrap().with_wait_strategy(strategy);
        let back = Queue::<u64>::new(2).unwrap().with_wait_strategy(strategy);
        let mut children = Children::new();
        let (q, b) = (queue.clone(), back.clone());
        children.fork(move || {
            for v in &q {
                b.put(v + 1).unwrap();
            }
        });
        for i in 0..5_000 {
            queue.put(i).unwrap();
            assert_eq!(back.get().unwrap(), i + 1, "{strategy:?}");
        }
        queue.close();
        children.join_all_ok(LONG);
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Job {
    name: String,
    tries: u8,
    payload: Vec<u32>,
}
shmproc::serde_message!(Job);

#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: f64,
    volume: u64,
    history: [u32; 40],
}
shmproc::pod_message!(Tick);

fn serde_and_pod_messages_travel() {
    use shmproc::Encoded;
    use std::collections::BTreeMap;
    let jobs = Queue::<Job>::new(4).unwrap();
    let maps = Queue::<Encoded<BTreeMap<String, u32>>>::new(4).unwrap();
    let ticks = Queue::<Tick>::new(4).unwrap();
    let mut children = Children::new();
    let (j, m, t) = (jobs.clone(), maps.clone(), ticks.clone());
    children.fork(move || {
        for i in 0..100u32 {
            j.put(Job {
                name: format!("job {i}"),
                tries: i as u8,
                payload: (0..i * 10).collect(),
            })
            .unwrap();
            m.put(Encoded(BTreeMap::from([(format!("k{i}"), i)])))
                .unwrap();
            t.put(Tick {
                price: f64::from(i) / 2.0,
                volume: u64::from(i),
                history: [i; 40],
            })
            .unwrap();
        }
    });
    for i in 0..100u32 {
        let job = jobs.get().unwrap();
        assert_eq!(
            job,
            Job {
                name: format!("job {i}"),
                tries: i as u8,
                payload: (0..i * 10).collect()
            }
        );
        assert_eq!(
            maps.get().unwrap().0,
            BTreeMap::from([(format!("k{i}"), i)])
        );
        let tick = ticks.get().unwrap();
        assert_eq!(tick.history, [i; 40]);
        assert_eq!(tick.volume, u64::from(i));
    }
    children.join_all_ok(LONG);
}
