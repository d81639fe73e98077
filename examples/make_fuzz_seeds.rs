//! Writes seed inputs for the `arena_open` fuzz target: images of real arenas.
//!
//! `cargo run --example make_fuzz_seeds` (writes fuzz/corpus/arena_open/seed-*).

use shmproc::{Arena, Offset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/arena_open");
    std::fs::create_dir_all(dir)?;
    for (i, publish) in [false, true, true].into_iter().enumerate() {
        let name = format!("shmproc-seed-{}-{i}", std::process::id());
        let arena = Arena::create(&name, 8192)?;
        if publish {
            let at: Offset<u64> = arena.alloc_value(42)?;
            arena.publish("x", &at)?;
            if i == 2 {
                let tmp = arena.alloc(100, 8)?;
                arena.free(tmp)?;
            }
        }
        let image = std::fs::read(format!("/dev/shm/{name}"))?;
        std::fs::write(format!("{dir}/seed-{i}"), image)?;
    }
    std::fs::write(format!("{dir}/seed-empty"), b"")?;
    std::fs::write(format!("{dir}/seed-magic"), b"SHMPROC\x01")?;
    println!("wrote seeds to {dir}");
    Ok(())
}
