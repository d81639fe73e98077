//! Replays every `cargo fuzz` corpus under fuzz/corpus as an ordinary test,
//! so inputs that once found a bug keep being checked without nightly.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn arena_open_corpus() {
    let n = replay("arena_open", shmproc::fuzzing::arena_open);
    assert!(n >= 3, "the arena_open corpus has its seed files");
}

#[test]
fn codec_decode_corpus() {
    let n = replay("codec_decode", shmproc::codec::fuzz_decode);
    assert!(n >= 3, "the codec_decode corpus has its seed files");
}
