//! TEMPORARY stand-in for the lead's `src/codec.rs` (issue 5 codes against
//! this trait; the real module replaces this file when `main` is merged).

use crate::error::{Error, Result};

/// A value that can travel through a channel.
pub trait Message: Sized {
    /// Every value is exactly this many bytes, copied in place (plain-old-data); None for encoded types.
    const FIXED_SIZE: Option<usize> = None;
    /// The value's bytes as they travel, when it can travel in place.
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }
    /// Appends the encoding to `out` (used when `as_bytes` is None).
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;
    /// Rebuilds a value from exactly the bytes that travelled.
    ///
    /// # Errors
    /// [`Error::Codec`] on bad bytes; never panics.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl Message for $t {
            const FIXED_SIZE: Option<usize> = Some(core::mem::size_of::<$t>());
            fn as_bytes(&self) -> Option<&[u8]> {
                Some(bytemuck::bytes_of(self))
            }
            fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                out.extend_from_slice(bytemuck::bytes_of(self));
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<Self> {
                bytemuck::try_pod_read_unaligned(bytes)
                    .map_err(|_| Error::Codec(format!("{} bytes are not a {}", bytes.len(), stringify!($t))))
            }
        }
    )*};
}
pod!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, usize, isize
);

impl<const N: usize> Message for [u8; N] {
    const FIXED_SIZE: Option<usize> = Some(N);
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        bytes
            .try_into()
            .map_err(|_| Error::Codec(format!("{} bytes are not a [u8; {N}]", bytes.len())))
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

impl Message for Vec<u8> {
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(self);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}
