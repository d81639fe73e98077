//! Small OS queries shared by several layers.

/// True if a process with this pid exists (`kill(pid, 0)`); a pid we may not
/// signal still exists.
pub(crate) fn pid_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// The calling process's pid.
pub(crate) fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The calling thread's id.
#[allow(dead_code)]
pub(crate) fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}
