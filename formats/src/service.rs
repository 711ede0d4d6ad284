//! The `Bench` service logic, written once for every format and transport.
//!
//! Formats decode (or read in place) and encode; this module decides what a
//! reply says. A test-only fault can make it answer wrongly, so the harness's
//! reply checks can be shown to catch it.

use std::borrow::Cow;

use crate::checksum::{Checksum, RecordView};
use crate::codec::CodecError;
use crate::contract::{Code, DigestReply, Status};

/// A deliberate fault of the service, for testing the harness. Never on by
/// default; `wirebench serve --fault wrong-replies` turns it on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer correctly.
    #[default]
    None,
    /// Answer every call with a well-formed but wrong reply.
    WrongReplies,
}

/// The service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Service {
    fault: Fault,
}

impl Service {
    /// A correct service.
    pub fn new() -> Service {
        Service::default()
    }

    /// A service with a test fault.
    pub fn with_fault(fault: Fault) -> Service {
        Service { fault }
    }

    /// Multiply: the product, or `OUT_OF_RANGE` on overflow.
    #[inline]
    pub fn multiply(&self, a: i64, b: i64) -> Result<i64, Status> {
        let product = a
            .checked_mul(b)
            .ok_or_else(|| Status::new(Code::OutOfRange, format!("{a} * {b} overflows a 64-bit integer")))?;
        Ok(match self.fault {
            Fault::None => product,
            Fault::WrongReplies => product ^ 1,
        })
    }

    /// Echo: the same payload.
    #[inline]
    pub fn echo<'a>(&self, payload: &'a [u8]) -> Cow<'a, [u8]> {
        match self.fault {
            Fault::None => Cow::Borrowed(payload),
            Fault::WrongReplies => {
                let mut wrong = payload.to_vec();
                match wrong.first_mut() {
                    Some(first) => *first ^= 0xff,
                    None => wrong.push(0),
                }
                Cow::Owned(wrong)
            }
        }
    }

    /// Digest: reads every field of every record.
    #[inline]
    pub fn digest<R: RecordView>(&self, records: impl IntoIterator<Item = R>) -> Result<DigestReply, CodecError> {
        let mut sum = Checksum::new();
        for record in records {
            sum.record(&record)?;
        }
        let mut reply = sum.finish();
        if self.fault == Fault::WrongReplies {
            reply.checksum ^= 1;
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DEFAULT_SEED, batch};

    #[test]
    fn multiply_overflow_is_out_of_range() {
        let s = Service::new();
        assert_eq!(s.multiply(6, -7), Ok(-42));
        let err = s.multiply(i64::MAX, 2).unwrap_err();
        assert_eq!(err.code, Code::OutOfRange);
        assert!(err.message.contains("overflows"), "{err}");
    }

    #[test]
    fn wrong_replies_fault_changes_every_answer() {
        let good = Service::new();
        let bad = Service::with_fault(Fault::WrongReplies);
        assert_ne!(good.multiply(3, 4), bad.multiply(3, 4));
        assert_ne!(good.echo(b"abc"), bad.echo(b"abc"));
        assert_ne!(good.echo(b""), bad.echo(b""));
        let b = batch(5, DEFAULT_SEED);
        assert_ne!(good.digest(&b.records).unwrap(), bad.digest(&b.records).unwrap());
    }
}
