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

#[test]
fn ring_recv_corpus() {
    let n = replay("ring_recv", shmproc::fuzzing::ring_recv);
    assert!(n >= 24, "the ring_recv corpus has its seed files");
}

/// The seeds themselves, generated afresh (so a layout change that the
/// checked-in corpus predates is still covered), and each with every byte
/// flipped in turn in the ring headers' index and length fields.
#[test]
fn ring_recv_fresh_seeds_and_bit_flips() {
    for seed in shmproc::fuzzing::ring_recv_seeds() {
        shmproc::fuzzing::ring_recv(&seed);
        for at in (1..seed.len()).step_by(5) {
            let mut flipped = seed.clone();
            flipped[at] ^= 0xA5;
            shmproc::fuzzing::ring_recv(&flipped);
        }
    }
}
