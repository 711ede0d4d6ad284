//! The server-environment control call (`0xF1`, tcp and unix): the
//! server describes its own machine, so a run against a server on another
//! host records both machines. Pure encoding and parsing over buffers, no
//! I/O; `docs/protocol.md` section 10.2 is the reference.
//!
//! ```text
//! offset  size   field
//!      0     4   cores       u32 BE: logical CPUs available to the server process
//!      4   2+n   version     u16 BE n, then n bytes of UTF-8: wirebench's version
//!        2+n    cpu_model    the same: `model name` from /proc/cpuinfo
//!        2+n    kernel       the same: the kernel release
//!        2+n    os           the same: PRETTY_NAME from /etc/os-release
//!        2+n    hostname     the same: the host name
//! ```
//!
//! Each string is at most [`MAX_FIELD`] bytes; the body ends after the last.

use crate::CallError;

/// The longest string field, in bytes.
pub const MAX_FIELD: usize = 1024;

/// A server's machine, as it describes itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// wirebench's version (the server's build).
    pub version: String,
    /// `model name` from /proc/cpuinfo, `unknown` if absent.
    pub cpu_model: String,
    /// Logical CPUs available to the server process.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
    /// Operating system.
    pub os: String,
    /// Host name.
    pub hostname: String,
}

impl HostInfo {
    /// This process's machine.
    pub fn capture() -> HostInfo {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        HostInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            kernel: read("/proc/sys/kernel/osrelease"),
            os,
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }

    /// The reply body. A string longer than [`MAX_FIELD`] bytes is cut at
    /// the last character boundary within it (no real machine's is).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.cores.to_be_bytes());
        for field in self.strings() {
            let mut end = field.len().min(MAX_FIELD);
            while !field.is_char_boundary(end) {
                end -= 1;
            }
            // `end` is at most MAX_FIELD, which fits a u16.
            out.extend_from_slice(&(end as u16).to_be_bytes());
            out.extend_from_slice(&field.as_bytes()[..end]);
        }
        out
    }

    /// Parses a reply body; every declared length is checked against the
    /// limit and the bytes left before anything is copied.
    pub fn parse(body: &[u8]) -> Result<HostInfo, CallError> {
        let bad = |what: String| CallError::Protocol(format!("server environment: {what}"));
        let cores =
            body.get(..4).ok_or_else(|| bad(format!("{} bytes, shorter than its 4-byte core count", body.len())))?;
        let cores = u32::from_be_bytes([cores[0], cores[1], cores[2], cores[3]]);
        let mut rest = &body[4..];
        let mut fields: Vec<String> = Vec::with_capacity(5);
        for name in ["version", "cpu_model", "kernel", "os", "hostname"] {
            let Some((len, tail)) = rest.split_first_chunk::<2>() else {
                return Err(bad(format!("the body ends before {name}'s length")));
            };
            let len = usize::from(u16::from_be_bytes(*len));
            if len > MAX_FIELD {
                return Err(bad(format!("{name} declares {len} bytes, over the {MAX_FIELD}-byte limit")));
            }
            if len > tail.len() {
                return Err(bad(format!("{name} declares {len} bytes, {} are left", tail.len())));
            }
            let text = std::str::from_utf8(&tail[..len]).map_err(|e| bad(format!("{name} is not UTF-8: {e}")))?;
            fields.push(text.to_owned());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the last field", rest.len())));
        }
        let mut fields = fields.into_iter();
        let mut next = || fields.next().unwrap_or_default();
        Ok(HostInfo { version: next(), cpu_model: next(), cores, kernel: next(), os: next(), hostname: next() })
    }

    fn strings(&self) -> [&str; 5] {
        [&self.version, &self.cpu_model, &self.kernel, &self.os, &self.hostname]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> HostInfo {
        HostInfo {
            version: "0.1.0".into(),
            cpu_model: "Xeon".into(),
            cores: 2,
            kernel: "6.1.0".into(),
            os: "Debian".into(),
            hostname: "h1".into(),
        }
    }

    /// docs/protocol.md, section 10.2, shows these bytes.
    const GOLDEN: &str = "00000002 0005 302e312e30 0004 58656f6e 0005 362e312e30 0006 44656269616e 0002 6831";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn golden_bytes() {
        let body = example().encode();
        assert_eq!(hex(&body), GOLDEN.replace(' ', ""));
        assert_eq!(HostInfo::parse(&body).unwrap(), example());
    }

    #[test]
    fn this_machine_round_trips() {
        let here = HostInfo::capture();
        assert!(here.cores >= 1);
        assert!(!here.kernel.is_empty());
        assert_eq!(HostInfo::parse(&here.encode()).unwrap(), here);
    }

    #[test]
    fn hostile_bodies_are_errors() {
        let body = example().encode();
        for cut in 0..body.len() {
            let e = HostInfo::parse(&body[..cut]).unwrap_err().to_string();
            assert!(e.starts_with("protocol error: server environment: "), "{cut}: {e}");
        }
        let mut long = body.clone();
        long.push(0);
        assert!(HostInfo::parse(&long).unwrap_err().to_string().contains("after the last field"));
        // A length over the limit is refused before it is looked at.
        let mut huge = vec![0, 0, 0, 1, 0xff, 0xff];
        huge.extend_from_slice(&[b'x'; 16]);
        assert!(HostInfo::parse(&huge).unwrap_err().to_string().contains("over the 1024-byte limit"));
        let mut not_utf8 = vec![0, 0, 0, 1, 0, 1, 0xff];
        not_utf8.extend_from_slice(&[0; 8]);
        assert!(HostInfo::parse(&not_utf8).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn long_fields_are_cut_at_a_character() {
        let info = HostInfo { cpu_model: "é".repeat(MAX_FIELD), ..example() };
        let parsed = HostInfo::parse(&info.encode()).unwrap();
        assert_eq!(parsed.cpu_model.len(), MAX_FIELD);
        assert!(parsed.cpu_model.chars().all(|c| c == 'é'));
    }
}
