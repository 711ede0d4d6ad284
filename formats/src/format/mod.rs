//! One module per format, each using its real library the way an expert
//! user of that library would.

pub mod avro;
pub mod bincode;
pub mod bitcode;
pub mod capnp;
pub mod cbor;
pub mod flatbuffers;
pub mod hessian;
pub mod json;
pub mod msgpack;
pub mod postcard;
pub mod protobuf;
pub mod rkyv;
pub mod serde_repr;
pub mod thrift;
