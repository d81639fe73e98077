//! What more than one bench needs: running a Python comparison script in
//! the same criterion run.

use std::process::Command;
use std::time::Duration;

/// Total seconds `python3 benches/<script> <what> <iters>` prints for
/// `iters` operations, or `None` when python3 or the script fails.
pub fn python_total(script: &str, what: &str, iters: u64) -> Option<Duration> {
    let path = format!("{}/benches/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .arg(what)
        .arg(iters.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse::<f64>().ok().map(Duration::from_secs_f64)
}

/// Whether python3 with `multiprocessing` is there (says so when not).
pub fn python_available() -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("python3 with multiprocessing not found: skipping the alt_python figures");
    }
    ok
}
