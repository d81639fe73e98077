//! `Pipe`, `Connection`, `Sender`, `Receiver`: SPSC rings between two processes.

use super::{is_dead, me_process, with_bytes};
use crate::arena::{Arena, Offset, Publish};
use crate::codec::Message;
use crate::error::{Error, Result};
use crate::ring::spsc::{
    self, KIND_BLOCK, KIND_INLINE, RECEIVER_CLOSED, SENDER_CLOSED, SpscHeader, SpscRing,
};
use crate::ring::{self};
use crate::sync::WaitStrategy;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Data bytes of each direction's ring made by `Pipe::new`/`Pipe::simplex`.
pub const DEFAULT_PIPE_CAPACITY: usize = 64 << 10;

const HEADER_BYTES: u64 = core::mem::size_of::<SpscHeader>() as u64;

/// One ring in an arena block: header, then data.
struct RingBlock {
    arena: Arena,
    offset: u64,
    header: NonNull<SpscHeader>,
    data: NonNull<u8>,
    capacity: u64,
    /// Pid of the allocating process; 0 for an attached handle.
    creator: i32,
}

// SAFETY: the pointers point into `arena`'s mapping, kept alive by `arena`;
// the header is atomics only and the data bytes are accessed only through
// the ring protocol (see `SpscRing::new`).
unsafe impl Send for RingBlock {}
// SAFETY: as for Send.
unsafe impl Sync for RingBlock {}

impl RingBlock {
    fn alloc(arena: &Arena, capacity: usize) -> Result<RingBlock> {
        let capacity = (capacity.max(64) as u64)
            .checked_next_power_of_two()
            .filter(|&c| SpscRing::valid_capacity(c))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("pipe capacity {capacity} is too large"))
            })?;
        let offset = arena.alloc((HEADER_BYTES + capacity) as usize, 128)?.raw();
        let block = match RingBlock::resolve(arena, offset, Some(capacity)) {
            Ok(block) => block,
            Err(e) => {
                let _ = arena.free(Offset::<u8>::from_raw(offset));
                return Err(e);
            }
        };
        // Pre-touch the data area so the first messages do not page-fault.
        // SAFETY: `data` is valid for `capacity` bytes (checked by resolve)
        // and nobody else can see the block yet.
        unsafe { block.data.as_ptr().write_bytes(0, capacity as usize) };
        block.header().init(capacity);
        Ok(block)
    }

    /// Resolves the header at `offset` and the data area behind it
    /// (checked). `creating` carries the capacity of a block being made
    /// here (its header is not initialised yet); an attached ring's capacity
    /// is read from its header and validated.
    fn resolve(arena: &Arena, offset: u64, creating: Option<u64>) -> Result<RingBlock> {
        let header: &SpscHeader = arena.resolve(offset)?;
        let capacity = creating.unwrap_or_else(|| header.capacity());
        if !SpscRing::valid_capacity(capacity) {
            return Err(ring::corrupt(format!(
                "SPSC ring at {offset:#x} claims capacity {capacity}"
            )));
        }
        let data = arena.check_range(offset + HEADER_BYTES, capacity, 8)?;
        Ok(RingBlock {
            arena: arena.clone(),
            offset,
            header: NonNull::from(header),
            data,
            capacity,
            creator: if creating.is_some() {
                crate::sys::getpid()
            } else {
                0
            },
        })
    }

    fn header(&self) -> &SpscHeader {
        // SAFETY: resolved by `Arena::resolve` (bounds, alignment, ShmState)
        // and the mapping lives as long as `self.arena`.
        unsafe { self.header.as_ref() }
    }

    #[inline]
    fn ring(&self) -> SpscRing<'_> {
        // SAFETY: `data` covers `capacity` checked bytes after the header,
        // alive as long as `self`; capacity passed `valid_capacity`; all
        // access goes through the ring protocol.
        unsafe { SpscRing::new(self.header(), self.data, self.capacity) }
    }
}

impl Drop for RingBlock {
    fn drop(&mut self) {
        if self.creator != 0 && self.creator == crate::sys::getpid() {
            let _ = self.arena.free(Offset::<u8>::from_raw(self.offset));
        }
    }
}

/// The rings an end uses; closes them when the last handle of an end that
/// this process used is dropped.
struct End {
    tx: Option<Arc<RingBlock>>,
    rx: Option<Arc<RingBlock>>,
}

impl Drop for End {
    fn drop(&mut self) {
        let (me, _) = me_process();
        if let Some(tx) = &self.tx {
            if tx.header().sender_stamp().0 == me {
                tx.header().close(SENDER_CLOSED);
            }
        }
        if let Some(rx) = &self.rx {
            if rx.header().receiver_stamp().0 == me {
                rx.header().close(RECEIVER_CLOSED);
            }
        }
    }
}

/// Constructors of pipes (Python's `multiprocessing.Pipe`).
///
/// # Examples
/// ```
/// use shmproc::Pipe;
/// let (left, right) = Pipe::new()?;
/// left.send("hello".to_string())?;
/// assert_eq!(right.recv::<String>()?, "hello");
/// right.send(42u64)?;
/// assert_eq!(left.recv::<u64>()?, 42);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// A duplex pipe in the default arena: two connected [`Connection`]s.
    ///
    /// # Errors
    /// The default arena could not be created, or is full.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Result<(Connection, Connection)> {
        Pipe::with_capacity_in(Arena::default_arena()?, DEFAULT_PIPE_CAPACITY)
    }

    /// A duplex pipe in `arena` whose rings hold `capacity` bytes each way
    /// (rounded up to a power of two). Messages larger than half of it
    /// travel as arena blocks.
    ///
    /// # Errors
    /// [`Error::ArenaFull`], [`Error::InvalidArgument`] for an absurd capacity.
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<(Connection, Connection)> {
        let a = Arc::new(RingBlock::alloc(arena, capacity)?);
        let b = Arc::new(RingBlock::alloc(arena, capacity)?);
        Ok((
            Connection::from_end(Some(a.clone()), Some(b.clone())),
            Connection::from_end(Some(b), Some(a)),
        ))
    }

    /// A one-way pipe in the default arena: `(Receiver, Sender)`, as Python's
    /// `Pipe(duplex=False)` returns `(reader, writer)`.
    ///
    /// # Errors
    /// As [`Pipe::new`].
    pub fn simplex() -> Result<(Receiver, Sender)> {
        Pipe::simplex_in(Arena::default_arena()?, DEFAULT_PIPE_CAPACITY)
    }

    /// A one-way pipe in `arena` with a ring of `capacity` bytes.
    ///
    /// # Errors
    /// As [`Pipe::with_capacity_in`].
    pub fn simplex_in(arena: &Arena, capacity: usize) -> Result<(Receiver, Sender)> {
        let ring = Arc::new(RingBlock::alloc(arena, capacity)?);
        Ok((
            Receiver(Connection::from_end(None, Some(ring.clone()))),
            Sender(Connection::from_end(Some(ring), None)),
        ))
    }
}

/// One end of a [`Pipe`]: sends into one SPSC ring and receives from another.
///
/// Both ends live in shared memory, so a `Connection` handed to a forked
/// child (moved into its closure, or cloned first) talks to the other end in
/// any process. Each direction is single-producer single-consumer: use one
/// end from one thread at a time (the handle is `Send` but not `Sync`); two
/// processes sending through the same end at once interleave bytes
/// (validation turns that into [`Error::Corrupt`], never into undefined
/// behaviour), as two processes writing one Unix pipe interleave writes.
///
/// * `send` copies a message into the ring (one `memcpy`); `recv` decodes it
///   straight from the ring. `loan`/[`Loan::commit`] and `recv_ref` are the
///   zero-copy forms.
/// * Messages larger than half the ring travel as arena blocks (still one
///   copy in, none out with `recv_ref`).
/// * When the other end was closed (`close`, or dropping the last handle in
///   the process that used it), `recv` drains what was sent and then gives
///   [`Error::Closed`]; `send` gives `Closed` at once. When the process using
///   the other end died, the same happens with [`Error::PeerDied`] (checked
///   every 20 ms of waiting).
///
/// # Examples
/// ```
/// use shmproc::Pipe;
/// let (mut a, mut b) = Pipe::new()?;
/// // Zero-copy: write straight into the ring, read in place.
/// let mut loan = a.loan(5)?;
/// loan.copy_from_slice(b"bytes");
/// loan.commit();
/// assert_eq!(&*b.recv_ref()?, b"bytes");
/// a.close();
/// assert!(matches!(b.recv::<u8>(), Err(shmproc::Error::Closed)));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Connection {
    end: Arc<End>,
    strategy: WaitStrategy,
    /// Pid this handle last stamped its ends with (0: not yet).
    stamped: Cell<u32>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        Connection {
            end: self.end.clone(),
            strategy: self.strategy,
            stamped: Cell::new(0),
            _not_sync: PhantomData,
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sends", &self.end.tx.is_some())
            .field("receives", &self.end.rx.is_some())
            .finish()
    }
}

/// The longest message a pipe takes: a quarter of its arena, at most 4 GiB.
fn max_message(arena: &Arena) -> usize {
    (arena.size() / 4).min(u32::MAX as usize)
}

fn check_size(tx: &RingBlock, len: usize) -> Result<()> {
    let max = max_message(&tx.arena);
    if len > max {
        return Err(Error::MessageTooLarge { len, max });
    }
    Ok(())
}

fn missing(what: &str) -> Error {
    Error::InvalidArgument(format!("this end of the pipe cannot {what}"))
}

impl Connection {
    fn from_end(tx: Option<Arc<RingBlock>>, rx: Option<Arc<RingBlock>>) -> Connection {
        Connection {
            end: Arc::new(End { tx, rx }),
            strategy: WaitStrategy::DEFAULT,
            stamped: Cell::new(0),
            _not_sync: PhantomData,
        }
    }

    /// Records this process as the user of this end (once per process).
    #[inline]
    fn stamp(&self) {
        let pid = crate::sync::owner_current().pid;
        if self.stamped.get() != pid {
            self.stamp_slow();
        }
    }

    #[cold]
    fn stamp_slow(&self) {
        let (pid, start) = me_process();
        if let Some(tx) = &self.end.tx {
            tx.header().stamp_sender(pid, start);
        }
        if let Some(rx) = &self.end.rx {
            rx.header().stamp_receiver(pid, start);
        }
        self.stamped.set(pid);
    }

    #[inline]
    fn tx(&self) -> Result<&RingBlock> {
        self.end.tx.as_deref().ok_or_else(|| missing("send"))
    }

    #[inline]
    fn rx(&self) -> Result<&RingBlock> {
        self.end.rx.as_deref().ok_or_else(|| missing("receive"))
    }

    /// How waits on this handle wait (see [`WaitStrategy`]).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// This handle with another wait strategy.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sends a message, waiting for room in the ring.
    ///
    /// # Errors
    /// [`Error::Closed`] if the receiving end was closed, [`Error::PeerDied`]
    /// if its process died while we waited for room, [`Error::Codec`],
    /// [`Error::ArenaFull`] (a large message's block), [`Error::Corrupt`].
    #[inline]
    pub fn send<T: Message>(&self, value: T) -> Result<()> {
        with_bytes(&value, |bytes| self.send_bytes(bytes))
    }

    /// Sends raw bytes (Python's `send_bytes`), waiting for room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    #[inline]
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        let tx = self.tx()?;
        self.stamp();
        let ring = tx.ring();
        let len = bytes.len() as u64;
        if len > ring.max_frame_payload() {
            check_size(tx, bytes.len())?;
            return self.send_block(tx, bytes);
        }
        let reservation = self.reserve(tx, &ring, len, None)?;
        let dst = ring.payload_mut(&reservation);
        // SAFETY: `dst` is `len` reserved, unpublished bytes in the ring
        // (try_reserve), which `bytes` (our memory) cannot overlap.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        ring.commit(reservation, len, KIND_INLINE);
        Ok(())
    }

    #[cold]
    fn send_block(&self, tx: &RingBlock, bytes: &[u8]) -> Result<()> {
        let block = tx.arena.alloc(bytes.len(), 64)?;
        let write = tx
            .arena
            .check_range(block.raw(), bytes.len() as u64, 1)
            .map(|dst| {
                // SAFETY: a fresh block of `bytes.len()` bytes that only we know.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_ptr(), bytes.len()) }
            })
            .and_then(|()| self.commit_block(tx, block.raw(), bytes.len() as u64, None));
        if write.is_err() {
            let _ = tx.arena.free(block);
        }
        write
    }

    fn commit_block(
        &self,
        tx: &RingBlock,
        offset: u64,
        len: u64,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let ring = tx.ring();
        let reservation = self.reserve(tx, &ring, 16, deadline)?;
        let dst = ring.payload_mut(&reservation);
        let mut frame = [0u8; 16];
        frame[..8].copy_from_slice(&offset.to_le_bytes());
        frame[8..].copy_from_slice(&len.to_le_bytes());
        // SAFETY: 16 reserved, unpublished bytes in the ring.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), dst, 16) };
        ring.commit(reservation, 16, KIND_BLOCK);
        Ok(())
    }

    /// Reserves `len` payload bytes, waiting per the strategy.
    #[inline]
    fn reserve(
        &self,
        tx: &RingBlock,
        ring: &SpscRing<'_>,
        len: u64,
        deadline: Option<Instant>,
    ) -> Result<spsc::Reservation> {
        let header = tx.header();
        if header.closed() & RECEIVER_CLOSED != 0 {
            return Err(Error::Closed);
        }
        if let Some(reservation) = ring.try_reserve(len)? {
            return Ok(reservation);
        }
        let got = ring::wait(
            self.strategy,
            deadline,
            header.space_sleepers(),
            || {
                if header.closed() & RECEIVER_CLOSED != 0 {
                    return Err(Error::Closed);
                }
                ring.try_reserve(len)
            },
            || {
                let (pid, start) = header.receiver_stamp();
                if is_dead(pid, start) {
                    return Err(Error::PeerDied { pid: pid as i32 });
                }
                Ok(())
            },
        )?;
        got.ok_or(Error::Timeout)
    }

    /// Lends `len` writable bytes for the next message, in shared memory
    /// (the ring, or an arena block for large messages): fill them and
    /// [`Loan::commit`]. Dropping the loan uncommitted sends nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let tx = self.tx()?;
        self.stamp();
        let ring = tx.ring();
        if len as u64 > ring.max_frame_payload() {
            check_size(tx, len)?;
            let block = tx.arena.alloc(len, 64)?;
            let ptr = match tx.arena.check_range(block.raw(), len as u64, 1) {
                Ok(ptr) => ptr,
                Err(e) => {
                    let _ = tx.arena.free(block);
                    return Err(e);
                }
            };
            return Ok(Loan {
                conn: self,
                target: LoanTarget::Block(block.raw()),
                ptr,
                len,
            });
        }
        let reservation = self.reserve(tx, &ring, len as u64, None)?;
        let ptr = NonNull::new(ring.payload_mut(&reservation)).ok_or_else(|| missing("loan"))?;
        Ok(Loan {
            conn: self,
            target: LoanTarget::Ring(reservation),
            ptr,
            len,
        })
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    /// [`Error::Closed`] once the sending end was closed and everything it
    /// sent was received; [`Error::PeerDied`] the same after its process
    /// died; [`Error::Codec`] if the bytes are not a `T`; [`Error::Corrupt`].
    #[inline]
    pub fn recv<T: Message>(&self) -> Result<T> {
        self.recv_until(None)
    }

    /// As [`recv`](Self::recv), giving up with [`Error::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `recv`, plus `Timeout`.
    pub fn recv_timeout<T: Message>(&self, timeout: Duration) -> Result<T> {
        self.recv_until(crate::sync::deadline_after(timeout))
    }

    #[inline]
    fn recv_until<T: Message>(&self, deadline: Option<Instant>) -> Result<T> {
        let frame = self.next_frame(deadline)?;
        let result = T::decode(frame.bytes());
        drop(frame);
        result
    }

    /// Receives the next message's bytes (Python's `recv_bytes`).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.next_frame(None)?.bytes().to_vec())
    }

    /// Borrows the next message in place (zero-copy); the ring space (or
    /// the arena block) is given back when the guard is dropped.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.next_frame(None)
    }

    /// True if a message (or the end of the stream) is ready within
    /// `timeout`, so that `recv` would not block (Python's `poll`).
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        let rx = self.rx()?;
        self.stamp();
        let ring = rx.ring();
        let header = rx.header();
        if ring.try_peek()?.is_some() || header.closed() & SENDER_CLOSED != 0 {
            return Ok(true);
        }
        let ready = ring::wait(
            self.strategy,
            crate::sync::deadline_after(timeout),
            header.data_sleepers(),
            || {
                Ok(
                    (ring.try_peek()?.is_some() || header.closed() & SENDER_CLOSED != 0)
                        .then_some(()),
                )
            },
            || {
                ring.check_indices()?;
                let (pid, start) = header.sender_stamp();
                if is_dead(pid, start) {
                    return Err(Error::PeerDied { pid: pid as i32 });
                }
                Ok(())
            },
        );
        match ready {
            Ok(found) => Ok(found.is_some()),
            Err(Error::PeerDied { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    #[inline]
    fn next_frame(&self, deadline: Option<Instant>) -> Result<RecvRef<'_>> {
        let rx = self.rx()?;
        self.stamp();
        let ring = rx.ring();
        let frame = match ring.try_peek()? {
            Some(frame) => frame,
            None => self.wait_frame(rx, &ring, deadline)?,
        };
        RecvRef::new(rx, frame)
    }

    #[cold]
    fn wait_frame(
        &self,
        rx: &RingBlock,
        ring: &SpscRing<'_>,
        deadline: Option<Instant>,
    ) -> Result<spsc::Frame> {
        let header = rx.header();
        let got = ring::wait(
            self.strategy,
            deadline,
            header.data_sleepers(),
            || match ring.try_peek()? {
                Some(frame) => Ok(Some(frame)),
                None if header.closed() & SENDER_CLOSED != 0 => {
                    // Closed after its last commit: one more look drains it.
                    ring.try_peek()?.map(Some).ok_or(Error::Closed)
                }
                None => Ok(None),
            },
            || {
                ring.check_indices()?;
                let (pid, start) = header.sender_stamp();
                if is_dead(pid, start) && ring.try_peek()?.is_none() {
                    return Err(Error::PeerDied { pid: pid as i32 });
                }
                Ok(())
            },
        )?;
        got.ok_or(Error::Timeout)
    }

    /// Closes this end: the other end's `recv` drains and then gets
    /// [`Error::Closed`], its `send` gets `Closed` at once. Later calls on
    /// this end (in any process) also see the pipe closed.
    pub fn close(&self) {
        if let Some(tx) = &self.end.tx {
            tx.header().close(SENDER_CLOSED);
        }
        if let Some(rx) = &self.end.rx {
            rx.header().close(RECEIVER_CLOSED);
        }
    }

    /// True once either side closed the direction this end receives on
    /// (Python's `closed`, roughly).
    pub fn is_closed(&self) -> bool {
        let closed = |ring: &Option<Arc<RingBlock>>, bit| {
            ring.as_ref()
                .is_some_and(|r| r.header().closed() & bit != 0)
        };
        closed(&self.end.rx, RECEIVER_CLOSED) || closed(&self.end.tx, SENDER_CLOSED)
    }
}

/// The sending end of a one-way [`Pipe::simplex`].
///
/// # Examples
/// ```
/// use shmproc::Pipe;
/// let (rx, tx) = Pipe::simplex()?;
/// tx.send(7u32)?;
/// drop(tx); // the last handle of an end this process used closes it
/// assert_eq!(rx.recv::<u32>()?, 7);
/// assert!(rx.recv::<u32>().is_err());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sender(Connection);

/// The receiving end of a one-way [`Pipe::simplex`].
#[derive(Clone, Debug)]
pub struct Receiver(Connection);

impl Sender {
    /// See [`Connection::send`].
    ///
    /// # Errors
    /// As `Connection::send`.
    #[inline]
    pub fn send<T: Message>(&self, value: T) -> Result<()> {
        self.0.send(value)
    }
    /// See [`Connection::send_bytes`].
    ///
    /// # Errors
    /// As `Connection::send`.
    #[inline]
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.0.send_bytes(bytes)
    }
    /// See [`Connection::loan`].
    ///
    /// # Errors
    /// As `Connection::send`.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.0.loan(len)
    }
    /// See [`Connection::close`].
    pub fn close(&self) {
        self.0.close();
    }
    /// See [`Connection::set_wait_strategy`].
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.0.set_wait_strategy(strategy);
    }
}

impl Receiver {
    /// See [`Connection::recv`].
    ///
    /// # Errors
    /// As `Connection::recv`.
    #[inline]
    pub fn recv<T: Message>(&self) -> Result<T> {
        self.0.recv()
    }
    /// See [`Connection::recv_timeout`].
    ///
    /// # Errors
    /// As `Connection::recv_timeout`.
    pub fn recv_timeout<T: Message>(&self, timeout: Duration) -> Result<T> {
        self.0.recv_timeout(timeout)
    }
    /// See [`Connection::recv_bytes`].
    ///
    /// # Errors
    /// As `Connection::recv`.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.0.recv_bytes()
    }
    /// See [`Connection::recv_ref`].
    ///
    /// # Errors
    /// As `Connection::recv`.
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.0.recv_ref()
    }
    /// See [`Connection::poll`].
    ///
    /// # Errors
    /// As `Connection::poll`.
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.0.poll(timeout)
    }
    /// See [`Connection::close`].
    pub fn close(&self) {
        self.0.close();
    }
    /// See [`Connection::set_wait_strategy`].
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.0.set_wait_strategy(strategy);
    }
}

enum LoanTarget {
    Ring(spsc::Reservation),
    Block(u64),
}

/// Writable bytes lent by [`Connection::loan`]; [`commit`](Loan::commit) sends them.
pub struct Loan<'a> {
    conn: &'a Connection,
    target: LoanTarget,
    ptr: NonNull<u8>,
    len: usize,
}

impl Loan<'_> {
    /// Sends the loaned bytes as one message.
    ///
    /// # Errors
    /// For a large (arena block) loan: as [`Connection::send`]; a ring loan
    /// cannot fail.
    pub fn commit(self) -> Result<()> {
        let len = self.len;
        self.commit_len(len)
    }

    /// Sends only the first `len` loaned bytes (at most the loan's length).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_len(self, len: usize) -> Result<()> {
        let len = len.min(self.len);
        let this = core::mem::ManuallyDrop::new(self);
        let tx = this.conn.tx()?;
        match this.target {
            LoanTarget::Ring(reservation) => {
                tx.ring().commit(reservation, len as u64, KIND_INLINE);
                Ok(())
            }
            LoanTarget::Block(offset) => {
                let sent = this.conn.commit_block(tx, offset, len as u64, None);
                if sent.is_err() {
                    let _ = tx.arena.free(Offset::<u8>::from_raw(offset));
                }
                sent
            }
        }
    }
}

impl core::ops::Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` covers `len` bytes reserved for this loan alone
        // (unpublished ring bytes, or a fresh arena block), alive while the
        // connection (borrowed) lives.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl core::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in Deref; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let (LoanTarget::Block(offset), Ok(tx)) = (&self.target, self.conn.tx()) {
            let _ = tx.arena.free(Offset::<u8>::from_raw(*offset));
        }
    }
}

/// A received message borrowed in place ([`Connection::recv_ref`]); its
/// space goes back to the sender when this guard is dropped.
pub struct RecvRef<'a> {
    rx: &'a RingBlock,
    frame: spsc::Frame,
    ptr: *const u8,
    len: usize,
    block: Option<u64>,
}

impl<'a> RecvRef<'a> {
    #[inline]
    fn new(rx: &'a RingBlock, frame: spsc::Frame) -> Result<RecvRef<'a>> {
        let ring = rx.ring();
        let payload = ring.payload(&frame);
        if frame.kind == KIND_INLINE {
            return Ok(RecvRef {
                rx,
                frame,
                ptr: payload,
                len: frame.len as usize,
                block: None,
            });
        }
        // A block frame: 16 bytes, offset and length, validated.
        let mut raw = [0u8; 16];
        // SAFETY: the frame's 16 payload bytes are published and inside the
        // ring (validated by try_peek, which checked len == 16).
        unsafe { core::ptr::copy_nonoverlapping(payload, raw.as_mut_ptr(), 16) };
        let offset = u64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8]));
        let len = u64::from_le_bytes(raw[8..].try_into().unwrap_or([0; 8]));
        match rx.arena.check_range(offset, len, 1) {
            Ok(ptr) if usize::try_from(len).is_ok() => Ok(RecvRef {
                rx,
                frame,
                ptr: ptr.as_ptr(),
                len: len as usize,
                block: Some(offset),
            }),
            _ => {
                ring.release(frame);
                Err(ring::corrupt(format!(
                    "pipe frame names block {offset:#x} of {len} bytes outside the arena"
                )))
            }
        }
    }

    /// The message's bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` was validated (inside the ring's published,
        // unreleased bytes, or inside the arena for a block) and stays ours
        // until this guard releases it.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Decodes the message as a `T`.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn decode<T: Message>(&self) -> Result<T> {
        T::decode(self.bytes())
    }
}

impl core::ops::Deref for RecvRef<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for RecvRef<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(offset) = self.block {
            let _ = self.rx.arena.free(Offset::<u8>::from_raw(offset));
        }
        self.rx.ring().release(self.frame);
    }
}

impl Publish for Sender {
    fn shared_offset(&self) -> u64 {
        self.0.end.tx.as_ref().map_or(0, |r| r.offset)
    }
    fn shared_size() -> u64 {
        HEADER_BYTES
    }
    fn shared_align() -> u64 {
        128
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let ring = Arc::new(RingBlock::resolve(arena, offset, None)?);
        Ok(Sender(Connection::from_end(Some(ring), None)))
    }
}

impl Publish for Receiver {
    fn shared_offset(&self) -> u64 {
        self.0.end.rx.as_ref().map_or(0, |r| r.offset)
    }
    fn shared_size() -> u64 {
        HEADER_BYTES
    }
    fn shared_align() -> u64 {
        128
    }
    fn attach(arena: &Arena, offset: u64) -> Result<Self> {
        let ring = Arc::new(RingBlock::resolve(arena, offset, None)?);
        Ok(Receiver(Connection::from_end(None, Some(ring))))
    }
}
