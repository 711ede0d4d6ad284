//! libzmq sockets on tokio, and the bytes of libzmq's TCP connections.
//!
//! A libzmq socket is synchronous, but it exposes `ZMQ_FD`: a descriptor
//! that becomes readable when the socket's state may have changed. The
//! state itself is `ZMQ_EVENTS`, which must be re-read after every wake-up
//! and after every send or receive (reading it processes libzmq's pending
//! commands, which can consume the descriptor's signal). [`Evented`] does
//! that with tokio's `AsyncFd`, edge-triggered, the way pyzmq's gevent
//! integration does it for Python's zerorpc.
//!
//! [`TcpBytes`] counts wire bytes without owning the socket: libzmq's
//! monitor reports each connection's descriptor, and the kernel's counters
//! of that TCP connection (`TCP_INFO`'s bytes sent, retransmitted, not yet
//! sent and received, and the unread queue `SIOCINQ`) give exactly the
//! bytes libzmq wrote and read.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A libzmq socket with its `ZMQ_FD` registered with tokio.
///
/// Field order matters: the registration is dropped before the socket
/// closes the descriptor.
pub struct Evented {
    fd: AsyncFd<RawFd>,
    socket: zmq::Socket,
}

impl std::fmt::Debug for Evented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evented").field("fd", self.fd.get_ref()).finish_non_exhaustive()
    }
}

impl Evented {
    /// Registers `socket`'s `ZMQ_FD` with the current tokio runtime.
    pub fn new(socket: zmq::Socket) -> io::Result<Evented> {
        let raw = socket.get_fd().map_err(super::io_error)?;
        // SAFETY: `ZMQ_FD` stays open and the same for the socket's life,
        // and the registration is dropped before the socket (field order).
        let fd = unsafe { AsyncFd::register_with_interest(raw, Interest::READABLE) }?;
        Ok(Evented { fd, socket })
    }

    /// The socket, for sends and receives that do not block.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// The socket, for what needs its raw pointer ([`Monitor::stop`]).
    pub fn socket_mut(&mut self) -> &mut zmq::Socket {
        &mut self.socket
    }

    /// The registration alone (`Sync`, unlike the socket).
    pub fn fd(&self) -> &AsyncFd<RawFd> {
        &self.fd
    }

    /// Ready when `ZMQ_EVENTS` has any of `want`. Readiness is cleared
    /// before `ZMQ_EVENTS` is read again, so a signal arriving in between
    /// is never lost.
    pub fn poll_events(&self, cx: &mut Context<'_>, want: zmq::PollEvents) -> Poll<io::Result<()>> {
        loop {
            let events = self.socket.get_events().map_err(super::io_error)?;
            if events.intersects(want) {
                return Poll::Ready(Ok(()));
            }
            match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits until `ZMQ_EVENTS` has any of `want`.
    pub async fn events(&self, want: zmq::PollEvents) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_events(cx, want)).await
    }

    /// Whether a message can be received now.
    pub fn readable_now(&self) -> io::Result<bool> {
        Ok(self.socket.get_events().map_err(super::io_error)?.contains(zmq::POLLIN))
    }
}

/// One event from a libzmq socket monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorEvent {
    /// `ZMQ_EVENT_*`.
    pub event: u16,
    /// The event's value: the descriptor for `CONNECTED` and
    /// `DISCONNECTED`, an errno or interval for others.
    pub value: u32,
}

impl MonitorEvent {
    /// Reads the first frame of a monitor message: the event number (16
    /// bits) and its value (32 bits), in host byte order.
    pub fn parse(frame: &[u8]) -> Option<MonitorEvent> {
        let event = u16::from_ne_bytes(frame.get(0..2)?.try_into().ok()?);
        let value = u32::from_ne_bytes(frame.get(2..6)?.try_into().ok()?);
        Some(MonitorEvent { event, value })
    }

    /// Whether it is `event`.
    pub fn is(&self, event: zmq::SocketEvent) -> bool {
        self.event == event.to_raw()
    }
}

/// A socket monitor: a PAIR socket on the inproc endpoint libzmq reports a
/// socket's connection events to.
///
/// libzmq (4.3) sends each event with a blocking send on its end of the
/// PAIR, from whichever thread notices it, usually the context's one I/O
/// thread, which every zerorpc socket of the process shares. That send
/// waits forever if this end is closed, or if its queue (the two ends'
/// high-water marks, 2,000 events) is full. So the monitored socket must
/// stop its monitor ([`Monitor::stop`]) before this end closes, and a
/// monitor that is read only now and then should watch only events that
/// come rarely ([`Monitor::restart`]).
#[derive(Debug)]
pub struct Monitor {
    pair: Evented,
}

impl Monitor {
    /// Starts monitoring `socket` for `events` (a `ZMQ_EVENT_*` mask).
    pub fn start(socket: &zmq::Socket, events: u16) -> io::Result<Monitor> {
        Ok(Monitor { pair: Self::pair(socket, events)? })
    }

    /// Monitors `socket` for `events` from now on, on a new PAIR: events
    /// not read from the old one are dropped with it. libzmq closes its
    /// old end first, under the lock its event sends take, so none is
    /// left waiting on it.
    pub fn restart(&mut self, socket: &zmq::Socket, events: u16) -> io::Result<()> {
        self.pair = Self::pair(socket, events)?;
        Ok(())
    }

    fn pair(socket: &zmq::Socket, events: u16) -> io::Result<Evented> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let endpoint = format!(
            "inproc://wirebench-zerorpc-monitor-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        socket.monitor(&endpoint, i32::from(events)).map_err(super::io_error)?;
        let pair = super::context().socket(zmq::PAIR).map_err(super::io_error)?;
        pair.set_linger(0).map_err(super::io_error)?;
        pair.connect(&endpoint).map_err(super::io_error)?;
        Evented::new(pair)
    }

    /// Stops `socket`'s monitor, as `zmq_socket_monitor(socket, NULL, 0)`
    /// does: libzmq closes its end of the PAIR at once and sends no event
    /// after. Call it before the monitored socket and the [`Monitor`] are
    /// dropped: without it, the socket's closing connections report to a
    /// PAIR nobody holds, and libzmq's I/O thread waits on that for good.
    pub fn stop(socket: &mut zmq::Socket) {
        // SAFETY: the pointer is the live socket `socket` owns, borrowed
        // mutably for the call; a null endpoint is libzmq's documented way
        // to stop monitoring, and the call touches nothing else.
        let _ = unsafe { zmq_sys::zmq_socket_monitor(socket.as_mut_ptr(), std::ptr::null(), 0) };
    }

    /// The next event if one is queued.
    pub fn try_next(&self) -> io::Result<Option<MonitorEvent>> {
        if !self.pair.readable_now()? {
            return Ok(None);
        }
        self.read()
    }

    /// Waits for the next event.
    pub async fn next(&self) -> io::Result<Option<MonitorEvent>> {
        self.pair.events(zmq::POLLIN).await?;
        self.read()
    }

    fn read(&self) -> io::Result<Option<MonitorEvent>> {
        let socket = self.pair.socket();
        let first = socket.recv_msg(zmq::DONTWAIT).map_err(super::io_error)?;
        let mut more = first.get_more();
        // The second frame is the endpoint; nothing here needs it.
        while more {
            more = socket.recv_msg(zmq::DONTWAIT).map_err(super::io_error)?.get_more();
        }
        Ok(MonitorEvent::parse(&first))
    }
}

/// Bytes libzmq wrote to and read from its connections of one socket,
/// from the kernel's counters of each TCP connection.
#[derive(Debug)]
pub struct TcpBytes {
    monitor: Monitor,
    peer: SocketAddr,
    current: Option<Connection>,
    /// Totals of connections that are gone (as last read).
    closed: (u64, u64),
}

#[derive(Debug, Clone, Copy)]
struct Connection {
    fd: RawFd,
    local: SocketAddr,
    last: (u64, u64),
}

impl TcpBytes {
    /// Counts the connections `monitor` reports (it must report
    /// `CONNECTED` and `DISCONNECTED`) to `peer`.
    pub fn new(monitor: Monitor, peer: SocketAddr) -> TcpBytes {
        TcpBytes { monitor, peer, current: None, closed: (0, 0) }
    }

    /// The monitor, for waiting on connection events.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The monitor, to restart it.
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    /// Takes note of every event the monitor holds.
    pub fn drain(&mut self) {
        while let Ok(Some(event)) = self.monitor.try_next() {
            self.note(event);
        }
    }

    /// Takes note of a monitor event.
    pub fn note(&mut self, event: MonitorEvent) {
        if event.is(zmq::SocketEvent::CONNECTED) {
            self.retire();
            let fd = event.value as RawFd;
            // The descriptor may already be closed and reused by the time
            // the event is read: only a TCP socket connected to our peer
            // is taken.
            if let Some(local) = addresses(fd, self.peer) {
                self.current = Some(Connection { fd, local, last: (0, 0) });
            }
        } else if (event.is(zmq::SocketEvent::DISCONNECTED) || event.is(zmq::SocketEvent::CLOSED))
            && self.current.is_some_and(|c| c.fd == event.value as RawFd)
        {
            self.retire();
        }
    }

    fn retire(&mut self) {
        if let Some(c) = self.current.take() {
            self.closed.0 += c.last.0;
            self.closed.1 += c.last.1;
        }
    }

    /// Bytes written and read so far over every connection, `None` if the
    /// kernel does not report them.
    pub fn read(&mut self) -> Option<(u64, u64)> {
        self.drain();
        if let Some(c) = self.current {
            // The descriptor is checked again: libzmq may have closed it
            // and the number been reused before its DISCONNECTED is read.
            if addresses(c.fd, self.peer) != Some(c.local) {
                self.retire();
            } else {
                let now = tcp_bytes(c.fd)?;
                if let Some(current) = self.current.as_mut() {
                    current.last = now;
                }
            }
        }
        let last = self.current.map_or((0, 0), |c| c.last);
        Some((self.closed.0 + last.0, self.closed.1 + last.1))
    }
}

/// The local address of `fd` if it is a TCP socket connected to `peer`.
fn addresses(fd: RawFd, peer: SocketAddr) -> Option<SocketAddr> {
    // SAFETY: a BorrowedFd is only used for the duration of these two
    // calls, which fail harmlessly on a descriptor that is not a socket.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    let remote = socket.peer_addr().ok()?.as_socket()?;
    if remote != peer {
        return None;
    }
    socket.local_addr().ok()?.as_socket()
}

/// The leading fields of Linux's `struct tcp_info` up to
/// `tcpi_bytes_retrans` (`linux/tcp.h`; all there since Linux 4.19).
#[repr(C)]
#[derive(Default)]
struct TcpInfo {
    bytes8: [u8; 8],
    u32s: [u32; 24],
    pacing_rate: u64,
    max_pacing_rate: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_out: u32,
    segs_in: u32,
    notsent_bytes: u32,
    min_rtt: u32,
    data_segs_in: u32,
    data_segs_out: u32,
    delivery_rate: u64,
    busy_time: u64,
    rwnd_limited: u64,
    sndbuf_limited: u64,
    delivered: u32,
    delivered_ce: u32,
    bytes_sent: u64,
    bytes_retrans: u64,
}

/// Bytes the application wrote to and read from TCP socket `fd`: data
/// sent once (sent minus retransmitted) plus data not sent yet, and data
/// received minus data still queued for reading. Arrivals between the two
/// readings are caught by reading until the received count holds still.
fn tcp_bytes(fd: RawFd) -> Option<(u64, u64)> {
    let info = || -> Option<TcpInfo> {
        let mut info = TcpInfo::default();
        let mut len = std::mem::size_of::<TcpInfo>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`, a
        // plain-old-data struct of that size, and reports how many it did.
        let rc =
            unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &raw mut len) };
        (rc == 0 && len as usize >= std::mem::size_of::<TcpInfo>()).then_some(info)
    };
    let unread = || -> Option<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD (SIOCINQ) writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &raw mut n) };
        (rc == 0).then(|| u64::try_from(n).unwrap_or(0))
    };
    for _ in 0..8 {
        let before = info()?;
        let queued = unread()?;
        let after = info()?;
        if before.bytes_received == after.bytes_received {
            let sent = after.bytes_sent.saturating_sub(after.bytes_retrans) + u64::from(after.notsent_bytes);
            return Some((sent, after.bytes_received.saturating_sub(queued)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn tcp_info_layout_matches_the_kernel_header() {
        // Offsets in linux/tcp.h.
        assert_eq!(std::mem::offset_of!(TcpInfo, bytes_received), 128);
        assert_eq!(std::mem::offset_of!(TcpInfo, notsent_bytes), 144);
        assert_eq!(std::mem::offset_of!(TcpInfo, bytes_sent), 200);
        assert_eq!(std::mem::offset_of!(TcpInfo, bytes_retrans), 208);
    }

    #[test]
    fn kernel_counters_count_what_was_written_and_read() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 1000]).unwrap();
        let mut got = [0u8; 1000];
        server.read_exact(&mut got).unwrap();
        server.write_all(&[1u8; 300]).unwrap();
        let mut back = [0u8; 100];
        client.read_exact(&mut back).unwrap();
        // 300 arrived, 100 read: 200 still queued do not count as read.
        assert_eq!(tcp_bytes(client.as_raw_fd()), Some((1000, 100)));
        assert_eq!(tcp_bytes(server.as_raw_fd()), Some((300, 1000)));
        assert_eq!(addresses(client.as_raw_fd(), listener.local_addr().unwrap()), Some(client.local_addr().unwrap()));
        assert_eq!(addresses(client.as_raw_fd(), "127.0.0.1:1".parse().unwrap()), None);
    }

    #[test]
    fn monitor_events_parse_in_host_order() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&zmq::SocketEvent::CONNECTED.to_raw().to_ne_bytes());
        frame.extend_from_slice(&42u32.to_ne_bytes());
        let e = MonitorEvent::parse(&frame).unwrap();
        assert!(e.is(zmq::SocketEvent::CONNECTED));
        assert_eq!(e.value, 42);
        assert_eq!(MonitorEvent::parse(&frame[..5]), None);
    }
}
