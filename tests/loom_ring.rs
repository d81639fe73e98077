//! Loom models of the ring cores (src/ring) on heap memory, with the futex
//! stand-in: the SPSC and MPMC index logic at tiny capacities (so frames
//! wrap, pads appear and slots are reused), and the sleep/wake handshake of
//! both (every wait here is `WaitStrategy::Park`, so a lost wake-up shows
//! up as a loom deadlock).
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_ring`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmproc::Error;
use shmproc::ring::mpmc::{
    Claimant, KIND_INLINE, MpmcHeader, MpmcRing, SLOT_HEADER, SlotHeader, Step,
};
use shmproc::ring::spsc::{KIND_INLINE as FRAME, SENDER_CLOSED, SpscHeader, SpscRing};
use shmproc::ring::wait;
use shmproc::sync::WaitStrategy;
use std::ptr::NonNull;

fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.check(f);
}

/// Heap memory standing in for a ring's data area (8-aligned).
struct Buffer(Vec<u64>);

impl Buffer {
    fn new(bytes: usize) -> Self {
        Buffer(vec![0; bytes / 8])
    }
    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.0.as_ptr() as *mut u8).unwrap()
    }
}

// SAFETY (for the model): the buffer is only touched through the ring
// protocol under test; loom runs one thread at a time.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

struct Spsc {
    header: SpscHeader,
    data: Buffer,
}

impl Spsc {
    fn new(capacity: u64) -> Arc<Spsc> {
        Arc::new(Spsc {
            header: SpscHeader::new(capacity),
            data: Buffer::new(capacity as usize),
        })
    }
    fn ring(&self) -> SpscRing<'_> {
        // SAFETY: `data` holds `capacity` bytes for as long as `self`.
        unsafe { SpscRing::new(&self.header, self.data.ptr(), self.header.capacity()) }
    }
}

fn send(spsc: &Spsc, bytes: &[u8]) {
    let ring = spsc.ring();
    let len = bytes.len() as u64;
    let reservation = wait(
        WaitStrategy::Park,
        None,
        spsc.header.space_sleepers(),
        || ring.try_reserve(len),
        || Ok(()),
    )
    .unwrap()
    .unwrap();
    // SAFETY: reserved bytes, ours until commit.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ring.payload_mut(&reservation), bytes.len())
    };
    ring.commit(reservation, len, FRAME);
}

fn recv(spsc: &Spsc) -> Result<Vec<u8>, Error> {
    let ring = spsc.ring();
    let frame = wait(
        WaitStrategy::Park,
        None,
        spsc.header.data_sleepers(),
        || match ring.try_peek()? {
            Some(frame) => Ok(Some(frame)),
            None if spsc.header.closed() & SENDER_CLOSED != 0 => {
                ring.try_peek()?.map(Some).ok_or(Error::Closed)
            }
            None => Ok(None),
        },
        || Ok(()),
    )?
    .unwrap();
    // SAFETY: a published frame, ours until release.
    let bytes =
        unsafe { std::slice::from_raw_parts(ring.payload(&frame), frame.len as usize) }.to_vec();
    ring.release(frame);
    Ok(bytes)
}

/// Frames of 8..24 payload bytes through a 64-byte ring: the sender fills
/// it, pads at the end, wraps and sleeps on a full ring; the receiver sleeps
/// on an empty one. Every message arrives once, in order, intact.
#[test]
fn spsc_wraps_pads_and_wakes_both_sides() {
    model(3, || {
        let spsc = Spsc::new(64);
        let sizes = [24usize, 8, 24, 24];
        let sender = {
            let spsc = spsc.clone();
            thread::spawn(move || {
                for (i, &len) in sizes.iter().enumerate() {
                    send(&spsc, &vec![i as u8 + 1; len]);
                }
                spsc.header.close(SENDER_CLOSED);
            })
        };
        for (i, &len) in sizes.iter().enumerate() {
            assert_eq!(recv(&spsc).unwrap(), vec![i as u8 + 1; len]);
        }
        assert!(matches!(recv(&spsc), Err(Error::Closed)));
        sender.join().unwrap();
    });
}

/// The sleep/wake handshake alone: one message, the receiver parked.
#[test]
fn spsc_receiver_sleeping_is_woken() {
    model(5, || {
        let spsc = Spsc::new(64);
        let sender = {
            let spsc = spsc.clone();
            thread::spawn(move || send(&spsc, b"hi"))
        };
        assert_eq!(recv(&spsc).unwrap(), b"hi");
        sender.join().unwrap();
    });
}

struct Mpmc {
    header: MpmcHeader,
    slots: Buffer,
    capacity: u64,
    stride: u64,
}

impl Mpmc {
    fn new(capacity: u64) -> Arc<Mpmc> {
        let stride = (SLOT_HEADER + 8).next_multiple_of(8);
        let slots = Buffer::new((capacity * stride) as usize);
        for i in 0..capacity {
            let at = slots
                .ptr()
                .as_ptr()
                .wrapping_add((i * stride) as usize)
                .cast::<SlotHeader>();
            // SAFETY: inside the buffer, 8-aligned; written once here.
            unsafe { at.write(SlotHeader::new(i)) };
        }
        Arc::new(Mpmc {
            header: MpmcHeader::new(capacity, stride),
            slots,
            capacity,
            stride,
        })
    }
    fn ring(&self) -> MpmcRing<'_> {
        // SAFETY: `slots` holds capacity * stride bytes, slots initialised.
        unsafe { MpmcRing::new(&self.header, self.slots.ptr(), self.capacity, self.stride) }
    }
}

impl Drop for Mpmc {
    fn drop(&mut self) {
        for i in 0..self.capacity {
            let at = self
                .slots
                .ptr()
                .as_ptr()
                .wrapping_add((i * self.stride) as usize)
                .cast::<SlotHeader>();
            // SAFETY: written in `new`, dropped once here.
            unsafe { std::ptr::drop_in_place(at) };
        }
    }
}

const ME: Claimant = Claimant { tid: 1, start: 1 };

fn put(q: &Mpmc, value: u64) {
    let ring = q.ring();
    let mut value = Some(value);
    let mut write = |slot: &SlotHeader, payload: *mut u8| {
        if let Some(v) = value.take() {
            // SAFETY: 8 payload bytes of the claimed slot.
            unsafe { payload.cast::<u64>().write_unaligned(v) };
            slot.set(KIND_INLINE, 8);
        }
    };
    wait(
        WaitStrategy::Park,
        None,
        q.header.not_full(),
        || match ring.try_push(ME, &mut write)? {
            Step::Done(()) => Ok(Some(())),
            Step::Blocked(_) => Ok(None),
        },
        || Ok(()),
    )
    .unwrap()
    .unwrap();
}

fn get(q: &Mpmc) -> Result<u64, Error> {
    let ring = q.ring();
    let read = |slot: &SlotHeader, payload: *const u8| {
        assert_eq!((slot.kind(), slot.len()), (KIND_INLINE, 8));
        // SAFETY: 8 payload bytes of the claimed slot.
        unsafe { payload.cast::<u64>().read_unaligned() }
    };
    Ok(wait(
        WaitStrategy::Park,
        None,
        q.header.not_empty(),
        || match ring.try_pop(ME, read)? {
            Step::Done(v) => Ok(Some(v)),
            Step::Blocked(_) if q.header.is_closed() => match ring.try_pop(ME, read)? {
                Step::Done(v) => Ok(Some(v)),
                Step::Blocked(_) => Err(Error::Closed),
            },
            Step::Blocked(_) => Ok(None),
        },
        || Ok(()),
    )?
    .unwrap())
}

/// Two producers, one slot: every put but the first waits for the
/// consumer (slot reuse, the capacity-1 sequence numbers, and wake-ups of
/// sleeping putters and a sleeping getter).
#[test]
fn mpmc_one_slot_two_producers() {
    model(2, || {
        let q = Mpmc::new(1);
        let producers: Vec<_> = [10u64, 20]
            .into_iter()
            .map(|base| {
                let q = q.clone();
                thread::spawn(move || put(&q, base + 1))
            })
            .collect();
        let mut got = vec![get(&q).unwrap(), get(&q).unwrap()];
        got.sort();
        assert_eq!(got, [11, 21]);
        for p in producers {
            p.join().unwrap();
        }
    });
}

/// Two slots, a producer of three messages and two consumers racing for
/// them; then close: nothing lost, nothing duplicated, per-producer order,
/// and the consumer left waiting is woken by the close.
#[test]
fn mpmc_two_slots_two_consumers_and_close() {
    model(2, || {
        let q = Mpmc::new(2);
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                for v in 1..=3 {
                    put(&q, v);
                }
                q.header.close();
            })
        };
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut mine = Vec::new();
                while let Ok(v) = get(&q) {
                    mine.push(v);
                }
                mine
            })
        };
        let mut mine = Vec::new();
        while let Ok(v) = get(&q) {
            mine.push(v);
        }
        producer.join().unwrap();
        let theirs = consumer.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        assert!(theirs.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<u64> = mine.into_iter().chain(theirs).collect();
        all.sort();
        assert_eq!(all, [1, 2, 3]);
    });
}
