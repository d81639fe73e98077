//! Processes: forked children with names, pids and Python's exit codes.

use shmproc::{Process, current_process};
use std::time::{Duration, Instant};

pub fn run() -> crate::Result {
    println!("== process");
    let me = current_process();
    println!(
        "  {} (pid {}) may run on {} CPU(s)",
        me.name(),
        me.pid(),
        shmproc::cpu_count()
    );
    let mut procs = vec![
        Process::new(|| {
            let me = current_process();
            let parent = shmproc::parent_process().expect("a child has a parent");
            println!(
                "    (child) I am {} (pid {}), child of {} (pid {})",
                me.name(),
                me.pid(),
                parent.name(),
                parent.pid()
            );
        })
        .name("greeter"),
        Process::new(|| shmproc::exit(3)).name("exits-3"),
        Process::new(|| {
            // A one-line hook (in this child only) keeps the tour readable
            // when RUST_BACKTRACE is set; the default hook prints too.
            std::panic::set_hook(Box::new(|info| eprintln!("    (child) {info}")));
            panic!("a deliberate panic in the tour (exit code 1)");
        })
        .name("panicker"),
        Process::new(|| std::thread::sleep(Duration::from_secs(60))).name("sleeper"),
        Process::new(|| {}), // Python's default name: Process-N
    ];
    println!(
        "  before start: {} pid {:?}",
        procs[0].get_name(),
        procs[0].pid()
    );
    for p in &mut procs {
        p.start()?;
    }
    println!(
        "  started {} processes; active_children() (which reaps the finished) lists {}",
        procs.len(),
        shmproc::active_children().len()
    );
    let sleeper = &procs[3];
    let t0 = Instant::now();
    let still_running = sleeper.join_timeout(Duration::from_millis(50))?;
    println!(
        "  join_timeout(50ms) on {}: {still_running:?} after {:?}, is_alive {}",
        sleeper.get_name(),
        t0.elapsed(),
        sleeper.is_alive()
    );
    assert_eq!(still_running, None);
    sleeper.terminate()?;
    let expected = [0, 3, 1, -15, 0];
    for (p, want) in procs.iter().zip(expected) {
        let code = p.join()?;
        println!(
            "  {:<12} pid {:>7}  exitcode {code:>3}",
            p.get_name(),
            p.pid().unwrap_or(0)
        );
        if code != want {
            return Err(format!("{} exited with {code}, expected {want}", p.get_name()).into());
        }
    }
    assert!(shmproc::active_children().is_empty());
    Ok(())
}
