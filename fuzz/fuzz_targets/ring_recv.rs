#![no_main]
//! Arbitrary bytes as the shared memory of an SPSC ring (byte 0 even) or an
//! MPMC ring (odd): a receiver must get messages or errors, never panic,
//! read out of bounds or loop forever.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmproc::fuzzing::ring_recv(data));
