//! The format commands: `formats`, `dump` and `sizes`.

use std::io::Write;

use anyhow::{Context, bail};
use wirebench_formats::dataset::format_size;
use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Workload};

use crate::cell::Sizes;

/// `wirebench formats`: every format and its properties.
pub fn formats() -> String {
    let mut out = String::new();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let w = name_width();
    // Wide enough for most libraries; a longer one pushes its own row only.
    let lw = FormatId::ALL.iter().map(|f| f.properties().library.len()).max().unwrap_or(0).clamp(7, 32);
    out.push_str(&format!(
        "{:<w$} {:<lw$} {:<15} {:<10} {:<10} {}\n",
        "format", "library", "self-describing", "zero-copy", "unchecked", "schema"
    ));
    for &f in FormatId::ALL {
        let p = f.properties();
        out.push_str(&format!(
            "{:<w$} {:<lw$} {:<15} {:<10} {:<10} {}\n",
            f.name(),
            p.library,
            yes(p.self_describing),
            yes(p.zero_copy),
            if p.unvalidated_access { "offered" } else { "-" },
            p.schema
        ));
    }
    out.push('\n');
    for &f in FormatId::ALL {
        let p = f.properties();
        out.push_str(&format!("{}:\n  validation: {}\n  layout: {}\n", f.name(), p.validation, p.layout));
    }
    out
}

/// The width of the format-name column: the longest name.
fn name_width() -> usize {
    FormatId::ALL.iter().map(|f| f.name().len()).max().unwrap_or(0).max("format".len())
}

/// What `dump` writes.
#[derive(Debug, Clone, Copy)]
pub struct DumpRequest {
    /// Format.
    pub format: FormatId,
    /// Workload (with its size).
    pub workload: Workload,
    /// Data seed.
    pub seed: u64,
    /// The reply instead of the request.
    pub reply: bool,
    /// A hex dump instead of raw bytes.
    pub hex: bool,
}

/// Resolves `--workload KIND [--size N] [--records N]` (a full id like
/// `echo-1KiB` works too).
pub fn workload(kind: &str, size: Option<usize>, records: Option<usize>) -> anyhow::Result<Workload> {
    Ok(match kind {
        "multiply" => {
            if size.is_some() || records.is_some() {
                bail!("multiply takes no --size or --records");
            }
            Workload::Multiply
        }
        "echo" if records.is_none() => Workload::Echo { size: size.unwrap_or(1024) },
        "echo" => bail!("echo takes --size, not --records"),
        "digest" if size.is_none() => Workload::Digest { records: records.unwrap_or(100) },
        "digest" => bail!("digest takes --records, not --size"),
        id => {
            if size.is_some() || records.is_some() {
                bail!("{id} names its size already: give --workload echo --size N or --workload digest --records N");
            }
            crate::limits::parse_workload(id).map_err(anyhow::Error::msg)?
        }
    })
}

struct Encode<'a>(&'a Dataset, bool);

impl FormatVisitor for Encode<'_> {
    type Output = anyhow::Result<Vec<u8>>;
    fn visit<F: Format>(self) -> anyhow::Result<Vec<u8>> {
        let mut scratch = F::Scratch::default();
        let bytes = if self.1 {
            F::encode_reply(&mut scratch, &self.0.reply())?
        } else {
            F::encode_request(&mut scratch, &F::prepare(&self.0.request()))?
        };
        Ok(bytes.to_vec())
    }
}

/// `wirebench dump`: the encoded request (or reply) on stdout.
pub fn dump(request: DumpRequest, out: &mut impl Write) -> anyhow::Result<()> {
    let data = Dataset::generate(request.workload, request.seed);
    let bytes = request.format.visit(Encode(&data, request.reply))?;
    if request.hex {
        for (i, line) in bytes.chunks(16).enumerate() {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            let text: String =
                line.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' }).collect();
            writeln!(out, "{:08x}  {:<47}  |{text}|", i * 16, hex.join(" "))?;
        }
    } else {
        out.write_all(&bytes)?;
    }
    out.flush().context("cannot write to stdout")
}

struct SizesOf<'a>(&'a Dataset);

impl FormatVisitor for SizesOf<'_> {
    type Output = Result<Sizes, String>;
    fn visit<F: Format>(self) -> Result<Sizes, String> {
        Sizes::of::<F>(self.0)
    }
}

/// `wirebench sizes`: encoded and zstd sizes of every format and workload.
pub fn sizes(workloads: &[Workload], seed: u64) -> anyhow::Result<String> {
    let mut out = String::new();
    let nw = name_width();
    out.push_str(&format!(
        "{:<nw$} {:<12} {:>12} {:>12} {:>12} {:>12}\n",
        "format", "workload", "request", "req zstd", "reply", "reply zstd"
    ));
    for &w in workloads {
        let data = Dataset::generate(w, seed);
        for &f in FormatId::ALL {
            let s = f.visit(SizesOf(&data)).map_err(anyhow::Error::msg)?;
            let z = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            out.push_str(&format!(
                "{:<nw$} {:<12} {:>12} {:>12} {:>12} {:>12}\n",
                f.name(),
                w.to_string(),
                s.request,
                z(s.request_zstd),
                s.reply,
                z(s.reply_zstd)
            ));
        }
    }
    out.push_str(&format!(
        "\nbytes of the encoded message, no transport framing; zstd at level 3; seed {seed}; echo payloads are random bytes ({})\n",
        workloads
            .iter()
            .filter_map(|w| match w {
                Workload::Echo { size } => Some(format_size(*size)),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_writes_the_golden_bytes() {
        let mut out = Vec::new();
        let request =
            DumpRequest { format: FormatId::Json, workload: Workload::Multiply, seed: 1, reply: false, hex: false };
        dump(request, &mut out).unwrap();
        assert_eq!(out, br#"{"a":1234567891,"b":-987654}"#);
        let mut hex = Vec::new();
        dump(DumpRequest { hex: true, ..request }, &mut hex).unwrap();
        assert!(String::from_utf8(hex).unwrap().starts_with("00000000  7b 22 61 22"));
    }

    #[test]
    fn workloads_resolve() {
        assert_eq!(workload("echo", Some(16), None).unwrap(), Workload::Echo { size: 16 });
        assert_eq!(workload("digest", None, Some(3)).unwrap(), Workload::Digest { records: 3 });
        assert_eq!(workload("echo-1KiB", None, None).unwrap(), Workload::Echo { size: 1024 });
        assert!(workload("multiply", Some(1), None).is_err());
        assert!(workload("echo-1KiB", Some(16), None).is_err(), "a size given twice is refused");
        assert!(workload("digest", Some(16), None).is_err());
        assert!(workload("digest-0", None, None).is_err());
    }

    #[test]
    fn sizes_table_lists_every_format() {
        let table = sizes(&[Workload::Multiply], 1).unwrap();
        for f in FormatId::ALL {
            assert!(table.contains(f.name()), "{table}");
        }
    }
}
