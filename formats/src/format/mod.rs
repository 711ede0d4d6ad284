//! One module per format, each using its real library the way an expert
//! user of that library would.

pub mod bincode;
pub mod capnp;
pub mod flatbuffers;
pub mod hessian;
pub mod json;
pub mod msgpack;
pub mod protobuf;
pub mod serde_repr;
pub mod thrift;
