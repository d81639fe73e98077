#![no_main]
//! Arbitrary bytes as a message that travelled: every `Message::decode`
//! must return a value or an error, never panic or allocate without bound.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmproc::codec::fuzz_decode(data));
