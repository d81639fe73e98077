#![no_main]
//! Arbitrary bytes as the contents of a named segment: `Arena::open` and
//! `lookup` must fail with an error, never panic or read out of bounds.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmproc::fuzzing::arena_open(data));
