//! How a value becomes the bytes that travel through a channel or a pool.
//!
//! Two ways, chosen per type by its [`Message`] implementation:
//!
//! * **in place**: plain-old-data (numbers, `#[repr(C)]` structs deriving
//!   [`bytemuck::Pod`], arrays of them), `String` (its UTF-8) and `Vec<T>` of
//!   plain-old-data travel as their own bytes: [`Message::as_bytes`] lends
//!   them and the channel copies them straight into shared memory (or the
//!   sender writes them there itself through a loan). Nothing is encoded.
//! * **encoded**: anything `serde` can serialise travels encoded with
//!   [postcard](https://docs.rs/postcard) (the `serde` feature, on by
//!   default), through [`Encoded<T>`] or the [`serde_message!`](crate::serde_message) macro.
//!
//! Postcard was chosen by measurement (`benches/codec.rs`, recorded in
//! `docs/benchmarks.md`): for the small structs messages usually are, it
//! encodes and decodes as fast as bincode's fixed-width format or faster,
//! and its varints make the frames smaller, so fewer bytes cross the ring.
//!
//! Decoding reads bytes another process wrote: every `decode` checks lengths
//! and validity (UTF-8, `bool`, `char`, tags) and returns [`Error::Codec`],
//! never panics. `fuzz/fuzz_targets/codec_decode.rs` holds it to that.
//!
//! # Your own types
//!
//! ```
//! use shmproc::Message;
//!
//! #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Tick {
//!     price: f64,
//!     volume: u64,
//! }
//! shmproc::pod_message!(Tick);
//!
//! #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Order {
//!     symbol: String,
//!     quantities: Vec<u32>,
//! }
//! shmproc::serde_message!(Order);
//!
//! let tick = Tick { price: 101.5, volume: 7 };
//! assert_eq!(tick.as_bytes().map(<[u8]>::len), Some(16)); // travels in place
//! assert_eq!(Tick::decode(tick.as_bytes().unwrap())?, tick);
//!
//! let order = Order { symbol: "ACME".into(), quantities: vec![1, 2, 3] };
//! let mut bytes = Vec::new();
//! order.encode(&mut bytes)?; // travels encoded
//! assert_eq!(Order::decode(&bytes)?, order);
//! # Ok::<(), shmproc::Error>(())
//! ```

use crate::error::{Error, Result};

/// A type that can travel through a `Pipe`, a `Queue` or a `Pool`.
///
/// Implemented for the number types, `bool`, `char`, `()`, arrays of
/// plain-old-data, `String`, `Vec<T>` of plain-old-data, `Option<T>`,
/// tuples of up to four messages and [`Encoded<T>`]; for your own types use
/// [`pod_message!`](crate::pod_message) (plain-old-data, travels in place)
/// or [`serde_message!`](crate::serde_message) (encoded with postcard).
///
/// # Contract
///
/// * When [`as_bytes`](Message::as_bytes) returns `Some`, those are the
///   bytes that travel; otherwise [`encode`](Message::encode) appends them.
/// * [`decode`](Message::decode) receives exactly the bytes that travelled
///   and rebuilds the value; given any other bytes (a peer may scribble on
///   shared memory) it returns [`Error::Codec`], never panics.
/// * When [`FIXED_SIZE`](Message::FIXED_SIZE) is `Some(n)`, every value
///   travels as exactly `n` bytes (a pool writes such results straight into
///   their slots).
pub trait Message: Sized {
    /// Every value travels as exactly this many bytes; `None` when the size
    /// depends on the value.
    const FIXED_SIZE: Option<usize> = None;

    /// The bytes that travel, when the value can travel as its own bytes.
    #[inline]
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }

    /// Appends the bytes that travel to `out`.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the value cannot be encoded (e.g. a serde
    /// implementation that fails).
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;

    /// Rebuilds a value from the bytes that travelled.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when `bytes` are not the encoding of a `Self`.
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// Writes values pulled from `items` into `out`, `FIXED_SIZE` bytes
    /// each, until `out` is full or `items` ends; returns how many it wrote.
    ///
    /// The pool's bulk path for fixed-size inputs. Plain-old-data types
    /// ([`pod_message!`](crate::pod_message), arrays) override it with one
    /// typed copy; the default encodes value by value.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the type has no fixed, non-zero size or a value
    /// encodes to another length.
    #[doc(hidden)]
    #[inline]
    fn encode_fixed<I: Iterator<Item = Self>>(items: &mut I, out: &mut [u8]) -> Result<usize> {
        let size = fixed_size_of::<Self>()?;
        let mut scratch = Vec::new();
        let mut written = 0;
        for (place, item) in out.chunks_exact_mut(size).zip(items) {
            let bytes = message_bytes(&item, &mut scratch)?;
            if bytes.len() != size {
                return Err(codec_error(format_args!(
                    "a fixed-size {} encoded to {} bytes, not {size}",
                    std::any::type_name::<Self>(),
                    bytes.len()
                )));
            }
            place.copy_from_slice(bytes);
            written += 1;
        }
        Ok(written)
    }

    /// Decodes `bytes`, a run of `FIXED_SIZE`-byte values, appending them to
    /// `out`.
    ///
    /// The pool's bulk path for fixed-size results. Plain-old-data types
    /// override it with one copy; the default decodes value by value.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the type has no fixed, non-zero size, `bytes`
    /// is not a whole number of values, or a value does not decode.
    #[doc(hidden)]
    #[inline]
    fn decode_fixed(bytes: &[u8], out: &mut Vec<Self>) -> Result<()> {
        let size = fixed_size_of::<Self>()?;
        check_whole::<Self>(bytes, size)?;
        out.reserve(bytes.len() / size);
        for item in bytes.chunks_exact(size) {
            out.push(Self::decode(item)?);
        }
        Ok(())
    }
}

/// `T::FIXED_SIZE` when it is fixed and not zero.
fn fixed_size_of<T: Message>() -> Result<usize> {
    T::FIXED_SIZE.filter(|&size| size > 0).ok_or_else(|| {
        codec_error(format_args!(
            "{} has no fixed, non-zero size for a bulk copy",
            std::any::type_name::<T>()
        ))
    })
}

fn check_whole<T>(bytes: &[u8], size: usize) -> Result<()> {
    if bytes.len() % size == 0 {
        Ok(())
    } else {
        Err(codec_error(format_args!(
            "{} bytes are not a whole number of {size}-byte {}",
            bytes.len(),
            std::any::type_name::<T>()
        )))
    }
}

/// [`Message::encode_fixed`] for a plain-old-data type: a typed copy (a
/// byte copy when `out` is not aligned for `T`).
///
/// # Errors
///
/// [`Error::Codec`] for a zero-sized `T`.
#[doc(hidden)]
#[inline]
pub fn pod_encode_fixed<T: bytemuck::Pod, I: Iterator<Item = T>>(
    items: &mut I,
    out: &mut [u8],
) -> Result<usize> {
    let size = std::mem::size_of::<T>();
    if size == 0 {
        return Err(codec_error("zero-sized values have no bytes to copy"));
    }
    let mut written = 0;
    let whole = out.len() - out.len() % size;
    match bytemuck::try_cast_slice_mut::<u8, T>(&mut out[..whole]) {
        Ok(places) => {
            for (place, item) in places.iter_mut().zip(items) {
                *place = item;
                written += 1;
            }
        }
        Err(_) => {
            for (place, item) in out.chunks_exact_mut(size).zip(items) {
                place.copy_from_slice(bytemuck::bytes_of(&item));
                written += 1;
            }
        }
    }
    Ok(written)
}

/// [`Message::decode_fixed`] for a plain-old-data type: one copy (value by
/// value when `bytes` is not aligned for `T`).
///
/// # Errors
///
/// [`Error::Codec`] for a zero-sized `T` or a length that is not a whole
/// number of values.
#[doc(hidden)]
#[inline]
pub fn pod_decode_fixed<T: bytemuck::Pod>(bytes: &[u8], out: &mut Vec<T>) -> Result<()> {
    let size = std::mem::size_of::<T>();
    if size == 0 {
        return Err(codec_error("zero-sized values have no bytes to copy"));
    }
    check_whole::<T>(bytes, size)?;
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(values) => out.extend_from_slice(values),
        Err(_) => out.extend(
            bytes
                .chunks_exact(size)
                .map(bytemuck::pod_read_unaligned::<T>),
        ),
    }
    Ok(())
}

/// The bytes `value` travels as: its own bytes when it has them, otherwise
/// its encoding, built in `scratch` (cleared first; reuse it across calls to
/// keep its allocation).
///
/// # Errors
///
/// What [`Message::encode`] returns.
#[inline]
pub fn message_bytes<'a, T: Message>(value: &'a T, scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    match value.as_bytes() {
        Some(bytes) => Ok(bytes),
        None => {
            scratch.clear();
            value.encode(scratch)?;
            Ok(scratch)
        }
    }
}

fn codec_error(what: impl std::fmt::Display) -> Error {
    Error::Codec(what.to_string())
}

/// The bytes of a plain-old-data value (used by [`pod_message!`]).
#[doc(hidden)]
#[inline]
pub fn pod_bytes<T: bytemuck::Pod>(value: &T) -> &[u8] {
    bytemuck::bytes_of(value)
}

/// Reads a plain-old-data value from exactly `size_of::<T>()` bytes, at any
/// alignment (used by [`pod_message!`]).
///
/// # Errors
///
/// [`Error::Codec`] when the length is wrong.
#[doc(hidden)]
#[inline]
pub fn pod_decode<T: bytemuck::Pod>(bytes: &[u8]) -> Result<T> {
    bytemuck::try_pod_read_unaligned(bytes).map_err(|_| {
        codec_error(format_args!(
            "expected {} bytes for a {}, got {}",
            std::mem::size_of::<T>(),
            std::any::type_name::<T>(),
            bytes.len()
        ))
    })
}

/// Makes a plain-old-data type a [`Message`] that travels in place.
///
/// The type must implement [`bytemuck::Pod`] (derive it on a `#[repr(C)]`
/// struct with no padding); anything else does not compile.
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Point { x: f32, y: f32 }
/// shmproc::pod_message!(Point);
/// ```
#[macro_export]
macro_rules! pod_message {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::Message for $t {
            const FIXED_SIZE: ::core::option::Option<usize> =
                ::core::option::Option::Some(::core::mem::size_of::<$t>());
            #[inline]
            fn as_bytes(&self) -> ::core::option::Option<&[u8]> {
                ::core::option::Option::Some($crate::codec::pod_bytes(self))
            }
            #[inline]
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                out.extend_from_slice($crate::codec::pod_bytes(self));
                ::core::result::Result::Ok(())
            }
            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::codec::pod_decode(bytes)
            }
            #[inline]
            fn encode_fixed<I: ::core::iter::Iterator<Item = Self>>(
                items: &mut I,
                out: &mut [u8],
            ) -> $crate::Result<usize> {
                $crate::codec::pod_encode_fixed(items, out)
            }
            #[inline]
            fn decode_fixed(bytes: &[u8], out: &mut ::std::vec::Vec<Self>) -> $crate::Result<()> {
                $crate::codec::pod_decode_fixed(bytes, out)
            }
        }
    )+};
}

pod_message!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    ()
);

impl<T: bytemuck::Pod, const N: usize> Message for [T; N] {
    const FIXED_SIZE: Option<usize> = Some(std::mem::size_of::<[T; N]>());
    #[inline]
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(bytemuck::cast_slice(self.as_slice()))
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(bytemuck::cast_slice(self.as_slice()));
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let expected = std::mem::size_of::<[T; N]>();
        if bytes.len() != expected {
            return Err(codec_error(format_args!(
                "expected {expected} bytes for an array of {N}, got {}",
                bytes.len()
            )));
        }
        let mut value = [T::zeroed(); N];
        bytemuck::cast_slice_mut::<T, u8>(value.as_mut_slice()).copy_from_slice(bytes);
        Ok(value)
    }
    #[inline]
    fn encode_fixed<I: Iterator<Item = Self>>(items: &mut I, out: &mut [u8]) -> Result<usize> {
        pod_encode_fixed(items, out)
    }
    #[inline]
    fn decode_fixed(bytes: &[u8], out: &mut Vec<Self>) -> Result<()> {
        pod_decode_fixed(bytes, out)
    }
}

impl Message for bool {
    const FIXED_SIZE: Option<usize> = Some(1);
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(u8::from(*self));
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(codec_error("a bool travels as one byte, 0 or 1")),
        }
    }
}

impl Message for char {
    const FIXED_SIZE: Option<usize> = Some(4);
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&u32::from(*self).to_ne_bytes());
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let code = u32::decode(bytes)?;
        char::from_u32(code).ok_or_else(|| codec_error(format_args!("{code:#x} is not a char")))
    }
}

impl Message for String {
    #[inline]
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(str::as_bytes(self))
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(str::as_bytes(self));
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| codec_error(format_args!("a String's bytes are not UTF-8: {e}")))
    }
}

impl<T: bytemuck::Pod> Message for Vec<T> {
    #[inline]
    fn as_bytes(&self) -> Option<&[u8]> {
        // Zero-sized elements have no bytes to count them by.
        (std::mem::size_of::<T>() != 0).then(|| bytemuck::cast_slice(self.as_slice()))
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self.as_bytes() {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            None => Err(codec_error(
                "a Vec of zero-sized elements cannot travel (send its length instead)",
            )),
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let size = std::mem::size_of::<T>();
        if size == 0 || bytes.len() % size != 0 {
            return Err(codec_error(format_args!(
                "{} bytes are not a whole number of {}-byte {}",
                bytes.len(),
                size,
                std::any::type_name::<T>()
            )));
        }
        let mut values = vec![T::zeroed(); bytes.len() / size];
        bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(bytes);
        Ok(values)
    }
}

impl<T: Message> Message for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                match value.as_bytes() {
                    Some(bytes) => out.extend_from_slice(bytes),
                    None => value.encode(out)?,
                }
            }
        }
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, rest)) => T::decode(rest).map(Some),
            _ => Err(codec_error("an Option starts with a tag byte, 0 or 1")),
        }
    }
}

/// Appends one part of a tuple: its length (u32, little-endian) unless every
/// part has a fixed size, then its bytes.
fn encode_part<T: Message>(value: &T, prefixed: bool, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    if prefixed {
        out.extend_from_slice(&[0; 4]);
    }
    match value.as_bytes() {
        Some(bytes) => out.extend_from_slice(bytes),
        None => value.encode(out)?,
    }
    if prefixed {
        let len = out.len() - at - 4;
        let len = u32::try_from(len)
            .map_err(|_| codec_error("a tuple part of 4 GiB or more cannot travel"))?;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// Splits one part off the front of `bytes` (see [`encode_part`]): its
/// length is its prefix, or, when the tuple has no prefixes, its fixed size
/// (every part of such a tuple has one).
fn decode_part<T: Message>(bytes: &mut &[u8], prefixed: bool) -> Result<T> {
    let len = if prefixed {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(codec_error("a tuple's bytes end inside a length"));
        };
        *bytes = rest;
        usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX)
    } else {
        T::FIXED_SIZE.unwrap_or(usize::MAX)
    };
    if len > bytes.len() {
        return Err(codec_error("a tuple's bytes end inside a part"));
    }
    let (part, rest) = bytes.split_at(len);
    *bytes = rest;
    T::decode(part)
}

macro_rules! tuple_message {
    ($($name:ident),+) => {
        impl<$($name: Message,)+> Message for ($($name,)+) {
            const FIXED_SIZE: Option<usize> = {
                let mut total = 0usize;
                let mut fixed = true;
                $(
                    match $name::FIXED_SIZE {
                        Some(n) => total += n,
                        None => fixed = false,
                    }
                )+
                if fixed { Some(total) } else { None }
            };
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                let prefixed = Self::FIXED_SIZE.is_none();
                let ($($name,)+) = self;
                $( encode_part($name, prefixed, out)?; )+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn decode(mut bytes: &[u8]) -> Result<Self> {
                let prefixed = Self::FIXED_SIZE.is_none();
                $( let $name = decode_part::<$name>(&mut bytes, prefixed)?; )+
                if !bytes.is_empty() {
                    return Err(codec_error("a tuple's bytes go on past its last part"));
                }
                Ok(($($name,)+))
            }
        }
    };
}

tuple_message!(A);
tuple_message!(A, B);
tuple_message!(A, B, C);
tuple_message!(A, B, C, D);

/// A `serde` type that travels encoded with postcard.
///
/// Use it for types you do not own (`Queue<Encoded<HashMap<String, u32>>>`);
/// for your own types [`serde_message!`](crate::serde_message) saves the
/// wrapper.
///
/// ```
/// use std::collections::BTreeMap;
/// use shmproc::{Encoded, Message};
///
/// let scores = Encoded(BTreeMap::from([("ada".to_string(), 3u32)]));
/// let mut bytes = Vec::new();
/// scores.encode(&mut bytes)?;
/// assert_eq!(Encoded::<BTreeMap<String, u32>>::decode(&bytes)?, scores);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[cfg(feature = "serde")]
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Encoded<T>(pub T);

#[cfg(feature = "serde")]
impl<T> Message for Encoded<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        serde_encode(&self.0, out)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        serde_decode(bytes).map(Encoded)
    }
}

/// Appends the postcard encoding of `value` (used by [`serde_message!`]).
///
/// # Errors
///
/// [`Error::Codec`] when `value`'s `Serialize` fails.
#[cfg(feature = "serde")]
#[doc(hidden)]
pub fn serde_encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let taken = std::mem::take(out);
    match postcard::to_extend(value, taken) {
        Ok(extended) => {
            *out = extended;
            Ok(())
        }
        Err(e) => Err(codec_error(format_args!("postcard could not encode: {e}"))),
    }
}

/// Decodes a postcard encoding that must fill `bytes` exactly (used by
/// [`serde_message!`]).
///
/// # Errors
///
/// [`Error::Codec`] when `bytes` are not one encoded `T`.
#[cfg(feature = "serde")]
#[doc(hidden)]
pub fn serde_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(codec_error(format_args!(
            "{} bytes left over after the encoded {}",
            rest.len(),
            std::any::type_name::<T>()
        ))),
        Err(e) => Err(codec_error(format_args!(
            "these bytes are not an encoded {}: {e}",
            std::any::type_name::<T>()
        ))),
    }
}

/// Makes a `serde` type a [`Message`] that travels encoded with postcard.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Job { name: String, tries: u8 }
/// shmproc::serde_message!(Job);
/// ```
#[cfg(feature = "serde")]
#[macro_export]
macro_rules! serde_message {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::Message for $t {
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) -> $crate::Result<()> {
                $crate::codec::serde_encode(self, out)
            }
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::codec::serde_decode(bytes)
            }
        }
    )+};
}

/// Decodes arbitrary bytes as each kind of message (the `codec_decode`
/// fuzz target and its corpus replay): never a panic.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) {
    let _ = u64::decode(bytes);
    let _ = bool::decode(bytes);
    let _ = char::decode(bytes);
    let _ = <[u16; 3]>::decode(bytes);
    let _ = String::decode(bytes);
    let _ = Vec::<u32>::decode(bytes);
    let _ = Option::<String>::decode(bytes);
    let _ = <(u8, String, Vec<u16>)>::decode(bytes);
    let _ = <(u32, u16)>::decode(bytes);
    let _ = u64::decode_fixed(bytes, &mut Vec::new());
    let _ = bool::decode_fixed(bytes, &mut Vec::new());
    let _ = <(u32, u16)>::decode_fixed(bytes, &mut Vec::new());
    #[cfg(feature = "serde")]
    {
        let _ = Encoded::<Vec<String>>::decode(bytes);
        let _ = Encoded::<(u64, Option<String>, Vec<(u8, f32)>)>::decode(bytes);
        let _ = Encoded::<std::collections::BTreeMap<String, Vec<u8>>>::decode(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Message + PartialEq + std::fmt::Debug>(value: T) {
        let mut scratch = Vec::new();
        let bytes = message_bytes(&value, &mut scratch).unwrap().to_vec();
        if let Some(n) = T::FIXED_SIZE {
            assert_eq!(bytes.len(), n);
        }
        assert_eq!(T::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn values_come_back_as_they_went() {
        round_trip(7u64);
        round_trip(-3i8);
        round_trip(1.5f64);
        round_trip(());
        round_trip(true);
        round_trip('é');
        round_trip([1u16, 2, 3]);
        round_trip(String::from("héllo"));
        round_trip(String::new());
        round_trip(vec![1.0f32, 2.0]);
        round_trip(Vec::<u64>::new());
        round_trip(Some(String::from("x")));
        round_trip(None::<u32>);
        round_trip((1u8, String::from("two"), vec![3u16]));
        round_trip((1u32, 2u16));
        round_trip((String::new(), String::new()));
        #[cfg(feature = "serde")]
        round_trip(Encoded(vec![String::from("a"), String::new()]));
    }

    #[test]
    fn pod_travels_in_place_and_encoded_types_do_not() {
        assert_eq!(7u32.as_bytes(), Some(&7u32.to_ne_bytes()[..]));
        assert_eq!(Message::as_bytes(&String::from("ab")), Some(&b"ab"[..]));
        assert_eq!(<(u32, u16)>::FIXED_SIZE, Some(6));
        assert_eq!(<(u32, String)>::FIXED_SIZE, None);
        assert!((1u8, 2u8).as_bytes().is_none());
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(u64::decode(&[1, 2, 3]), Err(Error::Codec(_))));
        assert!(matches!(bool::decode(&[2]), Err(Error::Codec(_))));
        assert!(matches!(
            char::decode(&0xD800u32.to_ne_bytes()),
            Err(Error::Codec(_))
        ));
        assert!(matches!(String::decode(&[0xff]), Err(Error::Codec(_))));
        assert!(matches!(Vec::<u32>::decode(&[0; 5]), Err(Error::Codec(_))));
        assert!(matches!(Option::<u8>::decode(&[]), Err(Error::Codec(_))));
        assert!(matches!(
            Option::<u8>::decode(&[0, 0]),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            <(u8, String)>::decode(&[9, 0, 0, 0, 1]),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            <(u32, u16)>::decode(&[0; 7]),
            Err(Error::Codec(_))
        ));
        #[cfg(feature = "serde")]
        assert!(matches!(
            Encoded::<String>::decode(&[200, 200, 200, 200, 15]),
            Err(Error::Codec(_))
        ));
        #[cfg(feature = "serde")]
        assert!(matches!(
            Encoded::<u8>::decode(&[1, 2]),
            Err(Error::Codec(_))
        ));
    }

    #[test]
    fn zero_sized_vec_elements_are_refused_not_miscounted() {
        let mut out = Vec::new();
        assert!(matches!(vec![(); 3].encode(&mut out), Err(Error::Codec(_))));
        assert!(matches!(Vec::<()>::decode(&[]), Err(Error::Codec(_))));
    }

    /// The bulk copies agree with value-by-value encoding, for the typed
    /// (plain-old-data) path, its unaligned fallback and the default path.
    fn bulk_round_trip<T: Message + Clone + PartialEq + std::fmt::Debug>(values: &[T]) {
        let size = T::FIXED_SIZE.unwrap();
        let mut expected = Vec::new();
        for value in values {
            expected.extend_from_slice(message_bytes(value, &mut Vec::new()).unwrap());
        }
        // One spare byte in front, to try an unaligned destination too.
        for shift in [0, 1] {
            let mut buffer = vec![0u8; shift + values.len() * size + size / 2];
            let out = &mut buffer[shift..];
            let mut items = values.iter().cloned();
            assert_eq!(T::encode_fixed(&mut items, out).unwrap(), values.len());
            assert_eq!(&out[..expected.len()], &expected[..]);
            let mut decoded = vec![values[0].clone()];
            T::decode_fixed(&out[..expected.len()], &mut decoded).unwrap();
            assert_eq!(&decoded[1..], values);
        }
        // A short destination stops early and leaves the rest in the iterator.
        let mut items = values.iter().cloned();
        let mut short = vec![0u8; size];
        assert_eq!(T::encode_fixed(&mut items, &mut short).unwrap(), 1);
        assert_eq!(items.next(), values.get(1).cloned());
        // A partial value is refused.
        if size > 1 {
            let mut out = Vec::new();
            assert!(matches!(
                T::decode_fixed(&expected[..expected.len() - 1], &mut out),
                Err(Error::Codec(_))
            ));
        }
    }

    #[test]
    fn bulk_copies_match_value_by_value() {
        bulk_round_trip(&(0..1000u64).collect::<Vec<_>>());
        bulk_round_trip(&[1.5f32, -2.0, 3.25]);
        bulk_round_trip(&[[1u16, 2, 3], [4, 5, 6]]);
        bulk_round_trip(&[true, false, true]);
        bulk_round_trip(&['a', 'é', '€']);
        bulk_round_trip(&[(1u32, 2u16), (3, 4)]);
        let mut out = Vec::new();
        assert!(matches!(
            bool::decode_fixed(&[0, 1, 2], &mut out),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            <()>::decode_fixed(&[], &mut Vec::new()),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            String::encode_fixed(&mut std::iter::once(String::new()), &mut [0; 8]),
            Err(Error::Codec(_))
        ));
    }
}
