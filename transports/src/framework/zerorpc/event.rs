//! The zerorpc event, pure code over buffers: one ZeroMQ frame holding the
//! MessagePack array `[header, name, args]`, as zerorpc's `Event.pack`
//! writes it (`msgpack.Packer(use_bin_type=True)`) and `Event.unpack`
//! reads it.
//!
//! - `header` is a map with string keys: `message_id` (opaque bytes, `bin`),
//!   `v` (the protocol version, 3), and on every event of a channel but its
//!   first, `response_to` (the `message_id` that opened the channel). Other
//!   keys (zerorpc's middleware context) are skipped.
//! - `name` is a string: a method name on a request, `OK` or `ERR` on a
//!   reply, `_zpc_hb` for a heartbeat, `_zpc_more` for stream flow control.
//! - `args` is an array: a request's positional arguments, `[result]` for
//!   `OK`, `[name, message, traceback]` for `ERR` (`[message]` in protocol
//!   v1), `[0]` for `_zpc_hb`.
//!
//! Reading never allocates and checks every declared length against the
//! bytes that are there, so a lying length is an error, not an allocation.

use std::hash::{BuildHasher, Hasher};

use wirebench_formats::{Code, Status};

/// The protocol version zerorpc 0.6 speaks.
pub const VERSION: u64 = 3;
/// A successful reply.
pub const OK: &str = "OK";
/// An error reply.
pub const ERR: &str = "ERR";
/// A heartbeat on an open channel.
pub const HEARTBEAT: &str = "_zpc_hb";
/// Stream flow control (zerorpc's `BufferedChannel`); nothing to do for
/// request-reply.
pub const MORE: &str = "_zpc_more";

/// Nesting depth accepted inside a header value that is skipped.
const MAX_DEPTH: u32 = 32;

/// A frame that is not a zerorpc event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The frame ends inside a value, or a declared length runs past it.
    #[error("zerorpc event truncated: {what} needs {need} bytes at offset {at}, {have} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Where.
        at: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// A value of the wrong MessagePack type.
    #[error("zerorpc event: {what} is not {expected} (marker 0x{marker:02x} at offset {at})")]
    WrongType {
        /// What was being read.
        what: &'static str,
        /// The type it must be.
        expected: &'static str,
        /// The marker found.
        marker: u8,
        /// Where.
        at: usize,
    },
    /// The top-level array does not have three elements.
    #[error("zerorpc event: an event is [header, name, args], not an array of {0}")]
    NotATriple(u32),
    /// A string is not UTF-8.
    #[error("zerorpc event: {0} is not UTF-8")]
    Utf8(&'static str),
    /// A skipped header value nests deeper than the limit.
    #[error("zerorpc event: a header value nests deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The reserved marker 0xc1.
    #[error("zerorpc event: reserved marker 0xc1 at offset {0}")]
    Reserved(usize),
}

/// An event read in place from its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `header.message_id`.
    pub message_id: Option<&'a [u8]>,
    /// `header.response_to`: the channel this event belongs to.
    pub response_to: Option<&'a [u8]>,
    /// `header.v`, if present and a non-negative integer.
    pub version: Option<u64>,
    /// The event name.
    pub name: &'a str,
    /// The MessagePack `args` value: the rest of the frame.
    pub args: &'a [u8],
    /// Offset of `args` in the frame.
    pub args_at: usize,
}

impl Envelope<'_> {
    /// The protocol version as zerorpc's server reads it: a missing `v`
    /// counts as 1 (`header.get('v', 1)`).
    pub fn server_version(&self) -> u64 {
        self.version.unwrap_or(1)
    }
}

/// Reads the envelope of `frame`.
pub fn parse(frame: &[u8]) -> Result<Envelope<'_>, EventError> {
    let mut r = Reader::new(frame);
    let n = r.array_len("event")?;
    if n != 3 {
        return Err(EventError::NotATriple(n));
    }
    let mut message_id = None;
    let mut response_to = None;
    let mut version = None;
    let fields = r.map_len("header")?;
    for _ in 0..fields {
        let key = r.str("header key")?;
        match key {
            "message_id" => message_id = Some(r.id("message_id")?),
            "response_to" => response_to = Some(r.id("response_to")?),
            "v" => version = r.uint_or_skip()?,
            _ => r.skip(0)?,
        }
    }
    let name = r.str("event name")?;
    let args_at = r.pos;
    // Checked here so that every caller can rely on args being an array.
    let mut args = Reader::new(&frame[args_at..]);
    args.array_len("args")?;
    Ok(Envelope { message_id, response_to, version, name, args: &frame[args_at..], args_at })
}

/// The only argument of `args`: the array must hold exactly one value;
/// returns that value's bytes (the rest of the frame), or how many
/// arguments there were.
pub fn single_arg(args: &[u8]) -> Result<Result<&[u8], u32>, EventError> {
    let mut r = Reader::new(args);
    let n = r.array_len("args")?;
    Ok(if n == 1 { Ok(&args[r.pos..]) } else { Err(n) })
}

/// An `ERR` reply's arguments: `[name, message, traceback]` (v2 and up),
/// or `[message]` (v1). Strings may be `bin` or `nil`, which zerorpc
/// tolerates.
pub fn error_args(args: &[u8]) -> Result<(String, String), EventError> {
    let mut r = Reader::new(args);
    match r.array_len("error args")? {
        1 => Ok(("RemoteError".to_owned(), r.text("error message")?)),
        n if n >= 2 => {
            let name = r.text("error name")?;
            let message = r.text("error message")?;
            Ok((name, message))
        }
        n => Err(EventError::NotATriple(n)),
    }
}

/// Appends the envelope of an event up to and including its name; the
/// caller appends `args`.
pub fn write_head(out: &mut Vec<u8>, message_id: &[u8], response_to: Option<&[u8]>, name: &str) {
    out.push(0x93);
    out.push(if response_to.is_some() { 0x83 } else { 0x82 });
    write_str(out, "message_id");
    write_bin(out, message_id);
    write_str(out, "v");
    out.push(VERSION as u8); // a positive fixint
    if let Some(to) = response_to {
        write_str(out, "response_to");
        write_bin(out, to);
    }
    write_str(out, name);
}

/// Appends a MessagePack array header.
pub fn write_array_len(out: &mut Vec<u8>, n: u32) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a MessagePack map header.
pub fn write_map_len(out: &mut Vec<u8>, n: u32) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xde);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a MessagePack string. Strings here are names and messages,
/// far below 4 GiB; a longer one is cut at a character boundary.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = &s[..end];
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends MessagePack `bin` (message ids: 32 bytes).
pub fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u32::MAX as usize)];
    let n = b.len();
    if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xc4, n as u8]);
    } else if n <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Appends a heartbeat on the channel `channel`: `_zpc_hb` with `[0]`
/// (the 0 keeps protocol v2 peers happy, as zerorpc sends it).
pub fn write_heartbeat(out: &mut Vec<u8>, message_id: &[u8], channel: &[u8]) {
    write_head(out, message_id, Some(channel), HEARTBEAT);
    out.extend_from_slice(&[0x91, 0x00]);
}

/// Appends an `ERR` reply to `channel`: `[name, message, nil]` for v2 and
/// up, `[message]` for v1, as zerorpc's server answers each.
pub fn write_error(out: &mut Vec<u8>, message_id: &[u8], channel: &[u8], version: u64, status: &Status) {
    write_head(out, message_id, Some(channel), ERR);
    if version < 2 {
        write_array_len(out, 1);
        write_str(out, &status.message);
    } else {
        write_array_len(out, 3);
        write_str(out, exception_name(status.code));
        write_str(out, &status.message);
        // zerorpc sends a Python traceback; there is none to send, and its
        // client reads nil as "no traceback".
        out.push(0xc0);
    }
}

/// The Python exception name an `ERR` reply carries for `code`: zerorpc's
/// error form is the exception's type name, so Python clients see the
/// exception they would have seen from a Python server.
pub fn exception_name(code: Code) -> &'static str {
    match code {
        Code::OutOfRange => "OverflowError",
        Code::InvalidArgument => "ValueError",
        // What zerorpc's server raises for a method it does not have.
        Code::Unimplemented => "NameError",
        Code::ResourceExhausted => "MemoryError",
        // zerorpc's own exceptions.
        Code::DeadlineExceeded => "TimeoutExpired",
        Code::Unavailable => "LostRemote",
        Code::Internal | Code::Ok => "RuntimeError",
    }
}

/// The status for an `ERR` reply's exception name and message; names
/// outside the table are `Internal`, with the name kept in the message.
pub fn status_of(name: &str, message: &str) -> Status {
    let code = match name {
        "OverflowError" => Code::OutOfRange,
        "ValueError" | "TypeError" | "KeyError" => Code::InvalidArgument,
        "NameError" => Code::Unimplemented,
        "MemoryError" => Code::ResourceExhausted,
        "TimeoutExpired" => Code::DeadlineExceeded,
        "LostRemote" => Code::Unavailable,
        "RuntimeError" => Code::Internal,
        other => return Status::new(Code::Internal, format!("{other}: {message}")),
    };
    Status::new(code, message)
}

/// Message ids as zerorpc makes them: 8 hex digits of a counter, then 24
/// hex digits fixed per process side (zerorpc takes them from a UUID), so
/// the counter of a reply's `response_to` finds its call.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    base: [u8; 24],
    next: u32,
}

/// A message id's length.
pub(crate) const ID_LEN: usize = 32;

impl Ids {
    /// A fresh id space: a random suffix and a random first counter.
    pub(crate) fn new() -> Ids {
        let random = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            h.write_u32(std::process::id());
            h.finish()
        };
        let (a, b) = (random(1), random(2));
        let mut base = [0u8; 24];
        let hex = format!("{a:016x}{b:016x}");
        base.copy_from_slice(&hex.as_bytes()[..24]);
        Ids { base, next: (b >> 32) as u32 }
    }

    /// The next id and its counter.
    pub(crate) fn next(&mut self) -> (u32, [u8; ID_LEN]) {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        (n, self.id(n))
    }

    /// The id of counter `n`.
    pub(crate) fn id(&self, n: u32) -> [u8; ID_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; ID_LEN];
        for (i, digit) in id[..8].iter_mut().enumerate() {
            *digit = HEX[((n >> (28 - 4 * i)) & 0xf) as usize];
        }
        id[8..].copy_from_slice(&self.base);
        id
    }

    /// The counter of `id`, if it is one of ours.
    pub(crate) fn counter(&self, id: &[u8]) -> Option<u32> {
        if id.len() != ID_LEN || id[8..] != self.base {
            return None;
        }
        let mut n = 0u32;
        for &d in &id[..8] {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => return None,
            };
            n = n << 4 | u32::from(v);
        }
        Some(n)
    }
}

/// A cursor over a frame.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, what: &'static str, n: u64) -> Result<&'a [u8], EventError> {
        let have = self.buf.len() - self.pos;
        if n > have as u64 {
            return Err(EventError::Truncated { what, need: n, at: self.pos, have });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, EventError> {
        Ok(self.take(what, 1)?[0])
    }

    fn be(&mut self, what: &'static str, n: u64) -> Result<u64, EventError> {
        Ok(self.take(what, n)?.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn wrong(&self, what: &'static str, expected: &'static str, marker: u8) -> EventError {
        EventError::WrongType { what, expected, marker, at: self.pos.saturating_sub(1) }
    }

    fn array_len(&mut self, what: &'static str) -> Result<u32, EventError> {
        match self.byte(what)? {
            m @ 0x90..=0x9f => Ok(u32::from(m & 0x0f)),
            0xdc => Ok(self.be(what, 2)? as u32),
            0xdd => Ok(self.be(what, 4)? as u32),
            m => Err(self.wrong(what, "an array", m)),
        }
    }

    fn map_len(&mut self, what: &'static str) -> Result<u32, EventError> {
        match self.byte(what)? {
            m @ 0x80..=0x8f => Ok(u32::from(m & 0x0f)),
            0xde => Ok(self.be(what, 2)? as u32),
            0xdf => Ok(self.be(what, 4)? as u32),
            m => Err(self.wrong(what, "a map", m)),
        }
    }

    /// The length of a str (`Ok(Some)`) or bin (`Ok(None)` for the kind),
    /// from its marker.
    fn str_or_bin_len(&mut self, marker: u8, what: &'static str) -> Option<Result<(bool, u64), EventError>> {
        let r = match marker {
            0xa0..=0xbf => Ok((true, u64::from(marker & 0x1f))),
            0xd9 => self.be(what, 1).map(|n| (true, n)),
            0xda => self.be(what, 2).map(|n| (true, n)),
            0xdb => self.be(what, 4).map(|n| (true, n)),
            0xc4 => self.be(what, 1).map(|n| (false, n)),
            0xc5 => self.be(what, 2).map(|n| (false, n)),
            0xc6 => self.be(what, 4).map(|n| (false, n)),
            _ => return None,
        };
        Some(r)
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, EventError> {
        let m = self.byte(what)?;
        match self.str_or_bin_len(m, what) {
            Some(Ok((true, n))) => std::str::from_utf8(self.take(what, n)?).map_err(|_| EventError::Utf8(what)),
            Some(Err(e)) => Err(e),
            _ => Err(self.wrong(what, "a string", m)),
        }
    }

    /// A message id: `bin` (zerorpc on Python 3) or `str` (older peers).
    fn id(&mut self, what: &'static str) -> Result<&'a [u8], EventError> {
        let m = self.byte(what)?;
        match self.str_or_bin_len(m, what) {
            Some(Ok((_, n))) => self.take(what, n),
            Some(Err(e)) => Err(e),
            None => Err(self.wrong(what, "bytes or a string", m)),
        }
    }

    /// Text of an error reply: str, bin (lossy UTF-8) or nil (empty).
    fn text(&mut self, what: &'static str) -> Result<String, EventError> {
        let m = self.byte(what)?;
        if m == 0xc0 {
            return Ok(String::new());
        }
        match self.str_or_bin_len(m, what) {
            Some(Ok((_, n))) => Ok(String::from_utf8_lossy(self.take(what, n)?).into_owned()),
            Some(Err(e)) => Err(e),
            None => Err(self.wrong(what, "a string", m)),
        }
    }

    /// `v`: a non-negative integer; anything else is skipped and ignored.
    fn uint_or_skip(&mut self) -> Result<Option<u64>, EventError> {
        let at = self.pos;
        let m = self.byte("v")?;
        let v = match m {
            0x00..=0x7f => Some(u64::from(m)),
            0xcc => Some(self.be("v", 1)?),
            0xcd => Some(self.be("v", 2)?),
            0xce => Some(self.be("v", 4)?),
            0xcf => Some(self.be("v", 8)?),
            _ => {
                self.pos = at;
                self.skip(0)?;
                None
            }
        };
        Ok(v)
    }

    /// Skips one value of any type.
    fn skip(&mut self, depth: u32) -> Result<(), EventError> {
        if depth > MAX_DEPTH {
            return Err(EventError::TooDeep);
        }
        let what = "header value";
        let m = self.byte(what)?;
        let (data, items) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (u64::from(m & 0x1f), 0),
            0xc1 => return Err(EventError::Reserved(self.pos - 1)),
            0xc4 | 0xd9 => (self.be(what, 1)?, 0),
            0xc5 | 0xda => (self.be(what, 2)?, 0),
            0xc6 | 0xdb => (self.be(what, 4)?, 0),
            0xc7 => (self.be(what, 1)? + 1, 0),
            0xc8 => (self.be(what, 2)? + 1, 0),
            0xc9 => (self.be(what, 4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, self.be(what, 2)?),
            0xdd => (0, self.be(what, 4)?),
            0xde => (0, 2 * self.be(what, 2)?),
            0xdf => (0, 2 * self.be(what, 4)?),
        };
        self.take(what, data)?;
        // Every item takes at least one byte: a count past the input is a
        // lie, refused before looping over it.
        let have = (self.buf.len() - self.pos) as u64;
        if items > have {
            return Err(EventError::Truncated { what, need: items, at: self.pos, have: have as usize });
        }
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const CALLER: &[u8] = b"0000002a0123456789abcdef01234567";

    // Golden bytes from Python: msgpack.Packer(use_bin_type=True).pack(...)
    // of the tuple zerorpc's Event.pack builds.
    const PY_REQUEST: &str = "9382aa6d6573736167655f6964c4203030303030303261303132333435363738396162636465663031323334353637a17603a86d756c7469706c799182a16106a162f9";
    const PY_OK: &str = "9383aa6d6573736167655f6964c4203030303030303031787878787878787878787878787878787878787878787878a17603ab726573706f6e73655f746fc4203030303030303261303132333435363738396162636465663031323334353637a24f4b9181a770726f64756374d0d6";
    const PY_ERR: &str = "9383aa6d6573736167655f6964c4203030303030303032787878787878787878787878787878787878787878787878a17603ab726573706f6e73655f746fc4203030303030303261303132333435363738396162636465663031323334353637a345525293ad4f766572666c6f774572726f72a4626f6f6dc0";
    const PY_HB: &str = "9383aa6d6573736167655f6964c4203030303030303033787878787878787878787878787878787878787878787878a17603ab726573706f6e73655f746fc4203030303030303261303132333435363738396162636465663031323334353637a75f7a70635f68629100";

    #[test]
    fn writes_what_python_zerorpc_writes() {
        let mut out = Vec::new();
        write_head(&mut out, CALLER, None, "multiply");
        out.extend_from_slice(&hex("9182a16106a162f9"));
        assert_eq!(out, hex(PY_REQUEST));

        let server_id = |n: u8| {
            let mut id = *b"00000000xxxxxxxxxxxxxxxxxxxxxxxx";
            id[7] = b'0' + n;
            id
        };
        out.clear();
        write_head(&mut out, &server_id(1), Some(CALLER), OK);
        out.extend_from_slice(&hex("9181a770726f64756374d0d6"));
        assert_eq!(out, hex(PY_OK));

        out.clear();
        write_error(&mut out, &server_id(2), CALLER, 3, &Status::new(Code::OutOfRange, "boom"));
        assert_eq!(out, hex(PY_ERR));

        out.clear();
        write_heartbeat(&mut out, &server_id(3), CALLER);
        assert_eq!(out, hex(PY_HB));
    }

    #[test]
    fn reads_what_python_zerorpc_writes() {
        let request = hex(PY_REQUEST);
        let e = parse(&request).unwrap();
        assert_eq!((e.message_id, e.response_to, e.version, e.name), (Some(CALLER), None, Some(3), "multiply"));
        assert_eq!(single_arg(e.args).unwrap().unwrap(), hex("82a16106a162f9"));

        let ok = hex(PY_OK);
        let e = parse(&ok).unwrap();
        assert_eq!((e.response_to, e.name), (Some(CALLER), OK));

        let err = hex(PY_ERR);
        let e = parse(&err).unwrap();
        assert_eq!(e.name, ERR);
        let (name, message) = error_args(e.args).unwrap();
        assert_eq!(status_of(&name, &message), Status::new(Code::OutOfRange, "boom"));

        let hb = hex(PY_HB);
        assert_eq!(parse(&hb).unwrap().name, HEARTBEAT);
    }

    #[test]
    fn unknown_header_keys_are_skipped_and_v1_is_the_default() {
        // {"trace": {"x": [1, 2.5, nil, true]}, "message_id": "abc"}, "ping", []
        let mut frame = vec![0x93, 0x82];
        write_str(&mut frame, "trace");
        frame.extend_from_slice(&[0x81, 0xa1, b'x', 0x94, 0x01, 0xcb]);
        frame.extend_from_slice(&2.5f64.to_be_bytes());
        frame.extend_from_slice(&[0xc0, 0xc3]);
        write_str(&mut frame, "message_id");
        write_str(&mut frame, "abc");
        write_str(&mut frame, "ping");
        frame.push(0x90);
        let e = parse(&frame).unwrap();
        assert_eq!((e.message_id, e.version, e.server_version(), e.name), (Some(&b"abc"[..]), None, 1, "ping"));
        assert_eq!(single_arg(e.args).unwrap(), Err(0));
    }

    #[test]
    fn hostile_frames_are_errors() {
        let request = hex(PY_REQUEST);
        // Every truncation of a valid event is an error, never a panic.
        for end in 0..request.len() - 7 {
            assert!(parse(&request[..end]).is_err(), "prefix of {end} bytes parsed");
        }
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"GET / HTTP/1.1\r\n".to_vec(),
            vec![0x92, 0x80, 0xa0],
            // A header key claiming 4 GiB.
            vec![0x93, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff],
            // A skipped header value: an array claiming 4 billion items.
            [&[0x93, 0x81, 0xa1, b't'][..], &[0xdd, 0xff, 0xff, 0xff, 0xff]].concat(),
            // Nesting past the limit.
            [&[0x93, 0x81, 0xa1, b't'][..], &[0x91; 100][..]].concat(),
            // A name that is not UTF-8.
            vec![0x93, 0x80, 0xa2, 0xff, 0xfe, 0x90],
            // Args that are not an array.
            vec![0x93, 0x80, 0xa1, b'x', 0x01],
            vec![0x93, 0x81, 0xa1, b't', 0xc1],
        ];
        for case in cases {
            assert!(parse(&case).is_err(), "{case:02x?} parsed");
        }
    }

    #[test]
    fn ids_round_trip_and_reject_foreign_ones() {
        let mut ids = Ids::new();
        let (n, id) = ids.next();
        assert_eq!(ids.counter(&id), Some(n));
        let (m, id2) = ids.next();
        assert_eq!((m, ids.counter(&id2)), (n.wrapping_add(1), Some(m)));
        assert_eq!(ids.counter(&ids.id(u32::MAX)), Some(u32::MAX));
        let other = Ids::new();
        assert_eq!(ids.counter(&other.id(n)), None);
        assert_eq!(ids.counter(b"short"), None);
    }

    #[test]
    fn every_code_maps_to_a_name_and_back() {
        for code in [
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::Unimplemented,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Unavailable,
            Code::Internal,
        ] {
            assert_eq!(status_of(exception_name(code), "m").code, code);
        }
        assert_eq!(status_of("ZeroDivisionError", "x"), Status::new(Code::Internal, "ZeroDivisionError: x"));
    }

    #[test]
    fn v1_errors_carry_the_message_only() {
        let mut out = Vec::new();
        write_error(&mut out, CALLER, CALLER, 1, &Status::new(Code::OutOfRange, "boom"));
        let e = parse(&out).unwrap();
        assert_eq!(error_args(e.args).unwrap(), ("RemoteError".to_owned(), "boom".to_owned()));
    }
}
