//! The parts of the gRPC wire protocol that are pure functions: the 5-byte
//! message prefix, the content-type, and the percent-encoding of
//! `grpc-message` (see gRPC's PROTOCOL-HTTP2.md).

use wirebench_formats::{Code, FormatId, Status};

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
