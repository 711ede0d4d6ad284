//! System calls per call, read from valgrind's own record of them.
//!
//! Valgrind executes every system call of the program it runs on the
//! program's behalf, so with `--trace-syscalls=yes` its log lists each one,
//! from every thread, in the order they happened; the counting side marks
//! the start and the end of each counted window in the same log
//! ([`crate::valgrind::log`]). The system calls of a window are the lines
//! between its two marks: exactly the calls whose instructions callgrind
//! counts, in the same run, with no second tracer attached.
//!
//! One correction makes the count what the program does natively: under
//! valgrind the clock functions that Linux serves from the vDSO, without
//! entering the kernel (`clock_gettime` of the wall, monotonic and boot
//! clocks, `gettimeofday`, `time`, `getcpu`), become real system calls.
//! They are left out, as `strace` would never see them. `clock_gettime` of
//! a CPU-time clock is a real system call natively too, and is counted.

use std::collections::BTreeMap;

/// The log line that opens a window, followed by its label.
pub const START: &str = "wirebench-window-start";
/// The log line that closes a window, followed by its label.
pub const END: &str = "wirebench-window-end";

/// The system calls of one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// The label both marks carry.
    pub label: String,
    /// System call name (without valgrind's `sys_` prefix) -> times made.
    pub calls: BTreeMap<String, u64>,
}

impl Window {
    /// All system calls made in the window.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// Why a log could not be read as windows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// A window opened inside another.
    #[error("syscall trace: window {inner:?} opens inside window {outer:?}")]
    Nested {
        /// The open window.
        outer: String,
        /// The one that opened inside it.
        inner: String,
    },
    /// A window closed that was not open, or not the open one.
    #[error("syscall trace: window {closed:?} closes, but the open window is {open:?}")]
    Unmatched {
        /// The label of the close.
        closed: String,
        /// The open window, if any.
        open: Option<String>,
    },
    /// The log ended inside a window.
    #[error("syscall trace: window {0:?} never closes")]
    Unclosed(String),
}

/// Every window of a valgrind log, in order.
pub fn windows(log: &str) -> Result<Vec<Window>, TraceError> {
    let mut done = Vec::new();
    let mut open: Option<Window> = None;
    for line in log.lines() {
        if let Some(message) = client_message(line) {
            if let Some(label) = mark(message, START) {
                if let Some(outer) = &open {
                    return Err(TraceError::Nested { outer: outer.label.clone(), inner: label.to_owned() });
                }
                open = Some(Window { label: label.to_owned(), calls: BTreeMap::new() });
            } else if let Some(label) = mark(message, END) {
                match open.take() {
                    Some(window) if window.label == label => done.push(window),
                    other => {
                        return Err(TraceError::Unmatched { closed: label.to_owned(), open: other.map(|w| w.label) });
                    }
                }
            }
        } else if let Some(window) = open.as_mut()
            && let Some(name) = syscall(line)
        {
            *window.calls.entry(name.to_owned()).or_default() += 1;
        }
    }
    match open {
        Some(window) => Err(TraceError::Unclosed(window.label)),
        None => Ok(done),
    }
}

/// The text of a client message line, `**PID** text`.
fn client_message(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("**")?;
    let (pid, text) = rest.split_once("** ")?;
    pid.bytes().all(|b| b.is_ascii_digit()).then_some(text.trim_end())
}

/// The label of `message` if it is the mark `which`.
fn mark<'a>(message: &'a str, which: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(which)?;
    rest.strip_prefix(' ').or(rest.is_empty().then_some(""))
}

/// The name of the system call a trace line starts, if it starts one and
/// it is one the program makes natively. Valgrind writes
/// `SYSCALL[pid,tid](nr) sys_name( args )...`; a call that blocks gets a
/// second line, `SYSCALL[pid,tid](nr) ... [async] --> ...`, when it
/// returns, which is not a new call.
fn syscall(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("SYSCALL[")?;
    let (_, rest) = rest.split_once("](")?;
    let (_, rest) = rest.split_once(") ")?;
    if rest.starts_with("...") {
        return None;
    }
    let end = rest.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(rest.len());
    let name = &rest[..end];
    let name = name.strip_prefix("sys_").unwrap_or(name);
    if name.is_empty() || served_by_vdso(name, &rest[end..]) {
        return None;
    }
    Some(name)
}

/// Whether Linux serves this call from the vDSO, natively never entering
/// the kernel. `args` is the text after the name, `( a, b )`.
fn served_by_vdso(name: &str, args: &str) -> bool {
    match name {
        "gettimeofday" | "time" | "getcpu" => true,
        "clock_gettime" | "clock_getres" => {
            let first = args.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
            let first = first.split(|c: char| c == ',' || c == ')' || c.is_whitespace()).next().unwrap_or("");
            // REALTIME, MONOTONIC, MONOTONIC_RAW, REALTIME_COARSE,
            // MONOTONIC_COARSE, BOOTTIME, TAI: the clocks of the vDSO.
            matches!(first.parse::<i64>(), Ok(0 | 1 | 4 | 5 | 6 | 7 | 11))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log as valgrind 3.19 writes it (lines taken from a real run).
    const LOG: &str = "\
SYSCALL[2338,1](228) sys_clock_gettime( 1, 0x1fff000660 )[sync] --> Success(0x0) 
**2338** wirebench-window-start tcp 0
SYSCALL[2338,1](228) sys_clock_gettime( 1, 0x1fff000660 )[sync] --> Success(0x0) 
SYSCALL[2338,1](228) sys_clock_gettime( 2, 0x1fff000660 )[sync] --> Success(0x0) 
SYSCALL[2338,1](96) sys_gettimeofday ( 0x1ffefffd10, 0x0 ) --> [pre-success] Success(0x0) 
SYSCALL[2338,1](1) sys_write ( 1, 0x10a00e, 2 ) --> [async] ... 
x
SYSCALL[2338,1](1) ... [async] --> Success(0x2) 
SYSCALL[2338,2](232) sys_epoll_wait ( 3, 0x4c2d010, 1024, -1 ) --> [async] ... 
SYSCALL[2338,1](45) sys_recvfrom ( 9, 0x4c6c0a0, 8192, 0, 0x0, 0x0 )[sync] --> Failure(0xb) 
**2338** wirebench-window-end tcp 0
SYSCALL[2338,1](1) sys_write ( 1, 0x10a00e, 2 ) --> [async] ... 
**2338** wirebench-window-start tcp 1
SYSCALL[2338,1](231) exit_group( 0 ) --> [pre-success] Success(0x0) 
**2338** wirebench-window-end tcp 1
";

    #[test]
    fn windows_count_the_calls_between_their_marks() {
        let w = windows(LOG).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].label, "tcp 0");
        // The monotonic clock and gettimeofday come from the vDSO; the
        // CPU-time clock (2) does not. The completion of the blocked write
        // is not a second write; failed calls are calls.
        let expected: BTreeMap<String, u64> = [("clock_gettime", 1), ("write", 1), ("epoll_wait", 1), ("recvfrom", 1)]
            .map(|(n, c)| (n.to_owned(), c))
            .into();
        assert_eq!(w[0].calls, expected);
        assert_eq!(w[0].total(), 4);
        assert_eq!(w[1].calls, [("exit_group".to_owned(), 1)].into());
    }

    #[test]
    fn marks_must_pair() {
        let nested = "**1** wirebench-window-start a\n**1** wirebench-window-start b\n";
        assert!(matches!(windows(nested), Err(TraceError::Nested { .. })));
        let stray = "**1** wirebench-window-end a\n";
        assert!(matches!(windows(stray), Err(TraceError::Unmatched { open: None, .. })));
        let crossed = "**1** wirebench-window-start a\n**1** wirebench-window-end b\n";
        assert!(matches!(windows(crossed), Err(TraceError::Unmatched { .. })));
        let open = "**1** wirebench-window-start a\nSYSCALL[1,1](0) sys_read ( 0 )\n";
        assert_eq!(windows(open), Err(TraceError::Unclosed("a".into())));
        assert_eq!(windows("").unwrap(), vec![]);
    }

    #[test]
    fn other_lines_are_not_calls_or_marks() {
        for line in ["==2338== Callgrind, a call-graph generating cache profiler", "x", "**pid** text", "SYSCALL[1"] {
            assert_eq!(syscall(line), None, "{line}");
        }
        assert_eq!(client_message("**12** wirebench-window-start"), Some("wirebench-window-start"));
        assert_eq!(mark("wirebench-window-start", START), Some(""));
        assert_eq!(mark("wirebench-window-startle", START), None);
    }
}
