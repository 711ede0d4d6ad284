//! JSON with serde_json: maps keyed by the contract's field names (see
//! [`serde_repr`](super::serde_repr) for the layout). serde_json's
//! `float_roundtrip` feature is on: its default float parser may be off by
//! one unit in the last place, and the Digest checksum needs exact values.

use serde::{Deserialize, Serialize};

use super::serde_repr::{SerdeCodec, SerdeFormat};
use crate::FormatId;
use crate::codec::Properties;

/// JSON.
pub type Json = SerdeFormat<JsonCodec>;

/// serde_json as a [`SerdeCodec`].
#[derive(Debug)]
pub struct JsonCodec;

impl SerdeCodec for JsonCodec {
    const ID: FormatId = FormatId::Json;
    const NAME: &'static str = "json";
    const GRPC_SUBTYPE: &'static str = "json";
    const PROPERTIES: Properties = Properties {
        library: "serde_json 1 (float_roundtrip)",
        self_describing: true,
        schema: "none (field names in every message)",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "objects keyed by field name; bytes as base64; kind as its name",
    };
    type Error = serde_json::Error;

    #[inline]
    fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, value)
    }

    #[inline]
    fn read<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
