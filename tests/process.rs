//! Process: fork, exit codes, signals, join timeouts, daemons, zombies,
//! copy-on-write, stdio flushing, and the threaded-fork refusal.
//!
//! Every case runs in a fresh single-threaded process under the harness's
//! watchdog (tests/common/mod.rs), which is a child subreaper: orphans of a
//! case reparent to it.
#![allow(unsafe_code)]

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::{Error, Process, Run};

fn main() {
    common::main(
        &[
            case!(fifty_processes_exit_codes_no_zombies, 60),
            case!(terminate_gives_minus_15, 30),
            case!(kill_gives_minus_9, 30),
            case!(panic_gives_1_and_message_on_stderr, 30),
            case!(explicit_exit_code_runs_destructors, 30),
            case!(join_timeout_on_sleeping_child, 30),
            case!(daemon_dies_when_parent_is_sigkilled, 30),
            case!(non_daemon_outlives_its_parent, 30),
            case!(large_vec_is_copy_on_write, 60),
            case!(output_before_start_appears_once, 30),
            case!(partial_lines_rust_and_c_appear_once, 30),
            case!(no_destructors_or_atexit_in_child, 30),
            case!(second_start_and_not_started_errors, 30),
            case!(threaded_fork_refused_unless_allowed, 30),
            case!(start_right_after_thread_scope, 60),
            case!(names_identity_and_parent, 30),
            case!(run_trait_type, 30),
            case!(active_children_reaps_finished, 30),
            case!(dropped_daemon_is_reaped, 30),
            case!(drop_joins_non_daemon, 30),
            case!(foreign_handle_cannot_join, 30),
            case!(cpu_count_matches_affinity, 30),
            case!(captures_live_in_the_parent_until_join, 30),
        ],
        &[],
    );
}

// --- helpers -----------------------------------------------------------------

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> (File, File) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    (File::from(r), File::from(w))
}

fn read_all(mut r: File) -> String {
    let mut out = String::new();
    r.read_to_string(&mut out).expect("read pipe");
    out
}

/// Reads one line from `r`, failing the case if none comes within `timeout`.
fn read_line_timeout(r: &mut File, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no line within {timeout:?}");
        let ts = rustix::event::Timespec::try_from(left).unwrap();
        let mut fds = [rustix::event::PollFd::new(
            &*r,
            rustix::event::PollFlags::IN,
        )];
        let _ = rustix::event::poll(&mut fds, Some(&ts));
        if fds[0].revents().is_empty() {
            continue;
        }
        let n = r.read(&mut byte).expect("read");
        assert!(n == 1, "pipe closed before a full line: {line:?}");
        if byte[0] == b'\n' {
            return String::from_utf8(line).unwrap();
        }
        line.push(byte[0]);
    }
}

/// Pids of zombie children of this process (state Z, ppid = us).
fn zombie_children() -> Vec<i32> {
    common::children_of(std::process::id() as i32)
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// `/proc/<pid>/stat` state letter, or None if the pid is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    stat[close + 1..]
        .split_ascii_whitespace()
        .next()?
        .chars()
        .next()
}

/// A value from /proc/self/status or smaps_rollup (`key:  123 kB`), in kB.
fn proc_kb(file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_ascii_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} not in {file}"))
}

fn sleep_forever() {
    std::thread::sleep(Duration::from_secs(600));
}

/// Redirects fd `target` to `to` until dropped.
struct Redirect {
    target: i32,
    saved: OwnedFd,
}

impl Redirect {
    fn new(target: i32, to: &File) -> Self {
        // SAFETY: dup of an fd we own; the result is a fresh fd we then own.
        let saved = unsafe { libc::dup(target) };
        assert!(saved >= 0);
        // SAFETY: dup2 onto a standard fd; both fds are open.
        assert!(unsafe { libc::dup2(to.as_raw_fd(), target) } >= 0);
        // SAFETY: `saved` is a fresh fd owned by nobody else.
        let saved = unsafe { OwnedFd::from_raw_fd(saved) };
        Redirect { target, saved }
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        // SAFETY: dup2 back onto the standard fd; both fds are open.
        unsafe { libc::dup2(self.saved.as_raw_fd(), self.target) };
    }
}

// --- cases -------------------------------------------------------------------

fn fifty_processes_exit_codes_no_zombies() {
    let mut procs = Vec::new();
    for i in 0..50 {
        let mut p = Process::new(move || {
            if i % 5 == 0 {
                return; // exit code 0
            }
            shmproc::exit(i);
        });
        assert_eq!(p.pid(), None);
        p.start().unwrap();
        assert!(p.pid().unwrap() > 0);
        procs.push((i, p));
    }
    for (i, p) in &procs {
        let expected = if i % 5 == 0 { 0 } else { *i };
        assert_eq!(p.join().unwrap(), expected, "{p:?}");
        assert_eq!(p.exitcode(), Some(expected));
        assert!(!p.is_alive());
    }
    assert!(shmproc::active_children().is_empty());
    assert_eq!(zombie_children(), Vec::<i32>::new(), "zombies left");
    for (_, p) in &procs {
        assert_eq!(proc_state(p.pid().unwrap()), None, "{p:?} still exists");
    }
}

fn terminate_gives_minus_15() {
    let mut p = Process::new(sleep_forever);
    p.start().unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.terminate().unwrap();
    assert_eq!(p.join().unwrap(), -15);
    assert_eq!(p.exitcode(), Some(-15));
    assert!(!p.is_alive());
    // Signalling a reaped process does nothing.
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode(), Some(-15));
}

fn kill_gives_minus_9() {
    let mut p = Process::new(sleep_forever).daemon(true);
    p.start().unwrap();
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    assert_eq!(p.exitcode(), Some(-9));
}

fn panic_gives_1_and_message_on_stderr() {
    let (r, w) = pipe();
    let mut p = Process::new(move || {
        // For good: shmproc's own line comes after the unwinding.
        std::mem::forget(Redirect::new(2, &w));
        panic!("boom from the child {}", 42);
    })
    .name("panicker");
    p.start().unwrap();
    // The parent's copy of the write end went with the dropped target.
    assert_eq!(p.join().unwrap(), 1);
    let err = read_all(r);
    assert!(err.contains("boom from the child 42"), "stderr was {err:?}");
    assert!(err.contains("panicker"), "stderr was {err:?}");
}

fn explicit_exit_code_runs_destructors() {
    struct Guard(File);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.write_all(b"dropped");
        }
    }
    let (r, w) = pipe();
    let mut p = Process::new(move || {
        let _guard = Guard(w);
        shmproc::exit(3);
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 3);
    assert_eq!(read_all(r), "dropped");
}

fn join_timeout_on_sleeping_child() {
    let mut p = Process::new(sleep_forever);
    p.start().unwrap();
    let t0 = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(300)).unwrap(), None);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "returned early: {waited:?}"
    );
    // Loose: it returned long before the child would have ended.
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    // A zero timeout is a poll.
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), None);
    p.kill().unwrap();
    // A finished child is reported within the timeout.
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(-9));
}

/// The middle process starts a child (daemon or not), reports its pid and
/// sleeps; the case SIGKILLs the middle process and returns the grandchild's
/// pid, which is now our child (we are a subreaper).
fn orphan_grandchild(daemon: bool) -> i32 {
    let (mut r, mut w) = pipe();
    let mut middle = Process::new(move || {
        let mut grandchild = Process::new(sleep_forever).daemon(daemon);
        grandchild.start().unwrap();
        writeln!(w, "{}", grandchild.pid().unwrap()).unwrap();
        std::mem::forget(grandchild); // never joined: we are killed anyway
        sleep_forever();
    })
    .daemon(true);
    middle.start().unwrap();
    let grandchild: i32 = read_line_timeout(&mut r, Duration::from_secs(10))
        .parse()
        .unwrap();
    middle.kill().unwrap();
    assert_eq!(middle.join().unwrap(), -9);
    grandchild
}

fn daemon_dies_when_parent_is_sigkilled() {
    let grandchild = orphan_grandchild(true);
    // After the middle process was reaped, its children were reparented to us.
    let exit = common::wait_pid(grandchild, Duration::from_secs(10))
        .expect("the daemon outlived its parent");
    assert_eq!(exit, common::Exit::Signal(libc::SIGKILL));
}

fn non_daemon_outlives_its_parent() {
    // The control for the case above: without daemon, the orphan lives on.
    let grandchild = orphan_grandchild(false);
    let mut kids = common::Children::new();
    kids.adopt(grandchild);
    assert_eq!(
        common::wait_pid(grandchild, Duration::from_millis(500)),
        None
    );
    // SAFETY: kill(2) on a pid that is our (adopted) child.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    assert_eq!(
        kids.wait(grandchild, Duration::from_secs(10)),
        common::Exit::Signal(libc::SIGKILL)
    );
}

fn large_vec_is_copy_on_write() {
    const WORDS: usize = 64 << 20 >> 3; // 64 MiB
    let data: Arc<Vec<u64>> = Arc::new((0..WORDS as u64).map(|i| i * 7 + 1).collect());
    let expected: u64 = data.iter().fold(0u64, |a, &x| a.wrapping_add(x));
    let rss_before = proc_kb("/proc/self/status", "VmRSS:");
    let captured = Arc::clone(&data);
    let mut p = Process::new(move || {
        let sum = captured.iter().fold(0u64, |a, &x| a.wrapping_add(x));
        if sum != expected {
            shmproc::exit(2);
        }
        // Reading shared pages copies none of them.
        let private = proc_kb("/proc/self/smaps_rollup", "Private_Dirty:");
        if private > 16 << 10 {
            eprintln!("child Private_Dirty {private} kB after reading 64 MiB");
            shmproc::exit(3);
        }
    });
    p.start().unwrap();
    let rss_after_start = proc_kb("/proc/self/status", "VmRSS:");
    assert_eq!(
        p.join().unwrap(),
        0,
        "child saw wrong data (2) or copied it (3)"
    );
    let rss_after = proc_kb("/proc/self/status", "VmRSS:");
    assert!(
        rss_after_start.max(rss_after) < rss_before + (8 << 10),
        "parent RSS grew from {rss_before} kB to {rss_after_start}/{rss_after} kB"
    );
    assert_eq!(data[WORDS - 1], (WORDS as u64 - 1) * 7 + 1);
}

fn output_before_start_appears_once() {
    let (r, w) = pipe();
    {
        let _stdout = Redirect::new(1, &w);
        drop(w);
        print!("before start;"); // no newline: still in the LineWriter's buffer
        let _ = std::io::stderr().flush();
        let mut p = Process::new(|| println!("child"));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        println!("after");
        std::io::stdout().flush().unwrap();
    }
    assert_eq!(read_all(r), "before start;child\nafter\n");
}

/// Unfinished lines in Rust's and C's stdout buffers, the parent's before
/// `start` and the child's at its `_exit`, each reach the output once.
fn partial_lines_rust_and_c_appear_once() {
    let c_print = |text: &std::ffi::CStr| {
        // SAFETY: printf with a NUL-terminated format holding no `%`.
        assert!(unsafe { libc::printf(text.as_ptr()) } >= 0);
    };
    let (r, w) = pipe();
    {
        let _stdout = Redirect::new(1, &w);
        drop(w);
        print!("rust before;");
        c_print(c"c before;");
        let mut p = Process::new(move || {
            print!("rust child;");
            c_print(c"c child;");
        });
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        println!("after");
        std::io::stdout().flush().unwrap();
    }
    assert_eq!(
        read_all(r),
        "rust before;c before;rust child;c child;after\n"
    );
}

static ATEXIT_FD: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

extern "C" fn atexit_handler() {
    if let Some(&fd) = ATEXIT_FD.get() {
        // SAFETY: write(2) of a static buffer to an fd number; a closed fd
        // only makes it fail.
        unsafe { libc::write(fd, b"atexit;".as_ptr().cast(), 7) };
    }
}

fn no_destructors_or_atexit_in_child() {
    struct Loud(i32);
    impl Drop for Loud {
        fn drop(&mut self) {
            // SAFETY: as in atexit_handler.
            unsafe { libc::write(self.0, b"drop;".as_ptr().cast(), 5) };
        }
    }
    let (r, w) = pipe();
    ATEXIT_FD.set(w.as_raw_fd()).unwrap();
    // SAFETY: registers an extern "C" fn with no arguments.
    assert_eq!(unsafe { libc::atexit(atexit_handler) }, 0);
    let loud = Loud(w.as_raw_fd());
    let mut p = Process::new(|| println!("child ran"));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let mut p = Process::new(|| panic!("a panicking child skips them too"));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 1);
    let mut p = Process::new(|| shmproc::exit(4));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 4);
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    let mut buf = [0u8; 64];
    let got = (&r).read(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a child ran the parent's destructor or atexit handler: {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    std::mem::forget(loud);
    drop(w);
}

fn second_start_and_not_started_errors() {
    let p = Process::new(|| {});
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(Error::NotStarted)));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(Error::NotStarted)
    ));
    assert!(matches!(p.terminate(), Err(Error::NotStarted)));
    assert!(matches!(p.kill(), Err(Error::NotStarted)));
    let mut p = p;
    p.start().unwrap();
    let pid = p.pid();
    assert!(matches!(p.start(), Err(Error::AlreadyStarted)));
    assert_eq!(p.join().unwrap(), 0);
    assert!(matches!(p.start(), Err(Error::AlreadyStarted)));
    assert_eq!(p.pid(), pid);
    // Joining twice gives the same code.
    assert_eq!(p.join().unwrap(), 0);
}

fn threaded_fork_refused_unless_allowed() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv());
    let mut p = Process::new(|| {});
    match p.start() {
        Err(Error::ThreadedFork { threads }) => assert!(threads >= 2, "{threads}"),
        other => panic!("expected ThreadedFork, got {other:?}"),
    }
    let message = p.start().unwrap_err().to_string();
    assert!(message.contains("allow_threads"), "{message}");
    assert_eq!(p.pid(), None, "a refused start must not count as started");
    // The documented opt-in. SAFETY: the other thread only blocks in recv,
    // holding no lock the child touches; the child only returns.
    let mut p = unsafe { p.allow_threads() };
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    tx.send(()).unwrap();
    thread.join().unwrap().unwrap();
    // One thread again: forking is allowed without the opt-in.
    let mut p = Process::new(|| {});
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

/// All scoped threads are joined when `thread::scope` returns, but the kernel
/// may count an exiting thread for a moment longer; `start` must wait that
/// out rather than refuse with `ThreadedFork`.
fn start_right_after_thread_scope() {
    let hits = std::sync::atomic::AtomicUsize::new(0);
    for round in 0..50 {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            }
        });
        let mut p = Process::new(|| {});
        match p.start() {
            Ok(()) => {}
            Err(e) => panic!("round {round}: start after the scope: {e:?}"),
        }
        assert_eq!(p.join().unwrap(), 0, "round {round}");
    }
    assert_eq!(hits.into_inner(), 200);
}

fn names_identity_and_parent() {
    assert_eq!(shmproc::current_process().name(), "MainProcess");
    assert_eq!(shmproc::current_process().pid(), std::process::id() as i32);
    assert!(shmproc::parent_process().is_none());
    let a = Process::new(|| {});
    let b = Process::new(|| {});
    let n: u32 = a
        .get_name()
        .strip_prefix("Process-")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(b.get_name(), format!("Process-{}", n + 1));
    drop((a, b));

    let (r, mut w) = pipe();
    let me = std::process::id() as i32;
    let mut p = Process::new(move || {
        let current = shmproc::current_process();
        let parent = shmproc::parent_process().unwrap();
        let mut nested = Process::new(|| {
            let current = shmproc::current_process();
            let parent = shmproc::parent_process().unwrap();
            assert_eq!(parent.name(), "worker");
            assert!(parent.is_alive());
            // The child of "worker" (identity n) is "Process-n:1".
            print!("{}", current.name());
        });
        let nested_default = nested.get_name().to_owned();
        nested = nested.name(format!("{nested_default}/renamed"));
        let (nr, nw) = pipe();
        let _redirect = Redirect::new(1, &nw);
        drop(nw);
        nested.start().unwrap();
        let nested_code = nested.join().unwrap();
        drop(_redirect);
        writeln!(
            w,
            "{}|{}|{}|{}|{}|{}|{}",
            current.name(),
            current.pid() == std::process::id() as i32,
            parent.name(),
            parent.pid() == me,
            parent.is_alive(),
            read_all(nr),
            nested_code
        )
        .unwrap();
    })
    .name("worker");
    assert_eq!(p.get_name(), "worker");
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let report = read_all(r);
    let ident = n + 2;
    assert_eq!(
        report,
        format!("worker|true|MainProcess|true|true|Process-{ident}:1/renamed|0\n")
    );
}

fn run_trait_type() {
    struct Clock {
        ticks: i32,
        out: File,
    }
    impl Run for Clock {
        fn run(mut self) {
            for i in 0..self.ticks {
                write!(self.out, "tick{i};").unwrap();
            }
            shmproc::exit(self.ticks);
        }
    }
    let (r, w) = pipe();
    let mut p = Process::new(Clock { ticks: 3, out: w });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 3);
    assert_eq!(read_all(r), "tick0;tick1;tick2;");
}

fn active_children_reaps_finished() {
    let mut procs = Vec::new();
    for daemon in [false, true, false] {
        let mut p = Process::new(sleep_forever).daemon(daemon);
        p.start().unwrap();
        procs.push(p);
    }
    let active = shmproc::active_children();
    let mut pids: Vec<i32> = active.iter().map(|c| c.pid()).collect();
    pids.sort();
    let mut expected: Vec<i32> = procs.iter().map(|p| p.pid().unwrap()).collect();
    expected.sort();
    assert_eq!(pids, expected);
    assert!(active.iter().all(|c| c.is_alive()));
    // Python's idiom: terminate what is left.
    for child in &active {
        child.kill().unwrap();
    }
    for child in &active {
        assert_eq!(child.join().unwrap(), -9);
    }
    assert!(shmproc::active_children().is_empty());
    // The handles share the reaped status.
    for p in &procs {
        assert_eq!(p.exitcode(), Some(-9));
        assert!(!p.is_alive());
    }
    // A child that ended on its own is dropped from the list (and reaped).
    let mut quick = Process::new(|| {});
    quick.start().unwrap();
    let pid = quick.pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(pid) != Some('Z') {
        assert!(Instant::now() < deadline, "child {pid} never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(shmproc::active_children().is_empty());
    assert_eq!(proc_state(pid), None, "active_children did not reap {pid}");
    assert_eq!(quick.exitcode(), Some(0));
}

fn dropped_daemon_is_reaped() {
    // The daemon runs until this process closes `w`, so it is still running
    // when its handle is dropped. (One that had already ended would be
    // reaped by the drop itself, leaving no zombie for the next start.)
    let (mut r, w) = pipe();
    let w_fd = w.as_raw_fd();
    let mut d = Process::new(move || {
        // SAFETY: closes the child's inherited copy of the write end, which
        // nothing in the child uses; the read then ends when the parent
        // closes its own.
        unsafe { libc::close(w_fd) };
        let _ = r.read(&mut [0u8; 1]);
    })
    .daemon(true);
    d.start().unwrap();
    let pid = d.pid().unwrap();
    drop(d); // a daemon's handle does not join
    drop(w); // now the daemon ends
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(pid) != Some('Z') {
        assert!(Instant::now() < deadline, "child {pid} never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The next start collects it.
    let mut p = Process::new(|| {});
    p.start().unwrap();
    assert_eq!(
        proc_state(pid),
        None,
        "start did not reap the dropped daemon"
    );
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(zombie_children(), Vec::<i32>::new());
}

fn drop_joins_non_daemon() {
    let (r, mut w) = pipe();
    let mut p = Process::new(move || {
        std::thread::sleep(Duration::from_millis(200));
        w.write_all(b"finished").unwrap();
    });
    p.start().unwrap();
    let pid = p.pid().unwrap();
    drop(p); // blocks until the child ends, then reaps it
    assert_eq!(proc_state(pid), None, "drop left {pid} behind");
    assert_eq!(read_all(r), "finished");
}

fn foreign_handle_cannot_join() {
    let mut sleeper = Process::new(sleep_forever).daemon(true);
    sleeper.start().unwrap();
    let sleeper = Rc::new(sleeper);
    let copy = Rc::clone(&sleeper);
    let mut p = Process::new(move || {
        // Our copy of the handle names a sibling: not ours to join or kill.
        let join = copy.join();
        let kill = copy.kill();
        let ok = matches!(join, Err(Error::InvalidArgument(_)))
            && matches!(kill, Err(Error::InvalidArgument(_)));
        // Dropping the copy must not try to join it either.
        drop(copy);
        shmproc::exit(if ok { 0 } else { 2 });
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert!(sleeper.is_alive());
    sleeper.kill().unwrap();
    assert_eq!(sleeper.join().unwrap(), -9);
}

fn cpu_count_matches_affinity() {
    let n = shmproc::cpu_count();
    assert!(n >= 1);
    let affinity = rustix::thread::sched_getaffinity(None).unwrap().count() as usize;
    assert_eq!(n, affinity);
    // Restrict ourselves to one CPU: the count follows.
    let mut one = rustix::thread::CpuSet::new();
    let first = (0..rustix::thread::CpuSet::MAX_CPU)
        .find(|&i| rustix::thread::sched_getaffinity(None).unwrap().is_set(i))
        .unwrap();
    one.set(first);
    rustix::thread::sched_setaffinity(None, &one).unwrap();
    assert_eq!(shmproc::cpu_count(), 1);
}

/// A shared object moved into a child's closure must stay allocated in the
/// parent while the child runs (its memory returns to the arena when the
/// creating process drops its last handle): the parent keeps its copy of
/// the target until the child has ended.
fn captures_live_in_the_parent_until_join() {
    struct Witness {
        dropped_in: Arc<std::sync::atomic::AtomicU32>,
        pid: u32,
    }
    impl Drop for Witness {
        fn drop(&mut self) {
            if std::process::id() == self.pid {
                self.dropped_in
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    let dropped = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let witness = Witness {
        dropped_in: Arc::clone(&dropped),
        pid: std::process::id(),
    };
    let queue = shmproc::Queue::<u64>::new(4).unwrap();
    let queue_in_child = queue.clone();
    let mut p = Process::new(move || {
        let _witness = &witness;
        queue_in_child.put(7).unwrap();
    });
    p.start().unwrap();
    let count = || dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        count(),
        0,
        "the parent's copy of the target was dropped at start"
    );
    assert_eq!(queue.get().unwrap(), 7);
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(count(), 1, "join lets the parent's copy go");

    // Dropping an un-joined non-daemon Process joins it, then lets go.
    let witness = Witness {
        dropped_in: Arc::clone(&dropped),
        pid: std::process::id(),
    };
    let mut p = Process::new(move || {
        let _witness = &witness;
    });
    p.start().unwrap();
    assert_eq!(count(), 1);
    drop(p);
    assert_eq!(count(), 2);
}
