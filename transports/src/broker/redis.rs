//! Redis: request and reply **streams**, through `redis-server`, with the
//! `redis` crate.
//!
//! Why streams and not lists: a stream entry is a set of named fields, so
//! the call id, the format, the request id, the reply address and the
//! status travel as fields beside the body, as headers do on the other
//! brokers, instead of inside an envelope of our own in a list element;
//! a consumer group hands each request to one responder and keeps it
//! pending until acknowledged, so requests published before any responder
//! reads wait in the stream and are served when one does; and a stream
//! can be read by many readers at once, which the pubsub mode needs
//! (popping a list element takes it from everyone). The price is more
//! commands per call than `RPUSH`/`BLPOP` (the responder acknowledges and
//! deletes what it served, the client deletes what it read), and the
//! broker's CPU shows it.
//!
//! - Request: `XADD wirebench:requests * call <id> format <id> id <n>
//!   reply <reply stream> body <bytes>`.
//! - The responder reads with `XREADGROUP GROUP wirebench <consumer>
//!   BLOCK 0 STREAMS wirebench:requests wirebench:raw > >` and, in one
//!   pipeline with its next read, adds each reply, acknowledges and deletes
//!   the requests it served.
//! - Reply: `XADD <reply stream> * id <n> status <code> body <bytes>`,
//!   read by the client with `XREAD BLOCK 0 STREAMS <reply stream> <last
//!   id>` on a connection of its own (a blocking read holds its
//!   connection), which deletes what it read with its next read.
//!
//! Oneway: `XADD wirebench:requests * call <id> format <id> session <n>
//! seq <n> sent <ns> bin <n> body <bytes>`, with no `id` and no `reply`;
//! the responder serves it, counts it in its session, and acknowledges
//! and deletes it as it does a request.
//!
//! Pubsub: a topic is the stream `wirebench:topics:<topic>`; a message is
//! `XADD <stream> MAXLEN ~ 65536 * call <id> format <id> seq <n> sent
//! <ns> body <bytes>` (its number, and its send time in ns of
//! `CLOCK_MONOTONIC`), and each subscriber is a connection of its own
//! reading the stream with `XREAD BLOCK 0` from its first entry, so every
//! subscriber reads every message (Redis's PUBLISH/SUBSCRIBE would do the
//! fan-out too, but drops what a slow subscriber's output buffer cannot
//! hold and disconnects it; a stream keeps the messages, so a loss is a
//! message trimmed away, and counted).
//!
//! Stream: a request as above with one more field, `replies <K>`; the
//! responder serves it once and adds K entries to the reply stream in the
//! same pipeline, `id <n> status 0 index <i> body <bytes>` for i from 0 to
//! K-1 (or one error entry with no index); the client's reply reader
//! hands them to the call by id, in stream order.
//!
//! The raw floor: `XADD wirebench:raw * id <n> reply <stream> body
//! <bytes>`, whose body's first four bytes (u32 BE) are the reply's length;
//! the reply has `id` and `body` only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value};
use tokio::net::TcpStream;
use wirebench_formats::{Code, FormatId, Method, ServerScratch, Status};

use super::{
    Broker, BrokerRaw, BrokerSettings, Daemon, HANDSHAKE, HEADROOM, ONEWAY_FIELDS, RawRoundTrip, STREAM_FIELDS,
    oneway_meta, oneway_values, parse_number, raw_reply_len, raw_request, reply_outcome, serve_oneway, serve_request,
    serve_stream, stream_count, stream_index, unique_name, within,
};
use crate::counting::Counting;
use crate::demux::{self, Demux, Incoming};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Delivery, Endpoint, LiveCounters, OnewayMeta, PublishMeta, RawShape,
    Subscription, Transport, TransportError, TransportKind, TransportProperties, with_timeout,
};

const KIND: TransportKind = TransportKind::Redis;

/// The stream requests are added to.
pub const REQUESTS: &str = "wirebench:requests";
/// The stream of the raw floor's requests.
pub const RAW_REQUESTS: &str = "wirebench:raw";
/// The responders' consumer group.
pub const GROUP: &str = "wirebench";
/// Every reply stream's name starts with this; the responder refuses to
/// write anywhere else.
pub const REPLY_PREFIX: &str = "wirebench:replies:";
/// Pubsub topics are streams with keys under this prefix.
pub const TOPIC_PREFIX: &str = "wirebench:topics:";
/// A topic stream is trimmed to about this many entries as it grows: a
/// subscriber further behind than that loses messages, and they are
/// counted lost.
const TOPIC_MAXLEN: usize = 65_536;
/// Entries a read takes at most.
const BATCH: usize = 256;
/// Longest reply stream name accepted.
const MAX_KEY: usize = 256;

/// Redis.
#[derive(Debug)]
pub struct Redis;

/// Opens a multiplexed connection over a counted TCP stream; the driver
/// task ends with the connection.
async fn connect(address: SocketAddr, counters: Arc<LiveCounters>) -> Result<MultiplexedConnection, TransportError> {
    within(KIND, HANDSHAKE, "connect", async {
        let stream = TcpStream::connect(address).await.map_err(|e| TransportError::io(KIND, "connect", address, e))?;
        stream.set_nodelay(true).map_err(|e| TransportError::io(KIND, "connect", address, e))?;
        // Blocking reads wait as long as they must; calls have their own
        // deadline.
        let config = AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(None);
        let (connection, driver) = MultiplexedConnection::new_with_config(
            &RedisConnectionInfo::default(),
            Counting::new(stream, counters),
            config,
        )
        .await
        .map_err(|e| TransportError::handshake(KIND, format!("cannot open a connection to {address}: {e}")))?;
        tokio::spawn(driver);
        Ok(connection)
    })
    .await
}

/// One entry of a stream read: its stream, its id and its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stream: Vec<u8>,
    pub(crate) id: Vec<u8>,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.as_slice())
    }

    fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        let at = self.fields.iter().position(|(k, _)| k == name.as_bytes())?;
        Some(self.fields.swap_remove(at).1)
    }
}

fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// Parses the reply of `XREAD` / `XREADGROUP` (nil when nothing came)
/// into entries. Anything shaped otherwise is skipped, never trusted:
/// fields come in name/value pairs, an odd one out is dropped.
pub(crate) fn parse_read(value: Value) -> Vec<Entry> {
    let mut entries = Vec::new();
    let Value::Array(streams) = value else { return entries };
    for stream in streams {
        let Value::Array(mut pair) = stream else { continue };
        if pair.len() != 2 {
            continue;
        }
        let items = pair.pop();
        let Some(name) = pair.pop().and_then(bytes_of) else { continue };
        let Some(Value::Array(items)) = items else { continue };
        for item in items {
            let Value::Array(mut item) = item else { continue };
            if item.len() != 2 {
                continue;
            }
            let fields = item.pop();
            let Some(id) = item.pop().and_then(bytes_of) else { continue };
            // A deleted entry still pending in a group reads as nil fields.
            let fields = match fields {
                Some(Value::Array(values)) => values,
                _ => Vec::new(),
            };
            let mut pairs = Vec::with_capacity(fields.len() / 2);
            let mut values = fields.into_iter();
            while let (Some(k), Some(v)) = (values.next(), values.next()) {
                if let (Some(k), Some(v)) = (bytes_of(k), bytes_of(v)) {
                    pairs.push((k, v));
                }
            }
            entries.push(Entry { stream: name.clone(), id, fields: pairs });
        }
    }
    entries
}

/// The client's read side: blocking reads of its reply stream.
#[derive(Debug)]
struct Replies {
    connection: MultiplexedConnection,
    key: String,
    /// The id of the last entry read: the next read starts after it.
    last: String,
    /// Entries read and not yet deleted: the next read deletes them first.
    read: Vec<Vec<u8>>,
    ready: VecDeque<demux::Arrived>,
    raw: bool,
    max_message: usize,
}

impl Replies {
    fn outcome(&self, mut entry: Entry) -> Option<demux::Arrived> {
        let id: u32 = parse_number("reply id", entry.field("id")).ok()?;
        let index = stream_index(entry.field(STREAM_FIELDS[1]));
        let body = Bytes::from(entry.take("body").unwrap_or_default());
        let reply = if body.len() > self.max_message {
            Err(CallError::Protocol(format!(
                "redis: a {}-byte reply exceeds the {}-byte limit",
                body.len(),
                self.max_message
            )))
        } else if self.raw {
            Ok(body)
        } else {
            match parse_number::<u32>("reply status", entry.field("status")) {
                Ok(status) => reply_outcome(status, body),
                Err(s) => Err(CallError::Protocol(format!("redis: {}", s.message))),
            }
        };
        Some(demux::Arrived { id, index, reply })
    }
}

impl Incoming for Replies {
    async fn next(&mut self, counters: &LiveCounters) -> Result<demux::Arrived, CallError> {
        loop {
            if let Some(next) = self.ready.pop_front() {
                return Ok(next);
            }
            // Delete what was read, then wait for more, in one round trip.
            // Cancel-safe: state changes only once the answer is in, and a
            // read repeated from the same id reads the same entries.
            let mut pipe = redis::pipe();
            if !self.read.is_empty() {
                pipe.cmd("XDEL").arg(&self.key).arg(&self.read).ignore();
            }
            pipe.cmd("XREAD").arg("COUNT").arg(BATCH).arg("BLOCK").arg(0).arg("STREAMS").arg(&self.key).arg(&self.last);
            let (value,): (Value,) = pipe
                .query_async(&mut self.connection)
                .await
                .map_err(|e| CallError::Closed(format!("redis: reading replies: {e}")))?;
            self.read.clear();
            for entry in parse_read(value) {
                self.last = String::from_utf8_lossy(&entry.id).into_owned();
                self.read.push(entry.id.clone());
                match self.outcome(entry) {
                    Some(next) => self.ready.push_back(next),
                    None => counters.late(),
                }
            }
        }
    }
}

/// One client connection: a connection that adds requests and one that
/// blocks reading replies.
#[derive(Debug)]
struct Connection {
    send: MultiplexedConnection,
    demux: Demux<Replies>,
    key: String,
    next_id: AtomicU32,
}

/// Connections to the broker, calls spread over them.
#[derive(Debug)]
pub struct RedisClient {
    connections: Vec<Connection>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: std::time::Duration,
    raw: Option<Bytes>,
    /// The broker, for a subscription's connection of its own.
    address: SocketAddr,
    max_message: usize,
}

impl RedisClient {
    async fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
        raw: Option<Bytes>,
    ) -> Result<RedisClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let counters = Arc::new(LiveCounters::default());
        let mut connections = Vec::with_capacity(config.connections);
        for _ in 0..config.connections.max(1) {
            let send = connect(address, counters.clone()).await?;
            let recv = connect(address, counters.clone()).await?;
            let key = unique_name(REPLY_PREFIX);
            let replies = Replies {
                connection: recv,
                key: key.clone(),
                // Only replies added after this client exists are its own.
                last: "0-0".into(),
                read: Vec::new(),
                ready: VecDeque::new(),
                raw: raw.is_some(),
                max_message: config.max_message,
            };
            connections.push(Connection {
                send,
                demux: Demux::new(replies, counters.clone()),
                key,
                next_id: AtomicU32::new(1),
            });
        }
        Ok(RedisClient {
            connections,
            next: AtomicUsize::new(0),
            counters,
            timeout: config.timeout,
            raw,
            address,
            max_message: config.max_message,
        })
    }

    async fn call_on(&self, c: &Connection, ids: Option<(u8, u8)>, body: &[u8]) -> Result<Bytes, CallError> {
        let id = c.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = c.demux.register(id)?;
        self.add_request(c, id, ids, None, body).await?;
        c.demux.wait(waiter).await
    }

    /// Adds request `id` (of the raw floor when `ids` is `None`; a stream
    /// of `replies` when that is given), its reply already registered for.
    async fn add_request(
        &self,
        c: &Connection,
        id: u32,
        ids: Option<(u8, u8)>,
        replies: Option<u32>,
        body: &[u8],
    ) -> Result<(), CallError> {
        let mut cmd = redis::cmd("XADD");
        match ids {
            Some((call, format)) => {
                cmd.arg(REQUESTS).arg("*").arg("call").arg(call).arg("format").arg(format);
            }
            None => {
                cmd.arg(RAW_REQUESTS).arg("*");
            }
        }
        if let Some(replies) = replies {
            cmd.arg(STREAM_FIELDS[0]).arg(replies);
        }
        cmd.arg("id").arg(id).arg("reply").arg(&c.key).arg("body").arg(body);
        let mut send = c.send.clone();
        let added: Result<Value, _> = cmd.query_async(&mut send).await;
        match added {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Err(CallError::Status(Status::new(Code::Unavailable, format!("redis refused the request: {e}"))))
            }
            Err(e) => Err(CallError::Closed(format!("redis: {e}"))),
        }
    }

    fn pick(&self) -> &Connection {
        &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()]
    }
}

impl crate::Client for RedisClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        with_timeout(self.timeout, self.call_on(self.pick(), Some((method.id(), format as u8)), request)).await
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// A request whose reply entries the reply reader hands over by id,
    /// in order.
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
        let c = self.pick();
        let id = c.next_id.fetch_add(1, Ordering::Relaxed);
        let send = self.add_request(c, id, Some((method.id(), format as u8)), Some(replies), request);
        with_timeout(self.timeout, c.demux.call_stream(id, send, replies, on_reply)).await
    }

    /// An entry on the request stream with no id and no reply stream.
    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(REQUESTS).arg("*").arg("call").arg(method.id()).arg("format").arg(format as u8);
        for (name, value) in ONEWAY_FIELDS.iter().zip(oneway_values(meta)) {
            cmd.arg(*name).arg(value);
        }
        cmd.arg("body").arg(request);
        let mut send = self.pick().send.clone();
        let added: Result<Value, _> =
            with_timeout(self.timeout, async { Ok(cmd.query_async(&mut send).await) }).await?;
        added.map(drop).map_err(|e| CallError::Closed(format!("redis: cannot add a oneway message: {e}")))
    }

    /// A connection of its own blocking in `XREAD` on the topic's stream
    /// from its beginning (a topic is fresh, so that is every message
    /// published after the subscription).
    async fn subscribe(&self, topic: &str) -> Result<Subscription, CallError> {
        let mut connection =
            connect(self.address, self.counters.clone()).await.map_err(|e| CallError::Closed(e.to_string()))?;
        let key = topic_key(topic);
        let (tx, rx) = Subscription::channel();
        let max_message = self.max_message;
        let task = tokio::spawn(async move {
            let mut last = "0-0".to_owned();
            loop {
                let read: Result<Value, _> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(0)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(&last)
                    .query_async(&mut connection)
                    .await;
                let entries = match read {
                    Ok(value) => parse_read(value),
                    Err(e) => {
                        let _ = tx.send(Err(CallError::Closed(format!("redis: reading {key}: {e}")))).await;
                        return;
                    }
                };
                for entry in entries {
                    last = String::from_utf8_lossy(&entry.id).into_owned();
                    if !Subscription::forward(&tx, delivery_of(entry, max_message)).await {
                        return;
                    }
                }
            }
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
        let mut cmd = redis::cmd("XADD");
        cmd.arg(topic_key(topic))
            .arg("MAXLEN")
            .arg("~")
            .arg(TOPIC_MAXLEN)
            .arg("*")
            .arg("call")
            .arg(method.id())
            .arg("format")
            .arg(format as u8)
            .arg("seq")
            .arg(meta.seq)
            .arg("sent")
            .arg(meta.sent_ns)
            .arg("body")
            .arg(body);
        let mut send = self.pick().send.clone();
        let added: Result<Value, _> =
            with_timeout(self.timeout, async { Ok(cmd.query_async(&mut send).await) }).await?;
        added.map(drop).map_err(|e| CallError::Closed(format!("redis: cannot publish: {e}")))
    }
}

/// The stream of a pubsub topic.
fn topic_key(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// A topic stream's entry as a subscriber got it.
fn delivery_of(mut entry: Entry, max_message: usize) -> Result<Delivery, CallError> {
    let received = std::time::Instant::now();
    let field = |entry: &Entry, what: &str, name: &str| {
        parse_number::<u64>(what, entry.field(name)).map_err(|s| CallError::Protocol(format!("redis: {}", s.message)))
    };
    let (seq, sent_ns) = (field(&entry, "message number field", "seq")?, field(&entry, "send time field", "sent")?);
    let body = entry.take("body").ok_or_else(|| CallError::Protocol("redis: a message with no body field".into()))?;
    if body.len() > max_message {
        return Err(CallError::Protocol(format!(
            "redis: a {}-byte message exceeds the {max_message}-byte limit",
            body.len()
        )));
    }
    Ok(Delivery { seq, sent_ns, received, body: Bytes::from(body) })
}

impl RawRoundTrip for RedisClient {
    const NAME: &'static str = "redis";

    async fn raw_round_trip(&self) -> Result<usize, CallError> {
        let request = self.raw.clone().unwrap_or_default();
        Ok(with_timeout(self.timeout, self.call_on(self.pick(), None, &request)).await?.len())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

/// Creates the consumer group of `stream` (and the stream) unless it
/// exists. From id 0: requests added before any responder are served.
async fn create_group(connection: &mut MultiplexedConnection, stream: &str) -> Result<(), TransportError> {
    let created: Result<Value, redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(TransportError::handshake(KIND, format!("cannot create the group of {stream}: {e}"))),
    }
}

/// What the responder sends with its next read: replies, then the
/// acknowledgement and deletion of the requests they answer.
#[derive(Default)]
struct Outbox {
    pipe: Option<redis::Pipeline>,
    served: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Outbox {
    fn pipe(&mut self) -> &mut redis::Pipeline {
        self.pipe.get_or_insert_with(|| {
            let mut pipe = redis::pipe();
            // A reply to a client that has gone (or a key of the wrong
            // type) must not fail the rest.
            pipe.ignore_errors();
            pipe
        })
    }

    fn reply(&mut self, key: &[u8], id: &[u8], status: Option<u32>, index: Option<u32>, body: &[u8]) {
        let cmd = self.pipe().cmd("XADD").arg(key).arg("*").arg("id").arg(id);
        if let Some(status) = status {
            cmd.arg("status").arg(status);
        }
        if let Some(index) = index {
            cmd.arg(STREAM_FIELDS[1]).arg(index);
        }
        cmd.arg("body").arg(body).ignore();
    }

    fn done(&mut self, entry: &Entry) {
        self.served.push((entry.stream.clone(), entry.id.clone()));
    }

    /// The pipeline: replies, XACK and XDEL per stream, then `read`.
    fn finish(mut self, read: &redis::Cmd) -> redis::Pipeline {
        for stream in [REQUESTS, RAW_REQUESTS] {
            let ids: Vec<Vec<u8>> =
                self.served.iter().filter(|(s, _)| s == stream.as_bytes()).map(|(_, id)| id.clone()).collect();
            if !ids.is_empty() {
                self.pipe().cmd("XACK").arg(stream).arg(GROUP).arg(&ids).ignore();
                self.pipe().cmd("XDEL").arg(stream).arg(&ids).ignore();
            }
        }
        let mut pipe = self.pipe.take().unwrap_or_else(|| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            pipe
        });
        pipe.add_command(read.clone());
        pipe
    }
}

/// The reply stream an entry asks for, if it is one of ours.
fn reply_key(entry: &Entry) -> Option<&[u8]> {
    entry.field("reply").filter(|k| k.len() <= MAX_KEY && k.starts_with(REPLY_PREFIX.as_bytes()))
}

/// Serves one entry into the outbox.
fn serve_entry(handler: &Handler, scratch: &mut ServerScratch, max_message: usize, entry: &Entry, outbox: &mut Outbox) {
    outbox.done(entry);
    let ids = || {
        parse_number::<u8>("call field", entry.field("call"))
            .and_then(|call| Ok((call, parse_number::<u8>("format field", entry.field("format"))?)))
    };
    if entry.stream == REQUESTS.as_bytes()
        && let Some(meta) = oneway_meta(&ONEWAY_FIELDS, |name| entry.field(name))
    {
        serve_oneway(handler, scratch, meta, ids(), entry.field("body").unwrap_or_default());
        return;
    }
    let (Some(key), Some(id)) = (reply_key(entry), entry.field("id")) else {
        tracing::debug!("redis: dropped a request with no usable reply stream or id");
        return;
    };
    if id.len() > 32 {
        return;
    }
    let body = entry.field("body").unwrap_or_default();
    if entry.stream == RAW_REQUESTS.as_bytes() {
        match raw_reply_len(body, max_message) {
            Some(len) => outbox.reply(key, id, None, None, &vec![0xa5; len]),
            None => tracing::debug!("redis: dropped a raw request with no readable reply length"),
        }
        return;
    }
    if let Some(replies) = entry.field(STREAM_FIELDS[0]) {
        let stream = serve_stream(handler, scratch, ids(), stream_count(replies), body);
        for i in 0..stream.count {
            outbox.reply(key, id, Some(stream.answer.status), stream.index(i), &stream.answer.body);
        }
        return;
    }
    let answer = serve_request(handler, scratch, ids(), body);
    outbox.reply(key, id, Some(answer.status), None, &answer.body);
}

async fn respond(
    mut connection: MultiplexedConnection,
    handler: Arc<Handler>,
    max_message: usize,
    mut shutdown: ShutdownSignal,
) {
    let consumer = unique_name("responder-");
    let mut read = redis::cmd("XREADGROUP");
    read.arg("GROUP").arg(GROUP).arg(&consumer).arg("COUNT").arg(BATCH).arg("BLOCK").arg(0).arg("STREAMS");
    read.arg(REQUESTS).arg(RAW_REQUESTS).arg(">").arg(">");
    let mut scratch = ServerScratch::default();
    let mut outbox = Outbox::default();
    loop {
        let pipe = std::mem::take(&mut outbox).finish(&read);
        let answered: Result<Vec<redis::RedisResult<Value>>, _> = tokio::select! {
            _ = shutdown.wait() => return,
            answered = pipe.query_async(&mut connection) => answered,
        };
        let results = match answered {
            Ok(results) => results,
            Err(e) => {
                tracing::warn!("redis: the responder's connection failed: {e}");
                return;
            }
        };
        let Some(last) = results.into_iter().last() else { continue };
        let entries = match last {
            Ok(value) => parse_read(value),
            Err(e) => {
                tracing::warn!("redis: reading requests failed: {e}");
                return;
            }
        };
        for entry in &entries {
            handler.admit().await;
            serve_entry(&handler, &mut scratch, max_message, entry, &mut outbox);
        }
    }
}

impl Transport for Redis {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "redis 1.8 (redis-rs); broker redis-server",
        security: "none (loopback, no TLS)",
        delivery: "streams with a consumer group: a request waits in the stream until a responder reads it; no persistence to disk",
        multiplexing: "many requests in flight per connection pair (adding, and blocking reads of the client's reply stream), matched by request id",
        framing: "RESP2 commands (XADD, XREADGROUP, XREAD, XACK, XDEL), fields as headers",
        wire_bytes: "the client's socket bytes (both of its connections), counted under redis-rs",
    };
    type Client = RedisClient;
    type Raw = BrokerRaw<RedisClient>;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<RedisClient, TransportError> {
        RedisClient::connect(endpoint, config, None).await
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<BrokerRaw<RedisClient>, TransportError> {
        let client = RedisClient::connect(endpoint, config, Some(raw_request(shape)?)).await?;
        Ok(BrokerRaw::new(client, shape))
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let mut connection = connect(address, Arc::new(LiveCounters::default())).await?;
        create_group(&mut connection, REQUESTS).await?;
        create_group(&mut connection, RAW_REQUESTS).await?;
        let handler = Handler::new(&config);
        let max_message = config.max_message;
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(address)), move |mut shutdown, mut set| async move {
            set.spawn(respond(connection, handler, max_message, shutdown.clone()));
            shutdown.wait().await;
            set
        }))
    }
}

impl Broker for Redis {
    const DAEMON: Daemon = Daemon { binary: "redis-server", package: "redis-server" };
    const SCHEME: &'static str = "redis";
    // proto-max-bulk-len: Redis refuses more than 512 MB unless told, and
    // a string value cannot exceed 512 MB in any case.
    const MAX_BODY: usize = (512 << 20) - HEADROOM;

    fn commands(
        binary: &Path,
        dir: &Path,
        ports: &[u16],
        settings: &BrokerSettings,
    ) -> Result<Vec<Command>, TransportError> {
        let bulk = settings.max_message.min(Self::MAX_BODY) + HEADROOM;
        // `port 0` would disable TCP: the port is always a real one.
        let config = format!(
            "# wirebench: a throwaway redis-server for one run\n\
             bind 127.0.0.1\n\
             port {port}\n\
             protected-mode yes\n\
             daemonize no\n\
             dir {dir}\n\
             save \"\"\n\
             appendonly no\n\
             databases 1\n\
             logfile \"\"\n\
             proto-max-bulk-len {bulk}\n\
             client-query-buffer-limit {query}\n",
            port = ports[0],
            dir = dir.display(),
            query = (bulk as u64 * 4).max(1 << 30),
        );
        let path = dir.join("redis.conf");
        std::fs::write(&path, config)
            .map_err(|e| TransportError::Config(format!("redis: cannot write {}: {e}", path.display())))?;
        let mut command = Command::new(binary);
        command.arg(&path);
        Ok(vec![command])
    }

    async fn ready(address: SocketAddr) -> Result<(), TransportError> {
        let mut connection = connect(address, Arc::new(LiveCounters::default())).await?;
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
        match pong {
            Ok(p) if p == "PONG" => Ok(()),
            Ok(other) => Err(TransportError::handshake(KIND, format!("PING answered {other:?}"))),
            Err(e) => Err(TransportError::handshake(KIND, format!("PING failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn reads_parse_and_hostile_shapes_are_skipped() {
        let entry =
            Value::Array(vec![bulk(b"1-0"), Value::Array(vec![bulk(b"id"), bulk(b"7"), bulk(b"body"), bulk(b"xy")])]);
        let odd = Value::Array(vec![bulk(b"2-0"), Value::Array(vec![bulk(b"id"), bulk(b"8"), bulk(b"lonely")])]);
        let deleted = Value::Array(vec![bulk(b"3-0"), Value::Nil]);
        let value = Value::Array(vec![
            Value::Array(vec![bulk(b"wirebench:replies:x"), Value::Array(vec![entry, odd, deleted, Value::Int(5)])]),
            Value::Int(3),
            Value::Array(vec![bulk(b"short")]),
        ]);
        let entries = parse_read(value);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].field("id"), Some(&b"7"[..]));
        assert_eq!(entries[0].field("body"), Some(&b"xy"[..]));
        assert_eq!(entries[1].fields, vec![(b"id".to_vec(), b"8".to_vec())]);
        assert!(entries[2].fields.is_empty());
        assert!(parse_read(Value::Nil).is_empty());
    }

    #[test]
    fn replies_go_only_to_reply_streams() {
        let entry = |reply: &[u8]| Entry { fields: vec![(b"reply".to_vec(), reply.to_vec())], ..Entry::default() };
        assert!(reply_key(&entry(b"wirebench:replies:abc")).is_some());
        assert!(reply_key(&entry(b"wirebench:requests")).is_none());
        assert!(reply_key(&entry(&[b'w'; 300])).is_none());
    }

    #[test]
    fn hostile_requests_get_an_error_status_or_are_dropped() {
        let handler = Handler::new(&ServerConfig::default());
        let mut scratch = ServerScratch::default();
        let request = |fields: &[(&str, &[u8])]| Entry {
            stream: REQUESTS.as_bytes().to_vec(),
            id: b"1-0".to_vec(),
            fields: fields.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec())).collect(),
        };
        let reply: &[u8] = b"wirebench:replies:t";
        // Garbage body: an error status comes back.
        let mut outbox = Outbox::default();
        let garbage =
            request(&[("call", b"1"), ("format", b"1"), ("id", b"9"), ("reply", reply), ("body", b"\xff\x00garbage")]);
        serve_entry(&handler, &mut scratch, 1 << 20, &garbage, &mut outbox);
        assert_eq!(outbox.served.len(), 1);
        assert!(outbox.pipe.is_some(), "an error reply is sent");
        // No reply stream: dropped, but acknowledged.
        let mut outbox = Outbox::default();
        serve_entry(&handler, &mut scratch, 1 << 20, &request(&[("call", b"1"), ("body", b"{}")]), &mut outbox);
        assert_eq!(outbox.served.len(), 1);
        assert!(outbox.pipe.is_none());
        // A raw request whose length lies: dropped.
        let mut outbox = Outbox::default();
        let mut raw = request(&[("id", b"1"), ("reply", reply), ("body", b"\xff\xff\xff\xffxxxx")]);
        raw.stream = RAW_REQUESTS.as_bytes().to_vec();
        serve_entry(&handler, &mut scratch, 1 << 20, &raw, &mut outbox);
        assert!(outbox.pipe.is_none());
    }
}
