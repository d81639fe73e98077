//! The closing table: round trip and throughput of shmproc's channels next to
//! a Unix pipe and a socketpair, all measured here, in this run.

use std::time::{Duration, Instant};

/// One row of the table.
pub struct Row {
    pub what: &'static str,
    /// Median round trip of an 8-byte message between two processes.
    pub round_trip: Duration,
    /// 64-byte messages per second, one way, between two processes.
    pub msgs_per_sec: f64,
}

pub const ROUND_TRIPS: u32 = 20_000;
pub const MESSAGES: u32 = 200_000;

/// Median of `runs` timings of `f`.
pub fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}

fn fd_pair(kind: &str) -> [(i32, i32); 2] {
    // Returns [(read, write) for parent->child, (read, write) for child->parent].
    let mut a = [0i32; 2];
    let mut b = [0i32; 2];
    if kind == "pipe" {
        // SAFETY: pipe(2) writes two fds into the arrays.
        assert_eq!(unsafe { libc::pipe(a.as_mut_ptr()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::pipe(b.as_mut_ptr()) }, 0);
        [(a[0], a[1]), (b[0], b[1])]
    } else {
        // SAFETY: socketpair(2) writes two fds into the array.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, a.as_mut_ptr()) };
        assert_eq!(r, 0);
        // Full duplex: parent uses a[0], child a[1].
        [(a[1], a[0]), (a[0], a[1])]
    }
}

fn read_exact(fd: i32, buf: &mut [u8]) {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the pointer/length pair is a live slice tail.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        assert!(n > 0, "read failed");
        got += n as usize;
    }
}

fn write_all(fd: i32, buf: &[u8]) {
    let mut put = 0;
    while put < buf.len() {
        // SAFETY: the pointer/length pair is a live slice tail.
        let n = unsafe { libc::write(fd, buf[put..].as_ptr().cast(), buf.len() - put) };
        assert!(n > 0, "write failed");
        put += n as usize;
    }
}

fn close_all(fds: [(i32, i32); 2]) {
    for (r, w) in fds {
        // SAFETY: closing fds we own; a socketpair's fds appear twice, the
        // second close fails harmlessly with EBADF.
        unsafe { libc::close(r) };
        // SAFETY: as above.
        unsafe { libc::close(w) };
    }
}

/// Round trip and throughput over a kernel byte stream (`"pipe"` or `"socketpair"`).
pub fn measure_fd(kind: &'static str) -> crate::Result<Row> {
    let round_trip = median(3, || {
        let fds = fd_pair(kind);
        let [(to_child_r, to_child_w), (to_parent_r, to_parent_w)] = fds;
        let pid = crate::fork(move || {
            let mut buf = [0u8; 8];
            for _ in 0..ROUND_TRIPS {
                read_exact(to_child_r, &mut buf);
                write_all(to_parent_w, &buf);
            }
        });
        let mut buf = [0u8; 8];
        let t = Instant::now();
        for i in 0..ROUND_TRIPS {
            buf[..4].copy_from_slice(&i.to_le_bytes());
            write_all(to_child_w, &buf);
            read_exact(to_parent_r, &mut buf);
        }
        let elapsed = t.elapsed();
        crate::wait(pid).expect("echo child");
        close_all(fds);
        elapsed / ROUND_TRIPS
    });
    let per_message = median(3, || {
        let fds = fd_pair(kind);
        let [(to_child_r, _), (_, _)] = fds;
        let to_child_w = fds[0].1;
        let pid = crate::fork(move || {
            let mut buf = [0u8; 64 * 64];
            let mut left = MESSAGES as usize * 64;
            while left > 0 {
                let n = left.min(buf.len());
                read_exact(to_child_r, &mut buf[..n]);
                left -= n;
            }
        });
        let msg = [7u8; 64];
        let t = Instant::now();
        for _ in 0..MESSAGES {
            write_all(to_child_w, &msg);
        }
        crate::wait(pid).expect("reader child");
        let elapsed = t.elapsed();
        close_all(fds);
        elapsed / MESSAGES
    });
    Ok(Row {
        what: kind,
        round_trip,
        msgs_per_sec: 1.0 / per_message.as_secs_f64(),
    })
}

/// Prints the table, with each row's speed-up over the Unix pipe.
pub fn print(rows: &[Row]) {
    let pipe = rows.iter().find(|r| r.what == "pipe");
    println!("\n== comparison (two processes, measured now; medians of 3 runs)");
    println!(
        "  {:<34} {:>14} {:>10} {:>16} {:>10}",
        "channel", "round trip", "vs pipe", "64 B msgs/s", "vs pipe"
    );
    for row in rows {
        let (rt_x, tp_x) = pipe.map_or((1.0, 1.0), |p| {
            (
                p.round_trip.as_secs_f64() / row.round_trip.as_secs_f64(),
                row.msgs_per_sec / p.msgs_per_sec,
            )
        });
        println!(
            "  {:<34} {:>14} {:>9.1}x {:>16} {:>9.1}x",
            row.what,
            format!("{:.2?}", row.round_trip),
            rt_x,
            format!("{:.2}M", row.msgs_per_sec / 1e6),
            tp_x
        );
    }
}

/// Round trip and throughput over shmproc's `Pipe` (duplex / simplex)
/// and `Queue`, measured exactly as the fd rows.
pub fn measure_shmproc(what: &'static str) -> crate::Result<Row> {
    use shmproc::{Arena, Pipe, Queue};
    let arena = Arena::anonymous(64 << 20)?;
    let round_trip = median(3, || {
        let pid;
        let t;
        if what.contains("Pipe") {
            let (a, b) = Pipe::with_capacity_in(&arena, 64 << 10).expect("pipe");
            pid = crate::fork(move || {
                for _ in 0..ROUND_TRIPS {
                    let v: u64 = b.recv().expect("recv");
                    b.send(v).expect("send");
                }
            });
            t = Instant::now();
            for i in 0..u64::from(ROUND_TRIPS) {
                a.send(i).expect("send");
                assert_eq!(a.recv::<u64>().expect("recv"), i);
            }
        } else {
            let ping = Queue::<u64>::with_capacity_in(&arena, 64).expect("queue");
            let pong = Queue::<u64>::with_capacity_in(&arena, 64).expect("queue");
            let (ping2, pong2) = (ping.clone(), pong.clone());
            pid = crate::fork(move || {
                for _ in 0..ROUND_TRIPS {
                    pong2.put(ping2.get().expect("get")).expect("put");
                }
            });
            t = Instant::now();
            for i in 0..u64::from(ROUND_TRIPS) {
                ping.put(i).expect("put");
                assert_eq!(pong.get().expect("get"), i);
            }
        }
        let elapsed = t.elapsed();
        crate::wait(pid).expect("echo child");
        elapsed / ROUND_TRIPS
    });
    let per_message = median(3, || {
        let msg = [7u8; 64];
        let t;
        let pid;
        if what.contains("Pipe") {
            let (rx, tx) = Pipe::simplex_in(&arena, 64 << 10).expect("pipe");
            pid = crate::fork(move || {
                for _ in 0..MESSAGES {
                    rx.recv::<[u8; 64]>().expect("recv");
                }
            });
            t = Instant::now();
            for _ in 0..MESSAGES {
                tx.send(msg).expect("send");
            }
        } else {
            let queue = Queue::<[u8; 64]>::with_capacity_in(&arena, 1024).expect("queue");
            let q = queue.clone();
            pid = crate::fork(move || {
                for _ in 0..MESSAGES {
                    q.get().expect("get");
                }
            });
            t = Instant::now();
            for _ in 0..MESSAGES {
                queue.put(msg).expect("put");
            }
        }
        crate::wait(pid).expect("reader child");
        t.elapsed() / MESSAGES
    });
    Ok(Row {
        what,
        round_trip,
        msgs_per_sec: 1.0 / per_message.as_secs_f64(),
    })
}

pub fn run() -> crate::Result {
    let rows = vec![
        measure_fd("pipe")?,
        measure_fd("socketpair")?,
        measure_shmproc("shmproc Pipe (default wait)")?,
        measure_shmproc("shmproc Queue (default wait)")?,
    ];
    print(&rows);
    Ok(())
}
