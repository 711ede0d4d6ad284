//! postcard 1 (its stable wire format, specified in the postcard book), via
//! serde, from the contract's own types: fields in the order of the
//! contract and no names; unsigned integers as LEB128 varints (`u8` as one
//! raw byte), signed ones zigzagged first; `f32`/`f64` as little-endian
//! IEEE-754; `bool` and the `Option` tag as one byte 0/1; every string, byte
//! string and list as a varint length then its contents; `kind` as its wire
//! value in one byte. Messages: Multiply `a, b` / `product`; Echo
//! `payload`; Digest `records` / `records, checksum`.
//!
//! No implementation outside Rust reads postcard, so the golden bytes in
//! `formats/tests/golden/postcard/` are pinned, and
//! `scripts/reference/crosscheck.py` reads them with a decoder written from
//! postcard's wire specification.
//!
//! Encoding appends into the caller's buffer (`postcard::to_extend`).
//! Decoding borrows from the input and checks each length against the
//! bytes left before reading; claimed list lengths pre-allocate at most
//! what `serde_repr::list` allows; a varint longer than its type's maximum
//! is an error.

use serde::{Deserialize, Serialize};

use super::serde_repr::{SerdeCodec, SerdeFormat};
use crate::FormatId;
use crate::codec::Properties;

/// postcard.
pub type Postcard = SerdeFormat<PostcardCodec>;

/// postcard as a [`SerdeCodec`].
#[derive(Debug)]
pub struct PostcardCodec;

impl SerdeCodec for PostcardCodec {
    const ID: FormatId = FormatId::Postcard;
    const NAME: &'static str = "postcard";
    const GRPC_SUBTYPE: &'static str = "postcard";
    const PROPERTIES: Properties = Properties {
        library: "postcard 1.2",
        self_describing: false,
        schema: "the Rust types (no IDL)",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "varint integers (zigzag for signed), fields in contract order",
    };
    type Error = PostcardError;

    #[inline]
    fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), PostcardError> {
        // `to_extend` takes the buffer by value and hands it back, so the
        // caller's allocation is reused (and lost only if encoding fails).
        *out = ::postcard::to_extend(value, std::mem::take(out)).map_err(PostcardError::Encode)?;
        Ok(())
    }

    #[inline]
    fn read<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, PostcardError> {
        let (value, rest) = ::postcard::take_from_bytes(bytes).map_err(PostcardError::Decode)?;
        // postcard stops after one value; what follows is a corrupt or
        // mismatched message.
        if !rest.is_empty() {
            return Err(PostcardError::Trailing(rest.len()));
        }
        Ok(value)
    }
}

/// A postcard failure.
#[derive(Debug, thiserror::Error)]
pub enum PostcardError {
    /// Encoding failed.
    #[error("{0}")]
    Encode(::postcard::Error),
    /// Decoding failed.
    #[error("{0}")]
    Decode(::postcard::Error),
    /// Bytes followed the message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}
