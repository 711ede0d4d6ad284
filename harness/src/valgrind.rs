//! Valgrind client requests: the few a program under callgrind uses to
//! say which of its instructions to count.
//!
//! A client request is a sequence of instructions that does nothing on a
//! real CPU (rotations of a register by a total of 128 bits, then a
//! no-op exchange) and that valgrind's JIT recognises and turns into a
//! call into the tool. So the same binary runs natively at full speed and
//! under valgrind with its counting marked. The sequences and request
//! numbers are valgrind's stable ABI, as `valgrind.h` and `callgrind.h`
//! define them; they are written here rather than taken from a crate
//! because the crates that offer them compile those C headers, and the
//! build must need nothing but the Rust toolchain.
//!
//! On an architecture without a sequence here every request is a no-op,
//! and [`running_on_valgrind`] says `false`, so the counting side refuses
//! to run rather than record nothing.

use std::ffi::CString;

/// `VG_USERREQ__RUNNING_ON_VALGRIND`.
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__PRINTF_VALIST_BY_REF`: a message into valgrind's log.
const PRINTF_VALIST_BY_REF: usize = 0x1403;
/// `VG_USERREQ_TOOL_BASE('C','T')`: callgrind's first request,
/// `DUMP_STATS`; the others follow in `callgrind.h`'s order.
const CALLGRIND_BASE: usize = ((b'C' as usize) << 24) | ((b'T' as usize) << 16);
/// `VG_USERREQ__ZERO_STATS`.
const ZERO_STATS: usize = CALLGRIND_BASE + 1;
/// `VG_USERREQ__TOGGLE_COLLECT`.
const TOGGLE_COLLECT: usize = CALLGRIND_BASE + 2;
/// `VG_USERREQ__DUMP_STATS_AT`.
const DUMP_STATS_AT: usize = CALLGRIND_BASE + 3;

/// Issues request `args[0]` with arguments `args[1..]`; returns valgrind's
/// answer, or `default` on a real CPU.
#[inline(always)]
fn request(default: usize, args: &[usize; 6]) -> usize {
    let ptr = args.as_ptr();
    #[cfg(target_arch = "x86_64")]
    {
        let mut result = default;
        // SAFETY: on a real CPU these rotations of rdi total 128 bits (rdi
        // ends as it began) and `xchg rbx, rbx` changes nothing; valgrind
        // reads `args` (six words, alive for the whole statement) through
        // rax and writes its answer to rdx. The rotations change the flags.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") ptr,
                inout("rdx") result,
                out("rdi") _,
                options(nostack),
            );
        }
        result
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut result = default;
        // SAFETY: as above: rotations of x12 totalling 128 bits and
        // `orr x10, x10, x10` are no-ops on a real CPU; valgrind reads
        // `args` through x4 and answers in x3.
        unsafe {
            std::arch::asm!(
                "ror x12, x12, #3", "ror x12, x12, #13", "ror x12, x12, #51", "ror x12, x12, #61",
                "orr x10, x10, x10",
                in("x4") ptr,
                inout("x3") result,
                out("x12") _,
                options(nostack),
            );
        }
        result
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = ptr;
        default
    }
}

/// Whether this process runs under valgrind (and the requests below
/// reach it).
pub fn running_on_valgrind() -> bool {
    request(0, &[RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0
}

/// Callgrind: forgets every count so far.
pub fn zero_stats() {
    request(0, &[ZERO_STATS, 0, 0, 0, 0, 0]);
}

/// Callgrind: turns counting of this thread on if it was off, off if it
/// was on.
pub fn toggle_collect() {
    request(0, &[TOGGLE_COLLECT, 0, 0, 0, 0, 0]);
}

/// Callgrind: writes the counts so far into the next numbered profile,
/// labelled `label` (its `desc: Trigger: Client Request:` line), and
/// zeroes them.
pub fn dump_stats_at(label: &str) {
    let label = c_string(label);
    request(0, &[DUMP_STATS_AT, label.as_ptr() as usize, 0, 0, 0, 0]);
}

/// Writes `message` and a newline into valgrind's log, as `**PID**
/// message`, in order with everything else the log records (the system
/// call trace of `--trace-syscalls=yes`).
pub fn log(message: &str) {
    // Valgrind formats the message printf-style: a '%' of ours must not
    // be read as a directive, and there are no arguments to read.
    let text = c_string(&format!("{}\n", message.replace('%', "%%")));
    // A va_list that is never read (the text has no directive), zeroed
    // and large enough for every ABI's va_list.
    let no_args = [0usize; 4];
    request(0, &[PRINTF_VALIST_BY_REF, text.as_ptr() as usize, no_args.as_ptr() as usize, 0, 0, 0]);
}

/// `text` without interior NULs, as a C string.
fn c_string(text: &str) -> CString {
    // The NULs are removed first, so the default is never taken.
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_no_ops_on_a_real_cpu() {
        // The unit tests do not run under valgrind: every request must
        // fall through and leave the program as it was.
        assert!(!running_on_valgrind());
        zero_stats();
        toggle_collect();
        toggle_collect();
        dump_stats_at("label with % and \0");
        log("a message");
        assert_eq!(request(42, &[0, 0, 0, 0, 0, 0]), 42);
    }

    #[test]
    fn callgrind_requests_have_callgrind_h_numbers() {
        // callgrind.h: VG_USERREQ__DUMP_STATS = VG_USERREQ_TOOL_BASE('C','T').
        assert_eq!(CALLGRIND_BASE, 0x4354_0000);
        assert_eq!([ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT], [0x4354_0001, 0x4354_0002, 0x4354_0003]);
    }
}
