//! The frame of the tcp, unix, udp and quic transports: pure functions over
//! byte buffers, no I/O.
//!
//! ```text
//! offset  size  field
//!      0     4  length      u32 BE: bytes after this field (8 + body)
//!      4     4  request id  u32 BE: chosen by the client, echoed in the reply
//!      8     1  call id     1 Multiply, 2 Echo, 3 Digest; 0xF0 server stats,
//!                           0xF1 server environment
//!      9     1  format      wire id of the format (see `FormatId`)
//!     10     1  status      0 OK, else a gRPC status code (replies only)
//!     11     1  flags       bit 0: 1 = reply, 0 = request; other bits 0
//!     12     n  body        the encoded message, or a UTF-8 error message
//!                           when status != 0
//! ```
//!
//! A stream connection (tcp, unix) starts with a 4-byte preamble from the
//! client: `57 42 01 00` ("WB", version 1, mode 0 = RPC). Mode 1 is the raw
//! ping-pong baseline and is followed by two u32 BE: request and reply
//! lengths; then each request is that many bytes, each reply that many.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes before the body.
pub const HEADER_LEN: usize = 12;
/// Bytes of the length field itself.
const LENGTH_LEN: usize = 4;
/// Flag bit: the frame is a reply.
pub const FLAG_REPLY: u8 = 1;
/// Call id of the server-stats control call (tcp and unix).
pub const CALL_STATS: u8 = 0xF0;
/// Call id of the server-environment control call (tcp and unix): the
/// server's machine, encoded by [`crate::host::HostInfo`].
pub const CALL_ENVIRONMENT: u8 = 0xF1;
/// The largest body a frame can declare: the length field counts 8 header
/// bytes too.
pub const MAX_BODY: u32 = u32::MAX - 8;

/// A body length as the header carries it, if it fits.
pub fn body_len(len: usize) -> Option<u32> {
    u32::try_from(len).ok().filter(|&l| l <= MAX_BODY)
}

/// Default limit on a frame's declared body length.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// The stream preamble's magic and version.
pub const PREAMBLE_MAGIC: [u8; 3] = *b"WB\x01";
/// Preamble mode: framed RPC.
pub const MODE_RPC: u8 = 0;
/// Preamble mode: raw ping-pong baseline.
pub const MODE_RAW: u8 = 1;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Body length in bytes.
    pub body_len: u32,
    /// Request id, echoed by the reply.
    pub request_id: u32,
    /// Call id (method id, or a control call).
    pub call: u8,
    /// Format wire id.
    pub format: u8,
    /// Status code; 0 is OK.
    pub status: u8,
    /// Flag bits.
    pub flags: u8,
}

impl Header {
    /// A request header.
    pub fn request(request_id: u32, call: u8, format: u8, body_len: u32) -> Header {
        Header { body_len, request_id, call, format, status: 0, flags: 0 }
    }

    /// The reply header to `request` with `status` and a body of `body_len`.
    pub fn reply_to(request: &Header, status: u8, body_len: u32) -> Header {
        Header { body_len, status, flags: FLAG_REPLY, ..*request }
    }

    /// Whether this frame is a reply.
    pub fn is_reply(&self) -> bool {
        self.flags & FLAG_REPLY != 0
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        // Constructors take lengths through `body_len`; saturate rather
        // than wrap if one did not.
        out[0..4].copy_from_slice(&self.body_len.saturating_add(8).to_be_bytes());
        out[4..8].copy_from_slice(&self.request_id.to_be_bytes());
        out[8] = self.call;
        out[9] = self.format;
        out[10] = self.status;
        out[11] = self.flags;
        out
    }

    /// Appends the header to `out`.
    pub fn put(&self, out: &mut impl BufMut) {
        out.put_slice(&self.to_bytes());
    }
}

/// A frame the peer sent that breaks the protocol. Framing errors close the
/// connection: after one, the stream's frame boundaries cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared body is larger than the limit; nothing was allocated.
    #[error("frame declares a {declared}-byte body, over the {limit}-byte limit")]
    TooLarge {
        /// Declared body length.
        declared: u64,
        /// The limit.
        limit: usize,
    },
    /// The length field is smaller than the rest of the header.
    #[error("frame length {0} is shorter than its 8-byte header")]
    TooShort(u32),
    /// Flag bits that are reserved were set.
    #[error("frame has reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// A request where a reply was expected, or the reverse.
    #[error("expected a {expected}, got a {got}")]
    Direction {
        /// What the reader expected.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// The stream preamble was not `WB`, version 1, mode 0 or 1.
    #[error("bad connection preamble {0:02x?}")]
    Preamble([u8; 4]),
    /// A datagram whose length field disagrees with its size.
    #[error("datagram of {datagram} bytes declares a {declared}-byte frame")]
    DatagramLength {
        /// Datagram size.
        datagram: usize,
        /// Size the length field declares.
        declared: u64,
    },
}

/// Decodes the header at the start of `buf`. `Ok(None)` means more bytes
/// are needed (kept apart from invalid bytes); the declared length is
/// checked against `max_body` before the caller allocates for it.
pub fn parse_header(buf: &[u8], max_body: usize) -> Result<Option<Header>, FrameError> {
    if buf.len() < LENGTH_LEN {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if length < 8 {
        return Err(FrameError::TooShort(length));
    }
    let body_len = length - 8;
    if body_len as usize > max_body {
        return Err(FrameError::TooLarge { declared: u64::from(body_len), limit: max_body });
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let header = Header {
        body_len,
        request_id: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        call: buf[8],
        format: buf[9],
        status: buf[10],
        flags: buf[11],
    };
    if header.flags & !FLAG_REPLY != 0 {
        return Err(FrameError::ReservedFlags(header.flags));
    }
    Ok(Some(header))
}

/// Takes one whole frame off the front of `buf`: the header and its body
/// (sharing `buf`'s allocation, no copy). `Ok(None)` if the frame is not
/// complete yet; then `buf` is untouched and, once the header is known,
/// has room reserved for the rest, so the next read lands in place.
pub fn take_frame(buf: &mut BytesMut, max_body: usize) -> Result<Option<(Header, Bytes)>, FrameError> {
    let Some(header) = parse_header(buf, max_body)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + header.body_len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    frame.advance(HEADER_LEN);
    Ok(Some((header, frame.freeze())))
}

/// Decodes a whole datagram (udp) as one frame.
pub fn parse_datagram(datagram: &[u8], max_body: usize) -> Result<(Header, &[u8]), FrameError> {
    let header = parse_header(datagram, max_body)?.ok_or(FrameError::TooShort(datagram.len() as u32))?;
    let declared = u64::from(header.body_len) + HEADER_LEN as u64;
    if declared != datagram.len() as u64 {
        return Err(FrameError::DatagramLength { datagram: datagram.len(), declared });
    }
    Ok((header, &datagram[HEADER_LEN..]))
}

/// What a stream connection's preamble asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preamble {
    /// Framed RPC.
    Rpc,
    /// Raw ping-pong of fixed request and reply lengths.
    Raw {
        /// Bytes per request.
        request: u32,
        /// Bytes per reply.
        reply: u32,
    },
}

impl Preamble {
    /// Bytes of the RPC preamble; the raw one adds 8.
    pub const LEN: usize = 4;

    /// The preamble's bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = PREAMBLE_MAGIC.to_vec();
        match self {
            Preamble::Rpc => out.push(MODE_RPC),
            Preamble::Raw { request, reply } => {
                out.push(MODE_RAW);
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(&reply.to_be_bytes());
            }
        }
        out
    }

    /// Parses a preamble from the start of `buf`; `Ok(None)` until enough
    /// bytes are there. Returns the preamble and its length.
    pub fn parse(buf: &[u8], max_body: usize) -> Result<Option<(Preamble, usize)>, FrameError> {
        if buf.len() < Self::LEN {
            return Ok(None);
        }
        let head = [buf[0], buf[1], buf[2], buf[3]];
        if head[..3] != PREAMBLE_MAGIC {
            return Err(FrameError::Preamble(head));
        }
        match head[3] {
            MODE_RPC => Ok(Some((Preamble::Rpc, Self::LEN))),
            MODE_RAW => {
                if buf.len() < Self::LEN + 8 {
                    return Ok(None);
                }
                let request = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                let reply = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                if request == 0 {
                    return Err(FrameError::Preamble(head));
                }
                for len in [request, reply] {
                    if len as usize > max_body {
                        return Err(FrameError::TooLarge { declared: u64::from(len), limit: max_body });
                    }
                }
                Ok(Some((Preamble::Raw { request, reply }, Self::LEN + 8)))
            }
            _ => Err(FrameError::Preamble(head)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Golden bytes: the layout in the module docs and docs/protocol.md.
    #[test]
    fn request_and_reply_headers_golden() {
        let request = Header::request(0x0102_0304, 2, 7, 5);
        assert_eq!(hex(&request.to_bytes()), "0000000d0102030402070000");
        let reply = Header::reply_to(&request, 0, 5);
        assert_eq!(hex(&reply.to_bytes()), "0000000d0102030402070001");
        let error = Header::reply_to(&request, 11, 3);
        assert_eq!(hex(&error.to_bytes()), "0000000b0102030402070b01");
        assert_eq!(hex(&Preamble::Rpc.to_bytes()), "57420100");
        assert_eq!(hex(&Preamble::Raw { request: 16, reply: 1024 }.to_bytes()), "574201010000001000000400");
    }

    #[test]
    fn take_frame_splits_whole_frames_only() {
        let mut wire = BytesMut::new();
        Header::request(1, 1, 3, 3).put(&mut wire);
        wire.extend_from_slice(b"abc");
        Header::request(2, 2, 3, 0).put(&mut wire);
        let all = wire.clone();
        // Every split point: nothing is taken until a frame is whole.
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let first = take_frame(&mut buf, 100).unwrap();
            if cut < HEADER_LEN + 3 {
                assert!(first.is_none(), "cut {cut}");
                assert_eq!(&buf[..], &all[..cut], "an incomplete frame must leave the buffer alone");
            } else {
                let (h, body) = first.unwrap();
                assert_eq!((h.request_id, h.call, &body[..]), (1, 1, &b"abc"[..]));
            }
        }
        let (h1, b1) = take_frame(&mut wire, 100).unwrap().unwrap();
        let (h2, b2) = take_frame(&mut wire, 100).unwrap().unwrap();
        assert_eq!((h1.request_id, &b1[..]), (1, &b"abc"[..]));
        assert_eq!((h2.request_id, b2.len()), (2, 0));
        assert!(wire.is_empty());
        assert_eq!(take_frame(&mut wire, 100), Ok(None));
    }

    #[test]
    fn declared_length_is_checked_before_anything_else() {
        // Only the length field has arrived: the limit is already enforced.
        let huge = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            parse_header(&huge, DEFAULT_MAX_MESSAGE),
            Err(FrameError::TooLarge { declared: 0xffff_fff7, limit: DEFAULT_MAX_MESSAGE })
        );
        let mut buf = BytesMut::from(&huge[..]);
        let capacity = buf.capacity();
        assert!(take_frame(&mut buf, 1024).is_err());
        assert_eq!(buf.capacity(), capacity, "nothing may be reserved for a frame over the limit");
        assert_eq!(parse_header(&[0, 0, 0, 7], 100), Err(FrameError::TooShort(7)));
        let mut bad_flags = Header::request(1, 1, 1, 0).to_bytes();
        bad_flags[11] = 0x80;
        assert_eq!(parse_header(&bad_flags, 100), Err(FrameError::ReservedFlags(0x80)));
    }

    #[test]
    fn datagrams_must_be_exactly_one_frame() {
        let mut d = Header::request(9, 1, 1, 2).to_bytes().to_vec();
        d.extend_from_slice(b"hi");
        let (h, body) = parse_datagram(&d, 100).unwrap();
        assert_eq!((h.request_id, body), (9, &b"hi"[..]));
        d.push(0);
        assert!(matches!(parse_datagram(&d, 100), Err(FrameError::DatagramLength { .. })));
        assert!(parse_datagram(&d[..5], 100).is_err());
    }

    #[test]
    fn preambles_parse_and_reject_garbage() {
        let raw = Preamble::Raw { request: 16, reply: 32 }.to_bytes();
        for cut in 0..raw.len() {
            assert_eq!(Preamble::parse(&raw[..cut], 100), Ok(None), "cut {cut}");
        }
        assert_eq!(Preamble::parse(&raw, 100), Ok(Some((Preamble::Raw { request: 16, reply: 32 }, 12))));
        assert_eq!(Preamble::parse(b"WB\x01\x00", 100), Ok(Some((Preamble::Rpc, 4))));
        assert!(Preamble::parse(b"GET / HTTP/1.1", 100).is_err());
        assert!(Preamble::parse(b"WB\x01\x07", 100).is_err());
        assert!(Preamble::parse(&Preamble::Raw { request: 101, reply: 1 }.to_bytes(), 100).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse_header(&bytes, 1 << 20);
            let _ = parse_datagram(&bytes, 1 << 20);
            let _ = Preamble::parse(&bytes, 1 << 20);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = take_frame(&mut buf, 1 << 20) {}
        }

        #[test]
        fn headers_round_trip(id: u32, call: u8, format: u8, status: u8, reply: bool, len in 0u32..1000) {
            let h = Header { body_len: len, request_id: id, call, format, status, flags: u8::from(reply) };
            proptest::prop_assert_eq!(parse_header(&h.to_bytes(), 1000), Ok(Some(h)));
        }
    }
}
