//! The tour: every shmproc primitive, across processes, then a comparison table.
//!
//! `cargo run --release --example tour`
//!
//! Each part lives in its own file; each prints what it does and checks what
//! it shows, so the tour fails loudly if a primitive misbehaves.

mod arena;
mod channel;
mod compare;
mod pool;
mod process;
mod sync;
mod value;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    println!("shmproc tour (pid {})\n", std::process::id());
    arena::run()?;
    sync::run()?;
    value::run()?;
    process::run()?;
    channel::run()?;
    pool::run()?;
    compare::run()?;
    println!("\ntour finished: every part checked what it showed");
    Ok(())
}

/// Forks a child that runs `body` and `_exit`s; returns its pid.
///
/// The tour is single-threaded, so forking is sound; later parts use
/// `shmproc::Process` instead.
pub fn fork(body: impl FnOnce()) -> i32 {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: the tour runs no other threads, so the child may run any code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_ok();
        let _ = std::io::stdout().flush();
        // SAFETY: _exit skips the parent's destructors and atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pid
}

/// Waits for a child forked by [`fork`]; errors unless it exited 0.
pub fn wait(pid: i32) -> Result {
    let mut status = 0;
    // SAFETY: waitpid with a pointer to a local status word.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("child {pid} failed (status {status:#x})").into());
    }
    Ok(())
}
