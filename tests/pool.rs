//! Cross-process tests of `Pool` and `fork_map`, under the harness of
//! tests/common (each case in a fresh process, watchdog, leak checks).

mod common;

use shmproc::{AtomicValue, Error, Event, Pool, fork_map};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn square(x: u64) -> u64 {
    x * x
}

fn pid() -> i32 {
    std::process::id() as i32
}

/// Live (or zombie) children of `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    common::children_of(parent)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

fn assert_no_children() {
    assert_eq!(
        children_of(pid()),
        Vec::<i32>::new(),
        "pool processes left behind"
    );
}

fn seed_map_square() {
    let pool = Pool::new(2).unwrap();
    let squares = pool.map(square, 1..=10u64).unwrap();
    assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    for chunksize in [1, 3, 7, 100] {
        let got = pool.map_chunksize(square, 0..1000u64, chunksize).unwrap();
        assert_eq!(got, (0..1000u64).map(square).collect::<Vec<_>>());
    }
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_no_children();
}

fn long_task(i: u32) -> String {
    format!("task {i} ran in {}", std::process::id())
}

fn seed_apply_async_close_join() {
    let pool = Pool::new(4).unwrap();
    let results: Vec<_> = (0..10u32)
        .map(|i| pool.apply_async(long_task, i).unwrap())
        .collect();
    pool.close();
    assert!(matches!(
        pool.apply_async(long_task, 99),
        Err(Error::PoolClosed)
    ));
    pool.join().unwrap();
    for (i, result) in results.iter().enumerate() {
        assert!(result.ready());
        assert_eq!(result.successful(), Some(true));
        let text = result.get().unwrap();
        assert!(text.starts_with(&format!("task {i} ran in ")), "{text}");
        assert_ne!(text, format!("task {i} ran in {}", pid()));
        // get can be asked again, as in Python
        assert_eq!(result.get().unwrap(), text);
    }
    assert!(matches!(pool.apply(square, 3), Err(Error::PoolClosed)));
    drop(pool);
    assert_no_children();
}

static GATE: OnceLock<Event> = OnceLock::new();

/// Item 0 waits for the test to open the gate; the others return at once.
fn gated(i: u32) -> u32 {
    if i == 0 {
        GATE.get().unwrap().wait();
    }
    i * 10
}

fn imap_orders() {
    GATE.set(Event::new().unwrap()).unwrap();
    let pool = Pool::new(2).unwrap();
    // Unordered: everything but item 0 arrives while item 0 is blocked.
    let mut unordered = pool.imap_unordered(gated, 0..20u32).unwrap();
    let mut seen = Vec::new();
    for _ in 0..19 {
        seen.push(unordered.next().unwrap().unwrap());
    }
    assert!(!seen.contains(&0), "item 0 cannot have completed: {seen:?}");
    GATE.get().unwrap().set();
    assert_eq!(unordered.next().unwrap().unwrap(), 0);
    assert!(unordered.next().is_none());
    seen.sort_unstable();
    assert_eq!(seen, (1..20).map(|i| i * 10).collect::<Vec<_>>());
    // Ordered: input order whatever the completion order.
    let ordered: Vec<u32> = pool
        .imap(gated, (0..50u32).rev())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ordered,
        (0..50u32).rev().map(|i| i * 10).collect::<Vec<_>>()
    );
    let chunked: Vec<u64> = pool
        .imap_chunksize(square, 0..1000u64, 7)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, (0..1000u64).map(square).collect::<Vec<_>>());
}

fn imap_streams() {
    let pool = Pool::new(2).unwrap();
    let pulled = std::cell::Cell::new(0u64);
    let input = (0..1_000_000u64).inspect(|_| pulled.set(pulled.get() + 1));
    let mut results = pool.imap(square, input).unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 0);
    assert!(
        pulled.get() < 1_000_000,
        "imap consumed the whole input first"
    );
    assert_eq!(results.next().unwrap().unwrap(), 1);
    drop(results);
    // An endless input works too.
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .unwrap()
        .take(100)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, (0..100u64).map(square).collect::<Vec<_>>());
}

fn kill_self_at_500(i: u32) -> u32 {
    if i == 500 {
        // SAFETY: kill(2) on our own pid touches no memory.
        unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
    }
    i + 1
}

fn worker_killed_among_1000() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = (0..1000u32)
        .map(|i| pool.apply_async(kill_self_at_500, i).unwrap())
        .collect();
    let mut died = 0;
    for (i, result) in results.iter().enumerate() {
        match result.get() {
            Ok(value) => assert_eq!(value, i as u32 + 1),
            Err(Error::WorkerDied { pid, signal }) => {
                assert_eq!(i, 500, "only task 500 may fail");
                assert_eq!(signal, libc::SIGKILL);
                assert!(pid > 0 && pid != self::pid());
                died += 1;
            }
            Err(other) => panic!("task {i}: {other}"),
        }
    }
    assert_eq!(died, 1);
    // The pool still works (the dead worker was replaced).
    assert_eq!(pool.map(square, 1..=3u64).unwrap(), [1, 4, 9]);
    // A map whose chunk kills its worker fails that map, not the pool.
    assert!(matches!(
        pool.map_chunksize(kill_self_at_500, 0..1000u32, 10),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    drop(pool);
    assert_no_children();
}

fn panic_at_500(i: u32) -> u32 {
    if i == 500 {
        panic!("boom at {i}");
    }
    i
}

fn task_panics_among_1000() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = (0..1000u32)
        .map(|i| pool.apply_async(panic_at_500, i).unwrap())
        .collect();
    for (i, result) in results.iter().enumerate() {
        match result.get() {
            Ok(value) => assert_eq!(value, i as u32),
            Err(Error::TaskPanicked(message)) => {
                assert_eq!(i, 500);
                assert_eq!(message, "boom at 500");
                assert_eq!(result.successful(), Some(false));
            }
            Err(other) => panic!("task {i}: {other}"),
        }
    }
    match pool.map_chunksize(panic_at_500, 0..1000u32, 50) {
        Err(Error::TaskPanicked(message)) => assert_eq!(message, "boom at 500"),
        other => panic!("{other:?}"),
    }
}

fn my_pid(_: u32) -> i32 {
    std::process::id() as i32
}

fn maxtasksperchild_100k() {
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(100)
        .build()
        .unwrap();
    let pids = pool.map_chunksize(my_pid, 0..100_000u32, 1).unwrap();
    assert_eq!(pids.len(), 100_000);
    let mut per_pid: HashMap<i32, usize> = HashMap::new();
    for pid in pids {
        *per_pid.entry(pid).or_default() += 1;
    }
    assert!(
        per_pid.values().all(|&n| n <= 100),
        "a worker ran more than 100 tasks"
    );
    assert!(per_pid.len() >= 1000, "only {} workers", per_pid.len());
    assert!(!per_pid.contains_key(&pid()));
    drop(pool);
    assert_no_children();
}

fn maxtasksperchild_one() {
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let pids = pool.map_chunksize(my_pid, 0..50u32, 1).unwrap();
    let distinct: HashSet<i32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "each task runs in a new process");
}

static STARTED: OnceLock<AtomicValue<u32>> = OnceLock::new();

fn slow(i: u32) -> u32 {
    STARTED.get().unwrap().fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    i
}

fn terminate_during_long_map() {
    STARTED.set(AtomicValue::new(0u32).unwrap()).unwrap();
    let pool = Pool::new(2).unwrap();
    let pending = pool
        .map_async_chunksize(slow, 0..10_000u32, Some(1))
        .unwrap();
    while STARTED.get().unwrap().get() < 4 {
        std::thread::yield_now();
    }
    let workers = pool.worker_pids();
    assert!(!workers.is_empty());
    pool.terminate().unwrap();
    assert!(matches!(pending.get(), Err(Error::PoolClosed)));
    assert!(matches!(pool.apply(square, 2), Err(Error::PoolClosed)));
    // join after terminate is allowed and immediate.
    pool.join().unwrap();
    assert_no_children();
    for worker in workers {
        // SAFETY: kill(pid, 0) only checks existence.
        let alive = unsafe { libc::kill(worker, 0) } == 0;
        assert!(!alive, "worker {worker} survived terminate");
    }
}

static INITS: OnceLock<AtomicValue<u32>> = OnceLock::new();
static LOCAL_INITS: AtomicU32 = AtomicU32::new(0);

fn init_count(i: u32) -> (u32, i32) {
    if i == 7 {
        // SAFETY: kill(2) on our own pid touches no memory.
        unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
    }
    (
        LOCAL_INITS.load(Ordering::SeqCst),
        std::process::id() as i32,
    )
}

fn initializer_once_per_worker() {
    INITS.set(AtomicValue::new(0u32).unwrap()).unwrap();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(3)
        .initializer(|| {
            LOCAL_INITS.fetch_add(1, Ordering::SeqCst);
            INITS.get().unwrap().fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut pids = HashSet::new();
    for i in 0..30u32 {
        match pool.apply(init_count, i) {
            Ok((local, pid)) => {
                assert_eq!(local, 1, "the initializer ran {local} times in {pid}");
                pids.insert(pid);
            }
            Err(Error::WorkerDied { .. }) => assert_eq!(i, 7),
            Err(other) => panic!("{other}"),
        }
    }
    pool.close();
    pool.join().unwrap();
    let inits = INITS.get().unwrap().get() as usize;
    // Every worker that answered ran the initializer (the killed one and
    // idle ones ran it too, so there may be more runs than answering pids).
    assert!(
        inits >= pids.len(),
        "{inits} initializer runs for {} workers",
        pids.len()
    );
    assert!(
        pids.len() >= 10,
        "maxtasksperchild(3) over 30 tasks: {}",
        pids.len()
    );
}

fn shout(text: String) -> String {
    text.to_uppercase()
}

fn strings_travel() {
    let pool = Pool::new(2).unwrap();
    let words: Vec<String> = (0..500)
        .map(|i| format!("word {i} {}", "x".repeat(i % 120)))
        .collect();
    let loud = pool.map(shout, words.clone()).unwrap();
    assert_eq!(
        loud,
        words.iter().map(|w| w.to_uppercase()).collect::<Vec<_>>()
    );
    let long = "é".repeat(10_000);
    assert_eq!(
        pool.apply(shout, long.clone()).unwrap(),
        long.to_uppercase()
    );
    assert_eq!(pool.apply(shout, String::new()).unwrap(), "");
    let lengths = pool.map(|s: String| s.len() as u64, words.clone()).unwrap();
    assert_eq!(
        lengths,
        words.iter().map(|w| w.len() as u64).collect::<Vec<_>>()
    );
    let pairs = pool
        .starmap(
            |a: u32, b: String| format!("{a}:{b}"),
            vec![(1, "a".to_string()), (2, "b".into())],
        )
        .unwrap();
    assert_eq!(pairs, ["1:a", "2:b"]);
    let products = pool
        .starmap(|a: u64, b: u64| a * b, (0..100u64).map(|i| (i, i + 1)))
        .unwrap();
    assert_eq!(
        products,
        (0..100u64).map(|i| i * (i + 1)).collect::<Vec<_>>()
    );
    let sums = pool
        .starmap_async(
            |a: u32, b: u32, c: u32| a + b + c,
            vec![(1, 2, 3), (4, 5, 6)],
            Some(1),
        )
        .unwrap();
    assert_eq!(sums.get().unwrap(), [6, 15]);
    let unordered: HashSet<String> = pool
        .imap_unordered(shout, words.clone())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(unordered.len(), 500);
}

fn join_before_close_is_an_error() {
    let pool = Pool::new(1).unwrap();
    assert!(matches!(pool.join(), Err(Error::PoolRunning)));
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
    pool.close();
    pool.join().unwrap();
    pool.join().unwrap();
}

fn async_result_timeouts() {
    GATE.set(Event::new().unwrap()).unwrap();
    let pool = Pool::new(1).unwrap();
    let blocked = pool.apply_async(gated, 0).unwrap();
    assert!(matches!(
        blocked.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(!blocked.ready());
    assert_eq!(blocked.successful(), None);
    assert!(!blocked.wait_timeout(Duration::from_millis(10)));
    GATE.get().unwrap().set();
    blocked.wait();
    assert_eq!(blocked.get().unwrap(), 0);
    let map = pool.map_async(square, 0..10u64).unwrap();
    map.wait();
    assert!(map.ready());
    assert_eq!(map.successful(), Some(true));
    assert_eq!(map.get().unwrap()[3], 9);
    // Results dropped before they end are reclaimed, not leaked.
    for i in 0..1000u64 {
        drop(pool.apply_async(square, i).unwrap());
    }
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
}

fn dropping_a_busy_pool_reaps_everything() {
    STARTED.set(AtomicValue::new(0u32).unwrap()).unwrap();
    let shm_before = std::fs::read_dir("/dev/shm")
        .map(|d| d.count())
        .unwrap_or(0);
    {
        let pool = Pool::new(3).unwrap();
        let _pending = pool.map_async_chunksize(slow, 0..1000u32, Some(1)).unwrap();
        while STARTED.get().unwrap().get() < 2 {
            std::thread::yield_now();
        }
    }
    assert_no_children();
    let shm_after = std::fs::read_dir("/dev/shm")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(shm_before, shm_after, "the pool left something in /dev/shm");
}

fn manager_killed_from_outside() {
    GATE.set(Event::new().unwrap()).unwrap();
    let pool = Pool::new(2).unwrap();
    let blocked = pool.apply_async(gated, 0).unwrap();
    // SAFETY: kill(2) of the manager, our child.
    unsafe { libc::kill(pool.manager_pid(), libc::SIGKILL) };
    assert!(blocked.get().is_err(), "a dead pool must not hang");
    assert!(pool.apply(square, 2).is_err());
}

fn fork_map_inherits() {
    let table: Vec<u64> = (0..1_000_000).map(|i| i * 3).collect();
    let offset = 11u64;
    let indices: Vec<usize> = (0..10_000).map(|i| i * 97 % 1_000_000).collect();
    let got = fork_map(2, &indices, |&i| table[i] + offset).unwrap();
    assert_eq!(
        got,
        indices
            .iter()
            .map(|&i| table[i] + offset)
            .collect::<Vec<_>>()
    );
    let names = fork_map(3, &indices[..10], |&i| format!("#{i}")).unwrap();
    assert_eq!(names[1], "#97");
    let failed = fork_map(2, &indices, |&i| {
        assert!(i != 97, "bad item {i}");
        i
    });
    assert!(matches!(failed, Err(Error::TaskPanicked(m)) if m.contains("bad item 97")));
    assert_no_children();
}

fn map_array_in_place() {
    use shmproc::RawArray;
    let pool = Pool::new(2).unwrap();
    // Made after the pool: the default arena was mapped before the fork.
    let input = RawArray::from_iter(0..100_000u64).unwrap();
    let output = pool.map_array(square, &input).unwrap();
    assert_eq!(
        output.to_vec(),
        (0..100_000u64).map(square).collect::<Vec<_>>()
    );
    let halves = RawArray::<f64>::zeroed(100_000).unwrap();
    pool.map_array_into(|x: u64| x as f64 / 2.0, &input, &halves, Some(7))
        .unwrap();
    assert_eq!(halves.get(99_999).unwrap(), 49_999.5);
    let short = RawArray::<u64>::zeroed(3).unwrap();
    assert!(matches!(
        pool.map_array_into(square, &input, &short, None),
        Err(Error::InvalidArgument(_))
    ));
    let elsewhere = shmproc::Arena::anonymous(1 << 20).unwrap();
    let foreign = RawArray::from_slice_in(&elsewhere, &[1u64, 2]).unwrap();
    assert!(matches!(
        pool.map_array(square, &foreign),
        Err(Error::InvalidArgument(_))
    ));
    let small = RawArray::from_iter(0..1000u32).unwrap();
    assert!(matches!(
        pool.map_array(panic_at_500, &small),
        Err(Error::TaskPanicked(m)) if m == "boom at 500"
    ));
    assert!(matches!(
        pool.map_array(kill_self_at_500, &small),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(pool.map_array(square, &input).unwrap().get(3).unwrap(), 9);
}

fn a_forked_copy_cannot_touch_the_pool() {
    let pool = Pool::new(2).unwrap();
    let mut children = common::Children::new();
    // The child gets a copy of the handle and drops it at the end: that
    // must not terminate the parent's pool, nor may the child submit.
    let handle = &pool;
    let child = children.fork(move || {
        assert!(matches!(
            handle.apply(square, 2),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(handle.join(), Err(Error::InvalidArgument(_))));
        handle.close();
        // SAFETY: this forked child owns a private copy of the parent's
        // memory; dropping its copy of the handle is what a child that
        // captured the pool by value does when its closure ends.
        drop(unsafe { std::ptr::read(handle) });
    });
    assert_eq!(
        children.wait(child, Duration::from_secs(30)),
        common::Exit::Code(0)
    );
    assert_eq!(pool.map(square, 1..=4u64).unwrap(), [1, 4, 9, 16]);
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: f64,
    volume: u64,
}
shmproc::pod_message!(Tick);

/// An iterator whose size hint promises more items than it yields.
struct Liar(std::ops::Range<u64>);
impl Iterator for Liar {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (1000, Some(1000))
    }
}

/// Every fixed-size kind of item and result takes the bulk copies: plain
/// old data (typed copies), and types that decode with checks (bool, char,
/// tuples, value by value), with chunks of every size.
fn fixed_size_bulk_paths() {
    let pool = Pool::new(2).unwrap();
    let n = 10_000u32;
    let odd = pool.map(|x: u32| x % 2 == 1, 0..n).unwrap();
    assert_eq!(odd, (0..n).map(|x| x % 2 == 1).collect::<Vec<_>>());
    let flipped = pool.map(|b: bool| !b, odd.clone()).unwrap();
    assert_eq!(flipped, odd.iter().map(|b| !b).collect::<Vec<_>>());
    let letters = pool
        .map_chunksize(
            |x: u32| char::from_u32(0x41 + x % 26).unwrap_or('?'),
            0..n,
            7,
        )
        .unwrap();
    assert_eq!(letters[27], 'B');
    let ticks = pool
        .map(
            |x: u64| Tick {
                price: x as f64 / 2.0,
                volume: x * 3,
            },
            0..5000u64,
        )
        .unwrap();
    assert_eq!(
        ticks[4999],
        Tick {
            price: 2499.5,
            volume: 14997
        }
    );
    let volumes = pool
        .map_chunksize(|t: Tick| t.volume, ticks.clone(), 333)
        .unwrap();
    assert_eq!(volumes, (0..5000u64).map(|x| x * 3).collect::<Vec<_>>());
    let triples = pool.map(|x: u8| [x, x ^ 1, 0xff], 0..=255u8).unwrap();
    assert_eq!(triples[2], [2, 3, 0xff]);
    let pairs = pool
        .map_chunksize(|x: u64| (x as u32, x as u16), 0..1000u64, 64)
        .unwrap();
    assert_eq!(pairs[999], (999, 999));
    // The iterator yields 10 items though it promised 1000.
    assert_eq!(
        pool.map(square, Liar(0..10)).unwrap(),
        (0..10).map(square).collect::<Vec<_>>()
    );
    assert_eq!(pool.map(square, Liar(0..0)).unwrap(), Vec::<u64>::new());
    let units = pool.map(|(): ()| 1u8, vec![(); 100]).unwrap();
    assert_eq!(units, vec![1u8; 100]);
}

fn main() {
    common::main(
        &[
            case!(seed_map_square, 60),
            case!(seed_apply_async_close_join, 60),
            case!(imap_orders, 60),
            case!(imap_streams, 60),
            case!(worker_killed_among_1000, 60),
            case!(task_panics_among_1000, 60),
            case!(maxtasksperchild_100k, 300),
            case!(maxtasksperchild_one, 60),
            case!(terminate_during_long_map, 60),
            case!(initializer_once_per_worker, 60),
            case!(strings_travel, 60),
            case!(fixed_size_bulk_paths, 60),
            case!(join_before_close_is_an_error, 60),
            case!(async_result_timeouts, 60),
            case!(dropping_a_busy_pool_reaps_everything, 60),
            case!(manager_killed_from_outside, 60),
            case!(fork_map_inherits, 60),
            case!(map_array_in_place, 60),
            case!(a_forked_copy_cannot_touch_the_pool, 60),
        ],
        &[],
    );
}
