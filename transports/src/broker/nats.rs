//! NATS: core request-reply with reply inboxes, through `nats-server`,
//! with async-nats.
//!
//! A request is published to the subject `wirebench.requests` with a reply
//! subject: async-nats's request API gives every request its own inbox
//! subject under one wildcard subscription per connection, and the reply
//! published there is matched by its subject. The call id and the format
//! travel in the NATS headers `Wirebench-Call` and `Wirebench-Format`, the
//! status of the reply in `Wirebench-Status`; the body is the format's
//! bytes (or, on an error status, its message). The responder (inside
//! `wirebench serve`) subscribes in the queue group `wirebench`, so several
//! responders share the requests.
//!
//! The raw floor: a headerless request to `wirebench.raw` whose first four
//! bytes (u32 BE) say how many bytes the reply has; nothing else is read.
//!
//! Pubsub: a topic is the subject `wirebench.topics.<topic>` with plain
//! subscribers (no queue group, so NATS fans each message out to every
//! one); a published message carries `Wirebench-Call` and
//! `Wirebench-Format` as a request does, plus `Wirebench-Seq` (its number)
//! and `Wirebench-Sent` (its send time in ns of `CLOCK_MONOTONIC`). A
//! subscription is in place once a message to an inbox of the
//! subscriber's own, published after it on the same connection, came back.
//!
//! Oneway: a publish to `wirebench.requests` with no reply subject, with
//! the request's headers plus `Wirebench-Oneway-session`, `-seq`, `-sent`
//! and `-bin` (decimals); the responder serves it and counts it in its
//! session. Core NATS delivers at most once: a responder too slow for its
//! subscription's pending limits loses messages, and they are counted.
//!
//! Stream: a request to `wirebench.requests` with the header
//! `Wirebench-Replies` (the count K), whose reply subject is an inbox the
//! client subscribed to for this call alone (async-nats's request API
//! takes one reply per inbox); the responder serves the request once and
//! publishes K replies there, each with `Wirebench-Status` and
//! `Wirebench-Index` (0 to K-1), or one error reply with no index. The
//! subscription goes out on the same connection before the request, so
//! the broker has it first; it ends when the call does. Core NATS drops
//! what a subscription's pending limits cannot hold: a stream short of
//! replies times out, visibly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use wirebench_formats::{FormatId, Method, ServerScratch};

use super::{
    Broker, BrokerRaw, BrokerSettings, Daemon, HANDSHAKE, HEADROOM, RawRoundTrip, oneway_meta, oneway_values,
    parse_number, raw_reply_len, raw_request, reply_outcome, serve_oneway, serve_request, serve_stream, stream_count,
    stream_index, within,
};
use crate::demux::{self, StreamItem, StreamSource};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Delivery, Endpoint, OnewayMeta, PublishMeta, RawShape, Subscription,
    Transport, TransportError, TransportKind, TransportProperties, with_timeout,
};

const KIND: TransportKind = TransportKind::Nats;

/// The subject requests are published to.
pub const SUBJECT: &str = "wirebench.requests";
/// The subject of the raw ping-pong floor.
pub const RAW_SUBJECT: &str = "wirebench.raw";
/// The responders' queue group.
pub const QUEUE: &str = "wirebench";
/// Request header: the call id (1 Multiply, 2 Echo, 3 Digest), decimal.
pub const CALL_HEADER: &str = "Wirebench-Call";
/// Request header: the format's wire id, decimal.
pub const FORMAT_HEADER: &str = "Wirebench-Format";
/// Published message header (pubsub): the publisher's message number.
pub const SEQ_HEADER: &str = "Wirebench-Seq";
/// Published message header (pubsub): the send time, nanoseconds of the
/// publisher's `CLOCK_MONOTONIC`.
pub const SENT_HEADER: &str = "Wirebench-Sent";
/// Oneway message headers (decimals), in the order of the broker
/// module's oneway fields: session, number, send time, sub-window.
pub const ONEWAY_HEADERS: [&str; 4] =
    ["Wirebench-Oneway-session", "Wirebench-Oneway-seq", "Wirebench-Oneway-sent", "Wirebench-Oneway-bin"];
/// Stream headers (decimals), in the order of the broker module's stream
/// fields: the request's reply count, each reply's index.
pub const STREAM_HEADERS: [&str; 2] = ["Wirebench-Replies", "Wirebench-Index"];
/// Pubsub topics are subjects under this prefix, each with plain (not
/// queue-group) subscribers, so every subscriber gets every message.
pub const TOPIC_PREFIX: &str = "wirebench.topics.";
/// Reply header: the status, decimal (0 ok; else a gRPC code, and the body
/// is its message).
pub const STATUS_HEADER: &str = "Wirebench-Status";

/// Messages a subscription holds before async-nats drops the next ones
/// (a slow consumer): the pending limit of NATS's reference client
/// (nats.go's `DefaultSubPendingMsgsLimit`, 512 Ki). async-nats's own
/// 65,536 dropped oneway messages whenever the responder fell that far
/// behind a closed window of 64 sends (every run of the c64 oneway cells
/// on 2026-12-02 lost between 2,895 and 69,439 of them). The channel
/// grows as messages arrive; nothing is allocated up front.
const PENDING_MESSAGES: usize = 512 * 1024;

/// NATS.
#[derive(Debug)]
pub struct Nats;

async fn connect(address: SocketAddr) -> Result<async_nats::Client, TransportError> {
    let options = async_nats::ConnectOptions::new()
        .name("wirebench")
        // Calls carry the harness's deadline; the library's own would race it.
        .request_timeout(None)
        .connection_timeout(HANDSHAKE)
        // A dead broker shows as failed calls, not as a client that waits
        // forever to reconnect.
        .max_reconnects(Some(1))
        .client_capacity(8192)
        .subscription_capacity(PENDING_MESSAGES);
    let client = within(KIND, HANDSHAKE, "connect", async {
        options
            .connect(format!("nats://{address}"))
            .await
            .map_err(|e| TransportError::handshake(KIND, format!("cannot connect to {address}: {e}")))
    })
    .await?;
    Ok(client)
}

fn headers_of(method: Method, format: FormatId) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CALL_HEADER, method.id().to_string().as_str());
    headers.insert(FORMAT_HEADER, (format as u8).to_string().as_str());
    headers
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a [u8]> {
    headers?.get(name).map(|v| v.as_str().as_bytes())
}

fn request_error(e: async_nats::RequestError, timeout: std::time::Duration, limit: usize) -> CallError {
    match e.kind() {
        RequestErrorKind::TimedOut => CallError::Timeout(timeout),
        RequestErrorKind::NoResponders => CallError::Status(wirebench_formats::Status::new(
            wirebench_formats::Code::Unavailable,
            format!("nats: no responder is subscribed to {SUBJECT}"),
        )),
        RequestErrorKind::MaxPayloadExceeded => CallError::TooLarge { transport: "nats", size: 0, limit },
        _ => CallError::Closed(format!("nats: {e}")),
    }
}

/// The broker's payload limit, if a body of `len` bytes fits under it
/// with room for the headers.
fn fits(client: &async_nats::Client, len: usize) -> Result<usize, CallError> {
    let limit = client.max_payload();
    if len + HEADROOM > limit {
        return Err(CallError::TooLarge { transport: "nats", size: len, limit: limit - HEADROOM.min(limit) });
    }
    Ok(limit)
}

/// Connections to the broker, calls spread over them.
#[derive(Debug)]
pub struct NatsClient {
    clients: Vec<async_nats::Client>,
    next: AtomicUsize,
    timeout: std::time::Duration,
    max_message: usize,
    /// The raw request, for a raw client.
    raw: Option<Bytes>,
}

impl NatsClient {
    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<NatsClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let mut clients = Vec::with_capacity(config.connections);
        for _ in 0..config.connections.max(1) {
            clients.push(connect(address).await?);
        }
        Ok(NatsClient {
            clients,
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            max_message: config.max_message,
            raw: None,
        })
    }

    fn pick(&self) -> &async_nats::Client {
        &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()]
    }

    fn snapshot(&self) -> Counters {
        self.clients.iter().fold(Counters::default(), |sum, c| {
            let s = c.statistics();
            sum + Counters {
                bytes_sent: s.out_bytes.load(Ordering::Relaxed),
                bytes_received: s.in_bytes.load(Ordering::Relaxed),
                late_replies: 0,
            }
        })
    }
}

impl crate::Client for NatsClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        let client = self.pick();
        let limit = fits(client, request.len())?;
        let request = async_nats::Request::new()
            .headers(headers_of(method, format))
            .payload(Bytes::copy_from_slice(request))
            .timeout(None);
        let reply = with_timeout(self.timeout, async {
            client.send_request(SUBJECT, request).await.map_err(|e| request_error(e, self.timeout, limit))
        })
        .await?;
        reply_of(reply, self.max_message)
    }

    fn counters(&self) -> Counters {
        self.snapshot()
    }

    /// A publish to the request subject with no reply subject.
    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        let client = self.pick();
        fits(client, request.len())?;
        let mut headers = headers_of(method, format);
        for (name, value) in ONEWAY_HEADERS.into_iter().zip(oneway_values(meta)) {
            headers.insert(name, value.as_str());
        }
        with_timeout(self.timeout, async {
            client
                .publish_with_headers(SUBJECT, headers, Bytes::copy_from_slice(request))
                .await
                .map_err(|e| CallError::Closed(format!("nats: cannot publish: {e}")))
        })
        .await
    }

    /// A request whose reply subject is an inbox of its own.
    async fn call_stream<R>(
        &self,
        method: Method,
        format: FormatId,
        request: &[u8],
        replies: u32,
        on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> std::ops::ControlFlow<()> + Send,
    {
        let client = self.pick();
        fits(client, request.len())?;
        let mut headers = headers_of(method, format);
        headers.insert(STREAM_HEADERS[0], replies.to_string().as_str());
        with_timeout(self.timeout, async {
            let inbox = client.new_inbox();
            let subscriber = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| CallError::Closed(format!("nats: cannot subscribe to a reply inbox: {e}")))?;
            client
                .publish_with_reply_and_headers(SUBJECT, inbox, headers, Bytes::copy_from_slice(request))
                .await
                .map_err(|e| CallError::Closed(format!("nats: cannot publish: {e}")))?;
            let mut source = Inbox { subscriber, max_message: self.max_message };
            demux::gather(&mut source, replies, on_reply).await
        })
        .await
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, CallError> {
        let client = self.pick().clone();
        let subject = topic_subject(topic);
        let mut messages = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| CallError::Closed(format!("nats: cannot subscribe to {subject}: {e}")))?;
        // Subscribed once the broker has it (see `settled`).
        with_timeout(self.timeout, async {
            settled(&client).await.map_err(|e| CallError::Closed(format!("nats: {e}")))
        })
        .await?;
        let (tx, rx) = Subscription::channel();
        let max_message = self.max_message;
        let task = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let received = std::time::Instant::now();
                let delivery = delivery_of(&message, max_message).map(|(seq, sent_ns)| Delivery {
                    seq,
                    sent_ns,
                    received,
                    body: message.payload,
                });
                if !Subscription::forward(&tx, delivery).await {
                    return;
                }
            }
            let _ = tx.send(Err(CallError::Closed("nats: the subscription ended (broker gone?)".into()))).await;
        });
        Ok(Subscription::new(rx, task))
    }

    async fn publish(
        &self,
        topic: &str,
        method: Method,
        format: FormatId,
        meta: PublishMeta,
        body: &[u8],
    ) -> Result<(), CallError> {
        let client = self.pick();
        fits(client, body.len())?;
        let mut headers = headers_of(method, format);
        headers.insert(SEQ_HEADER, meta.seq.to_string().as_str());
        headers.insert(SENT_HEADER, meta.sent_ns.to_string().as_str());
        with_timeout(self.timeout, async {
            client
                .publish_with_headers(topic_subject(topic), headers, Bytes::copy_from_slice(body))
                .await
                .map_err(|e| CallError::Closed(format!("nats: cannot publish: {e}")))
        })
        .await
    }
}

/// The replies of one stream call: its inbox's subscription.
struct Inbox {
    subscriber: async_nats::Subscriber,
    max_message: usize,
}

impl StreamSource for Inbox {
    async fn next_item(&mut self) -> StreamItem {
        let Some(reply) = self.subscriber.next().await else {
            return (None, Err(CallError::Closed("nats: the reply inbox's subscription ended (broker gone?)".into())));
        };
        if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            let status = wirebench_formats::Status::new(
                wirebench_formats::Code::Unavailable,
                format!("nats: no responder is subscribed to {SUBJECT}"),
            );
            return (None, Err(CallError::Status(status)));
        }
        let index = stream_index(header(reply.headers.as_ref(), STREAM_HEADERS[1]));
        (index, reply_of(reply, self.max_message))
    }
}

/// A reply's outcome: its body, or the error status its header says; a
/// body over `max_message`, or no readable status, is a protocol error.
fn reply_of(reply: async_nats::Message, max_message: usize) -> Result<Bytes, CallError> {
    let status: u32 = parse_number("reply status", header(reply.headers.as_ref(), STATUS_HEADER))
        .map_err(|s| CallError::Protocol(format!("nats: {}", s.message)))?;
    if reply.payload.len() > max_message {
        let len = reply.payload.len();
        return Err(CallError::Protocol(format!("nats: a {len}-byte reply exceeds the {max_message}-byte limit")));
    }
    reply_outcome(status, reply.payload)
}

/// Returns once the broker has processed everything this connection sent
/// before (its subscriptions): a message published to an inbox of its own,
/// after them on the same connection, has come back. async-nats's `flush`
/// only writes the socket; it is no round trip, and a request from another
/// connection could reach the broker before a subscription flushed that
/// way (seen: a "no responders" answer right after the responder started).
async fn settled(client: &async_nats::Client) -> Result<(), String> {
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await.map_err(|e| format!("cannot subscribe: {e}"))?;
    client.publish(inbox, Bytes::new()).await.map_err(|e| format!("cannot publish: {e}"))?;
    client.flush().await.map_err(|e| format!("cannot flush: {e}"))?;
    match probe.next().await {
        Some(_) => Ok(()),
        None => Err("the probe subscription ended (broker gone?)".into()),
    }
}

/// The subject of a pubsub topic.
fn topic_subject(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// A published message's number and send time, from its headers.
fn delivery_of(message: &async_nats::Message, max_message: usize) -> Result<(u64, u64), CallError> {
    if message.payload.len() > max_message {
        return Err(CallError::Protocol(format!(
            "nats: a {}-byte message exceeds the {max_message}-byte limit",
            message.payload.len()
        )));
    }
    let headers = message.headers.as_ref();
    let field = |what: &str, name: &str| {
        parse_number::<u64>(what, header(headers, name))
            .map_err(|s| CallError::Protocol(format!("nats: {}", s.message)))
    };
    Ok((field("message number header", SEQ_HEADER)?, field("send time header", SENT_HEADER)?))
}

/// The raw floor: a headerless request carrying the reply's length.
impl RawRoundTrip for NatsClient {
    const NAME: &'static str = "nats";

    async fn raw_round_trip(&self) -> Result<usize, CallError> {
        let Some(request) = &self.raw else {
            return Err(CallError::Protocol("not a raw client".into()));
        };
        let client = self.pick();
        let request = async_nats::Request::new().payload(request.clone()).timeout(None);
        let limit = client.max_payload();
        let reply = with_timeout(self.timeout, async {
            client.send_request(RAW_SUBJECT, request).await.map_err(|e| request_error(e, self.timeout, limit))
        })
        .await?;
        Ok(reply.payload.len())
    }

    fn counters(&self) -> Counters {
        self.snapshot()
    }
}

async fn respond(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    handler: Arc<Handler>,
    mut shutdown: ShutdownSignal,
) {
    let mut scratch = ServerScratch::default();
    loop {
        let message = tokio::select! {
            _ = shutdown.wait() => return,
            message = requests.next() => message,
        };
        let Some(message) = message else {
            tracing::warn!("nats: the request subscription ended (broker gone?)");
            return;
        };
        let headers = message.headers.as_ref();
        let ids = parse_number::<u8>("call id header", header(headers, CALL_HEADER))
            .and_then(|call| Ok((call, parse_number::<u8>("format header", header(headers, FORMAT_HEADER))?)));
        // A request without a reply subject is a oneway message, or has
        // no one to answer.
        let Some(reply) = message.reply else {
            if let Some(meta) = oneway_meta(&ONEWAY_HEADERS, |name| header(headers, name)) {
                handler.admit().await;
                serve_oneway(&handler, &mut scratch, meta, ids, &message.payload);
            }
            continue;
        };
        handler.admit().await;
        if let Some(replies) = header(headers, STREAM_HEADERS[0]) {
            let stream = serve_stream(&handler, &mut scratch, ids, stream_count(replies), &message.payload);
            let body = Bytes::copy_from_slice(&stream.answer.body);
            let status = stream.answer.status.to_string();
            for i in 0..stream.count {
                let mut headers = HeaderMap::new();
                headers.insert(STATUS_HEADER, status.as_str());
                if let Some(index) = stream.index(i) {
                    headers.insert(STREAM_HEADERS[1], index.to_string().as_str());
                }
                if let Err(e) = client.publish_with_headers(reply.clone(), headers, body.clone()).await {
                    tracing::warn!("nats: cannot publish a stream reply: {e}");
                    break;
                }
            }
            continue;
        }
        let answer = serve_request(&handler, &mut scratch, ids, &message.payload);
        let mut headers = HeaderMap::new();
        headers.insert(STATUS_HEADER, answer.status.to_string().as_str());
        if let Err(e) = client.publish_with_headers(reply, headers, Bytes::copy_from_slice(&answer.body)).await {
            tracing::warn!("nats: cannot publish a reply: {e}");
        }
    }
}

async fn respond_raw(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    max_message: usize,
    mut shutdown: ShutdownSignal,
) {
    let mut replies: std::collections::HashMap<usize, Bytes> = std::collections::HashMap::new();
    loop {
        let message = tokio::select! {
            _ = shutdown.wait() => return,
            message = requests.next() => message,
        };
        let Some(message) = message else { return };
        let Some(reply) = message.reply else { continue };
        let Some(len) = raw_reply_len(&message.payload, max_message) else {
            tracing::debug!("nats: dropped a raw request with no readable reply length");
            continue;
        };
        // One buffer per reply size: the floor allocates nothing per call.
        let body = replies.entry(len).or_insert_with(|| Bytes::from(vec![0xa5; len])).clone();
        if let Err(e) = client.publish(reply, body).await {
            tracing::warn!("nats: cannot publish a raw reply: {e}");
        }
    }
}

impl Transport for Nats {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "async-nats 0.50; broker nats-server",
        security: "none (loopback, no TLS)",
        delivery: "at most once (core NATS, no persistence); no subscribed responder gives a no-responders status at once",
        multiplexing: "many requests in flight per connection, each reply to its own inbox subject",
        framing: "NATS text protocol (HPUB/HMSG) with NATS/1.0 headers",
        wire_bytes: "the client's socket bytes, from async-nats's statistics",
    };
    type Client = NatsClient;
    type Raw = BrokerRaw<NatsClient>;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<NatsClient, TransportError> {
        NatsClient::connect(endpoint, config).await
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<BrokerRaw<NatsClient>, TransportError> {
        let mut client = NatsClient::connect(endpoint, config).await?;
        client.raw = Some(raw_request(shape)?);
        Ok(BrokerRaw::new(client, shape))
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let client = connect(address).await?;
        let subscribe = |subject: &'static str| {
            let client = client.clone();
            async move {
                client
                    .queue_subscribe(subject, QUEUE.into())
                    .await
                    .map_err(|e| TransportError::handshake(KIND, format!("cannot subscribe to {subject}: {e}")))
            }
        };
        let requests = subscribe(SUBJECT).await?;
        let raw = subscribe(RAW_SUBJECT).await?;
        // Only once the broker has the subscriptions is the responder
        // there for the first request (see `settled`).
        within(KIND, HANDSHAKE, "settle", async {
            settled(&client).await.map_err(|e| TransportError::handshake(KIND, e))
        })
        .await?;
        let handler = Handler::new(&config);
        let max_message = config.max_message;
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(address)), move |mut shutdown, mut set| async move {
            set.spawn(respond(client.clone(), requests, handler, shutdown.clone()));
            set.spawn(respond_raw(client, raw, max_message, shutdown.clone()));
            shutdown.wait().await;
            set
        }))
    }
}

impl Broker for Nats {
    const DAEMON: Daemon = Daemon { binary: "nats-server", package: "nats-server" };
    const SCHEME: &'static str = "nats";
    // nats-server keeps max_payload in a 32-bit int and refuses one over
    // its max_pending; 1 GiB stays well inside both.
    const MAX_BODY: usize = (1 << 30) - HEADROOM;

    fn commands(
        binary: &Path,
        dir: &Path,
        ports: &[u16],
        settings: &BrokerSettings,
    ) -> Result<Vec<Command>, TransportError> {
        let max_payload = settings.max_message.min(Self::MAX_BODY) + HEADROOM;
        let config = format!(
            "# wirebench: a throwaway nats-server for one run\n\
             listen: 127.0.0.1:{port}\n\
             max_payload: {max_payload}\n\
             max_pending: {pending}\n\
             write_deadline: \"30s\"\n",
            port = ports[0],
            pending = (max_payload as u64 * 4).max(64 << 20),
        );
        let path = dir.join("nats-server.conf");
        std::fs::write(&path, config)
            .map_err(|e| TransportError::Config(format!("nats: cannot write {}: {e}", path.display())))?;
        let mut command = Command::new(binary);
        command.arg("-c").arg(&path);
        Ok(vec![command])
    }

    async fn ready(address: SocketAddr) -> Result<(), TransportError> {
        let client = connect(address).await?;
        within(KIND, HANDSHAKE, "flush", async {
            client.flush().await.map_err(|e| TransportError::handshake(KIND, format!("cannot flush: {e}")))
        })
        .await
    }
}
