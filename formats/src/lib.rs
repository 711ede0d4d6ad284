//! The wirebench RPC contract and its serialization formats.
//!
//! - [`contract`]: call ids, messages, statuses: what every format encodes.
//! - [`dataset`]: the workloads and the seeded data they send.
//! - [`checksum`]: the Digest checksum, defined once over a [`RecordView`].
//! - [`service`]: the Multiply/Echo/Digest logic, written once.
//! - [`codec`]: the [`Format`] trait every format implements.
//! - [`mod@format`]: one module per format, each with its real library.
//!
//! The key design decision: a format is a type, not a value. The harness
//! picks one at run time through [`FormatId::visit`] and from then on every
//! timed loop is monomorphized over it, so dispatch costs nothing where it
//! is measured. Adding a format is one new file in `format/` and one line
//! in the registry below.

#[path = "generated/bench_capnp.rs"]
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
// Public for the Cap'n Proto RPC framework row, which builds and reads these
// structs as the parameters and results of the `Bench` interface.
pub mod bench_capnp;
pub mod checksum;
pub mod codec;
pub mod contract;
pub mod dataset;
pub mod format;
pub mod service;

pub use checksum::{Checksum, RecordView};
pub use codec::{CodecError, Format, Properties};
pub use contract::{Accessed, Batch, Code, DigestReply, Method, OwnedRequest, Record, Reply, Request, Status};
pub use dataset::{Dataset, Expected, Workload};
pub use format::protobuf;
pub use service::{Fault, Service};

/// Calls back with a format as a type; see [`FormatId::visit`].
pub trait FormatVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the format's type.
    fn visit<F: Format>(self) -> Self::Output;
}

macro_rules! registry {
    ($($variant:ident = $wire:literal => $ty:ty,)*) => {
        /// A format's id: its registry entry and its byte on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum FormatId {
            $(
                #[doc = concat!("`", stringify!($ty), "`")]
                $variant = $wire,
            )*
        }

        impl FormatId {
            /// Every registered format, in wire-id order.
            pub const ALL: &'static [FormatId] = &[$(FormatId::$variant),*];

            /// The format for a wire id.
            pub fn from_wire(id: u8) -> Option<FormatId> {
                match id {
                    $($wire => Some(FormatId::$variant),)*
                    _ => None,
                }
            }

            /// Calls `visitor` with the format's type.
            pub fn visit<V: FormatVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(FormatId::$variant => visitor.visit::<$ty>(),)*
                }
            }

            /// The name in CLI flags, cell keys and reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(FormatId::$variant => <$ty as Format>::NAME,)*
                }
            }

            /// The subtype in `application/grpc+<subtype>`.
            pub fn grpc_subtype(self) -> &'static str {
                match self {
                    $(FormatId::$variant => <$ty as Format>::GRPC_SUBTYPE,)*
                }
            }

            /// What the format is.
            pub fn properties(self) -> &'static Properties {
                match self {
                    $(FormatId::$variant => &<$ty as Format>::PROPERTIES,)*
                }
            }
        }

        /// A server connection's reusable encoding state, one slot per
        /// format, so any format may arrive on any connection.
        #[allow(non_snake_case)]
        #[derive(Default)]
        pub struct ServerScratch {
            $($variant: <$ty as Format>::Scratch,)*
        }

        /// Serves one request of `format`: the server side of every
        /// transport calls this.
        pub fn serve<'s>(
            service: &Service,
            scratch: &'s mut ServerScratch,
            format: FormatId,
            method: Method,
            request: &[u8],
        ) -> Result<&'s [u8], Status> {
            match format {
                $(FormatId::$variant => <$ty as Format>::serve(service, &mut scratch.$variant, method, request),)*
            }
        }
    };
}

// The registry: one line per format. The number is the format byte on the
// wire and must never be reused.
registry! {
    Json = 1 => format::json::Json,
    MsgPack = 2 => format::msgpack::MsgPack,
    Protobuf = 3 => format::protobuf::Protobuf,
    FlatBuffers = 4 => format::flatbuffers::FlatBuffers,
    Capnp = 5 => format::capnp::Capnp,
    CapnpPacked = 6 => format::capnp::CapnpPacked,
    Bincode = 7 => format::bincode::Bincode,
    ThriftBinary = 8 => format::thrift::ThriftBinary,
    ThriftCompact = 9 => format::thrift::ThriftCompact,
    Hessian = 10 => format::hessian::Hessian,
    Cbor = 11 => format::cbor::Cbor,
    Avro = 12 => format::avro::Avro,
    Postcard = 13 => format::postcard::Postcard,
    Bitcode = 14 => format::bitcode::Bitcode,
    Rkyv = 15 => format::rkyv::Rkyv,
}

impl FormatId {
    /// The format with this name.
    pub fn from_name(name: &str) -> Option<FormatId> {
        FormatId::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The format for a gRPC content-type subtype (`proto` for protobuf);
    /// a bare `application/grpc` means protobuf.
    pub fn from_grpc_subtype(subtype: &str) -> Option<FormatId> {
        FormatId::ALL.iter().copied().find(|f| f.grpc_subtype() == subtype)
    }
}

impl std::fmt::Display for FormatId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FormatId {
    type Err = String;
    fn from_str(s: &str) -> Result<FormatId, String> {
        FormatId::from_name(s).ok_or_else(|| {
            let names: Vec<_> = FormatId::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Debug for ServerScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerScratch").finish_non_exhaustive()
    }
}
