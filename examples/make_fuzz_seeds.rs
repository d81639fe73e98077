//! Writes seed inputs for the fuzz targets: images of real arenas
//! (`arena_open`) and real encoded messages (`codec_decode`).
//!
//! `cargo run --example make_fuzz_seeds` (writes fuzz/corpus/*/seed-*).

use shmproc::{Arena, Encoded, Message, Offset};

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
    codec_seeds()
}

fn codec_seeds() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/codec_decode");
    std::fs::create_dir_all(dir)?;
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut add = |encode: &dyn Fn(&mut Vec<u8>) -> shmproc::Result<()>| -> shmproc::Result<()> {
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        seeds.push(bytes);
        Ok(())
    };
    add(&|out| 42u64.encode(out))?;
    add(&|out| 'é'.encode(out))?;
    add(&|out| String::from("hello, shm").encode(out))?;
    add(&|out| vec![1u32, 2, 3].encode(out))?;
    add(&|out| Some(String::from("x")).encode(out))?;
    add(&|out| (7u8, String::from("two"), vec![3u16, 4]).encode(out))?;
    add(&|out| Encoded(vec![String::from("a"), String::from("bc")]).encode(out))?;
    add(&|out| Encoded((9u64, Some(String::from("n")), vec![(1u8, 2.5f32)])).encode(out))?;
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(format!("{dir}/seed-{i}"), seed)?;
    }
    println!("wrote seeds to {dir}");
    Ok(())
}
