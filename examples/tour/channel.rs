//! Channels: a Pipe between two processes, a Queue with several producers,
//! and the zero-copy loan.

use shmproc::{Arena, Error, Pipe, Process, Queue};
use std::time::Instant;

pub fn run() -> crate::Result {
    println!("\n== channels");

    // The seed: proc1 sends 'hello' and waits for the answer; proc2 answers.
    let (left, right) = Pipe::new()?;
    let mut p1 = Process::new({
        let left = left.clone();
        move || {
            left.send("hello".to_string()).expect("send");
            let answer: String = left.recv().expect("recv");
            println!("  proc1 rec: {answer}");
        }
    });
    let mut p2 = Process::new({
        let right = right.clone();
        move || {
            let got: String = right.recv().expect("recv");
            println!("  proc2 rec: {got}");
            right.send("hello, too".to_string()).expect("send");
        }
    });
    p1.start()?;
    p2.start()?;
    assert_eq!((p1.join()?, p2.join()?), (0, 0));

    // Queue(3): 10 producer processes, 10 consumer processes, then close.
    let queue = Queue::<String>::new(3)?;
    let results = Queue::<String>::new(16)?;
    let started = Instant::now();
    let mut processes = Vec::new();
    for _ in 0..10 {
        let queue = queue.clone();
        processes.push(Process::new(move || {
            let info = format!("{}(put)", std::process::id());
            queue.put(info).expect("put");
        }));
    }
    for _ in 0..10 {
        let (queue, results) = (queue.clone(), results.clone());
        processes.push(Process::new(move || {
            let info = queue.get().expect("get");
            results
                .put(format!("{}(get):{info}", std::process::id()))
                .expect("put");
        }));
    }
    for p in &mut processes {
        p.start()?;
    }
    for p in &processes {
        assert_eq!(p.join()?, 0);
    }
    queue.close();
    results.close();
    let lines: Vec<String> = results.iter().collect();
    println!(
        "  Queue(3): 10 producers -> 10 consumers, {} messages in {:?}, e.g. {}",
        lines.len(),
        started.elapsed(),
        lines[0]
    );
    assert_eq!(lines.len(), 10);
    assert!(matches!(queue.get(), Err(Error::Closed)));
    println!("  after close(), get() drains and then fails with Closed");

    // Zero-copy: the child writes 4 MiB straight into the ring (a loan) and
    // the parent reads it in place; nothing is copied on either side.
    let arena = Arena::anonymous(64 << 20)?;
    let (mut rx, tx) = Pipe::simplex_in(&arena, 16 << 20)?;
    let pid = crate::fork(move || {
        let mut tx = tx;
        let mut loan = tx.loan(4 << 20).expect("loan");
        for (i, chunk) in loan.chunks_mut(4096).enumerate() {
            chunk.fill(i as u8);
        }
        loan.commit().expect("commit");
    });
    let frame = rx.recv_ref()?;
    let pages_ok = frame
        .chunks(4096)
        .enumerate()
        .all(|(i, page)| page.iter().all(|&b| b == i as u8));
    println!(
        "  loan: a child filled {} MiB in place; the parent read it in place (checked: {pages_ok})",
        frame.len() >> 20
    );
    assert!(pages_ok);
    drop(frame);
    crate::wait(pid)?;
    Ok(())
}
