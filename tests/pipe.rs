//! Pipe and Connection across processes, each case under the harness watchdog.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use common::{Children, Exit};
use shmproc::{Arena, Error, Pipe, Process, Publish, Receiver, Sender, WaitStrategy, futex};
use std::time::Duration;

fn main() {
    common::main(
        &[
            case!(seed_pipe_between_two_children, 60),
            case!(seed_pipe_with_processes, 60),
            case!(round_trips_100000_checksummed, 120),
            case!(every_wait_strategy_round_trips, 120),
            case!(simplex_stream_1000000_in_order, 120),
            case!(mixed_sizes_0_to_4_mib, 120),
            case!(loan_and_recv_ref_zero_copy, 60),
            case!(close_drains_then_closed, 30),
            case!(drop_of_last_used_handle_closes, 30),
            case!(send_to_closed_receiver_is_closed, 30),
            case!(peer_killed_gives_peer_died_after_draining, 30),
            case!(blocked_sender_gets_peer_died, 30),
            case!(recv_timeout_and_poll, 30),
            case!(fast_path_makes_no_syscall, 30),
            case!(message_too_large_is_an_error, 30),
            case!(serde_messages_travel, 30),
            case!(simplex_found_by_name_from_unrelated_process, 60),
        ],
        &[helper!(named_pipe_writer)],
    )
}

const LONG: Duration = Duration::from_secs(60);

/// The seed: proc1 sends 'hello' and receives the answer; proc2 receives and answers.
fn seed_pipe_between_two_children() {
    let (a, b) = Pipe::new().unwrap();
    let mut children = Children::new();
    let a1 = a.clone();
    children.fork(move || {
        a1.send("hello".to_string()).unwrap();
        let answer: String = a1.recv().unwrap();
        println!("proc1 rec: {answer}");
        assert_eq!(answer, "hello, too");
    });
    let b1 = b.clone();
    children.fork(move || {
        let got: String = b1.recv().unwrap();
        println!("proc2 rec: {got}");
        assert_eq!(got, "hello");
        b1.send("hello, too".to_string()).unwrap();
    });
    children.join_all_ok(LONG);
}

/// The second seed with shmproc's own Process: producer sends, consumer prints.
fn seed_pipe_with_processes() {
    let (receive, send) = Pipe::new().unwrap();
    let mut producer = Process::new({
        let send = send.clone();
        move || send.send("scott".to_string()).unwrap()
    });
    let mut consumer = Process::new({
        let receive = receive.clone();
        move || {
            let data: String = receive.recv().unwrap();
            println!("{data}");
            assert_eq!(data, "scott");
        }
    });
    producer.start().unwrap();
    consumer.start().unwrap();
    assert_eq!(producer.join().unwrap(), 0);
    assert_eq!(consumer.join().unwrap(), 0);
}

fn echo_rounds(strategy: WaitStrategy, rounds: u64) {
    let (a, b) = Pipe::new().unwrap();
    let a = a.with_wait_strategy(strategy);
    let b = b.with_wait_strategy(strategy);
    let mut children = Children::new();
    children.fork(move || {
        for _ in 0..rounds {
            let x: u64 = b.recv().unwrap();
            b.send(x.wrapping_mul(3).wrapping_add(1)).unwrap();
        }
    });
    let mut sum = 0u64;
    for i in 0..rounds {
        a.send(i).unwrap();
        let y: u64 = a.recv().unwrap();
        assert_eq!(y, i.wrapping_mul(3).wrapping_add(1));
        sum = sum.wrapping_add(y);
    }
    let expected = (0..rounds).fold(0u64, |s, i| s.wrapping_add(i * 3 + 1));
    assert_eq!(sum, expected);
    children.join_all_ok(LONG);
}

fn round_trips_100000_checksummed() {
    echo_rounds(WaitStrategy::DEFAULT, 100_000);
}

fn every_wait_strategy_round_trips() {
    echo_rounds(WaitStrategy::Park, 5_000);
    echo_rounds(WaitStrategy::Spin, 20_000);
    echo_rounds(WaitStrategy::SpinThenPark(Duration::from_micros(1)), 5_000);
}

fn simplex_stream_1000000_in_order() {
    let arena = Arena::anonymous(64 << 20).unwrap();
    let (rx, tx) = Pipe::simplex_in(&arena, 4096).unwrap();
    let mut children = Children::new();
    children.fork(move || {
        for i in 0..1_000_000u64 {
            tx.send(i).unwrap();
        }
        tx.close();
    });
    let mut next = 0u64;
    loop {
        match rx.recv::<u64>() {
            Ok(v) => {
                assert_eq!(v, next);
                next += 1;
            }
            Err(Error::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, 1_000_000);
    children.join_all_ok(LONG);
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

fn sizes() -> Vec<usize> {
    let mut sizes = vec![
        0, 1, 7, 8, 9, 100, 4095, 4096, 30_000, 32_760, 32_761, 65_536,
    ];
    sizes.extend([1 << 20, (4 << 20) + 3, 3, 0, 200_000]);
    sizes
}

fn mixed_sizes_0_to_4_mib() {
    let arena = Arena::anonymous(256 << 20).unwrap();
    let (a, b) = Pipe::with_capacity_in(&arena, 64 << 10).unwrap();
    let mut children = Children::new();
    children.fork(move || {
        for round in 0..3u64 {
            for (i, &len) in sizes().iter().enumerate() {
                let got = b.recv_bytes().unwrap();
                assert_eq!(got.len(), len);
                assert_eq!(got, pattern(len, round * 100 + i as u64), "size {len}");
            }
        }
        b.send(DONE).unwrap();
    });
    let used_before = arena.used();
    for round in 0..3u64 {
        for (i, &len) in sizes().iter().enumerate() {
            a.send_bytes(&pattern(len, round * 100 + i as u64)).unwrap();
        }
    }
    assert_eq!(a.recv::<u64>().unwrap(), DONE);
    children.join_all_ok(LONG);
    // Every large message's block was freed by the receiver.
    assert_eq!(arena.used(), used_before);
}

const DONE: u64 = 0xD04E;

fn loan_and_recv_ref_zero_copy() {
    let arena = Arena::anonymous(64 << 20).unwrap();
    let (mut a, mut b) = Pipe::with_capacity_in(&arena, 1 << 20).unwrap();
    let mut children = Children::new();
    children.fork(move || {
        for (i, len) in [0usize, 10, 1000, 300_000, 2 << 20].into_iter().enumerate() {
            let frame = b.recv_ref().unwrap();
            assert_eq!(&*frame, &pattern(len, i as u64)[..]);
            drop(frame);
        }
        // An uncommitted loan sends nothing; a partial commit sends a prefix.
        let mut loan = b.loan(100).unwrap();
        loan.fill(9);
        drop(loan);
        let mut loan = b.loan(100).unwrap();
        loan[..3].copy_from_slice(b"abc");
        loan.commit_len(3).unwrap();
    });
    for (i, len) in [0usize, 10, 1000, 300_000, 2 << 20].into_iter().enumerate() {
        let mut loan = a.loan(len).unwrap();
        loan.copy_from_slice(&pattern(len, i as u64));
        loan.commit().unwrap();
    }
    assert_eq!(a.recv_bytes().unwrap(), b"abc");
    children.join_all_ok(LONG);
}

fn close_drains_then_closed() {
    let (a, b) = Pipe::new().unwrap();
    let mut children = Children::new();
    children.fork(move || {
        for i in 0..1000u32 {
            a.send(i).unwrap();
        }
        a.close();
    });
    children.join_all_ok(LONG);
    for i in 0..1000u32 {
        assert_eq!(b.recv::<u32>().unwrap(), i);
    }
    assert!(matches!(b.recv::<u32>(), Err(Error::Closed)));
    assert!(matches!(b.recv::<u32>(), Err(Error::Closed)));
    assert!(
        b.poll(Duration::ZERO).unwrap(),
        "poll is true at end of stream"
    );
}

fn drop_of_last_used_handle_closes() {
    let (rx, tx) = Pipe::simplex().unwrap();
    let keep = tx.clone();
    tx.send(1u8).unwrap();
    drop(tx);
    assert_eq!(rx.recv::<u8>().unwrap(), 1);
    assert!(
        matches!(
            rx.recv_timeout::<u8>(Duration::from_millis(50)),
            Err(Error::Timeout)
        ),
        "a clone is still alive: not closed"
    );
    drop(keep);
    assert!(matches!(rx.recv::<u8>(), Err(Error::Closed)));

    // A handle that this process never used does not close on drop.
    let (rx, tx) = Pipe::simplex().unwrap();
    let mut children = Children::new();
    let tx2 = tx.clone();
    children.fork(move || {
        tx2.send(5u8).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        tx2.send(6u8).unwrap();
        tx2.close();
    });
    drop(tx);
    assert_eq!(rx.recv::<u8>().unwrap(), 5);
    assert_eq!(rx.recv::<u8>().unwrap(), 6);
    assert!(matches!(rx.recv::<u8>(), Err(Error::Closed)));
    children.join_all_ok(LONG);
}

fn send_to_closed_receiver_is_closed() {
    let (a, b) = Pipe::new().unwrap();
    b.close();
    assert!(matches!(a.send(1u64), Err(Error::Closed)));
    // A sender blocked on a full ring is woken by the close.
    let arena = Arena::anonymous(16 << 20).unwrap();
    let (rx, tx) = Pipe::simplex_in(&arena, 64).unwrap();
    let mut children = Children::new();
    let rx2 = rx.clone();
    children.fork(move || {
        std::thread::sleep(Duration::from_millis(50));
        rx2.close();
    });
    let result = (0..100u64).try_for_each(|i| tx.send(i));
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    children.join_all_ok(LONG);
}

fn peer_killed_gives_peer_died_after_draining() {
    let (a, b) = Pipe::new().unwrap();
    let mut children = Children::new();
    let pid = children.fork(move || {
        a.send(1u32).unwrap();
        a.send(2u32).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    });
    assert_eq!(b.recv::<u32>().unwrap(), 1);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(children.wait(pid, LONG), Exit::Signal(libc::SIGKILL));
    assert_eq!(
        b.recv::<u32>().unwrap(),
        2,
        "what was sent is drained first"
    );
    match b.recv::<u32>() {
        Err(Error::PeerDied { pid: dead }) => assert_eq!(dead, pid),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    // The same for a killed child we have not reaped (a zombie), in spin mode.
    let (a, b) = Pipe::new().unwrap();
    let b = b.with_wait_strategy(WaitStrategy::Spin);
    let pid = children.fork(move || {
        a.send(3u32).unwrap();
        // SAFETY: raise(2) kills this child.
        unsafe { libc::raise(libc::SIGKILL) };
    });
    assert_eq!(b.recv::<u32>().unwrap(), 3);
    assert!(matches!(b.recv::<u32>(), Err(Error::PeerDied { pid: p }) if p == pid));
    assert_eq!(children.wait(pid, LONG), Exit::Signal(libc::SIGKILL));
}

fn blocked_sender_gets_peer_died() {
    let arena = Arena::anonymous(16 << 20).unwrap();
    let (rx, tx) = Pipe::simplex_in(&arena, 64).unwrap();
    let mut children = Children::new();
    let pid = children.fork(move || {
        assert_eq!(rx.recv::<u64>().unwrap(), 0);
        // SAFETY: raise(2) kills this child.
        unsafe { libc::raise(libc::SIGKILL) };
    });
    let result = (0..1000u64).try_for_each(|i| tx.send(i));
    assert!(
        matches!(result, Err(Error::PeerDied { pid: p }) if p == pid),
        "{result:?}"
    );
    children.wait(pid, LONG);
}

fn recv_timeout_and_poll() {
    let (a, b) = Pipe::new().unwrap();
    assert!(!b.poll(Duration::from_millis(5)).unwrap());
    assert!(matches!(
        b.recv_timeout::<u8>(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        b.recv_timeout::<u8>(Duration::ZERO),
        Err(Error::Timeout)
    ));
    let mut children = Children::new();
    children.fork(move || {
        std::thread::sleep(Duration::from_millis(30));
        a.send(9u8).unwrap();
    });
    assert!(b.poll(LONG).unwrap());
    assert!(b.poll(Duration::ZERO).unwrap(), "poll does not consume");
    assert_eq!(b.recv_timeout::<u8>(LONG).unwrap(), 9);
    children.join_all_ok(LONG);
}

fn fast_path_makes_no_syscall() {
    let (a, b) = Pipe::new().unwrap();
    // Warm up (stamps, scratch buffers).
    a.send(0u64).unwrap();
    b.recv::<u64>().unwrap();
    let before = futex::syscall_count();
    for i in 0..1000u64 {
        a.send(i).unwrap();
        assert_eq!(b.recv::<u64>().unwrap(), i);
        b.send_bytes(b"xyz").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"xyz");
    }
    assert_eq!(
        futex::syscall_count(),
        before,
        "no futex call when nobody sleeps"
    );
}

fn message_too_large_is_an_error() {
    let arena = Arena::anonymous(8 << 20).unwrap();
    let (a, _b) = Pipe::with_capacity_in(&arena, 4096).unwrap();
    let big = vec![0u8; 4 << 20];
    assert!(matches!(
        a.send_bytes(&big),
        Err(Error::MessageTooLarge { len, .. }) if len == big.len()
    ));
    let mut a = a;
    assert!(matches!(
        a.loan(big.len()),
        Err(Error::MessageTooLarge { .. })
    ));
}

fn simplex_found_by_name_from_unrelated_process() {
    let name = common::shm_name("pipe");
    let arena = Arena::create(&name, 16 << 20).unwrap();
    let (rx, tx) = Pipe::simplex_in(&arena, 4096).unwrap();
    arena.publish("to-parent", &tx).unwrap();
    let helper = common::spawn_helper("named_pipe_writer", &[&name]);
    for i in 0..100u64 {
        assert_eq!(rx.recv::<u64>().unwrap(), i * i);
    }
    let text: String = rx.recv().unwrap();
    assert_eq!(text, "done");
    assert!(common::wait_helper(helper, LONG));
    assert!(
        matches!(rx.recv::<u64>(), Err(Error::Closed)),
        "the helper's drop closed it"
    );
    assert!(matches!(
        arena.lookup::<Receiver>("to-parent"),
        Err(Error::TypeMismatch { .. })
    ));
    let _ = Sender::shared_size();
}

fn named_pipe_writer(args: &[String]) {
    let arena = Arena::open(&args[0]).unwrap();
    let tx: Sender = arena.lookup("to-parent").unwrap();
    for i in 0..100u64 {
        tx.send(i * i).unwrap();
    }
    tx.send("done".to_string()).unwrap();
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reply {
    text: String,
    code: Option<i32>,
}
shmproc::serde_message!(Reply);

fn serde_messages_travel() {
    let (a, b) = Pipe::new().unwrap();
    let mut children = Children::new();
    children.fork(move || {
        while let Ok(r) = b.recv::<Reply>() {
            b.send(Reply {
                text: r.text.repeat(2),
                code: r.code.map(|c| c + 1),
            })
            .unwrap();
        }
    });
    for i in 0..1000 {
        let sent = Reply {
            text: format!("r{i}"),
            code: (i % 2 == 0).then_some(i),
        };
        a.send(sent.clone()).unwrap();
        let back: Reply = a.recv().unwrap();
        assert_eq!(
            back,
            Reply {
                text: sent.text.repeat(2),
                code: sent.code.map(|c| c + 1)
            }
        );
    }
    a.send(shmproc::Encoded(vec![1u8, 2, 3])).unwrap();
    a.close();
    children.join_all_ok(LONG);
}
