//! CBOR (RFC 8949) with minicbor-serde, in the same named layout as
//! MessagePack: every message is a map keyed by the contract's field names
//! (see [`serde_repr`](super::serde_repr)); bytes are byte strings (major
//! type 2), `kind` its wire value as an unsigned integer, a missing location
//! `null`, `f64` and `f32` written at their own width (`0xfb`, `0xfa`), every
//! integer in its shortest form, every length definite.
//!
//! Why minicbor-serde: minicbor is the maintained serde-capable CBOR
//! codec (regular releases through 2025; ciborium, the other serde CBOR
//! crate, has not released since early 2024 and `serde_cbor` is archived).
//! Its deserializer borrows strings and byte strings from the input, checks
//! every definite length against the bytes left before it reads, and skips
//! unknown values without recursion, so hostile input is bounded by its
//! size (the list pre-allocation cap of `serde_repr::list` covers claimed
//! array lengths). The `half` feature is on so that a peer writing
//! RFC 8949's preferred (shortest) floats, such as `0xf9 0x00 0x00` for
//! `0.0`, is read correctly.
//!
//! Not accepted, though valid CBOR: indefinite-length text and byte strings
//! where the contract has a string or bytes field (minicbor-serde borrows
//! them, which needs one contiguous chunk).

use serde::{Deserialize, Serialize};

use super::serde_repr::{SerdeCodec, SerdeFormat};
use crate::FormatId;
use crate::codec::Properties;

/// CBOR.
pub type Cbor = SerdeFormat<CborCodec>;

/// minicbor-serde as a [`SerdeCodec`].
#[derive(Debug)]
pub struct CborCodec;

impl SerdeCodec for CborCodec {
    const ID: FormatId = FormatId::Cbor;
    const NAME: &'static str = "cbor";
    const GRPC_SUBTYPE: &'static str = "cbor";
    const PROPERTIES: Properties = Properties {
        library: "minicbor-serde 0.7 (minicbor 2)",
        self_describing: true,
        schema: "none (field names in every message)",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "maps keyed by field name; bytes as byte strings; kind as an integer",
    };
    type Error = CborError;

    #[inline]
    fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), CborError> {
        value.serialize(&mut minicbor_serde::Serializer::new(out)).map_err(CborError::Encode)
    }

    #[inline]
    fn read<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CborError> {
        let mut de = minicbor_serde::Deserializer::new(bytes);
        let value = T::deserialize(&mut de).map_err(CborError::Decode)?;
        // One message is one CBOR data item: anything after it is a corrupt
        // or mismatched message, not a second value to ignore.
        match bytes.len() - de.decoder().position() {
            0 => Ok(value),
            trailing => Err(CborError::Trailing(trailing)),
        }
    }
}

/// A minicbor-serde failure.
#[derive(Debug, thiserror::Error)]
pub enum CborError {
    /// Encoding failed (writing into a `Vec` cannot, so only a value serde
    /// cannot express would).
    #[error(transparent)]
    Encode(minicbor_serde::error::EncodeError<std::convert::Infallible>),
    /// Decoding failed.
    #[error(transparent)]
    Decode(minicbor_serde::error::DecodeError),
    /// Bytes followed the message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}
