//! How a value becomes bytes in shared memory.
//!
//! TEMPORARY COPY for the `pool` branch: the lead's `src/codec.rs` on main
//! replaces this file when it lands (same trait; take main's version when
//! merging). Only the trait and the impls the pool needs are here.

use crate::error::{Error, Result};

/// A value that can travel between processes through shared memory.
pub trait Message: Sized {
    /// Every value is exactly this many bytes, copied in place (plain-old-data); None for encoded types.
    const FIXED_SIZE: Option<usize> = None;
    /// The value's bytes as they travel, when it can travel in place (Pod: its bytes; String: its UTF-8).
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }
    /// Appends the encoding to `out` (used when `as_bytes` is None).
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;
    /// Rebuilds a value from exactly the bytes that travelled; Err(Error::Codec) on bad bytes, never panics.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

fn wrong_len(want: usize, got: usize) -> Error {
    Error::Codec(format!("expected {want} bytes, got {got}"))
}

macro_rules! pod_impl {
    ($($t:ty),*) => {$(
        impl Message for $t {
            const FIXED_SIZE: Option<usize> = Some(core::mem::size_of::<$t>());
            #[inline]
            fn as_bytes(&self) -> Option<&[u8]> {
                Some(bytemuck::bytes_of(self))
            }
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                out.extend_from_slice(bytemuck::bytes_of(self));
                Ok(())
            }
            #[inline]
            fn decode(bytes: &[u8]) -> Result<Self> {
                match <[u8; core::mem::size_of::<$t>()]>::try_from(bytes) {
                    Ok(array) => Ok(<$t>::from_ne_bytes(array)),
                    Err(_) => Err(wrong_len(core::mem::size_of::<$t>(), bytes.len())),
                }
            }
        }
    )*};
}
pod_impl!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

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
            _ => Err(Error::Codec("not a bool".into())),
        }
    }
}

impl Message for () {
    const FIXED_SIZE: Option<usize> = Some(0);
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&[])
    }
    fn encode(&self, _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(wrong_len(0, bytes.len()))
        }
    }
}

impl Message for String {
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Codec(e.to_string()))
    }
}

fn put_part<T: Message>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match value.as_bytes() {
        Some(bytes) => out.extend_from_slice(bytes),
        None => value.encode(out)?,
    }
    let len =
        u32::try_from(out.len() - at - 4).map_err(|_| Error::Codec("part too long".into()))?;
    out[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    Ok(())
}

fn take_part<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let short = || Error::Codec("truncated tuple".into());
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(short)?;
    let len = u32::from_ne_bytes(*len) as usize;
    if rest.len() < len {
        return Err(short());
    }
    let (part, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(part)
}

macro_rules! tuple_impl {
    ($($name:ident),+) => {
        impl<$($name: Message),+> Message for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                let ($($name,)+) = self;
                $(put_part($name, out)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn decode(mut bytes: &[u8]) -> Result<Self> {
                $(let $name = $name::decode(take_part(&mut bytes)?)?;)+
                if !bytes.is_empty() {
                    return Err(Error::Codec("trailing bytes after a tuple".into()));
                }
                Ok(($($name,)+))
            }
        }
    };
}
tuple_impl!(A);
tuple_impl!(A, B);
tuple_impl!(A, B, C);
tuple_impl!(A, B, C, D);
