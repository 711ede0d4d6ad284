//! Generates the committed volo-thrift code of `formats/schemas/bench.thrift`
//! into `transports/src/generated/volo_bench.rs`.
//!
//! Usage: wirebench-codegen-volo <repository root>

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: wirebench-codegen-volo <repository root>");
        return ExitCode::from(2);
    };
    let generated = volo_build::Builder::thrift()
        .add_service(root.join("formats/schemas/bench.thrift"))
        .out_dir(root.join("transports/src/generated"))
        .filename(PathBuf::from("volo_bench.rs"))
        .write();
    match generated {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wirebench-codegen-volo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
