//! The Digest checksum, defined once for every format.
//!
//! The server must read every field of every record, so the checksum folds
//! every field into a 64-bit state. Each format exposes its records through
//! [`RecordView`]: owned structs for the serde, bincode and prost formats,
//! in-place readers for FlatBuffers and Cap'n Proto. The order and encoding
//! of the fields live only here.
//!
//! The function, for a reimplementation in another language: the state
//! starts at `0x243f6a8885a308d3`; a 64-bit word `w` is folded as
//! `state = (rotl(state, 5) ^ w) * 0x517cc1b727220a95 (mod 2^64)`.
//! Per record, in this order: `id`, `user_id`, `timestamp_micros` (as two's
//! complement), `name`, `email`, `kind` (wire value), `score` (IEEE-754
//! bits), `weight` (IEEE-754 bits, zero-extended), `active` (0/1), each tag
//! then the tag count, each attribute's key and value then the attribute
//! count, the location (`1, latitude bits, longitude bits, city` or `0`),
//! `fingerprint`. A string or byte field folds its length, then its bytes in
//! little-endian 8-byte words, the last one zero-padded. A float zero folds
//! as `+0.0` whatever its sign: proto3 drops `-0.0` as a default value, so
//! the sign of zero cannot be part of the contract. After all records
//! the record count is folded and the state finished with SplitMix64's
//! finalizer.

use crate::codec::CodecError;
use crate::contract::{Batch, DigestReply, Kind, Record};

/// Read access to one record, wherever its bytes live. Methods that read a
/// pointer field return a `Result` because in-place readers validate on
/// access; owned structs never fail.
pub trait RecordView {
    /// `id`.
    fn id(&self) -> u64;
    /// `user_id`.
    fn user_id(&self) -> u32;
    /// `timestamp_micros`.
    fn timestamp_micros(&self) -> i64;
    /// `name`.
    fn name(&self) -> Result<&str, CodecError>;
    /// `email`.
    fn email(&self) -> Result<&str, CodecError>;
    /// `kind`; a value outside the schema is an error.
    fn kind(&self) -> Result<Kind, CodecError>;
    /// `score`.
    fn score(&self) -> f64;
    /// `weight`.
    fn weight(&self) -> f32;
    /// `active`.
    fn active(&self) -> bool;
    /// Calls `f` with each tag, in order; returns the count.
    fn for_each_tag(&self, f: impl FnMut(&str)) -> Result<usize, CodecError>;
    /// Calls `f` with each attribute's key and value, in order; returns the
    /// count.
    fn for_each_attribute(&self, f: impl FnMut(&str, &str)) -> Result<usize, CodecError>;
    /// Calls `f` with the location's latitude, longitude and city if there
    /// is one; returns whether there was.
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError>;
    /// `fingerprint`.
    fn fingerprint(&self) -> Result<&[u8], CodecError>;
}

const K: u64 = 0x517c_c1b7_2722_0a95;

/// IEEE-754 bits, with `-0.0` folded to `+0.0`.
#[inline(always)]
fn f64_bits(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

/// IEEE-754 bits, with `-0.0` folded to `+0.0`.
#[inline(always)]
fn f32_bits(x: f32) -> u32 {
    if x == 0.0 { 0 } else { x.to_bits() }
}
/// The fractional bits of pi: any non-zero start works, zero would map an
/// empty batch to zero.
const START: u64 = 0x243f_6a88_85a3_08d3;

/// The running checksum of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Checksum {
    state: u64,
    records: u32,
}

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum { state: START, records: 0 }
    }
}

impl Checksum {
    /// An empty checksum.
    pub fn new() -> Checksum {
        Checksum::default()
    }

    /// The checksum of an owned batch.
    pub fn of_batch(batch: &Batch) -> DigestReply {
        let mut sum = Checksum::new();
        for record in &batch.records {
            // Owned records never fail to read: every accessor returns Ok.
            if let Err(e) = sum.record(record) {
                unreachable!("reading an owned record failed: {e}");
            }
        }
        sum.finish()
    }

    /// Folds every field of `record`.
    #[inline]
    pub fn record(&mut self, record: &impl RecordView) -> Result<(), CodecError> {
        self.word(record.id());
        self.word(u64::from(record.user_id()));
        self.word(record.timestamp_micros() as u64);
        self.bytes(record.name()?.as_bytes());
        self.bytes(record.email()?.as_bytes());
        self.word(u64::from(record.kind()?.value()));
        self.word(f64_bits(record.score()));
        self.word(u64::from(f32_bits(record.weight())));
        self.word(u64::from(record.active()));
        let tags = record.for_each_tag(|tag| self.bytes(tag.as_bytes()))?;
        self.word(tags as u64);
        let attributes = record.for_each_attribute(|key, value| {
            self.bytes(key.as_bytes());
            self.bytes(value.as_bytes());
        })?;
        self.word(attributes as u64);
        let located = record.location(|latitude, longitude, city| {
            self.word(1);
            self.word(f64_bits(latitude));
            self.word(f64_bits(longitude));
            self.bytes(city.as_bytes());
        })?;
        if !located {
            self.word(0);
        }
        self.bytes(record.fingerprint()?);
        self.records = self.records.wrapping_add(1);
        Ok(())
    }

    /// The reply: the record count and the finished state.
    pub fn finish(mut self) -> DigestReply {
        self.word(u64::from(self.records));
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        DigestReply { records: self.records, checksum: z ^ (z >> 31) }
    }

    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.state = (self.state.rotate_left(5) ^ w).wrapping_mul(K);
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.word(u64::from_le_bytes(word));
        }
    }
}

impl<T: RecordView + ?Sized> RecordView for &T {
    fn id(&self) -> u64 {
        (**self).id()
    }
    fn user_id(&self) -> u32 {
        (**self).user_id()
    }
    fn timestamp_micros(&self) -> i64 {
        (**self).timestamp_micros()
    }
    fn name(&self) -> Result<&str, CodecError> {
        (**self).name()
    }
    fn email(&self) -> Result<&str, CodecError> {
        (**self).email()
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        (**self).kind()
    }
    fn score(&self) -> f64 {
        (**self).score()
    }
    fn weight(&self) -> f32 {
        (**self).weight()
    }
    fn active(&self) -> bool {
        (**self).active()
    }
    fn for_each_tag(&self, f: impl FnMut(&str)) -> Result<usize, CodecError> {
        (**self).for_each_tag(f)
    }
    fn for_each_attribute(&self, f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        (**self).for_each_attribute(f)
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        (**self).location(f)
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        (**self).fingerprint()
    }
}

impl RecordView for Record {
    fn id(&self) -> u64 {
        self.id
    }
    fn user_id(&self) -> u32 {
        self.user_id
    }
    fn timestamp_micros(&self) -> i64 {
        self.timestamp_micros
    }
    fn name(&self) -> Result<&str, CodecError> {
        Ok(&self.name)
    }
    fn email(&self) -> Result<&str, CodecError> {
        Ok(&self.email)
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        Ok(self.kind)
    }
    fn score(&self) -> f64 {
        self.score
    }
    fn weight(&self) -> f32 {
        self.weight
    }
    fn active(&self) -> bool {
        self.active
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        self.tags.iter().for_each(|t| f(t));
        Ok(self.tags.len())
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        self.attributes.iter().for_each(|a| f(&a.key, &a.value));
        Ok(self.attributes.len())
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        match &self.location {
            Some(l) => {
                f(l.latitude, l.longitude, &l.city);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        Ok(&self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Attribute, Location};
    use crate::dataset::{DEFAULT_SEED, batch};

    fn record() -> Record {
        Record {
            id: 7,
            user_id: 42,
            timestamp_micros: -5,
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            kind: Kind::Purchase,
            score: 1.5,
            weight: 0.25,
            active: true,
            tags: vec!["a".into(), "bc".into()],
            attributes: vec![Attribute { key: "k".into(), value: "v".into() }],
            location: Some(Location { latitude: 1.0, longitude: 2.0, city: "München".into() }),
            fingerprint: vec![1, 2, 3],
        }
    }

    /// Pins the function. `scripts/reference/checksum.py`, written from the
    /// module docs alone, computes the same value.
    #[test]
    fn checksum_of_known_record_is_stable() {
        let reply = Checksum::of_batch(&Batch { records: vec![record()] });
        assert_eq!(reply.records, 1);
        assert_eq!(reply.checksum, 0xab54_4e8c_9ad3_5235, "{:#018x}", reply.checksum);
    }

    #[test]
    fn every_field_changes_the_checksum() {
        let base = Checksum::of_batch(&Batch { records: vec![record()] });
        let mutations: Vec<fn(&mut Record)> = vec![
            |r| r.id += 1,
            |r| r.user_id += 1,
            |r| r.timestamp_micros += 1,
            |r| r.name.push('x'),
            |r| r.email.push('x'),
            |r| r.kind = Kind::Refund,
            |r| r.score += 1.0,
            |r| r.weight += 1.0,
            |r| r.active = false,
            |r| r.tags.push(String::new()),
            |r| r.tags[0] = "b".into(),
            |r| r.attributes[0].key = "j".into(),
            |r| r.attributes[0].value = "w".into(),
            |r| r.attributes.clear(),
            |r| r.location = None,
            |r| r.location.as_mut().unwrap().latitude += 1.0,
            |r| r.location.as_mut().unwrap().longitude += 1.0,
            |r| r.location.as_mut().unwrap().city.push('x'),
            |r| r.fingerprint[0] ^= 1,
            |r| r.fingerprint.push(0),
        ];
        let mut signed_zero = record();
        signed_zero.score = -0.0;
        let mut zero = record();
        zero.score = 0.0;
        assert_eq!(
            Checksum::of_batch(&Batch { records: vec![signed_zero] }),
            Checksum::of_batch(&Batch { records: vec![zero] }),
            "the sign of zero is not part of the contract"
        );
        for (i, mutate) in mutations.into_iter().enumerate() {
            let mut r = record();
            mutate(&mut r);
            let changed = Checksum::of_batch(&Batch { records: vec![r] });
            assert_ne!(changed, base, "mutation {i} left the checksum unchanged");
        }
    }

    #[test]
    fn record_order_and_count_matter() {
        let b = batch(3, DEFAULT_SEED);
        let mut reversed = b.clone();
        reversed.records.reverse();
        assert_ne!(Checksum::of_batch(&b), Checksum::of_batch(&reversed));
        assert_eq!(Checksum::of_batch(&b).records, 3);
        assert_ne!(Checksum::of_batch(&Batch::default()).checksum, 0);
    }
}
