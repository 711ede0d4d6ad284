//! Message brokers: the third family of rows.
//!
//! A broker row carries any format, like wirebench's own transports, but
//! every message goes through a real broker process: the client publishes
//! the format's bytes, the responder (part of `wirebench serve`, connected
//! to the broker) serves them and publishes the reply. So a broker is a
//! [`Transport`] (its `serve` starts the responder against the broker at
//! `listen`, its clients connect to the broker) plus a [`Broker`]: how to
//! start the daemon from its Debian package on a free loopback port with a
//! throwaway configuration, and how to tell it is ready.
//!
//! One file per broker, implementing both, plus one line in the `brokers`
//! group of the registry in `lib.rs`. The lifecycle they share (finding the
//! binary, the throwaway directory, pinning, counting the daemon's CPU,
//! stopping it and everything it spawned on every exit path) lives once in
//! [`daemon`]; what their messages share (the status of a reply, the
//! responder's serving of one request) lives here.
//!
//! Every broker carries the same three things beside the body: the call id
//! (the method), the format's wire id and, on replies, the status, each in
//! the broker's own headers or properties; a request is matched to its
//! reply by the broker's own means (a reply inbox, a correlation id, or a
//! request id field). `docs/protocol.md` section 17 has each broker's
//! bytes. Each transport's design leaves room for the other call modes
//! (oneway: a request with no reply address; stream: several replies to
//! one reply address; pubsub: one subject, many subscribers) without
//! reshaping its messages.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use wirebench_formats::{Code, ServerScratch, Status};

use crate::server::Handler;
use crate::{CallError, Counters, OnewayMeta, RawShape, Transport, TransportError, TransportKind};

pub mod daemon;
pub mod mqtt;
pub mod nats;
pub mod rabbitmq;
pub mod redis;

pub use daemon::{BrokerError, RunningBroker, StartOptions};

/// The daemon a broker row needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// The executable, looked up on `PATH` and in `/usr/sbin`.
    pub binary: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

impl Daemon {
    /// What to run to get it, for an `unsupported` cell's reason.
    pub fn install_hint(&self) -> String {
        format!("{} is not installed: apt-get install -y {}", self.binary, self.package)
    }
}

/// How the harness configures a daemon it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerSettings {
    /// Largest message body of the run (`--max-message`): the daemon's own
    /// limits are raised to carry it, where the broker allows.
    pub max_message: usize,
}

/// Room for a broker's own headers and properties on top of a body, in
/// the limits the harness raises (NATS `max_payload` counts headers too).
pub const HEADROOM: usize = 64 << 10;

/// A broker transport's daemon.
pub trait Broker: Transport {
    /// Its daemon.
    const DAEMON: Daemon;
    /// The URL scheme `--connect` accepts before `HOST:PORT`
    /// (`nats://127.0.0.1:4222`).
    const SCHEME: &'static str;
    /// Loopback ports the daemon needs beyond its listening one (RabbitMQ:
    /// epmd and Erlang distribution).
    const EXTRA_PORTS: usize = 0;
    /// The largest body the broker can carry however it is configured
    /// (its protocol's or its own hard ceiling); a cell whose messages are
    /// larger is `unsupported` with this as the reason.
    const MAX_BODY: usize;
    /// How long the daemon may take to become ready.
    const START_DEADLINE: Duration = Duration::from_secs(30);

    /// Writes a throwaway configuration into `dir` (empty, owned by this
    /// start) and returns the commands that start the daemon found at
    /// `binary`, listening on `127.0.0.1:ports[0]` only (`ports` has
    /// [`Broker::EXTRA_PORTS`] more). Helpers come first (RabbitMQ's epmd);
    /// the last command is the broker itself. All run in one process group.
    fn commands(
        binary: &Path,
        dir: &Path,
        ports: &[u16],
        settings: &BrokerSettings,
    ) -> Result<Vec<Command>, TransportError>;

    /// Succeeds once a real client handshake with the broker at `address`
    /// succeeds (an open port is not enough: some brokers open theirs
    /// before they can serve).
    fn ready(address: SocketAddr) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// [`Broker::commands`] as a plain function.
pub type CommandsFn = fn(&Path, &Path, &[u16], &BrokerSettings) -> Result<Vec<Command>, TransportError>;

/// A boxed readiness check.
pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send>>;

/// A broker's lifecycle as plain functions, so the harness can start any
/// broker of the registry without knowing its type.
#[derive(Clone, Copy, Debug)]
pub struct BrokerInfo {
    /// Which row.
    pub kind: TransportKind,
    /// Its daemon.
    pub daemon: Daemon,
    /// [`Broker::SCHEME`].
    pub scheme: &'static str,
    /// [`Broker::EXTRA_PORTS`].
    pub extra_ports: usize,
    /// [`Broker::MAX_BODY`].
    pub max_body: usize,
    /// [`Broker::START_DEADLINE`].
    pub start_deadline: Duration,
    /// [`Broker::commands`].
    pub commands: CommandsFn,
    /// [`Broker::ready`], boxed.
    pub ready: fn(SocketAddr) -> ReadyFuture,
}

impl BrokerInfo {
    /// The lifecycle of `B`.
    pub fn of<B: Broker>() -> BrokerInfo {
        fn ready<B: Broker>(address: SocketAddr) -> ReadyFuture {
            Box::pin(B::ready(address))
        }
        BrokerInfo {
            kind: B::KIND,
            daemon: B::DAEMON,
            scheme: B::SCHEME,
            extra_ports: B::EXTRA_PORTS,
            max_body: B::MAX_BODY,
            start_deadline: B::START_DEADLINE,
            commands: B::commands,
            ready: ready::<B>,
        }
    }

    /// The largest body a daemon started with `settings` carries: the
    /// run's `--max-message`, or the broker's ceiling if that is lower.
    pub fn body_limit(&self, settings: &BrokerSettings) -> usize {
        settings.max_message.min(self.max_body)
    }
}

/// Strips `scheme://` from a `--connect` address, if it is there.
pub fn strip_scheme<'a>(scheme: &str, address: &'a str) -> &'a str {
    address.strip_prefix(scheme).and_then(|rest| rest.strip_prefix("://")).unwrap_or(address)
}

/// The outcome a reply carries: its body when `status` is 0, else the
/// status with the body as its message (as the tcp frame does).
pub(crate) fn reply_outcome(status: u32, body: Bytes) -> Result<Bytes, CallError> {
    if status == 0 {
        return Ok(body);
    }
    let message = String::from_utf8_lossy(&body).into_owned();
    Err(CallError::Status(match Code::from_value(status) {
        Some(code) => Status::new(code, message),
        None => Status::new(Code::Internal, format!("unknown status {status}: {message}")),
    }))
}

/// Parses a decimal header or property value (the call id, the format id,
/// the status) that must fit `T`.
pub(crate) fn parse_number<T: std::str::FromStr>(what: &str, value: Option<&[u8]>) -> Result<T, Status> {
    let value = value.ok_or_else(|| Status::new(Code::InvalidArgument, format!("no {what}")))?;
    std::str::from_utf8(value).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
        let shown = String::from_utf8_lossy(&value[..value.len().min(32)]).into_owned();
        Status::new(Code::InvalidArgument, format!("{what} {shown:?} is not a number in range"))
    })
}

/// What a responder publishes back: status 0 and the reply's encoding, or
/// an error status and its message.
pub(crate) struct Answer<'s> {
    /// 0, or the error's code.
    pub(crate) status: u32,
    /// The reply body, or the error's message.
    pub(crate) body: std::borrow::Cow<'s, [u8]>,
}

impl<'s> Answer<'s> {
    pub(crate) fn error(status: Status) -> Answer<'static> {
        Answer { status: u32::from(status.code.value()), body: std::borrow::Cow::Owned(status.message.into_bytes()) }
    }
}

/// Serves one request as it came off the broker: its call id and format id
/// as the headers said (already parsed, or the reason they could not be),
/// and its body. A body over the limit is refused with a status, never
/// decoded.
pub(crate) fn serve_request<'s>(
    handler: &Handler,
    scratch: &'s mut ServerScratch,
    ids: Result<(u8, u8), Status>,
    body: &[u8],
) -> Answer<'s> {
    let (call, format) = match ids {
        Ok(ids) => ids,
        Err(status) => {
            handler.count_refused();
            return Answer::error(status);
        }
    };
    if body.len() > handler.max_message {
        handler.count_refused();
        return Answer::error(Status::new(
            Code::ResourceExhausted,
            format!("a {}-byte request exceeds the {}-byte limit", body.len(), handler.max_message),
        ));
    }
    match handler.handle(scratch, call, format, body) {
        Ok(reply) => Answer { status: 0, body: std::borrow::Cow::Borrowed(reply) },
        Err(status) => Answer::error(status),
    }
}

/// The fields a stream call adds (mode `stream`), each a decimal in a
/// header (or property, or stream field) of the broker's: on the request,
/// how many replies it asks for; on each reply, its index from 0. Each
/// broker names them in an array of this order.
pub(crate) const STREAM_FIELDS: [&str; 2] = ["replies", "index"];

/// What a responder publishes for a stream request: `count` replies
/// carrying `answer`, the i-th with index i; a refused count or a failed
/// call is one reply with its error status and no index.
pub(crate) struct StreamAnswer<'s> {
    /// The status and body every reply carries.
    pub(crate) answer: Answer<'s>,
    /// How many replies to publish.
    pub(crate) count: u32,
}

impl StreamAnswer<'_> {
    /// The index of the `i`-th reply, if the replies carry one.
    pub(crate) fn index(&self, i: u32) -> Option<u32> {
        (self.answer.status == 0).then_some(i)
    }
}

/// Serves one stream request as it came off the broker: `replies` is its
/// reply count as the field said (parsed, or why it could not be). The
/// service answers once; its reply is published `count` times (as tcp's
/// stream frames repeat it). A count outside 1 to
/// [`crate::MAX_STREAM_REPLIES`] is refused before anything is served.
pub(crate) fn serve_stream<'s>(
    handler: &Handler,
    scratch: &'s mut ServerScratch,
    ids: Result<(u8, u8), Status>,
    replies: Result<u32, Status>,
    body: &[u8],
) -> StreamAnswer<'s> {
    let count = replies.and_then(|n| handler.check_replies(n));
    match count {
        Err(status) => {
            handler.count_refused();
            StreamAnswer { answer: Answer::error(status), count: 1 }
        }
        Ok(count) => {
            let answer = serve_request(handler, scratch, ids, body);
            let count = if answer.status == 0 { count } else { 1 };
            StreamAnswer { answer, count }
        }
    }
}

/// A stream request's reply count field, parsed.
pub(crate) fn stream_count(value: &[u8]) -> Result<u32, Status> {
    parse_number("stream reply count", Some(value))
}

/// A stream reply's index field, parsed: `None` (a frame out of order for
/// the caller) when it is missing or not a number.
pub(crate) fn stream_index(value: Option<&[u8]>) -> Option<u32> {
    parse_number("stream reply index", value).ok()
}

/// The fields a oneway message carries beside its call id and format id,
/// each a decimal in a header (or property, or stream field) of the
/// broker's: its session, its number in the session, its send time (ns
/// of `CLOCK_MONOTONIC`) and its sub-window. Each broker names them in an
/// array of this order (Redis's stream fields are these names).
pub(crate) const ONEWAY_FIELDS: [&str; 4] = ["session", "seq", "sent", "bin"];

/// `meta`'s values, in the order of [`ONEWAY_FIELDS`].
pub(crate) fn oneway_values(meta: OnewayMeta) -> [String; 4] {
    [meta.session.to_string(), meta.seq.to_string(), meta.sent_ns.to_string(), meta.bin.to_string()]
}

/// A oneway message's fields, each read by `field` from its broker's
/// `names` (in the order of [`ONEWAY_FIELDS`]); `None` for a message with
/// no session field (a request that lost its reply address, dropped), an
/// error for one whose fields do not parse.
pub(crate) fn oneway_meta<'a>(
    names: &[&str; 4],
    field: impl Fn(&str) -> Option<&'a [u8]>,
) -> Option<Result<OnewayMeta, Status>> {
    let field = |i: usize| field(names[i]);
    let session = field(0)?;
    let parse = || -> Result<OnewayMeta, Status> {
        Ok(OnewayMeta {
            session: parse_number("oneway session", Some(session))?,
            seq: parse_number("oneway message number", field(1))?,
            sent_ns: parse_number("oneway send time", field(2))?,
            bin: parse_number("oneway sub-window", field(3))?,
        })
    };
    Some(parse())
}

/// Serves one oneway message as it came off the broker and counts it in
/// its session (see [`crate::OnewaySessions`]); one whose fields do not
/// parse cannot be counted anywhere and is dropped, as is one over the
/// limit, counted refused.
pub(crate) fn serve_oneway(
    handler: &Handler,
    scratch: &mut ServerScratch,
    meta: Result<OnewayMeta, Status>,
    ids: Result<(u8, u8), Status>,
    body: &[u8],
) {
    let meta = match meta {
        Ok(meta) => meta,
        Err(status) => {
            handler.count_refused();
            tracing::debug!("dropped a oneway message: {}", status.message);
            return;
        }
    };
    let received = crate::mode::monotonic_ns();
    let refused = match ids {
        Err(status) => Some(status.to_string()),
        Ok(_) if body.len() > handler.max_message => {
            Some(format!("a {}-byte message exceeds the {}-byte limit", body.len(), handler.max_message))
        }
        Ok((call, format)) => {
            handler.oneway(scratch, meta, call, format, body);
            return;
        }
    };
    handler.count_refused();
    handler.oneway_sessions().record(meta, received, refused.as_deref());
}

/// A name no other client of the same broker uses: the process id, a
/// counter and random bits (reply addresses and MQTT client ids).
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut random = [0u8; 8];
    // The clock is enough to tell two runs apart if urandom cannot be read.
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random)).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        random = (nanos as u64).to_le_bytes();
    }
    format!("{prefix}{}-{n}-{:016x}", std::process::id(), u64::from_le_bytes(random))
}

/// Fails with `what` unless `future` finishes within `deadline` (for
/// handshakes of libraries without a deadline of their own).
pub(crate) async fn within<T>(
    kind: TransportKind,
    deadline: Duration,
    what: &str,
    future: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(deadline, future).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::handshake(kind, format!("{what}: no answer within {deadline:?}"))),
    }
}

/// A broker client that can make the raw round trip: its raw request
/// (made by `raw_request` when it connected) sent as one request, the
/// reply's length returned.
pub trait RawRoundTrip: Send + Sync + std::fmt::Debug + 'static {
    /// The row's name, for errors.
    const NAME: &'static str;
    /// Sends the raw request and waits for its reply: the reply's length.
    fn raw_round_trip(&self) -> impl Future<Output = Result<usize, CallError>> + Send;
    /// Bytes on the wire so far.
    fn counters(&self) -> Counters;
}

/// The raw floor through a broker: one raw round trip per ping, the
/// reply's length checked against the shape's.
#[derive(Debug)]
pub struct BrokerRaw<C> {
    client: C,
    reply_len: usize,
}

impl<C: RawRoundTrip> BrokerRaw<C> {
    /// `client`, connected with the raw request of `shape`.
    pub(crate) fn new(client: C, shape: RawShape) -> BrokerRaw<C> {
        BrokerRaw { client, reply_len: shape.reply }
    }
}

impl<C: RawRoundTrip> crate::RawClient for BrokerRaw<C> {
    async fn ping(&self) -> Result<(), CallError> {
        let got = self.client.raw_round_trip().await?;
        if got != self.reply_len {
            return Err(CallError::Protocol(format!(
                "{}: a raw reply of {got} bytes, expected {}",
                C::NAME,
                self.reply_len
            )));
        }
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.client.counters()
    }
}

/// The raw request of `shape`: its reply length (u32 BE) first, then
/// filler bytes up to its own length.
pub(crate) fn raw_request(shape: RawShape) -> Result<Bytes, TransportError> {
    let reply = u32::try_from(shape.reply).map_err(|_| TransportError::Config("raw reply over 4 GiB".into()))?;
    let mut request = vec![0x5a; shape.request.max(4)];
    request[..4].copy_from_slice(&reply.to_be_bytes());
    Ok(Bytes::from(request))
}

/// The reply length a raw request asks for, if it is readable and within
/// `max_message`; a lying length is refused here, before any allocation.
pub(crate) fn raw_reply_len(request: &[u8], max_message: usize) -> Option<usize> {
    let len = u32::from_be_bytes(request.get(..4)?.try_into().ok()?) as usize;
    (len <= max_message).then_some(len)
}

/// How long a client or responder waits for its broker handshake.
pub(crate) const HANDSHAKE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;

    #[test]
    fn replies_carry_their_status() {
        assert_eq!(reply_outcome(0, Bytes::from_static(b"ok")).unwrap(), Bytes::from_static(b"ok"));
        match reply_outcome(u32::from(Code::InvalidArgument.value()), Bytes::from_static(b"bad")) {
            Err(CallError::Status(s)) => assert_eq!((s.code, s.message.as_str()), (Code::InvalidArgument, "bad")),
            other => panic!("{other:?}"),
        }
        match reply_outcome(9999, Bytes::from_static(b"?")) {
            Err(CallError::Status(s)) => assert_eq!(s.code, Code::Internal),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(parse_number::<u8>("call id", Some(b"2")).unwrap(), 2);
        assert!(parse_number::<u8>("call id", Some(b"300")).is_err());
        assert!(parse_number::<u8>("call id", Some(b"\xff\xfe")).is_err());
        assert!(parse_number::<u8>("call id", None).is_err());
    }

    #[test]
    fn bad_requests_get_an_error_status() {
        let handler = Handler::new(&ServerConfig { max_message: 4, ..ServerConfig::default() });
        let mut scratch = ServerScratch::default();
        let missing = serve_request(&handler, &mut scratch, Err(Status::new(Code::InvalidArgument, "no call id")), b"");
        assert_eq!(missing.status, u32::from(Code::InvalidArgument.value()));
        let big = serve_request(&handler, &mut scratch, Ok((1, 1)), b"12345");
        assert_eq!(big.status, u32::from(Code::ResourceExhausted.value()));
        let garbage = serve_request(&handler, &mut scratch, Ok((1, 1)), b"{{{");
        assert_eq!(garbage.status, u32::from(Code::InvalidArgument.value()));
        assert_eq!(handler.calls(), 3);
    }

    #[test]
    fn stream_requests_are_checked_before_they_are_served() {
        let handler = Handler::new(&ServerConfig::default());
        let mut scratch = ServerScratch::default();
        let json = wirebench_formats::FormatId::Json as u8;
        // {"a":1234567891,"b":-987654}: a Multiply request in json.
        let multiply = br#"{"a":1234567891,"b":-987654}"#;
        for count in [&b"0"[..], b"-1", b"x", b"", b"99999999999", b"1048577"] {
            let s = serve_stream(&handler, &mut scratch, Ok((1, json)), stream_count(count), multiply);
            assert_eq!(s.count, 1, "{count:?}");
            assert_eq!(s.answer.status, u32::from(Code::InvalidArgument.value()), "{count:?}");
            assert_eq!(s.index(0), None, "an error reply has no index");
        }
        let failed = serve_stream(&handler, &mut scratch, Ok((1, json)), stream_count(b"8"), b"{{{");
        assert_eq!((failed.count, failed.index(0)), (1, None), "a failed call is one error reply");
        let ok = serve_stream(&handler, &mut scratch, Ok((1, json)), stream_count(b"8"), multiply);
        assert_eq!((ok.answer.status, ok.count), (0, 8));
        assert_eq!((ok.index(0), ok.index(7)), (Some(0), Some(7)));
        assert_eq!(handler.calls(), 8, "six refused, two served: each request counted once");
        assert_eq!(stream_index(Some(b"3")), Some(3));
        assert_eq!(stream_index(Some(b"-3")), None);
        assert_eq!(stream_index(None), None);
    }

    #[test]
    fn schemes_are_optional() {
        assert_eq!(strip_scheme("nats", "nats://127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(strip_scheme("nats", "127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(strip_scheme("nats", "amqp://127.0.0.1:4222"), "amqp://127.0.0.1:4222");
    }

    #[test]
    fn raw_requests_carry_their_reply_length() {
        let request = raw_request(RawShape { request: 17, reply: 300 }).unwrap();
        assert_eq!(request.len(), 17);
        assert_eq!(raw_reply_len(&request, 1 << 20), Some(300));
        assert_eq!(raw_reply_len(&request, 299), None, "over the limit");
        assert_eq!(raw_reply_len(b"\xff\xff\xff\xff", 1 << 20), None, "a lying length");
        assert_eq!(raw_reply_len(b"\x00\x01", 1 << 20), None, "too short");
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a-"), unique_name("a-"));
    }
}
