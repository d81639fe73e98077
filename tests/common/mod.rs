//! The cross-process test harness (see docs/ARCHITECTURE.md, "Testing across processes").
//!
//! `cargo test` runs `#[test]`s on many threads of one process, and forking a
//! threaded process is unsound (another thread may hold the allocator's or
//! stdout's lock). So every test binary that forks is built with
//! `harness = false` and calls [`main`]: the runner re-executes its own binary
//! once per case, so each case starts in a fresh, single-threaded process in
//! a process group of its own. The runner is a watchdog: it kills the whole
//! group (`kill(-pgid, SIGKILL)`) and fails the case at its deadline; it fails
//! a case that leaves processes running or named segments in /dev/shm behind
//! (after killing and unlinking them), and it reaps everything as a child
//! subreaper, so no zombie outlives a run. Output follows libtest's format.
#![allow(dead_code, unsafe_code)]

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CASE_ENV: &str = "SHMPROC_TEST_CASE";
const HELPER_ENV: &str = "SHMPROC_TEST_HELPER";
const TAG_ENV: &str = "SHMPROC_TEST_TAG";

/// One cross-process test case.
pub struct Case {
    /// Its name, as filters and the report use it.
    pub name: &'static str,
    /// The watchdog's deadline for the whole case.
    pub timeout: Duration,
    /// The body; runs in a fresh single-threaded process. Panics fail it.
    pub run: fn(),
}

/// A role the test binary can be started in by `std::process::Command`:
/// an *unrelated* process (not a fork) for tests that need one.
pub struct Helper {
    /// Name passed to [`spawn_helper`].
    pub name: &'static str,
    /// The body; gets the extra arguments; panics make it exit non-zero.
    pub run: fn(&[String]),
}

/// `case!(name, seconds)` builds a [`Case`] from a function of that name.
#[macro_export]
macro_rules! case {
    ($f:ident, $secs:expr) => {
        $crate::common::Case {
            name: stringify!($f),
            timeout: ::std::time::Duration::from_secs($secs),
            run: $f,
        }
    };
}

/// `helper!(name)` builds a [`Helper`] from a function of that name.
#[macro_export]
macro_rules! helper {
    ($f:ident) => {
        $crate::common::Helper {
            name: stringify!($f),
            run: $f,
        }
    };
}

fn set_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// The entry point of a `harness = false` test binary.
pub fn main(cases: &[Case], helpers: &[Helper]) {
    if let Ok(name) = std::env::var(HELPER_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let helper = helpers
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no helper named {name}"));
        set_subreaper();
        (helper.run)(&args);
        flush();
        std::process::exit(0);
    }
    if let Ok(name) = std::env::var(CASE_ENV) {
        let case = cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case named {name}"));
        set_subreaper();
        (case.run)();
        flush();
        std::process::exit(0);
    }
    run_all(cases);
}

fn flush() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

fn run_all(cases: &[Case]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    if args.iter().any(|a| a == "--list") {
        for case in cases {
            println!("{}: test", case.name);
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        c.name == f.as_str()
                    } else {
                        c.name.contains(f.as_str())
                    }
                })
        })
        .collect();
    set_subreaper();
    let start = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (i, case) in selected.iter().enumerate() {
        let tag = format!("shmproc-test-{}-{i}", std::process::id());
        let outcome = run_case(case, &tag);
        match &outcome {
            Ok(()) => println!("test {} ... ok", case.name),
            Err(why) => {
                println!("test {} ... FAILED ({why})", case.name);
                failed.push((case.name, why.clone()));
            }
        }
    }
    let filtered = cases.len() - selected.len();
    if !failed.is_empty() {
        println!("\nfailures:");
        for (name, why) in &failed {
            println!("    {name}: {why}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    flush();
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

fn run_case(case: &Case, tag: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(CASE_ENV, case.name)
        .env(TAG_ENV, tag)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start the case: {e}"))?;
    let pgid = child.id() as i32;
    let deadline = Instant::now() + case.timeout;
    let mut result = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(format!("case process ended with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(pgid);
                let _ = child.wait();
                break Err(format!(
                    "watchdog: no result after {:?}; killed the case and its children",
                    case.timeout
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => break Err(format!("waiting for the case: {e}")),
        }
    };
    // Anything still in the case's process group was left running.
    if group_alive(pgid) {
        kill_group(pgid);
        if result.is_ok() {
            result = Err("the case left processes running (killed them)".into());
        }
    }
    reap_orphans();
    let leaked = leaked_segments(tag);
    if !leaked.is_empty() {
        for name in &leaked {
            let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        }
        if result.is_ok() {
            result = Err(format!(
                "the case left named segments behind (unlinked them): {leaked:?}"
            ));
        }
    }
    result
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

fn group_alive(pgid: i32) -> bool {
    // Zombies still count for kill(0): reap what we inherited first.
    reap_orphans_now();
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn reap_orphans_now() {
    loop {
        // SAFETY: waitpid with a valid status pointer to a local.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// Reaps orphans reparented to us (we are a subreaper), waiting briefly for
/// killed ones to die.
fn reap_orphans() {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        // SAFETY: waitpid with a null status pointer is allowed.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid < 0 || Instant::now() > until {
            return; // ECHILD: nothing left
        }
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn leaked_segments(tag: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(tag))
                .collect()
        })
        .unwrap_or_default()
}

/// A name for a named segment that the runner will check for leaks.
pub fn shm_name(suffix: &str) -> String {
    let tag =
        std::env::var(TAG_ENV).unwrap_or_else(|_| format!("shmproc-test-{}", std::process::id()));
    format!("{tag}-{suffix}")
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Forked children that are killed (SIGKILL) and reaped when dropped, so a
/// failing assertion in the parent still leaves nothing behind.
#[derive(Default)]
pub struct Children {
    pids: Vec<i32>,
}

impl Children {
    /// No children yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forks a child that runs `body` and exits 0, or 101 if it panics.
    pub fn fork(&mut self, body: impl FnOnce()) -> i32 {
        let pid = fork_raw(body);
        self.pids.push(pid);
        pid
    }

    /// Adopts a pid forked elsewhere.
    pub fn adopt(&mut self, pid: i32) {
        self.pids.push(pid);
    }

    /// Waits for `pid` (one of ours) until `timeout`; panics on timeout (the
    /// drop then kills the rest).
    pub fn wait(&mut self, pid: i32, timeout: Duration) -> Exit {
        let exit = wait_pid(pid, timeout)
            .unwrap_or_else(|| panic!("child {pid} did not end within {timeout:?}"));
        self.pids.retain(|&p| p != pid);
        exit
    }

    /// Waits for every child; panics unless each exited 0.
    pub fn join_all_ok(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for pid in self.pids.clone() {
            let left = deadline.saturating_duration_since(Instant::now());
            let exit = self.wait(pid, left);
            assert_eq!(exit, Exit::Code(0), "child {pid} failed");
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: kill(2) on a pid we forked; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = wait_pid(pid, Duration::from_secs(5));
        }
    }
}

/// Forks; the child runs `body` then `_exit`s (0, or 101 after a panic).
pub fn fork_raw(body: impl FnOnce()) -> i32 {
    flush();
    // SAFETY: the case process is single-threaded (the harness guarantees
    // it), so the child may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(AssertUnwindSafe(body)).is_ok();
        flush();
        // SAFETY: _exit ends the child without running the parent's atexit
        // handlers or destructors a second time.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    pid
}

/// Waits for `pid` up to `timeout`; `None` if it is still running then.
pub fn wait_pid(pid: i32, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a pointer to a local status word.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            });
        }
        if r < 0 {
            panic!("waitpid({pid}): {}", std::io::Error::last_os_error());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Starts this test binary as an unrelated process in the role `helper`.
pub fn spawn_helper(helper: &str, args: &[&str]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .env(HELPER_ENV, helper)
        .env_remove(CASE_ENV)
        .args(args)
        .spawn()
        .expect("spawn helper")
}

/// Waits for a helper until `timeout`, killing it then; true if it exited 0.
pub fn wait_helper(mut child: Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("helper did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Children of `parent` now, from `/proc/*/stat`: `(pid, state letter)`
/// (`'Z'` for a zombie). For tests that check nothing was left behind.
pub fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_ascii_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: i32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent {
            found.push((pid, state));
        }
    }
    found
}
