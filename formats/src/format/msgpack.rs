//! MessagePack with rmp-serde, in its named layout: every message is a map
//! keyed by field name (`rmp_serde::encode::write_named`), the layout other
//! languages' MessagePack libraries produce from a dictionary. See
//! [`serde_repr`](super::serde_repr).

use serde::{Deserialize, Serialize};

use super::serde_repr::{SerdeCodec, SerdeFormat};
use crate::FormatId;
use crate::codec::Properties;

/// MessagePack.
pub type MsgPack = SerdeFormat<MsgPackCodec>;

/// rmp-serde as a [`SerdeCodec`].
#[derive(Debug)]
pub struct MsgPackCodec;

impl SerdeCodec for MsgPackCodec {
    const ID: FormatId = FormatId::MsgPack;
    const NAME: &'static str = "msgpack";
    const GRPC_SUBTYPE: &'static str = "msgpack";
    const PROPERTIES: Properties = Properties {
        library: "rmp-serde 1",
        self_describing: true,
        schema: "none (field names in every message)",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "maps keyed by field name; bytes as bin; kind as an integer",
    };
    type Error = MsgPackError;

    #[inline]
    fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), MsgPackError> {
        rmp_serde::encode::write_named(out, value).map_err(MsgPackError::Encode)
    }

    #[inline]
    fn read<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, MsgPackError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        let value = T::deserialize(&mut de).map_err(MsgPackError::Decode)?;
        // rmp-serde stops after one value; bytes after it mean a corrupt or
        // mismatched message. The only acceptable outcome of reading on is
        // running out of input.
        match serde::de::IgnoredAny::deserialize(&mut de) {
            Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Ok(value)
            }
            _ => Err(MsgPackError::Trailing),
        }
    }
}

/// An rmp-serde failure.
#[derive(Debug, thiserror::Error)]
pub enum MsgPackError {
    /// Encoding failed.
    #[error(transparent)]
    Encode(rmp_serde::encode::Error),
    /// Decoding failed.
    #[error(transparent)]
    Decode(rmp_serde::decode::Error),
    /// Bytes followed the message.
    #[error("trailing bytes after the message")]
    Trailing,
}
