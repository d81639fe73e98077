//! A pipe between two processes: the seed's `proc1`/`proc2` example.
//!
//! `cargo run --release --example pipe`
//!
//! Python (the seed):
//!
//! ```python
//! def proc1(pipe):
//!     pipe.send('hello')
//!     print('proc1 rec:', pipe.recv())
//!
//! def proc2(pipe):
//!     print('proc2 rec:', pipe.recv())
//!     pipe.send('hello, too')
//!
//! pipe = mul.Pipe()
//! p1 = mul.Process(target=proc1, args=(pipe[0],))
//! p2 = mul.Process(target=proc2, args=(pipe[1],))
//! p1.start(); p2.start(); p1.join(); p2.join()
//! ```
//!
//! Then the one-way form, `Pipe(duplex=False)`: `Pipe::simplex()` gives
//! `(Receiver, Sender)` in Python's order.

use shmproc::{Connection, Pipe, Process};

fn proc1(pipe: Connection) {
    pipe.send(String::from("hello")).expect("send");
    let reply: String = pipe.recv().expect("recv");
    println!("proc1 rec: {reply}");
}

fn proc2(pipe: Connection) {
    let message: String = pipe.recv().expect("recv");
    println!("proc2 rec: {message}");
    pipe.send(String::from("hello, too")).expect("send");
}

fn main() -> shmproc::Result<()> {
    // Duplex: each end sends and receives.
    let (end1, end2) = Pipe::new()?;
    let mut p1 = Process::new(move || proc1(end1));
    let mut p2 = Process::new(move || proc2(end2));
    p1.start()?;
    p2.start()?;
    assert_eq!(p1.join()?, 0);
    assert_eq!(p2.join()?, 0);

    // Simplex: a producer process sends, this process receives.
    let (receiver, sender) = Pipe::simplex()?;
    let mut producer = Process::new(move || {
        for i in 0..5u64 {
            sender.send(i).expect("send");
        }
        sender.send(String::from("scott")).expect("send");
    });
    producer.start()?;
    let mut sum = 0u64;
    for _ in 0..5 {
        let n: u64 = receiver.recv()?;
        sum += n;
    }
    let name: String = receiver.recv()?;
    println!("received 0..5 (sum {sum}) and {name:?}");
    assert_eq!((sum, name.as_str()), (10, "scott"));
    assert_eq!(producer.join()?, 0);
    Ok(())
}
