//! The system calls the driver needs, each wrapped once with its safety
//! argument: TUN devices, epoll, timerfd, eventfd, setns, thread clocks.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Converts a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the queues and the timer.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

fn clock_ns(clock: libc::clockid_t) -> io::Result<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    check(unsafe { libc::clock_gettime(clock, &mut ts) })?;
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Opens `/dev/net/tun` and creates a layer-3 TUN device named `name` in
/// the calling thread's network namespace: no packet-information header
/// (`IFF_NO_PI`), no virtio header and no offloads, so every read is one IP
/// packet of at most the MTU, and every loss the emulator applies is a real
/// packet's. The descriptor is non-blocking; the device lives as long as it.
pub(crate) fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: a NUL-terminated path and plain flags.
    let fd = owned(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    if name.len() >= libc::IFNAMSIZ || name.bytes().any(|b| b == 0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq we own.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
    // No checksum or segmentation offloads: the kernel then hands us only
    // complete, MTU-sized packets (it would not offer offloads without
    // IFF_VNET_HDR anyway; this says so explicitly).
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, 0 as libc::c_ulong) })?;
    Ok(fd)
}

/// One read: `Ok(None)` when nothing is ready.
pub(crate) fn read_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// One write of a whole packet.
pub(crate) fn write_packet(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: writes `buf.len()` bytes from `buf`.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return if n as usize == buf.len() {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::WriteZero, "short write to a TUN device"))
            };
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// An epoll instance, level-triggered.
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: plain flags.
        Ok(Epoll(owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?))
    }

    /// Watches `fd` for input, reporting `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: epoll_ctl reads one epoll_event we own.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })?;
        Ok(())
    }

    /// Stops watching `fd`.
    pub(crate) fn remove(&self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event is ignored by EPOLL_CTL_DEL.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) })?;
        Ok(())
    }

    /// Waits without a timeout (the timerfd is the only clock); the number of
    /// events written to `events`, 0 when interrupted by a signal.
    pub(crate) fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: the kernel writes at most `max` events into `events`.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, -1) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(err) };
        }
        Ok(n as usize)
    }
}

/// A `CLOCK_MONOTONIC` timerfd armed with absolute times
/// (`TFD_TIMER_ABSTIME`), so a late wake-up never shifts later deadlines.
#[derive(Debug)]
pub(crate) struct Timer(OwnedFd);

impl Timer {
    pub(crate) fn new() -> io::Result<Timer> {
        // SAFETY: plain flags.
        let fd = owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })?;
        Ok(Timer(fd))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Fires once at `at_ns` on `CLOCK_MONOTONIC` (at once if that is past).
    pub(crate) fn set_at(&self, at_ns: u64) -> io::Result<()> {
        // Zero disarms a timerfd; a deadline at time zero is long past anyway.
        let at_ns = at_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (at_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: reads one itimerspec we own; the old value is not wanted.
        check(unsafe {
            libc::timerfd_settime(self.0.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
        })?;
        Ok(())
    }

    /// Consumes a pending expiry, if any.
    pub(crate) fn clear(&self) {
        let mut ticks = [0u8; 8];
        // An empty timer (EAGAIN) is fine: the wake-up may have been spurious.
        let _ = read_nonblocking(self.0.as_raw_fd(), &mut ticks);
    }
}

/// An eventfd: the forwarder's stop signal.
#[derive(Debug)]
pub(crate) struct Event(OwnedFd);

impl Event {
    pub(crate) fn new() -> io::Result<Event> {
        // SAFETY: plain flags.
        Ok(Event(owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub(crate) fn signal(&self) -> io::Result<()> {
        write_packet(self.0.as_raw_fd(), &1u64.to_ne_bytes())
    }
}

/// Opens a namespace file read-only, close-on-exec.
pub(crate) fn open_ns(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: a NUL-terminated path and plain flags.
    owned(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
}

/// Moves the calling thread into the network namespace `fd` refers to.
/// Async-signal-safe (one system call), so usable between fork and exec.
pub(crate) fn setns_net(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns only reads its arguments.
    check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })?;
    Ok(())
}

/// The calling thread's id.
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() }
}

/// Asks for timer wake-ups without the default 50 µs of slack, for the
/// calling thread. Best effort: without it wake-ups are only less precise.
pub(crate) fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a value; the other arguments are unused.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// The CPU-time clock of a running thread of this process.
pub(crate) fn thread_cpu_clock(thread: libc::pthread_t) -> io::Result<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes one clockid_t; `thread` is a live thread's handle (the
    // caller holds its JoinHandle).
    let ret = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(clock)
}

/// The CPU time a thread clock shows.
pub(crate) fn cpu_clock_time(clock: libc::clockid_t) -> io::Result<Duration> {
    clock_ns(clock).map(Duration::from_nanos)
}

/// Whether a process with this id exists (in this PID namespace).
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let ret = unsafe { libc::kill(pid, 0) };
    ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Asks for a socket receive buffer of `bytes`, past `rmem_max` when the
/// process may (`SO_RCVBUFFORCE` needs CAP_NET_ADMIN), else as far as the
/// limit allows. Best effort: a smaller buffer only risks drops that the
/// measurement then reports.
pub(crate) fn set_recv_buffer(fd: RawFd, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads one c_int we own.
        let ret =
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, option, (&value as *const libc::c_int).cast(), size) };
        if ret == 0 {
            return;
        }
    }
}

/// Clock ticks per second (`/proc/stat`'s unit), if the system says.
pub(crate) fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}
