//! Hessian 2.0 (the serialization of the Hessian 2.0 specification, Dubbo's
//! default), written here: there is no usable Rust crate. Interoperability
//! is proven against Caucho's Java Hessian 4.0.38 by
//! `scripts/reference/HessianCrosscheck.java`, both ways.
//!
//! # Encoding
//!
//! Every message is one Hessian object of a Java class named
//! `wirebench.<Message>` (table in `docs/protocol.md`), preceded by its
//! class definition, as Java's `Hessian2Output` writes a bean: each message
//! is its own stream, so class definitions are numbered from 0 in every
//! message, in the order their first object appears. Fields are the Java
//! fields of the contract, in the contract's order (which is also the order
//! Caucho's serializer uses: primitives and `java.lang` types first, then
//! the others). The encoder writes exactly the bytes `Hessian2Output` does
//! for those classes: the same compact int, long and double forms
//! (including Caucho's "mill" double, `x5f`: an int number of thousandths),
//! strings with lengths in UTF-16 units and characters outside the BMP as
//! surrogate pairs of 3-byte sequences (what Java writes and reads), and
//! strings and binaries split into chunks of at most 32 Ki units. It never
//! writes references: the model has no shared values.
//!
//! # Decoding
//!
//! The decoder accepts what a conforming writer may produce for these
//! types: every int, long and double form; chunked strings (split
//! surrogate pairs too) and binaries; class definitions anywhere a value
//! may start, with fields in any order and unknown fields skipped; objects
//! also as typed or untyped maps keyed by field name; typed and untyped,
//! fixed and variable-length lists; and references (`x51`) to earlier
//! lists, maps and objects, which Java writes for shared instances. The
//! model has no sharing, so a reference is decoded again from the bytes it
//! points at (the reference table holds positions, not values).
//!
//! Hostile input is bounded: a declared length is checked against the
//! bytes left before anything is allocated for it (every element takes at
//! least a byte; strings and binaries are borrowed from the input until
//! chunks must be joined); nesting is limited to [`MAX_DEPTH`]; and the
//! work a message causes, references included, is limited to
//! [`BUDGET_PER_BYTE`] units per input byte, so a few bytes of references
//! to references cannot expand into millions of values.

use std::borrow::Cow;

use crate::FormatId;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status};
use crate::service::Service;

/// Hessian 2.0.
#[derive(Debug)]
pub struct Hessian;

const NAME: &str = "hessian";

/// Deepest nesting of lists, maps and objects the decoder follows (the
/// contract needs 4: batch, records, record, attributes).
pub const MAX_DEPTH: u32 = 64;
/// Decoding work allowed per input byte: one unit per value and one per
/// string or binary byte, references decoded again included. A message
/// without references needs at most 2 per byte.
pub const BUDGET_PER_BYTE: usize = 4;
/// Decoding work allowed whatever the size (class definitions alone take
/// a few hundred units).
const BUDGET_BASE: usize = 4096;
/// Longest chunk the encoder writes, in UTF-16 units (strings) or bytes
/// (binaries): Java's string chunk.
const CHUNK: usize = 0x8000;

// ---------------------------------------------------------------------------------------------------
// The classes.

/// The Java classes of the contract's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    MultiplyRequest,
    MultiplyReply,
    EchoRequest,
    EchoReply,
    Batch,
    Record,
    Attribute,
    Location,
    DigestReply,
}

const CLASSES: usize = 9;

impl Class {
    const ALL: [Class; CLASSES] = [
        Class::MultiplyRequest,
        Class::MultiplyReply,
        Class::EchoRequest,
        Class::EchoReply,
        Class::Batch,
        Class::Record,
        Class::Attribute,
        Class::Location,
        Class::DigestReply,
    ];

    /// The Java class name.
    fn name(self) -> &'static str {
        match self {
            Class::MultiplyRequest => "wirebench.MultiplyRequest",
            Class::MultiplyReply => "wirebench.MultiplyReply",
            Class::EchoRequest => "wirebench.EchoRequest",
            Class::EchoReply => "wirebench.EchoReply",
            Class::Batch => "wirebench.Batch",
            Class::Record => "wirebench.Record",
            Class::Attribute => "wirebench.Attribute",
            Class::Location => "wirebench.Location",
            Class::DigestReply => "wirebench.DigestReply",
        }
    }

    /// The Java field names, in the order they are written. A field's
    /// index here is its slot.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Class::MultiplyRequest => &["a", "b"],
            Class::MultiplyReply => &["product"],
            Class::EchoRequest | Class::EchoReply => &["payload"],
            Class::Batch => &["records"],
            Class::Record => &[
                "id",
                "userId",
                "timestampMicros",
                "name",
                "email",
                "kind",
                "score",
                "weight",
                "active",
                "tags",
                "attributes",
                "location",
                "fingerprint",
            ],
            Class::Attribute => &["key", "value"],
            Class::Location => &["latitude", "longitude", "city"],
            Class::DigestReply => &["records", "checksum"],
        }
    }

    fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    fn slot(self, field: &str) -> Option<u8> {
        // At most 13 fields: the index fits.
        self.fields().iter().position(|f| *f == field).map(|i| i as u8)
    }
}

// ---------------------------------------------------------------------------------------------------
// The encoder.

/// Writes one message into `out`, defining each class before its first
/// object, as `Hessian2Output` does.
struct Writer<'s> {
    out: &'s mut Vec<u8>,
    /// Each class's definition number in this message, or `UNDEFINED`.
    defined: [u8; CLASSES],
    next: u8,
}

const UNDEFINED: u8 = u8::MAX;

impl<'s> Writer<'s> {
    fn new(out: &'s mut Vec<u8>) -> Writer<'s> {
        out.clear();
        Writer { out, defined: [UNDEFINED; CLASSES], next: 0 }
    }

    /// The start of an object: its class definition the first time, then
    /// `x60 + n` (or `O n`). Its fields follow.
    fn object(&mut self, class: Class) {
        let i = class as usize;
        if self.defined[i] == UNDEFINED {
            self.defined[i] = self.next;
            self.next += 1;
            self.out.push(b'C');
            self.string(class.name());
            self.int(class.fields().len() as i32);
            for field in class.fields() {
                self.string(field);
            }
        }
        let n = self.defined[i];
        if n <= 0x0f {
            self.out.push(0x60 + n);
        } else {
            self.out.push(b'O');
            self.int(i32::from(n));
        }
    }

    fn null(&mut self) {
        self.out.push(b'N');
    }

    fn boolean(&mut self, value: bool) {
        self.out.push(if value { b'T' } else { b'F' });
    }

    /// `Hessian2Output.writeInt`.
    fn int(&mut self, v: i32) {
        match v {
            -0x10..=0x2f => self.out.push((v + 0x90) as u8),
            -0x800..=0x7ff => self.out.extend_from_slice(&[(0xc8 + (v >> 8)) as u8, v as u8]),
            -0x40000..=0x3ffff => self.out.extend_from_slice(&[(0xd4 + (v >> 16)) as u8, (v >> 8) as u8, v as u8]),
            _ => {
                self.out.push(b'I');
                self.out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// `Hessian2Output.writeLong`.
    fn long(&mut self, v: i64) {
        match v {
            -0x08..=0x0f => self.out.push((v + 0xe0) as u8),
            -0x800..=0x7ff => self.out.extend_from_slice(&[(0xf8 + (v >> 8)) as u8, v as u8]),
            -0x40000..=0x3ffff => self.out.extend_from_slice(&[(0x3c + (v >> 16)) as u8, (v >> 8) as u8, v as u8]),
            _ => match i32::try_from(v) {
                Ok(v) => {
                    self.out.push(0x59);
                    self.out.extend_from_slice(&v.to_be_bytes());
                }
                Err(_) => {
                    self.out.push(b'L');
                    self.out.extend_from_slice(&v.to_be_bytes());
                }
            },
        }
    }

    /// `Hessian2Output.writeDouble`: the compact forms when the value is a
    /// small integer or a whole number of thousandths that converts back
    /// exactly, else the 8 bytes. The conversions are Java's: `as i32`
    /// saturates and maps NaN to 0, like Java's `(int)`.
    fn double(&mut self, v: f64) {
        let int = v as i32;
        if f64::from(int) == v {
            match int {
                0 => return self.out.push(0x5b),
                1 => return self.out.push(0x5c),
                -0x80..=0x7f => return self.out.extend_from_slice(&[0x5d, int as u8]),
                -0x8000..=0x7fff => return self.out.extend_from_slice(&[0x5e, (int >> 8) as u8, int as u8]),
                _ => {}
            }
        }
        let mills = (v * 1000.0) as i32;
        if 0.001 * f64::from(mills) == v {
            self.out.push(0x5f);
            self.out.extend_from_slice(&mills.to_be_bytes());
            return;
        }
        // Java's doubleToLongBits: one NaN.
        let bits = if v.is_nan() { 0x7ff8_0000_0000_0000 } else { v.to_bits() };
        self.out.push(b'D');
        self.out.extend_from_slice(&bits.to_be_bytes());
    }

    /// A string chunk header for `units` UTF-16 units.
    fn string_header(&mut self, units: usize, last: bool) {
        if !last {
            self.out.push(b'R');
            self.out.extend_from_slice(&(units as u16).to_be_bytes());
        } else if units <= 0x1f {
            self.out.push(units as u8);
        } else if units <= 0x3ff {
            self.out.extend_from_slice(&[0x30 + (units >> 8) as u8, units as u8]);
        } else {
            self.out.push(b'S');
            self.out.extend_from_slice(&(units as u16).to_be_bytes());
        }
    }

    /// `Hessian2Output.writeString`: lengths in UTF-16 units, chunks of at
    /// most 0x8000 units that never end between the halves of a pair.
    fn string(&mut self, s: &str) {
        let bytes = s.as_bytes();
        if bytes.is_ascii() {
            let mut rest = bytes;
            while rest.len() > CHUNK {
                let (chunk, tail) = rest.split_at(CHUNK);
                self.string_header(CHUNK, false);
                self.out.extend_from_slice(chunk);
                rest = tail;
            }
            self.string_header(rest.len(), true);
            self.out.extend_from_slice(rest);
            return;
        }
        // UTF-16 units: one per character, two for each outside the BMP
        // (the ones with a 4-byte UTF-8 lead).
        let wide = bytes.iter().filter(|&&b| b >= 0xf0).count();
        let units = bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count() + wide;
        if units <= CHUNK {
            self.string_header(units, true);
            self.cesu(s, wide > 0);
            return;
        }
        let mut rest = s;
        let mut left = units;
        while left > CHUNK {
            let (mut n, mut end) = (0, 0);
            for c in rest.chars() {
                let u = c.len_utf16();
                if n + u > CHUNK {
                    break;
                }
                n += u;
                end += c.len_utf8();
            }
            let (chunk, tail) = rest.split_at(end);
            self.string_header(n, false);
            self.cesu(chunk, true);
            rest = tail;
            left -= n;
        }
        self.string_header(left, true);
        self.cesu(rest, true);
    }

    /// UTF-8 as Java writes it: characters outside the BMP as two 3-byte
    /// surrogates (CESU-8), the rest unchanged.
    fn cesu(&mut self, s: &str, wide: bool) {
        if !wide {
            self.out.extend_from_slice(s.as_bytes());
            return;
        }
        for c in s.chars() {
            if c.len_utf16() == 1 {
                let mut buf = [0; 4];
                self.out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            } else {
                let mut pair = [0; 2];
                for u in c.encode_utf16(&mut pair) {
                    let u = *u;
                    self.out.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                }
            }
        }
    }

    /// Binary data in chunks of at most 0x8000 bytes.
    fn binary(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while rest.len() > CHUNK {
            let (chunk, tail) = rest.split_at(CHUNK);
            self.out.push(b'A');
            self.out.extend_from_slice(&(CHUNK as u16).to_be_bytes());
            self.out.extend_from_slice(chunk);
            rest = tail;
        }
        let len = rest.len();
        if len <= 0x0f {
            self.out.push(0x20 + len as u8);
        } else if len <= 0x3ff {
            self.out.extend_from_slice(&[0x34 + (len >> 8) as u8, len as u8]);
        } else {
            self.out.push(b'B');
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        self.out.extend_from_slice(rest);
    }

    /// An untyped fixed-length list header, as Java writes an `ArrayList`.
    fn list(&mut self, len: usize, message: &'static str) -> Result<(), CodecError> {
        if len <= 7 {
            self.out.push(0x78 + len as u8);
        } else {
            let len = i32::try_from(len)
                .map_err(|_| CodecError::encode(NAME, message, format_args!("a list of {len} elements")))?;
            self.out.push(0x58);
            self.int(len);
        }
        Ok(())
    }

    fn record(&mut self, r: &Record) -> Result<(), CodecError> {
        self.object(Class::Record);
        // Java has no unsigned types: the same bits in the signed type.
        self.long(r.id as i64);
        self.int(r.user_id as i32);
        self.long(r.timestamp_micros);
        self.string(&r.name);
        self.string(&r.email);
        self.int(i32::from(r.kind.value()));
        self.double(r.score);
        // A Java float field is written as a double.
        self.double(f64::from(r.weight));
        self.boolean(r.active);
        self.list(r.tags.len(), "Record")?;
        for tag in &r.tags {
            self.string(tag);
        }
        self.list(r.attributes.len(), "Record")?;
        for a in &r.attributes {
            self.object(Class::Attribute);
            self.string(&a.key);
            self.string(&a.value);
        }
        match &r.location {
            Some(l) => {
                self.object(Class::Location);
                self.double(l.latitude);
                self.double(l.longitude);
                self.string(&l.city);
            }
            None => self.null(),
        }
        self.binary(&r.fingerprint);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// The decoder.

/// Why bytes are not a valid message, and where.
#[derive(Debug, thiserror::Error)]
#[error("at byte {at}: {what}")]
struct Malformed {
    at: usize,
    what: Cow<'static, str>,
}

type Decoded<T> = Result<T, Malformed>;

/// A table that keeps its first `N` entries inline, so the small messages
/// (Multiply, Echo) decode without allocating for it.
#[derive(Debug)]
struct Table<T: Copy + Default, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy + Default, const N: usize> Table<T, N> {
    fn new() -> Self {
        Table { inline: [T::default(); N], len: 0, spill: Vec::new() }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn push(&mut self, value: T) {
        if self.len < N {
            self.inline[self.len] = value;
        } else {
            self.spill.push(value);
        }
        self.len += 1;
    }
    fn get(&self, i: usize) -> Option<T> {
        if i < N.min(self.len) { Some(self.inline[i]) } else { self.spill.get(i.checked_sub(N)?).copied() }
    }
    fn set(&mut self, i: usize, value: T) {
        if i < N {
            self.inline[i] = value;
        } else if let Some(slot) = self.spill.get_mut(i - N) {
            *slot = value;
        }
    }
}

/// A class definition: our class (if its name is one of ours) and, per
/// field, its slot in our class or `SKIP`.
#[derive(Clone, Copy, Debug, Default)]
struct ClassDef {
    class: Option<Class>,
    start: u32,
    len: u32,
}

/// A field our class does not have: its value is skipped.
const SKIP: u8 = u8::MAX;
/// Set in a reference-table entry when its value has been read to the end.
const DONE: u32 = 1 << 31;

/// The decoder state of one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Class definitions in order of appearance.
    classes: Table<ClassDef, 12>,
    /// The field slots of every class definition, back to back.
    slots: Table<u8, 48>,
    /// Type names of typed lists and maps, in order (ours or not).
    types: Table<Option<Class>, 4>,
    /// Where each list, map and object starts, in the pre-order in which
    /// writers number them, with `DONE` once read.
    refs: Table<u32, 8>,
    /// How many references are being decoded again: while so, nothing is
    /// added to the tables (it was, the first time).
    replaying: u32,
    depth: u32,
    budget: usize,
}

/// A message (or nested struct) the decoder builds field by field.
trait Message<'a>: Default {
    const CLASS: Class;
    /// Reads the value of field `slot` into `self`.
    fn field(&mut self, slot: u8, r: &mut Reader<'a>) -> Decoded<()>;
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Decoded<Reader<'a>> {
        // Positions are kept in 31 bits (the top one is `DONE`).
        if buf.len() >= DONE as usize {
            return Err(Malformed { at: 0, what: format!("a {}-byte message is too large", buf.len()).into() });
        }
        Ok(Reader {
            buf,
            pos: 0,
            classes: Table::new(),
            slots: Table::new(),
            types: Table::new(),
            refs: Table::new(),
            replaying: 0,
            depth: 0,
            budget: buf.len().saturating_mul(BUDGET_PER_BYTE).saturating_add(BUDGET_BASE),
        })
    }

    #[cold]
    fn fail<T>(&self, at: usize, what: impl Into<Cow<'static, str>>) -> Decoded<T> {
        Err(Malformed { at, what: what.into() })
    }

    #[cold]
    fn unexpected<T>(&self, tag: u8, expected: &str) -> Decoded<T> {
        self.fail(self.pos - 1, format!("expected {expected}, found tag 0x{tag:02x}"))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn byte(&mut self) -> Decoded<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail(self.pos, "unexpected end of the message"),
        }
    }

    #[inline]
    fn peek(&self) -> Decoded<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.fail(self.pos, "unexpected end of the message"),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        if n > self.remaining() {
            return self.fail(self.pos, format!("{n} bytes declared, {} left", self.remaining()));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn spend(&mut self, units: usize) -> Decoded<()> {
        match self.budget.checked_sub(units) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => self.fail(
                self.pos,
                format!("decoding would take more than {BUDGET_PER_BYTE} units of work per input byte (references)"),
            ),
        }
    }

    /// The tag of the next value, after any class definitions before it
    /// (`value ::= class-def value`).
    #[inline]
    fn value_tag(&mut self) -> Decoded<u8> {
        loop {
            let tag = self.byte()?;
            if tag != b'C' {
                self.spend(1)?;
                return Ok(tag);
            }
            self.class_def()?;
        }
    }

    /// The int forms, for a tag already read.
    #[inline]
    fn int_form(&mut self, tag: u8) -> Decoded<Option<i32>> {
        let t = i32::from(tag);
        Ok(Some(match tag {
            0x80..=0xbf => t - 0x90,
            0xc0..=0xcf => ((t - 0xc8) << 8) | i32::from(self.byte()?),
            0xd0..=0xd7 => ((t - 0xd4) << 16) | i32::from(u16::from_be_bytes(self.array()?)),
            b'I' => i32::from_be_bytes(self.array()?),
            _ => return Ok(None),
        }))
    }

    /// The long forms, for a tag already read.
    #[inline]
    fn long_form(&mut self, tag: u8) -> Decoded<Option<i64>> {
        let t = i64::from(tag);
        Ok(Some(match tag {
            0xd8..=0xef => t - 0xe0,
            0xf0..=0xff => ((t - 0xf8) << 8) | i64::from(self.byte()?),
            0x38..=0x3f => ((t - 0x3c) << 16) | i64::from(u16::from_be_bytes(self.array()?)),
            0x59 => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            _ => return Ok(None),
        }))
    }

    /// An `int` where the grammar has one (lengths, class and reference
    /// numbers): int forms only.
    fn raw_int(&mut self) -> Decoded<i32> {
        let tag = self.byte()?;
        match self.int_form(tag)? {
            Some(v) => Ok(v),
            None => self.unexpected(tag, "an int"),
        }
    }

    /// A count that must fit in the bytes left, each element taking at
    /// least one byte: checked before anything is allocated for it.
    fn count(&mut self) -> Decoded<usize> {
        let at = self.pos;
        let n = self.raw_int()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => self.fail(at, format!("a count of {n} with {} bytes left", self.remaining())),
        }
    }

    /// A whole-number value: int or long forms (Java readers accept either
    /// for either).
    fn integer(&mut self) -> Decoded<i64> {
        let tag = self.value_tag()?;
        if let Some(v) = self.int_form(tag)? {
            return Ok(i64::from(v));
        }
        match self.long_form(tag)? {
            Some(v) => Ok(v),
            None => self.unexpected(tag, "an int or a long"),
        }
    }

    /// An unsigned 32-bit field: a Java `int` holding its bits, or its
    /// value as a long.
    fn u32(&mut self) -> Decoded<u32> {
        let at = self.pos;
        let v = self.integer()?;
        if let Ok(v) = i32::try_from(v) {
            return Ok(v as u32);
        }
        u32::try_from(v).or_else(|_| self.fail(at, format!("{v} does not fit in 32 bits")))
    }

    fn double(&mut self) -> Decoded<f64> {
        let tag = self.value_tag()?;
        Ok(match tag {
            0x5b => 0.0,
            0x5c => 1.0,
            0x5d => f64::from(self.byte()? as i8),
            0x5e => f64::from(i16::from_be_bytes(self.array()?)),
            // Caucho's "mill" form, as its reader computes it.
            0x5f => 0.001 * f64::from(i32::from_be_bytes(self.array()?)),
            b'D' => f64::from_bits(u64::from_be_bytes(self.array()?)),
            _ => return self.unexpected(tag, "a double"),
        })
    }

    fn boolean(&mut self) -> Decoded<bool> {
        match self.value_tag()? {
            b'T' => Ok(true),
            b'F' => Ok(false),
            tag => self.unexpected(tag, "a boolean"),
        }
    }

    fn string(&mut self) -> Decoded<String> {
        let tag = self.value_tag()?;
        self.string_of(tag).map(Cow::into_owned)
    }

    /// Skips `units` UTF-16 units of Java's UTF-8 (1 to 3 bytes per unit, 4
    /// bytes for a pair written as standard UTF-8), checking the sequence
    /// structure; returns whether it saw a surrogate (CESU-8).
    #[inline]
    fn skip_units(&mut self, units: usize) -> Decoded<bool> {
        if let Some(run) = self.buf.get(self.pos..self.pos + units)
            && run.is_ascii()
        {
            self.pos += units;
            return Ok(false);
        }
        let mut left = units;
        let mut surrogate = false;
        while left > 0 {
            let at = self.pos;
            let lead = self.byte()?;
            let (extra, n) = match lead {
                0x00..=0x7f => (0, 1),
                0xc0..=0xdf => (1, 1),
                0xe0..=0xef => (2, 1),
                0xf0..=0xf7 => (3, 2),
                _ => return self.fail(at, format!("invalid UTF-8 lead byte 0x{lead:02x}")),
            };
            if n > left {
                return self.fail(at, "a 4-byte character overruns the string's length");
            }
            surrogate |= lead == 0xed && self.peek()? >= 0xa0;
            for _ in 0..extra {
                if self.byte()? & 0xc0 != 0x80 {
                    return self.fail(self.pos - 1, "invalid UTF-8 continuation byte");
                }
            }
            left -= n;
        }
        Ok(surrogate)
    }

    /// A string whose first chunk's tag was read: borrowed from the input
    /// when it is one chunk of standard UTF-8.
    fn string_of(&mut self, mut tag: u8) -> Decoded<Cow<'a, str>> {
        let start = self.pos;
        let mut joined: Option<Vec<u8>> = None;
        let mut cesu = false;
        loop {
            let (units, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => ((usize::from(tag - 0x30) << 8) | usize::from(self.byte()?), true),
                b'S' => (usize::from(u16::from_be_bytes(self.array()?)), true),
                b'R' => (usize::from(u16::from_be_bytes(self.array()?)), false),
                _ => return self.unexpected(tag, "a string"),
            };
            let from = self.pos;
            cesu |= self.skip_units(units)?;
            let chunk = &self.buf[from..self.pos];
            self.spend(chunk.len())?;
            match (&mut joined, last) {
                (None, true) => return self.text(Cow::Borrowed(chunk), cesu, start),
                (joined, _) => joined.get_or_insert_with(Vec::new).extend_from_slice(chunk),
            }
            if last {
                let bytes = joined.take().unwrap_or_default();
                return self.text(Cow::Owned(bytes), cesu, start);
            }
            // `string ::= x52 b1 b0 <utf8-data> string`: no class
            // definition between chunks.
            tag = self.byte()?;
        }
    }

    /// Java's UTF-8 as a Rust string: as it is when standard, decoded when
    /// it holds surrogate pairs.
    fn text(&self, bytes: Cow<'a, [u8]>, cesu: bool, at: usize) -> Decoded<Cow<'a, str>> {
        if cesu {
            return match decode_cesu(&bytes) {
                Ok(s) => Ok(Cow::Owned(s)),
                Err(e) => self.fail(at, e),
            };
        }
        match bytes {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(s) => Ok(Cow::Borrowed(s)),
                Err(e) => self.fail(at, format!("invalid UTF-8: {e}")),
            },
            Cow::Owned(b) => match String::from_utf8(b) {
                Ok(s) => Ok(Cow::Owned(s)),
                Err(e) => self.fail(at, format!("invalid UTF-8: {e}")),
            },
        }
    }

    fn binary(&mut self) -> Decoded<Cow<'a, [u8]>> {
        let tag = self.value_tag()?;
        self.binary_of(tag)
    }

    /// Binary data whose first chunk's tag was read: borrowed when it is
    /// one chunk.
    fn binary_of(&mut self, mut tag: u8) -> Decoded<Cow<'a, [u8]>> {
        let mut joined: Option<Vec<u8>> = None;
        loop {
            let (len, last) = match tag {
                0x20..=0x2f => (usize::from(tag - 0x20), true),
                0x34..=0x37 => ((usize::from(tag - 0x34) << 8) | usize::from(self.byte()?), true),
                b'B' => (usize::from(u16::from_be_bytes(self.array()?)), true),
                b'A' => (usize::from(u16::from_be_bytes(self.array()?)), false),
                _ => return self.unexpected(tag, "binary data"),
            };
            let chunk = self.take(len)?;
            self.spend(len)?;
            match (&mut joined, last) {
                (None, true) => return Ok(Cow::Borrowed(chunk)),
                (joined, _) => joined.get_or_insert_with(Vec::new).extend_from_slice(chunk),
            }
            if last {
                return Ok(Cow::Owned(joined.take().unwrap_or_default()));
            }
            tag = self.byte()?;
        }
    }

    /// `'C' string int string*`: a class definition, added to the table.
    fn class_def(&mut self) -> Decoded<()> {
        self.spend(1)?;
        let tag = self.byte()?;
        let name = self.string_of(tag)?;
        let class = Class::from_name(&name);
        let count = self.count()?;
        let start = self.slots.len() as u32;
        let mut seen = 0u16;
        for _ in 0..count {
            let at = self.pos;
            let tag = self.byte()?;
            let field = self.string_of(tag)?;
            let slot = match class.and_then(|c| c.slot(&field)) {
                Some(slot) => {
                    if seen & (1 << slot) != 0 {
                        return self.fail(at, format!("field {field} defined twice in {name}"));
                    }
                    seen |= 1 << slot;
                    slot
                }
                None => SKIP,
            };
            if self.replaying == 0 {
                self.slots.push(slot);
            }
        }
        if self.replaying == 0 {
            self.classes.push(ClassDef { class, start, len: count as u32 });
        }
        Ok(())
    }

    /// `type ::= string | int`: a type name, or the number of one seen
    /// before.
    fn type_name(&mut self) -> Decoded<Option<Class>> {
        let at = self.pos;
        let tag = self.byte()?;
        if let Some(n) = self.int_form(tag)? {
            return match usize::try_from(n).ok().and_then(|n| self.types.get(n)) {
                Some(class) => Ok(class),
                None => self.fail(at, format!("type reference {n} with {} types defined", self.types.len())),
            };
        }
        let class = Class::from_name(&self.string_of(tag)?);
        if self.replaying == 0 {
            self.types.push(class);
        }
        Ok(class)
    }

    /// Enters a list, map or object that starts at `at`: numbers it for
    /// references (the first time it is read).
    fn open(&mut self, at: usize) -> Decoded<Option<usize>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(at, format!("nested deeper than {MAX_DEPTH}"));
        }
        if self.replaying > 0 {
            return Ok(None);
        }
        // `new` checked that positions fit in 31 bits.
        self.refs.push(at as u32);
        Ok(Some(self.refs.len() - 1))
    }

    fn close(&mut self, entry: Option<usize>) {
        self.depth -= 1;
        if let Some(i) = entry
            && let Some(at) = self.refs.get(i)
        {
            self.refs.set(i, at | DONE);
        }
    }

    /// Decodes the value reference `n` points at again, with `read`.
    fn replay<T>(&mut self, n: i32, read: impl FnOnce(&mut Self) -> Decoded<T>) -> Decoded<T> {
        let at = self.pos;
        let Some(entry) = usize::try_from(n).ok().and_then(|n| self.refs.get(n)) else {
            return self.fail(at, format!("reference {n} with {} values defined", self.refs.len()));
        };
        if entry & DONE == 0 {
            return self.fail(at, format!("reference {n} is to a value still being read"));
        }
        let saved = self.pos;
        self.pos = (entry & !DONE) as usize;
        self.replaying += 1;
        let value = read(self);
        self.replaying -= 1;
        self.pos = saved;
        value
    }

    /// A list of `element`s: any of the six list forms, or a reference to
    /// one.
    fn list<T, F: Fn(&mut Self) -> Decoded<T> + Copy>(&mut self, element: F) -> Decoded<Vec<T>> {
        let tag = self.value_tag()?;
        let at = self.pos - 1;
        let len = match tag {
            0x51 => {
                let n = self.raw_int()?;
                return self.replay(n, |r| r.list(element));
            }
            0x55 => {
                self.type_name()?;
                None
            }
            b'V' => {
                self.type_name()?;
                Some(self.count()?)
            }
            0x57 => None,
            0x58 => Some(self.count()?),
            0x70..=0x77 => {
                self.type_name()?;
                Some(usize::from(tag - 0x70))
            }
            0x78..=0x7f => Some(usize::from(tag - 0x78)),
            _ => return self.unexpected(tag, "a list"),
        };
        let entry = self.open(at)?;
        let items = match len {
            Some(n) => {
                // `count` bounded n by the bytes left.
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(element(self)?);
                }
                items
            }
            None => {
                let mut items = Vec::new();
                while self.peek()? != b'Z' {
                    items.push(element(self)?);
                }
                self.pos += 1;
                items
            }
        };
        self.close(entry);
        Ok(items)
    }

    fn message<T: Message<'a>>(&mut self) -> Decoded<T> {
        let tag = self.value_tag()?;
        self.message_of(tag)
    }

    /// A nullable struct: `N`, or the struct.
    fn optional<T: Message<'a>>(&mut self) -> Decoded<Option<T>> {
        match self.value_tag()? {
            b'N' => Ok(None),
            tag => self.message_of(tag).map(Some),
        }
    }

    /// A struct of class `T::CLASS` whose tag was read: an object of that
    /// class, a map (untyped, or typed with that class's name) keyed by its
    /// field names, or a reference to either.
    fn message_of<T: Message<'a>>(&mut self, tag: u8) -> Decoded<T> {
        let at = self.pos - 1;
        let fields = T::CLASS.fields().len();
        let mut value = T::default();
        let mut seen = 0u16;
        match tag {
            b'O' | 0x60..=0x6f => {
                let n = if tag == b'O' { self.raw_int()? } else { i32::from(tag - 0x60) };
                let Some(def) = usize::try_from(n).ok().and_then(|n| self.classes.get(n)) else {
                    return self.fail(at, format!("object of class {n} with {} classes defined", self.classes.len()));
                };
                if def.class != Some(T::CLASS) {
                    let found = def.class.map_or("a class of another name", Class::name);
                    return self.fail(at, format!("expected {}, found {found}", T::CLASS.name()));
                }
                let entry = self.open(at)?;
                for i in def.start..def.start + def.len {
                    match self.slots.get(i as usize) {
                        Some(slot) if slot != SKIP => {
                            value.field(slot, self)?;
                            seen |= 1 << slot;
                        }
                        _ => self.skip()?,
                    }
                }
                self.close(entry);
            }
            b'H' | b'M' => {
                if tag == b'M' && self.type_name()? != Some(T::CLASS) {
                    return self.fail(at, format!("expected a map of type {}", T::CLASS.name()));
                }
                let entry = self.open(at)?;
                while self.peek()? != b'Z' {
                    let key_at = self.pos;
                    let key_tag = self.value_tag()?;
                    let key = self.string_of(key_tag)?;
                    match T::CLASS.slot(&key) {
                        Some(slot) => {
                            if seen & (1 << slot) != 0 {
                                return self.fail(key_at, format!("field {key} twice"));
                            }
                            value.field(slot, self)?;
                            seen |= 1 << slot;
                        }
                        None => self.skip()?,
                    }
                }
                self.pos += 1;
                self.close(entry);
            }
            0x51 => {
                let n = self.raw_int()?;
                return self.replay(n, |r| r.message::<T>());
            }
            _ => return self.unexpected(tag, T::CLASS.name()),
        }
        let all = (1u16 << fields) - 1;
        if seen != all {
            let missing = (0..fields).find(|i| seen & (1 << i) == 0).map_or("", |i| T::CLASS.fields()[i]);
            return self.fail(at, format!("{} without field {missing}", T::CLASS.name()));
        }
        Ok(value)
    }

    /// Skips one value of any type, keeping the class, type and reference
    /// tables as a full reader would.
    fn skip(&mut self) -> Decoded<()> {
        let tag = self.value_tag()?;
        let at = self.pos - 1;
        match tag {
            b'N' | b'T' | b'F' => {}
            0x80..=0xd7 | b'I' => {
                self.int_form(tag)?;
            }
            0xd8..=0xff | 0x38..=0x3f | 0x59 | b'L' => {
                self.long_form(tag)?;
            }
            0x5b | 0x5c => {}
            0x5d => {
                self.take(1)?;
            }
            0x5e => {
                self.take(2)?;
            }
            0x5f => {
                self.take(4)?;
            }
            b'D' | 0x4a => {
                self.take(8)?;
            }
            0x4b => {
                self.take(4)?;
            }
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => {
                self.string_of(tag)?;
            }
            0x20..=0x2f | 0x34..=0x37 | b'B' | b'A' => {
                self.binary_of(tag)?;
            }
            0x55 | b'V' | 0x57 | 0x58 | 0x70..=0x7f => {
                let len = match tag {
                    0x55 => {
                        self.type_name()?;
                        None
                    }
                    b'V' => {
                        self.type_name()?;
                        Some(self.count()?)
                    }
                    0x57 => None,
                    0x58 => Some(self.count()?),
                    0x70..=0x77 => {
                        self.type_name()?;
                        Some(usize::from(tag - 0x70))
                    }
                    _ => Some(usize::from(tag - 0x78)),
                };
                let entry = self.open(at)?;
                match len {
                    Some(n) => {
                        for _ in 0..n {
                            self.skip()?;
                        }
                    }
                    None => {
                        while self.peek()? != b'Z' {
                            self.skip()?;
                        }
                        self.pos += 1;
                    }
                }
                self.close(entry);
            }
            b'H' | b'M' => {
                if tag == b'M' {
                    self.type_name()?;
                }
                let entry = self.open(at)?;
                while self.peek()? != b'Z' {
                    self.skip()?;
                    self.skip()?;
                }
                self.pos += 1;
                self.close(entry);
            }
            b'O' | 0x60..=0x6f => {
                let n = if tag == b'O' { self.raw_int()? } else { i32::from(tag - 0x60) };
                let Some(def) = usize::try_from(n).ok().and_then(|n| self.classes.get(n)) else {
                    return self.fail(at, format!("object of class {n} with {} classes defined", self.classes.len()));
                };
                let entry = self.open(at)?;
                for _ in 0..def.len {
                    self.skip()?;
                }
                self.close(entry);
            }
            0x51 => {
                let n = self.raw_int()?;
                if usize::try_from(n).map_or(true, |n| n >= self.refs.len()) {
                    return self.fail(at, format!("reference {n} with {} values defined", self.refs.len()));
                }
            }
            _ => return self.unexpected(tag, "a value"),
        }
        Ok(())
    }

    /// The message ended where the bytes do.
    fn end(&self) -> Decoded<()> {
        if self.pos != self.buf.len() {
            return self.fail(self.pos, format!("{} trailing bytes after the message", self.remaining()));
        }
        Ok(())
    }
}

/// Java's UTF-8 with surrogate pairs as 3-byte sequences (CESU-8; standard
/// sequences are accepted too), as a Rust string.
fn decode_cesu(bytes: &[u8]) -> Result<String, String> {
    let is_surrogate = |i: usize| bytes[i] == 0xed && bytes.get(i + 1).is_some_and(|&b| b >= 0xa0);
    let unit = |i: usize| -> Option<u32> {
        let b = bytes.get(i..i + 3)?;
        Some((u32::from(b[0] & 0x0f) << 12) | (u32::from(b[1] & 0x3f) << 6) | u32::from(b[2] & 0x3f))
    };
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_surrogate(i) {
            let high = unit(i).ok_or("truncated surrogate")?;
            let low = (i + 3 < bytes.len() && is_surrogate(i + 3)).then(|| unit(i + 3)).flatten();
            match (high, low) {
                (0xd800..=0xdbff, Some(low @ 0xdc00..=0xdfff)) => {
                    let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                    out.push(char::from_u32(c).ok_or("invalid surrogate pair")?);
                    i += 6;
                }
                _ => return Err(format!("unpaired surrogate 0x{high:04x}")),
            }
        } else {
            let end = (i + 1..bytes.len()).find(|&j| is_surrogate(j)).unwrap_or(bytes.len());
            out.push_str(std::str::from_utf8(&bytes[i..end]).map_err(|e| format!("invalid UTF-8: {e}"))?);
            i = end;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// The messages.

#[derive(Default)]
struct MultiplyRequest {
    a: i64,
    b: i64,
}

impl Message<'_> for MultiplyRequest {
    const CLASS: Class = Class::MultiplyRequest;
    fn field(&mut self, slot: u8, r: &mut Reader<'_>) -> Decoded<()> {
        match slot {
            0 => self.a = r.integer()?,
            _ => self.b = r.integer()?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct MultiplyReply {
    product: i64,
}

impl Message<'_> for MultiplyReply {
    const CLASS: Class = Class::MultiplyReply;
    fn field(&mut self, _: u8, r: &mut Reader<'_>) -> Decoded<()> {
        self.product = r.integer()?;
        Ok(())
    }
}

#[derive(Default)]
struct EchoRequest<'a> {
    payload: Cow<'a, [u8]>,
}

impl<'a> Message<'a> for EchoRequest<'a> {
    const CLASS: Class = Class::EchoRequest;
    fn field(&mut self, _: u8, r: &mut Reader<'a>) -> Decoded<()> {
        self.payload = r.binary()?;
        Ok(())
    }
}

#[derive(Default)]
struct EchoReply<'a> {
    payload: Cow<'a, [u8]>,
}

impl<'a> Message<'a> for EchoReply<'a> {
    const CLASS: Class = Class::EchoReply;
    fn field(&mut self, _: u8, r: &mut Reader<'a>) -> Decoded<()> {
        self.payload = r.binary()?;
        Ok(())
    }
}

impl Message<'_> for Batch {
    const CLASS: Class = Class::Batch;
    fn field(&mut self, _: u8, r: &mut Reader<'_>) -> Decoded<()> {
        self.records = r.list(Reader::message::<Record>)?;
        Ok(())
    }
}

impl Message<'_> for Record {
    const CLASS: Class = Class::Record;
    fn field(&mut self, slot: u8, r: &mut Reader<'_>) -> Decoded<()> {
        let at = r.pos;
        match slot {
            0 => self.id = r.integer()? as u64,
            1 => self.user_id = r.u32()?,
            2 => self.timestamp_micros = r.integer()?,
            3 => self.name = r.string()?,
            4 => self.email = r.string()?,
            5 => {
                let v = r.integer()?;
                self.kind = match u32::try_from(v).ok().and_then(Kind::from_value) {
                    Some(kind) => kind,
                    None => return r.fail(at, format!("kind {v} is not in the schema")),
                };
            }
            6 => self.score = r.double()?,
            7 => {
                let w = r.double()?;
                if !(w.is_nan() || f64::from(w as f32) == w) {
                    return r.fail(at, format!("weight {w} is not a 32-bit float"));
                }
                self.weight = w as f32;
            }
            8 => self.active = r.boolean()?,
            9 => self.tags = r.list(Reader::string)?,
            10 => self.attributes = r.list(Reader::message::<Attribute>)?,
            11 => self.location = r.optional::<Location>()?,
            _ => self.fingerprint = r.binary()?.into_owned(),
        }
        Ok(())
    }
}

impl Message<'_> for Attribute {
    const CLASS: Class = Class::Attribute;
    fn field(&mut self, slot: u8, r: &mut Reader<'_>) -> Decoded<()> {
        match slot {
            0 => self.key = r.string()?,
            _ => self.value = r.string()?,
        }
        Ok(())
    }
}

impl Message<'_> for Location {
    const CLASS: Class = Class::Location;
    fn field(&mut self, slot: u8, r: &mut Reader<'_>) -> Decoded<()> {
        match slot {
            0 => self.latitude = r.double()?,
            1 => self.longitude = r.double()?,
            _ => self.city = r.string()?,
        }
        Ok(())
    }
}

impl Message<'_> for DigestReply {
    const CLASS: Class = Class::DigestReply;
    fn field(&mut self, slot: u8, r: &mut Reader<'_>) -> Decoded<()> {
        match slot {
            0 => self.records = r.u32()?,
            _ => self.checksum = r.integer()? as u64,
        }
        Ok(())
    }
}

/// Decodes one message of type `T` that spans all of `bytes`.
fn read<'a, T: Message<'a>>(message: &'static str, bytes: &'a [u8]) -> Result<T, CodecError> {
    let decoded = Reader::new(bytes).and_then(|mut r| {
        let value = r.message::<T>()?;
        r.end()?;
        Ok(value)
    });
    decoded.map_err(|e| CodecError::decode(NAME, message, e))
}

impl Format for Hessian {
    const ID: FormatId = FormatId::Hessian;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = NAME;
    const PROPERTIES: Properties = Properties {
        library: "own Hessian 2.0 codec",
        self_describing: true,
        schema: "none (Java classes wirebench.*, docs/protocol.md)",
        zero_copy: false,
        validation: "full parse to owned values; lengths checked against the input, nesting and reference expansion bounded",
        unvalidated_access: false,
        layout: "one object per message, class definitions first; Java's compact number forms, 32 Ki chunks; byte-identical to Caucho Hessian 4.0.38",
    };

    type Request = OwnedRequest<Batch>;
    type Scratch = Vec<u8>;

    fn prepare(request: &OwnedRequest<Batch>) -> Self::Request {
        request.clone()
    }

    fn to_model(request: Self::Request) -> OwnedRequest<Batch> {
        request
    }

    #[inline(always)]
    fn encode_request<'s>(scratch: &'s mut Vec<u8>, request: &Self::Request) -> Result<&'s [u8], CodecError> {
        let mut w = Writer::new(scratch);
        match request {
            OwnedRequest::Multiply { a, b } => {
                w.object(Class::MultiplyRequest);
                w.long(*a);
                w.long(*b);
            }
            OwnedRequest::Echo { payload } => {
                w.object(Class::EchoRequest);
                w.binary(payload);
            }
            OwnedRequest::Digest { batch } => {
                w.object(Class::Batch);
                w.list(batch.records.len(), "Batch")?;
                for record in &batch.records {
                    w.record(record)?;
                }
            }
        }
        Ok(scratch)
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let m: MultiplyRequest = read(message, bytes)?;
                OwnedRequest::Multiply { a: m.a, b: m.b }
            }
            Method::Echo => {
                OwnedRequest::Echo { payload: read::<EchoRequest<'_>>(message, bytes)?.payload.into_owned() }
            }
            Method::Digest => OwnedRequest::Digest { batch: read(message, bytes)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Vec<u8>, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        let mut w = Writer::new(scratch);
        match reply {
            Reply::Multiply { product } => {
                w.object(Class::MultiplyReply);
                w.long(*product);
            }
            Reply::Echo { payload } => {
                w.object(Class::EchoReply);
                w.binary(payload);
            }
            Reply::Digest(d) => {
                w.object(Class::DigestReply);
                w.int(d.records as i32);
                w.long(d.checksum as i64);
            }
        }
        Ok(scratch)
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: read::<MultiplyReply>(message, bytes)?.product },
            Method::Echo => Reply::Echo { payload: read::<EchoReply<'_>>(message, bytes)?.payload },
            Method::Digest => Reply::Digest(read(message, bytes)?),
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        respond_owned(service, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_with(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Writer::new(&mut out));
        out
    }

    fn decode_with<'a, T>(bytes: &'a [u8], f: impl FnOnce(&mut Reader<'a>) -> Decoded<T>) -> Decoded<T> {
        let mut r = Reader::new(bytes)?;
        let v = f(&mut r)?;
        r.end()?;
        Ok(v)
    }

    /// The spec's examples, and the edges of every compact form.
    #[test]
    fn ints_and_longs_use_the_compact_forms_of_the_spec() {
        let ints: &[(i32, &[u8])] = &[
            (0, &[0x90]),
            (-16, &[0x80]),
            (47, &[0xbf]),
            (48, &[0xc8, 0x30]),
            (-2048, &[0xc0, 0x00]),
            (-256, &[0xc7, 0x00]),
            (2047, &[0xcf, 0xff]),
            (-262144, &[0xd0, 0x00, 0x00]),
            (262143, &[0xd7, 0xff, 0xff]),
            (262144, &[b'I', 0x00, 0x04, 0x00, 0x00]),
            (i32::MIN, &[b'I', 0x80, 0, 0, 0]),
        ];
        for &(v, bytes) in ints {
            assert_eq!(encode_with(|w| w.int(v)), bytes, "int {v}");
            assert_eq!(decode_with(bytes, Reader::integer).unwrap(), i64::from(v), "int {v}");
        }
        let longs: &[(i64, &[u8])] = &[
            (0, &[0xe0]),
            (-8, &[0xd8]),
            (15, &[0xef]),
            (-2048, &[0xf0, 0x00]),
            (2047, &[0xff, 0xff]),
            (-262144, &[0x38, 0x00, 0x00]),
            (262143, &[0x3f, 0xff, 0xff]),
            (300, &[0xf9, 0x2c]),
            (262144, &[0x59, 0x00, 0x04, 0x00, 0x00]),
            (i64::from(i32::MIN), &[0x59, 0x80, 0, 0, 0]),
            (1 << 31, &[b'L', 0, 0, 0, 0, 0x80, 0, 0, 0]),
            (i64::MIN, &[b'L', 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for &(v, bytes) in longs {
            assert_eq!(encode_with(|w| w.long(v)), bytes, "long {v}");
            assert_eq!(decode_with(bytes, Reader::integer).unwrap(), v, "long {v}");
        }
    }

    #[test]
    fn doubles_use_javas_compact_forms_and_round_trip_exactly() {
        let cases: &[(f64, &[u8])] = &[
            (0.0, &[0x5b]),
            (-0.0, &[0x5b]),
            (1.0, &[0x5c]),
            (-128.0, &[0x5d, 0x80]),
            (127.0, &[0x5d, 0x7f]),
            (128.0, &[0x5e, 0x00, 0x80]),
            (-32768.0, &[0x5e, 0x80, 0x00]),
            (12.25, &[0x5f, 0x00, 0x00, 0x2f, 0xda]),
            (32768.0, &[0x5f, 0x01, 0xf4, 0x00, 0x00]),
            (0.1, &[0x5f, 0x00, 0x00, 0x00, 0x64]),
            (1.0 / 3.0, &[b'D', 0x3f, 0xd5, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55]),
            (f64::NAN, &[b'D', 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
        ];
        for &(v, bytes) in cases {
            assert_eq!(encode_with(|w| w.double(v)), bytes, "double {v}");
            let back = decode_with(bytes, Reader::double).unwrap();
            assert!(back == v || (v.is_nan() && back.is_nan()), "double {v}: {back}");
        }
        for v in [3.5e300, -1e-300, 2.0f64.powi(40), 0.3, 123.456, f64::INFINITY, f64::MIN_POSITIVE] {
            let bytes = encode_with(|w| w.double(v));
            assert_eq!(decode_with(&bytes, Reader::double).unwrap().to_bits(), v.to_bits(), "{v}: {bytes:02x?}");
        }
    }

    #[test]
    fn strings_count_utf16_units_and_write_pairs_as_java_does() {
        assert_eq!(encode_with(|w| w.string("")), [0x00]);
        assert_eq!(encode_with(|w| w.string("hello")), b"\x05hello");
        // U+00FC is one unit, two bytes.
        assert_eq!(encode_with(|w| w.string("Mü")), b"\x02M\xc3\xbc");
        // U+1F600 is two units, each surrogate as three bytes.
        let smile = encode_with(|w| w.string("a😀"));
        assert_eq!(smile, [0x03, b'a', 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]);
        assert_eq!(decode_with(&smile, Reader::string).unwrap(), "a😀");
        // Standard 4-byte UTF-8 is accepted too.
        assert_eq!(decode_with(b"\x03a\xf0\x9f\x98\x80", Reader::string).unwrap(), "a😀");
        // 32 characters take the two-byte header.
        let s = "x".repeat(32);
        assert_eq!(&encode_with(|w| w.string(&s))[..2], [0x30, 0x20]);
        let s = "x".repeat(1024);
        assert_eq!(&encode_with(|w| w.string(&s))[..3], [b'S', 0x04, 0x00]);
    }

    #[test]
    fn long_strings_are_chunked_without_splitting_a_pair() {
        let mut s = "a".repeat(CHUNK - 1);
        s.push('😀');
        s.push_str("tail");
        let bytes = encode_with(|w| w.string(&s));
        // The pair would straddle the chunk: the first chunk ends before it.
        assert_eq!(&bytes[..3], [b'R', 0x7f, 0xff]);
        assert_eq!(decode_with(&bytes, Reader::string).unwrap(), s);
        let ascii = "b".repeat(2 * CHUNK + 5);
        let bytes = encode_with(|w| w.string(&ascii));
        assert_eq!(&bytes[..3], [b'R', 0x80, 0x00]);
        assert_eq!(&bytes[3 + CHUNK..3 + CHUNK + 3], [b'R', 0x80, 0x00]);
        assert_eq!(decode_with(&bytes, Reader::string).unwrap(), ascii);
        // A writer may split a pair between chunks; it still decodes.
        let split = [b'R', 0x00, 0x01, 0xed, 0xa0, 0xbd, 0x01, 0xed, 0xb8, 0x80];
        assert_eq!(decode_with(&split, Reader::string).unwrap(), "😀");
    }

    #[test]
    fn bad_strings_are_rejected() {
        for bad in [
            &[0x01, 0xed, 0xa0, 0xbd][..],   // unpaired high surrogate
            &[0x01, 0xed, 0xb8, 0x80],       // unpaired low surrogate
            &[0x01, 0xc0, 0x80],             // overlong
            &[0x01, 0xff],                   // not a lead byte
            &[0x01, 0xc3, 0x41],             // bad continuation
            &[0x01, 0xf0, 0x9f, 0x98, 0x80], // a pair where one unit is left
            &[0x05, b'a'],                   // truncated
            &[b'R', 0x00, 0x01, b'a'],       // no final chunk
            &[b'R', 0x00, 0x01, b'a', 0x20], // a binary chunk after a string chunk
        ] {
            assert!(decode_with(bad, Reader::string).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn binaries_are_chunked_and_joined() {
        assert_eq!(encode_with(|w| w.binary(&[])), [0x20]);
        assert_eq!(encode_with(|w| w.binary(&[7; 15])), [&[0x2f][..], &[7; 15]].concat());
        assert_eq!(&encode_with(|w| w.binary(&[7; 16]))[..2], [0x34, 0x10]);
        assert_eq!(&encode_with(|w| w.binary(&[7; 1024]))[..3], [b'B', 0x04, 0x00]);
        let big: Vec<u8> = (0..CHUNK * 2 + 3).map(|i| i as u8).collect();
        let bytes = encode_with(|w| w.binary(&big));
        assert_eq!(&bytes[..3], [b'A', 0x80, 0x00]);
        assert_eq!(decode_with(&bytes, Reader::binary).unwrap(), &big[..]);
        // Java's chunks follow its buffer, not ours.
        let java = [b'A', 0x00, 0x02, 1, 2, b'A', 0x00, 0x00, 0x21, 3];
        assert_eq!(decode_with(&java, Reader::binary).unwrap(), &[1, 2, 3][..]);
    }

    /// Every list form, and maps and references for structs.
    #[test]
    fn every_list_form_and_struct_form_decodes() {
        let strings = |bytes: &[u8]| decode_with(bytes, |r| r.list(Reader::string));
        let two = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(strings(b"\x7a\x01a\x01b").unwrap(), two); // untyped direct
        assert_eq!(strings(b"\x72\x07[string\x01a\x01b").unwrap(), two); // typed direct
        assert_eq!(strings(b"\x58\x92\x01a\x01b").unwrap(), two); // untyped fixed
        assert_eq!(strings(b"V\x07[string\x92\x01a\x01b").unwrap(), two); // typed fixed
        assert_eq!(strings(b"\x57\x01a\x01bZ").unwrap(), two); // untyped variable
        assert_eq!(strings(b"\x55\x07[string\x01a\x01bZ").unwrap(), two); // typed variable
        assert!(strings(b"\x58\x95\x01a").is_err(), "a count beyond the input");
        assert!(strings(b"\x57\x01a").is_err(), "no end");

        // A location as an object, an untyped map, a typed map, and a
        // reference to the object.
        let def = b"C\x12wirebench.Location\x93\x08latitude\x09longitude\x04city";
        let object = [&def[..], b"\x60\x5c\x5d\x02\x01X"].concat();
        let want = Location { latitude: 1.0, longitude: 2.0, city: "X".into() };
        assert_eq!(decode_with(&object, Reader::message::<Location>).unwrap(), want);
        let map = b"H\x04city\x01X\x09longitude\x5d\x02\x08latitude\x5cZ";
        assert_eq!(decode_with(map, Reader::message::<Location>).unwrap(), want);
        let typed = b"M\x12wirebench.Location\x04city\x01X\x09longitude\x5d\x02\x08latitude\x5c\x05extra\x90Z";
        assert_eq!(decode_with(typed, Reader::message::<Location>).unwrap(), want);
        let twice = [b"\x7a".as_slice(), &object, b"\x51\x91"].concat();
        assert_eq!(decode_with(&twice, |r| r.list(Reader::message::<Location>)).unwrap(), [want.clone(), want]);
    }

    #[test]
    fn hostile_structures_are_rejected() {
        let loc = |bytes: &[u8]| decode_with(bytes, Reader::message::<Location>).is_err();
        assert!(loc(b"\x51\x90"), "a reference to nothing");
        assert!(loc(b"\x60"), "an object of an undefined class");
        assert!(loc(b"C\x12wirebench.Location\xd7\xff\xff"), "a huge field count");
        assert!(loc(b"C\x12wirebench.Location\x92\x04city\x04city\x60\x01X\x01Y"), "a field defined twice");
        assert!(loc(b"H\x04city\x01X\x04city\x01YZ"), "a key twice");
        assert!(loc(b"H\x04city\x01XZ"), "missing fields");
        assert!(loc(b"M\x10wirebench.Record\x04city\x01XZ"), "a map of another type");
        assert!(loc(b"C\x10wirebench.Record\x90\x60"), "an object of another class");
        let deep = [vec![0x79; 100], vec![0x78]].concat();
        assert!(decode_with(&deep, |r| r.skip()).is_err(), "nesting beyond the limit");
        assert!(decode_with(b"\x40", |r| r.skip()).is_err(), "a reserved tag");
    }

    /// A list of references to one long list: each reference decodes the
    /// whole list again, so 20 KB would take 70 million steps; the budget
    /// stops it after a few times the input.
    #[test]
    fn reference_bombs_run_out_of_budget() {
        let mut bytes = vec![0x57, 0x58, 0xd4, 0x1b, 0x58];
        bytes.extend(std::iter::repeat_n(0x00, 7000));
        for _ in 0..10_000 {
            bytes.extend([0x51, 0x91]);
        }
        bytes.push(b'Z');
        let err = decode_with(&bytes, |r| r.list(|r| r.list(Reader::string))).unwrap_err();
        assert!(err.to_string().contains("units of work"), "{err}");
        // The same with one reference is fine.
        let one = [&bytes[..5 + 7000], &[0x51, 0x91, b'Z']].concat();
        assert_eq!(decode_with(&one, |r| r.list(|r| r.list(Reader::string))).unwrap().len(), 2);
    }

    #[test]
    fn a_reference_to_a_value_still_being_read_is_rejected() {
        let err = decode_with(b"\x79\x51\x90", |r| r.list(|r| r.list(Reader::string))).unwrap_err();
        assert!(err.to_string().contains("still being read"), "{err}");
    }

    #[test]
    fn cesu_decoding_handles_runs_and_pairs() {
        assert_eq!(decode_cesu("plain ü".as_bytes()).unwrap(), "plain ü");
        assert_eq!(decode_cesu(b"x\xed\xa0\xbd\xed\xb8\x80y").unwrap(), "x😀y");
        assert!(decode_cesu(b"\xed\xa0\xbdx").is_err());
        assert!(decode_cesu(b"\xed\xa0").is_err());
    }
}
