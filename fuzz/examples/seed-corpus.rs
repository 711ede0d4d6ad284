//! Writes the seed corpus of every fuzz target: valid encoded requests and
//! replies of every format, each prefixed with its method byte.
//!
//! ```text
//! cargo +nightly run --example seed-corpus [-- DIR]
//! ```
//!
//! writes `DIR/<target>/<seed>` (`DIR` defaults to `corpus/` next to this
//! crate's Cargo.toml). Files are overwritten; inputs libFuzzer added to
//! the directories are left alone.

use std::path::PathBuf;
use std::process::ExitCode;

use wirebench_formats::{Format, FormatId, FormatVisitor};

struct WriteSeeds<'a> {
    dir: &'a std::path::Path,
}

impl FormatVisitor for WriteSeeds<'_> {
    type Output = std::io::Result<()>;

    fn visit<F: Format>(self) -> std::io::Result<()> {
        let dir = self.dir.join(wirebench_fuzz::target_name::<F>());
        std::fs::create_dir_all(&dir)?;
        let seeds = wirebench_fuzz::seeds::<F>();
        for seed in &seeds {
            std::fs::write(dir.join(&seed.name), &seed.bytes)?;
        }
        // Each seed must run through the target without crashing.
        for seed in &seeds {
            wirebench_fuzz::fuzz::<F>(&seed.bytes);
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
        Ok(())
    }
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for &format in FormatId::ALL {
        if let Err(e) = format.visit(WriteSeeds { dir: &dir }) {
            eprintln!("seed-corpus: {format}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
