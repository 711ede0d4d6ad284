//! Network namespaces: entering one from a thread or a child process,
//! creating and deleting them with `ip` (iproute2), finding the leftovers
//! of a process that died without tearing down, and checking that this
//! machine can do any of it.
//!
//! A network namespace is a property of a *thread* under `setns(2)`, so
//! [`enter_netns`] moves only the calling thread and its guard moves it
//! back; a socket keeps the namespace it was created in wherever it is used
//! afterwards. A child process enters one between fork and exec with
//! [`NetnsFd::enter`] (see [`command_in_netns`]).

use std::io::Write;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::error::LinkError;
use crate::sys;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The calling thread's network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// The calling thread inside another network namespace until dropped (or
/// [`NetnsGuard::leave`]), then back in the one it came from. Not `Send`:
/// it belongs to the thread that entered.
#[derive(Debug)]
pub struct NetnsGuard {
    /// `None` once [`NetnsGuard::leave`] went back.
    original: Option<OwnedFd>,
    path: PathBuf,
    _thread_bound: PhantomData<*const ()>,
}

/// Moves the calling thread (only it) into the network namespace at `path`
/// (e.g. [`crate::Link::server_netns`]). Sockets created until the guard
/// drops belong to that namespace for good, and so do threads started
/// meanwhile (a new thread inherits its creator's namespace): start a
/// runtime's worker threads before entering, or inside on purpose.
pub fn enter_netns(path: &Path) -> Result<NetnsGuard, LinkError> {
    let netns_err = |source| LinkError::Netns { path: path.to_owned(), source };
    let original = sys::open_ns(Path::new(THREAD_NETNS))
        .map_err(|source| LinkError::Netns { path: PathBuf::from(THREAD_NETNS), source })?;
    let target = sys::open_ns(path).map_err(netns_err)?;
    sys::setns_net(target.as_raw_fd()).map_err(netns_err)?;
    Ok(NetnsGuard { original: Some(original), path: path.to_owned(), _thread_bound: PhantomData })
}

impl NetnsGuard {
    /// Goes back to the original namespace, reporting a failure instead of
    /// aborting.
    pub fn leave(mut self) -> Result<(), LinkError> {
        // Taken, so Drop does not try again (and the descriptor closes here).
        let Some(original) = self.original.take() else { return Ok(()) };
        sys::setns_net(original.as_raw_fd()).map_err(|source| LinkError::Netns { path: self.path.clone(), source })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let Some(original) = self.original.take() else { return };
        if let Err(e) = sys::setns_net(original.as_raw_fd()) {
            // A thread left in the wrong namespace would measure the wrong
            // network without a trace; that is worse than stopping. Going back
            // to a namespace we came from with a descriptor we hold cannot
            // fail short of a kernel bug.
            eprintln!("wirebench-link: cannot leave network namespace {}: {e}", self.path.display());
            std::process::abort();
        }
    }
}

/// A network namespace opened ahead of a `fork`, to enter in the child.
#[derive(Debug, Clone)]
pub struct NetnsFd {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl NetnsFd {
    /// Opens the namespace at `path` (close-on-exec).
    pub fn open(path: &Path) -> Result<NetnsFd, LinkError> {
        let fd = sys::open_ns(path).map_err(|source| LinkError::Netns { path: path.to_owned(), source })?;
        Ok(NetnsFd { fd: Arc::new(fd), path: path.to_owned() })
    }

    /// The namespace's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the calling thread into the namespace. One `setns(2)` and
    /// nothing else, so async-signal-safe: call it in a `pre_exec` closure,
    /// after `fork` (where the child has a single thread, so the whole
    /// process moves).
    pub fn enter(&self) -> std::io::Result<()> {
        sys::setns_net(self.fd.as_raw_fd())
    }
}

/// Makes `cmd`'s child start in the network namespace at `path`: the
/// namespace is opened now, in the parent, and entered in the child between
/// fork and exec.
pub fn command_in_netns(cmd: &mut Command, path: &Path) -> Result<(), LinkError> {
    let ns = NetnsFd::open(path)?;
    // SAFETY: the closure makes one async-signal-safe system call (setns)
    // on a descriptor opened before the fork; it allocates nothing and takes
    // no lock.
    unsafe {
        cmd.pre_exec(move || ns.enter());
    }
    Ok(())
}

/// The path of the namespace named `name`.
pub(crate) fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Our namespaces are named `wb<pid>n<seq>s` (the server) and
/// `wb<pid>n<seq>c<i>` (client `i`); this returns the owning pid of a name
/// of that shape.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("wb")?;
    let (pid, rest) = rest.split_once('n')?;
    let (seq, role) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit())?);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let role_ok = role == "s" || role.strip_prefix('c').is_some_and(all_digits);
    if !all_digits(pid) || !all_digits(seq) || !role_ok {
        return None;
    }
    pid.parse().ok()
}

/// Runs `ip ARGS`, feeding `batch` on stdin (for `-batch -`). Fails if it
/// exits non-zero or prints anything on stderr: on success `ip` is silent,
/// so anything it says is a problem worth reporting.
pub(crate) fn ip(args: &[&str], batch: Option<&str>) -> Result<(), LinkError> {
    let command = match batch {
        Some(b) => format!("ip {} <<< {:?}", args.join(" "), b.trim_end()),
        None => format!("ip {}", args.join(" ")),
    };
    let mut child = Command::new("ip")
        .args(args)
        .stdin(if batch.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LinkError::io(format!("cannot run `{command}`"), e))?;
    if let (Some(text), Some(mut stdin)) = (batch, child.stdin.take()) {
        // A write error means `ip` exited early; its status says why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| LinkError::io(format!("waiting for `{command}`"), e))?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() || !stderr.is_empty() {
        return Err(LinkError::Command { command, status: output.status.to_string(), stderr });
    }
    Ok(())
}

/// Creates the namespaces `names` (one `ip -batch`).
pub(crate) fn add_all(names: &[String]) -> Result<(), LinkError> {
    let batch: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
    ip(&["-batch", "-"], Some(&batch))
}

/// Deletes the namespaces `names` that exist, and checks they are gone. A
/// namespace lives on while a process is inside it or holds it open, but it
/// no longer has a name: nothing of it is left to find.
pub(crate) fn delete_all(names: &[String]) -> Result<(), LinkError> {
    let present: Vec<&String> = names.iter().filter(|n| netns_path(n).exists()).collect();
    if present.is_empty() {
        return Ok(());
    }
    let batch: String = present.iter().map(|n| format!("netns del {n}\n")).collect();
    let result = ip(&["-force", "-batch", "-"], Some(&batch));
    // Someone else (another process cleaning leftovers) may have deleted
    // one first; only what is still there is a failure.
    let leftovers: Vec<String> = present.iter().filter(|n| netns_path(n).exists()).map(|n| n.to_string()).collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    let reason = match result {
        Err(e) => e.to_string(),
        Ok(()) => "ip reported success but the names remain".to_owned(),
    };
    Err(LinkError::Leftovers { leftovers, reason })
}

/// The names of every namespace in [`NETNS_DIR`] made by this crate in a
/// process that no longer exists.
pub fn stale_netns() -> Result<Vec<String>, LinkError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LinkError::io(format!("listing {NETNS_DIR}"), e)),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LinkError::io(format!("listing {NETNS_DIR}"), e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if owner_pid(&name).is_some_and(|pid| !sys::process_exists(pid)) {
            stale.push(name);
        }
    }
    stale.sort();
    Ok(stale)
}

/// Deletes the namespaces a killed process left behind (see
/// [`stale_netns`]); the names deleted. [`crate::Link::up`] calls it first.
/// A pid reused by a live process keeps its leftovers until that one exits:
/// they are only idle names.
pub fn remove_stale() -> Result<Vec<String>, LinkError> {
    let stale = stale_netns()?;
    delete_all(&stale)?;
    Ok(stale)
}

/// Checks that this process can emulate a link: Linux capabilities to
/// create and enter namespaces, a TUN device node, the `ip` command,
/// network namespaces in the kernel. Each missing thing is named in one
/// [`LinkError::Unavailable`], so `--link` can be refused before any work.
pub fn check_available() -> Result<(), LinkError> {
    let mut missing = Vec::new();
    match effective_capabilities() {
        Some(caps) => {
            const CAP_NET_ADMIN: u32 = 12;
            const CAP_SYS_ADMIN: u32 = 21;
            let lacking: Vec<&str> = [(CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")]
                .into_iter()
                .filter(|(bit, _)| caps & (1 << bit) == 0)
                .map(|(_, name)| name)
                .collect();
            if !lacking.is_empty() {
                // SAFETY: geteuid cannot fail.
                let uid = unsafe { libc::geteuid() };
                missing.push(format!(
                    "not root: needs {} to create network namespaces and TUN devices (running as uid {uid}; use sudo)",
                    lacking.join(" and ")
                ));
            }
        }
        None => missing.push("cannot read the process's capabilities from /proc/self/status".to_owned()),
    }
    if !Path::new("/proc/self/ns/net").exists() {
        missing.push("the kernel has no network namespaces (/proc/self/ns/net is missing)".to_owned());
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing.push("no /dev/net/tun (load the tun module, or give a container --device /dev/net/tun)".to_owned())
        }
        Err(e) => missing.push(format!("cannot open /dev/net/tun: {e}")),
    }
    match Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        Ok(status) => missing.push(format!("`ip -V` failed ({status}): iproute2 is broken")),
        Err(e) => missing.push(format!("no `ip` command ({e}): install iproute2")),
    }
    if missing.is_empty() { Ok(()) } else { Err(LinkError::Unavailable { missing }) }
}

/// `CapEff` of this process.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_accepts_only_our_names() {
        assert_eq!(owner_pid("wb123n0s"), Some(123));
        assert_eq!(owner_pid("wb123n17c0"), Some(123));
        assert_eq!(owner_pid("wb9n2c15"), Some(9));
        for other in
            ["wb123s", "wbn0s", "wb12n0", "wb12n0x", "wb12n0c", "wb12n0sc1", "wb1a2n0s", "web1n0s", "wb1n0c1x", ""]
        {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_process_that_exists_and_one_that_does_not() {
        assert!(sys::process_exists(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!sys::process_exists(pid));
        assert!(!sys::process_exists(0));
    }

    #[test]
    fn ip_failures_carry_the_command_and_stderr() {
        if Command::new("ip").arg("-V").output().is_err() {
            println!("skipped: no ip command");
            return;
        }
        let err = ip(&["link", "show", "dev", "wirebench-no-such-device"], None).unwrap_err().to_string();
        assert!(err.starts_with("`ip link show dev wirebench-no-such-device` failed"), "{err}");
        assert!(err.contains("wirebench-no-such-device"), "{err}");
    }
}
