//! The parts of the gRPC wire protocol that are pure functions: the 5-byte
//! message prefix, the content-type, and the percent-encoding of
//! `grpc-message` (see gRPC's PROTOCOL-HTTP2.md); and wirebench's call
//! modes over it: the paths of server-streaming and oneway calls, the
//! header that asks for K replies, and the prefix each oneway message
//! carries.

use bytes::{Buf, Bytes, BytesMut};
use wirebench_formats::{Code, FormatId, Method, Status};

use crate::mode::OnewayMeta;

/// Bytes before each message: a compressed flag and a u32 BE length.
pub const PREFIX_LEN: usize = 5;

/// The prefix of an uncompressed message of `len` bytes.
pub fn prefix(len: u32) -> [u8; PREFIX_LEN] {
    let l = len.to_be_bytes();
    [0, l[0], l[1], l[2], l[3]]
}

/// Why a unary gRPC body is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Fewer than the 5 bytes of a message prefix.
    #[error("the body holds {0} bytes, fewer than a 5-byte message prefix")]
    NoPrefix(usize),
    /// Fewer bytes than the prefix declares.
    #[error("the body holds {got} bytes, the message prefix declares {declared}")]
    Truncated {
        /// Bytes present after the prefix.
        got: usize,
        /// Bytes declared.
        declared: u64,
    },
    /// More bytes after the one message.
    #[error("{0} bytes after the message (unary calls carry one)")]
    Trailing(usize),
    /// The compressed flag is set; no compression was negotiated.
    #[error("compressed messages are not supported")]
    Compressed,
    /// The declared length is over the limit.
    #[error("the message prefix declares {declared} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Bytes declared.
        declared: u64,
        /// The limit.
        limit: usize,
    },
    /// A oneway message shorter than its 20-byte prefix.
    #[error("a oneway message of {0} bytes, shorter than its 20-byte prefix")]
    NoOnewayPrefix(usize),
}

impl MessageError {
    /// The status a server answers this with.
    pub fn status(&self) -> Status {
        let code = match self {
            MessageError::Compressed => Code::Unimplemented,
            MessageError::TooLarge { .. } => Code::ResourceExhausted,
            _ => Code::InvalidArgument,
        };
        Status::new(code, self.to_string())
    }
}

/// Checks a prefix as soon as its 5 bytes are in: the declared length
/// against `max` before anything is allocated for it.
pub fn check_prefix(head: &[u8], max: usize) -> Result<Option<usize>, MessageError> {
    if head.len() < PREFIX_LEN {
        return Ok(None);
    }
    if head[0] != 0 {
        return Err(MessageError::Compressed);
    }
    let declared = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if declared as usize > max {
        return Err(MessageError::TooLarge { declared: u64::from(declared), limit: max });
    }
    Ok(Some(declared as usize))
}

/// The one message of a complete unary body.
pub fn unary_message(body: &[u8], max: usize) -> Result<&[u8], MessageError> {
    let declared = check_prefix(body, max)?.ok_or(MessageError::NoPrefix(body.len()))?;
    let rest = &body[PREFIX_LEN..];
    if rest.len() < declared {
        return Err(MessageError::Truncated { got: rest.len(), declared: declared as u64 });
    }
    if rest.len() > declared {
        return Err(MessageError::Trailing(rest.len() - declared));
    }
    Ok(rest)
}

/// Takes one whole message (prefix and all) off the front of `buf`, for
/// bodies of several messages (streams); `Ok(None)` until it is complete.
/// The declared length is checked against `max` as soon as the prefix is
/// in.
pub fn take_message(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, MessageError> {
    let Some(declared) = check_prefix(buf, max)? else { return Ok(None) };
    if buf.len() < PREFIX_LEN + declared {
        buf.reserve(PREFIX_LEN + declared - buf.len());
        return Ok(None);
    }
    let mut message = buf.split_to(PREFIX_LEN + declared);
    message.advance(PREFIX_LEN);
    Ok(Some(message.freeze()))
}

/// The request header of a server-streaming call: how many replies.
pub const REPLIES_HEADER: &str = "wirebench-replies";

/// What a request path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallPath {
    /// `/wirebench.Bench/<Method>`: unary.
    Unary(Method),
    /// `/wirebench.Bench/<Method>Stream`: server streaming.
    Stream(Method),
    /// `/wirebench.Oneway/<Method>`: client streaming of oneway messages.
    Oneway(Method),
}

impl CallPath {
    /// The path.
    pub fn path(self) -> String {
        match self {
            CallPath::Unary(m) => format!("/wirebench.Bench/{}", m.name()),
            CallPath::Stream(m) => format!("/wirebench.Bench/{}Stream", m.name()),
            CallPath::Oneway(m) => format!("/wirebench.Oneway/{}", m.name()),
        }
    }

    /// The call a path names, if any.
    pub fn parse(path: &str) -> Option<CallPath> {
        if let Some(name) = path.strip_prefix("/wirebench.Bench/") {
            return match name.strip_suffix("Stream") {
                Some(base) => Method::from_name(base).map(CallPath::Stream),
                None => Method::from_name(name).map(CallPath::Unary),
            };
        }
        path.strip_prefix("/wirebench.Oneway/").and_then(Method::from_name).map(CallPath::Oneway)
    }
}

/// Bytes before the format's bytes inside a oneway message.
pub const ONEWAY_PREFIX_LEN: usize = 20;

/// The prefix of a oneway message: session u32, sequence u32, send time
/// u64 (CLOCK_MONOTONIC ns), window bin u32, all BE.
pub fn oneway_prefix(meta: OnewayMeta) -> [u8; ONEWAY_PREFIX_LEN] {
    let mut out = [0u8; ONEWAY_PREFIX_LEN];
    out[0..4].copy_from_slice(&meta.session.to_be_bytes());
    out[4..8].copy_from_slice(&meta.seq.to_be_bytes());
    out[8..16].copy_from_slice(&meta.sent_ns.to_be_bytes());
    out[16..20].copy_from_slice(&meta.bin.to_be_bytes());
    out
}

/// A oneway message's metadata and the format's bytes after it.
pub fn parse_oneway(message: &[u8]) -> Result<(OnewayMeta, &[u8]), MessageError> {
    if message.len() < ONEWAY_PREFIX_LEN {
        return Err(MessageError::NoOnewayPrefix(message.len()));
    }
    let u32_at = |i: usize| u32::from_be_bytes([message[i], message[i + 1], message[i + 2], message[i + 3]]);
    let sent_ns = (u64::from(u32_at(8)) << 32) | u64::from(u32_at(12));
    let meta = OnewayMeta { session: u32_at(0), seq: u32_at(4), sent_ns, bin: u32_at(16) };
    Ok((meta, &message[ONEWAY_PREFIX_LEN..]))
}

/// `application/grpc+<subtype>` for `format`.
pub fn content_type(format: FormatId) -> String {
    format!("application/grpc+{}", format.grpc_subtype())
}

/// The format a content-type names. `None` if it is not gRPC at all;
/// `Some(Err)` for gRPC with an unknown subtype. A bare `application/grpc`
/// is protobuf.
pub fn parse_content_type(value: &str) -> Option<Result<FormatId, String>> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let rest = essence.strip_prefix("application/grpc")?;
    Some(match rest {
        "" => Ok(FormatId::Protobuf),
        _ => match rest.strip_prefix('+') {
            Some(subtype) => FormatId::from_grpc_subtype(subtype).ok_or_else(|| format!("unknown format {subtype:?}")),
            None => return None,
        },
    })
}

/// Percent-encodes a status message for `grpc-message`.
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a `grpc-message`; malformed escapes are kept as they are.
pub fn decode_message(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if value[i] == b'%'
            && i + 2 < value.len()
            && let (Some(h), Some(l)) = (hex(value[i + 1]), hex(value[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(value[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status a `grpc-status` value and `grpc-message` carry.
pub fn status(code: &[u8], message: Option<&[u8]>) -> Status {
    let message = message.map(decode_message).unwrap_or_default();
    match std::str::from_utf8(code).ok().and_then(|c| c.parse::<u32>().ok()) {
        Some(value) => match Code::from_value(value) {
            Some(code) => Status::new(code, message),
            None => Status::new(Code::Internal, format!("grpc-status {value}: {message}")),
        },
        None => Status::new(Code::Internal, format!("unparsable grpc-status {:?}", String::from_utf8_lossy(code))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_golden_and_checks() {
        assert_eq!(prefix(0x0102_0304), [0, 1, 2, 3, 4]);
        assert_eq!(check_prefix(&[0, 0, 0], 10), Ok(None));
        assert_eq!(check_prefix(&[0, 0, 0, 0, 9], 10), Ok(Some(9)));
        assert_eq!(check_prefix(&[1, 0, 0, 0, 9], 10), Err(MessageError::Compressed));
        assert_eq!(
            check_prefix(&[0, 0xff, 0, 0, 0], 10),
            Err(MessageError::TooLarge { declared: 0xff00_0000, limit: 10 })
        );
        assert_eq!(unary_message(&[0, 0, 0, 0, 2, b'h', b'i'], 10), Ok(&b"hi"[..]));
        assert!(matches!(unary_message(&[0, 0, 0, 0, 3, b'h'], 10), Err(MessageError::Truncated { .. })));
        assert_eq!(unary_message(&[0, 0, 0, 0, 1, b'h', b'i'], 10), Err(MessageError::Trailing(1)));
        assert_eq!(unary_message(&[0, 0], 10), Err(MessageError::NoPrefix(2)));
        assert!(MessageError::NoPrefix(2).to_string().contains("5-byte"));
    }

    /// Golden bytes: docs/protocol.md, http2 call modes.
    #[test]
    fn mode_paths_and_oneway_prefix_golden() {
        assert_eq!(CallPath::Stream(Method::Echo).path(), "/wirebench.Bench/EchoStream");
        assert_eq!(CallPath::Oneway(Method::Digest).path(), "/wirebench.Oneway/Digest");
        for m in [Method::Multiply, Method::Echo, Method::Digest] {
            for p in [CallPath::Unary(m), CallPath::Stream(m), CallPath::Oneway(m)] {
                assert_eq!(CallPath::parse(&p.path()), Some(p));
            }
        }
        assert_eq!(CallPath::parse("/wirebench.Bench/Stream"), None);
        assert_eq!(CallPath::parse("/wirebench.Oneway/EchoStream"), None);
        let meta = OnewayMeta { session: 0xa1b2_c3d4, seq: 7, sent_ns: 0x0102_0304_0506_0708, bin: 2 };
        let prefix = oneway_prefix(meta);
        let hex: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a1b2c3d400000007010203040506070800000002");
        let mut message = prefix.to_vec();
        message.extend_from_slice(b"body");
        assert_eq!(parse_oneway(&message), Ok((meta, &b"body"[..])));
        assert_eq!(parse_oneway(&message[..19]), Err(MessageError::NoOnewayPrefix(19)));
    }

    #[test]
    fn messages_are_taken_whole_from_a_stream_of_them() {
        let mut wire = Vec::new();
        for body in [&b"one"[..], b"", b"three"] {
            wire.extend_from_slice(&prefix(body.len() as u32));
            wire.extend_from_slice(body);
        }
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(m) = take_message(&mut buf, 10).unwrap() {
                got.push(m);
            }
            assert!(got.len() <= 3, "cut {cut}");
            assert!(got.iter().zip([&b"one"[..], b"", b"three"]).all(|(a, b)| &a[..] == b), "cut {cut}");
        }
        let mut buf = BytesMut::from(&wire[..]);
        let all: Vec<Bytes> = std::iter::from_fn(|| take_message(&mut buf, 10).unwrap()).collect();
        assert_eq!(all.len(), 3);
        let mut huge = BytesMut::from(&[0u8, 0xff, 0xff, 0xff, 0xff][..]);
        let capacity = huge.capacity();
        assert!(matches!(take_message(&mut huge, 10), Err(MessageError::TooLarge { .. })));
        assert_eq!(huge.capacity(), capacity, "nothing reserved for a message over the limit");
    }

    #[test]
    fn content_types() {
        assert_eq!(parse_content_type("application/grpc"), Some(Ok(FormatId::Protobuf)));
        assert_eq!(parse_content_type("application/grpc+proto"), Some(Ok(FormatId::Protobuf)));
        assert_eq!(parse_content_type("application/grpc+json; charset=utf-8"), Some(Ok(FormatId::Json)));
        assert_eq!(parse_content_type("application/grpc+capnp-packed"), Some(Ok(FormatId::CapnpPacked)));
        assert!(matches!(parse_content_type("application/grpc+xml"), Some(Err(_))));
        assert_eq!(parse_content_type("application/json"), None);
        assert_eq!(parse_content_type("application/grpcx"), None);
        for &f in FormatId::ALL {
            assert_eq!(parse_content_type(&content_type(f)), Some(Ok(f)));
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        let m = "overflow: 100% sure, naïve\n";
        let encoded = encode_message(m);
        assert_eq!(encoded, "overflow: 100%25 sure, na%C3%AFve%0A");
        assert_eq!(decode_message(encoded.as_bytes()), m);
        assert_eq!(decode_message(b"50%"), "50%");
        assert_eq!(decode_message(b"%zz"), "%zz");
        assert_eq!(status(b"11", Some(b"big")), Status::new(Code::OutOfRange, "big"));
        assert_eq!(status(b"99", None).code, Code::Internal);
        assert_eq!(status(b"x", None).code, Code::Internal);
    }
}
