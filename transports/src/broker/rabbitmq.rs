//! RabbitMQ: RPC with direct reply-to and correlation ids, through
//! `rabbitmq-server`, with lapin (AMQP 0-9-1).
//!
//! A client opens a channel and consumes the pseudo-queue
//! `amq.rabbitmq.reply-to` (no-ack) **before** it publishes anything: that
//! consumer is what direct reply-to routes replies to, and a request
//! published on the channel before it exists is refused. A request is
//! published on the same channel to the default exchange with routing key
//! `wirebench.requests`, properties `reply_to = amq.rabbitmq.reply-to`,
//! `correlation_id` = the request id in decimal, and headers
//! `wirebench-call` and `wirebench-format` (integers); the body is the
//! format's bytes. Client and responder both declare the queue
//! (non-durable), so a request published before the responder consumes
//! waits in it. The responder consumes the queue with manual
//! acknowledgements and a prefetch of 256, publishes the reply to the
//! default exchange with the routing key RabbitMQ put in `reply_to`, the
//! same `correlation_id` and the header `wirebench-status`, then
//! acknowledges the request.
//!
//! Oneway: a publish to `wirebench.requests` with no `reply_to` and no
//! `correlation_id`, with the request's headers plus
//! `wirebench-oneway-session`, `-seq`, `-sent` and `-bin` (decimal
//! strings); the responder serves it, counts it in its session and
//! acknowledges it.
//!
//! Pubsub: a topic is the fanout exchange `wirebench.topics.<topic>`
//! (transient, auto-deleted), declared by publisher and subscribers alike;
//! each subscriber binds a server-named exclusive queue to it and consumes
//! it without acknowledgements on a channel of its own. A message carries
//! the headers `wirebench-call`, `wirebench-format`, `wirebench-seq` (its
//! number) and `wirebench-sent` (its send time, ns of `CLOCK_MONOTONIC`),
//! both 64-bit integers.
//!
//! Stream: a request as above with the header `wirebench-replies` (the
//! count K, an integer); the responder serves it once and publishes K
//! replies to its `reply_to` with its `correlation_id`, each with
//! `wirebench-status` and `wirebench-index` (0 to K-1, an integer), or
//! one error reply with no index; direct reply-to carries any number of
//! replies to a consumer that is still there, and the client's reply
//! consumer hands them to the call by correlation id.
//!
//! The raw floor: queue `wirebench.raw`, no headers, the body's first four
//! bytes (u32 BE) are the reply's length.
//!
//! lapin runs each connection on an I/O thread of its own with a socket it
//! owns: RabbitMQ rows report no wire bytes, and that thread's CPU is not
//! in the client thread's.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use wirebench_formats::{Code, FormatId, Method, ServerScratch, Status};

use super::{
    Broker, BrokerRaw, BrokerSettings, Daemon, HANDSHAKE, HEADROOM, RawRoundTrip, oneway_meta, oneway_values,
    raw_reply_len, raw_request, reply_outcome, serve_oneway, serve_request, serve_stream, unique_name, within,
};
use crate::demux::{self, Demux, Incoming};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Delivery, Endpoint, LiveCounters, OnewayMeta, PublishMeta, RawShape,
    Subscription, Transport, TransportError, TransportKind, TransportProperties, with_timeout,
};

const KIND: TransportKind = TransportKind::Rabbitmq;

/// The queue requests are routed to (through the default exchange).
pub const REQUESTS: &str = "wirebench.requests";
/// The queue of the raw floor's requests.
pub const RAW_REQUESTS: &str = "wirebench.raw";
/// RabbitMQ's direct reply-to pseudo-queue.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Header of a request: the call id.
pub const CALL_HEADER: &str = "wirebench-call";
/// Header of a request: the format's wire id.
pub const FORMAT_HEADER: &str = "wirebench-format";
/// Header of a published message (pubsub): its number (64-bit integer).
pub const SEQ_HEADER: &str = "wirebench-seq";
/// Header of a published message (pubsub): its send time, ns of the
/// publisher's `CLOCK_MONOTONIC` (64-bit integer).
pub const SENT_HEADER: &str = "wirebench-sent";
/// Oneway message headers (decimal strings), in the order of the broker
/// module's oneway fields: session, number, send time, sub-window.
pub const ONEWAY_HEADERS: [&str; 4] =
    ["wirebench-oneway-session", "wirebench-oneway-seq", "wirebench-oneway-sent", "wirebench-oneway-bin"];
/// Stream headers (integers), in the order of the broker module's stream
/// fields: the request's reply count, each reply's index.
pub const STREAM_HEADERS: [&str; 2] = ["wirebench-replies", "wirebench-index"];
/// Pubsub topics are fanout exchanges with names under this prefix.
pub const TOPIC_PREFIX: &str = "wirebench.topics.";
/// Header of a reply: the status.
pub const STATUS_HEADER: &str = "wirebench-status";
/// Unacknowledged requests a responder holds at most.
const PREFETCH: u16 = 256;

/// RabbitMQ.
#[derive(Debug)]
pub struct Rabbitmq;

async fn connect(address: SocketAddr) -> Result<Connection, TransportError> {
    let uri = format!("amqp://guest:guest@{address}/%2f");
    let properties = ConnectionProperties::default().with_connection_name(unique_name("wirebench-").into());
    within(KIND, HANDSHAKE, "connect", async {
        Connection::connect(&uri, properties)
            .await
            .map_err(|e| TransportError::handshake(KIND, format!("cannot connect to {address}: {e}")))
    })
    .await
}

fn handshake(what: &str) -> impl Fn(lapin::Error) -> TransportError + '_ {
    move |e| TransportError::handshake(KIND, format!("{what}: {e}"))
}

/// Declares the request queues: the same arguments on every side, so
/// whoever comes first creates them and requests wait there.
async fn declare(channel: &Channel) -> Result<(), TransportError> {
    for queue in [REQUESTS, RAW_REQUESTS] {
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .map_err(handshake("cannot declare the request queues"))?;
    }
    Ok(())
}

/// An integer header, whichever AMQP integer type the publisher chose (or
/// a decimal string).
fn integer(headers: &Option<FieldTable>, name: &str) -> Result<u32, Status> {
    let value = headers
        .as_ref()
        .and_then(|t| t.inner().get(name))
        .ok_or_else(|| Status::new(Code::InvalidArgument, format!("no {name} header")))?;
    let number: Option<i64> = match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().and_then(|s| s.trim().parse().ok()),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    };
    number
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Status::new(Code::InvalidArgument, format!("the {name} header is not a number in range")))
}

/// The client's read side: its direct reply-to consumer.
struct Replies {
    consumer: Consumer,
    raw: bool,
    max_message: usize,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").field("raw", &self.raw).finish()
    }
}

impl Incoming for Replies {
    async fn next(&mut self, counters: &LiveCounters) -> Result<demux::Arrived, CallError> {
        loop {
            let delivery = match self.consumer.next().await {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return Err(CallError::Closed(format!("rabbitmq: {e}"))),
                None => return Err(CallError::Closed("rabbitmq: the reply consumer was cancelled".into())),
            };
            let id = delivery.properties.correlation_id().as_ref().and_then(|c| c.as_str().parse::<u32>().ok());
            let Some(id) = id else {
                counters.late();
                continue;
            };
            let body = Bytes::from(delivery.data);
            if body.len() > self.max_message {
                let e = CallError::Protocol(format!(
                    "rabbitmq: a {}-byte reply exceeds the {}-byte limit",
                    body.len(),
                    self.max_message
                ));
                return Ok(demux::Arrived::single(id, Err(e)));
            }
            if self.raw {
                return Ok(demux::Arrived::single(id, Ok(body)));
            }
            let headers = delivery.properties.headers();
            let reply = match integer(headers, STATUS_HEADER) {
                Ok(status) => reply_outcome(status, body),
                Err(s) => Err(CallError::Protocol(format!("rabbitmq: {}", s.message))),
            };
            let index = integer(headers, STREAM_HEADERS[1]).ok();
            return Ok(demux::Arrived { id, index, reply });
        }
    }
}

/// One connection, one channel: publishes requests and consumes replies.
struct Link {
    connection: Connection,
    channel: Channel,
    demux: Demux<Replies>,
    next_id: AtomicU32,
    /// The pubsub exchanges this link declared.
    topics: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("channel", &self.channel.id()).finish()
    }
}

/// Connections to the broker, calls spread over them.
#[derive(Debug)]
pub struct RabbitmqClient {
    links: Vec<Link>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
    raw: Option<Bytes>,
    max_message: usize,
}

impl RabbitmqClient {
    async fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
        raw: Option<Bytes>,
    ) -> Result<RabbitmqClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let counters = Arc::new(LiveCounters::default());
        let mut links = Vec::with_capacity(config.connections);
        for _ in 0..config.connections.max(1) {
            let connection = connect(address).await?;
            let channel = connection.create_channel().await.map_err(handshake("cannot open a channel"))?;
            declare(&channel).await?;
            // The reply consumer first: direct reply-to needs it before
            // the first publish on this channel.
            let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
            let consumer = channel
                .basic_consume(REPLY_TO.into(), unique_name("wirebench-").into(), options, FieldTable::default())
                .await
                .map_err(handshake("cannot consume amq.rabbitmq.reply-to"))?;
            let replies = Replies { consumer, raw: raw.is_some(), max_message: config.max_message };
            links.push(Link {
                connection,
                channel,
                demux: Demux::new(replies, counters.clone()),
                next_id: AtomicU32::new(1),
                topics: tokio::sync::Mutex::default(),
            });
        }
        Ok(RabbitmqClient {
            links,
            next: AtomicUsize::new(0),
            counters,
            timeout: config.timeout,
            raw,
            max_message: config.max_message,
        })
    }

    async fn call_on(&self, link: &Link, ids: Option<(u8, u8)>, body: &[u8]) -> Result<Bytes, CallError> {
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = link.demux.register(id)?;
        self.publish_request(link, id, ids, None, body).await?;
        link.demux.wait(waiter).await
    }

    /// Publishes request `id` (of the raw floor when `ids` is `None`; a
    /// stream of `replies` when that is given), its reply already registered for.
    async fn publish_request(
        &self,
        link: &Link,
        id: u32,
        ids: Option<(u8, u8)>,
        replies: Option<u32>,
        body: &[u8],
    ) -> Result<(), CallError> {
        let mut properties =
            BasicProperties::default().with_reply_to(REPLY_TO.into()).with_correlation_id(id.to_string().into());
        let queue = match ids {
            Some((call, format)) => {
                let mut headers = FieldTable::default();
                headers.insert(CALL_HEADER.into(), AMQPValue::LongInt(i32::from(call)));
                headers.insert(FORMAT_HEADER.into(), AMQPValue::LongInt(i32::from(format)));
                if let Some(replies) = replies {
                    headers.insert(STREAM_HEADERS[0].into(), AMQPValue::LongLongInt(i64::from(replies)));
                }
                properties = properties.with_headers(headers);
                REQUESTS
            }
            None => RAW_REQUESTS,
        };
        link.channel
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
            .await
            .map(drop)
            .map_err(|e| CallError::Closed(format!("rabbitmq: {e}")))
    }

    fn pick(&self) -> &Link {
        &self.links[self.next.fetch_add(1, Ordering::Relaxed) % self.links.len()]
    }
}

impl crate::Client for RabbitmqClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        with_timeout(self.timeout, self.call_on(self.pick(), Some((method.id(), format as u8)), request)).await
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// A request whose replies the reply consumer hands over by
    /// correlation id, in order.
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
        let link = self.pick();
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let send = self.publish_request(link, id, Some((method.id(), format as u8)), Some(replies), request);
        with_timeout(self.timeout, link.demux.call_stream(id, send, replies, on_reply)).await
    }

    /// A publish to the request queue with no reply_to.
    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        let link = self.pick();
        let mut headers = FieldTable::default();
        headers.insert(CALL_HEADER.into(), AMQPValue::LongInt(i32::from(method.id())));
        headers.insert(FORMAT_HEADER.into(), AMQPValue::LongInt(i32::from(format as u8)));
        for (name, value) in ONEWAY_HEADERS.into_iter().zip(oneway_values(meta)) {
            headers.insert(name.into(), AMQPValue::LongString(value.into()));
        }
        let properties = BasicProperties::default().with_headers(headers);
        let publish = async {
            link.channel
                .basic_publish("".into(), REQUESTS.into(), BasicPublishOptions::default(), request, properties)
                .await
                .map(drop)
                .map_err(|e| CallError::Closed(format!("rabbitmq: {e}")))
        };
        with_timeout(self.timeout, publish).await
    }

    /// A channel of its own on one of the client's connections: the
    /// topic's fanout exchange declared, a server-named exclusive queue
    /// bound to it, consumed without acknowledgements.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, CallError> {
        let failed = |what: &'static str| move |e: lapin::Error| CallError::Closed(format!("rabbitmq: {what}: {e}"));
        let link = self.pick();
        let channel = link.connection.create_channel().await.map_err(failed("cannot open a channel"))?;
        let exchange = topic_exchange(topic);
        declare_topic(&channel, &exchange).await?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .map_err(failed("cannot declare a subscriber queue"))?;
        let queue = queue.name().clone();
        channel
            .queue_bind(queue.clone(), exchange.into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .map_err(failed("cannot bind the subscriber queue"))?;
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer = channel
            .basic_consume(queue, unique_name("wirebench-sub-").into(), options, FieldTable::default())
            .await
            .map_err(failed("cannot consume the subscriber queue"))?;
        let (tx, rx) = Subscription::channel();
        let max_message = self.max_message;
        let task = tokio::spawn(async move {
            // The channel must live as long as its consumer.
            let _channel = channel;
            loop {
                let delivery = match consumer.next().await {
                    Some(Ok(d)) => delivery_of(d, max_message),
                    Some(Err(e)) => Err(CallError::Closed(format!("rabbitmq: {e}"))),
                    None => Err(CallError::Closed("rabbitmq: the subscription was cancelled".into())),
                };
                if !Subscription::forward(&tx, delivery).await {
                    return;
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
        let link = self.pick();
        let exchange = topic_exchange(topic);
        let publish = async {
            // Publishing to an exchange that does not exist closes the
            // channel, so the publisher declares it too, once per topic.
            {
                let mut declared = link.topics.lock().await;
                if !declared.contains(&exchange) {
                    declare_topic(&link.channel, &exchange).await?;
                    declared.insert(exchange.clone());
                }
            }
            let mut headers = FieldTable::default();
            headers.insert(CALL_HEADER.into(), AMQPValue::LongInt(i32::from(method.id())));
            headers.insert(FORMAT_HEADER.into(), AMQPValue::LongInt(i32::from(format as u8)));
            headers.insert(SEQ_HEADER.into(), AMQPValue::LongLongInt(meta.seq as i64));
            headers.insert(SENT_HEADER.into(), AMQPValue::LongLongInt(meta.sent_ns as i64));
            let properties = BasicProperties::default().with_headers(headers);
            link.channel
                .basic_publish(exchange.as_str().into(), "".into(), BasicPublishOptions::default(), body, properties)
                .await
                .map_err(|e| CallError::Closed(format!("rabbitmq: cannot publish: {e}")))?;
            Ok(())
        };
        with_timeout(self.timeout, publish).await
    }
}

/// The fanout exchange of a pubsub topic.
fn topic_exchange(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// Declares a topic's exchange: fanout, transient, deleted with its last
/// binding.
async fn declare_topic(channel: &Channel, exchange: &str) -> Result<(), CallError> {
    let options = ExchangeDeclareOptions { auto_delete: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.into(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
        .map_err(|e| CallError::Closed(format!("rabbitmq: cannot declare the exchange {exchange}: {e}")))
}

/// A published message as a subscriber got it: its number and send time
/// from its headers.
fn delivery_of(delivery: lapin::message::Delivery, max_message: usize) -> Result<Delivery, CallError> {
    let received = std::time::Instant::now();
    if delivery.data.len() > max_message {
        return Err(CallError::Protocol(format!(
            "rabbitmq: a {}-byte message exceeds the {max_message}-byte limit",
            delivery.data.len()
        )));
    }
    let long = |name: &str| match delivery.properties.headers().as_ref().and_then(|t| t.inner().get(name)) {
        Some(AMQPValue::LongLongInt(v)) => {
            u64::try_from(*v).map_err(|_| CallError::Protocol(format!("rabbitmq: the {name} header is negative")))
        }
        _ => Err(CallError::Protocol(format!("rabbitmq: no 64-bit integer {name} header"))),
    };
    let (seq, sent_ns) = (long(SEQ_HEADER)?, long(SENT_HEADER)?);
    Ok(Delivery { seq, sent_ns, received, body: Bytes::from(delivery.data) })
}

impl RawRoundTrip for RabbitmqClient {
    const NAME: &'static str = "rabbitmq";

    async fn raw_round_trip(&self) -> Result<usize, CallError> {
        let request = self.raw.clone().unwrap_or_default();
        Ok(with_timeout(self.timeout, self.call_on(self.pick(), None, &request)).await?.len())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

/// What to publish back for one delivery: routing key, body, properties;
/// `None` drops it (no usable reply address or correlation id, or a raw
/// request whose length lies).
/// A request's call id and format id, from its headers.
fn ids_of(properties: &BasicProperties) -> Result<(u8, u8), Status> {
    integer(properties.headers(), CALL_HEADER).and_then(|call| {
        let format = integer(properties.headers(), FORMAT_HEADER)?;
        let narrow = |n: u32, what: &str| {
            u8::try_from(n).map_err(|_| Status::new(Code::InvalidArgument, format!("{what} {n} is out of range")))
        };
        Ok((narrow(call, "call id")?, narrow(format, "format id")?))
    })
}

/// A string header's bytes.
fn text<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a [u8]> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A stream request's reply address, correlation id and reply count (as
/// its header said), if it is one.
fn stream_of(properties: &BasicProperties) -> Option<(ShortString, ShortString, Result<u32, Status>)> {
    properties.headers().as_ref()?.inner().get(STREAM_HEADERS[0])?;
    let reply_to = properties.reply_to().clone()?;
    let correlation = properties.correlation_id().clone()?;
    Some((reply_to, correlation, integer(properties.headers(), STREAM_HEADERS[0])))
}

fn answer(
    handler: &Handler,
    scratch: &mut ServerScratch,
    max_message: usize,
    raw: bool,
    properties: &BasicProperties,
    body: &[u8],
) -> Option<(ShortString, Vec<u8>, BasicProperties)> {
    let reply_to = properties.reply_to().clone()?;
    let correlation = properties.correlation_id().clone()?;
    let mut reply = BasicProperties::default().with_correlation_id(correlation);
    if raw {
        let len = raw_reply_len(body, max_message)?;
        return Some((reply_to, vec![0xa5; len], reply));
    }
    let served = serve_request(handler, scratch, ids_of(properties), body);
    let mut headers = FieldTable::default();
    headers.insert(STATUS_HEADER.into(), AMQPValue::LongInt(served.status as i32));
    reply = reply.with_headers(headers);
    Some((reply_to, served.body.into_owned(), reply))
}

async fn respond(
    channel: Channel,
    mut requests: Consumer,
    mut raw: Consumer,
    handler: Arc<Handler>,
    max_message: usize,
    mut shutdown: ShutdownSignal,
) {
    let mut scratch = ServerScratch::default();
    loop {
        let (delivery, is_raw) = tokio::select! {
            _ = shutdown.wait() => return,
            d = requests.next() => (d, false),
            d = raw.next() => (d, true),
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => {
                tracing::warn!("rabbitmq: the responder's consumer failed: {e}");
                return;
            }
            None => return,
        };
        if !is_raw {
            handler.admit().await;
        }
        let oneway = if is_raw { None } else { oneway_meta(&ONEWAY_HEADERS, |name| text(&delivery.properties, name)) };
        let stream = if is_raw { None } else { stream_of(&delivery.properties) };
        if let Some(meta) = oneway {
            serve_oneway(&handler, &mut scratch, meta, ids_of(&delivery.properties), &delivery.data);
        } else if let Some((key, correlation, replies)) = stream {
            let stream = serve_stream(&handler, &mut scratch, ids_of(&delivery.properties), replies, &delivery.data);
            for i in 0..stream.count {
                let mut headers = FieldTable::default();
                headers.insert(STATUS_HEADER.into(), AMQPValue::LongInt(stream.answer.status as i32));
                if let Some(index) = stream.index(i) {
                    headers.insert(STREAM_HEADERS[1].into(), AMQPValue::LongLongInt(i64::from(index)));
                }
                let properties =
                    BasicProperties::default().with_correlation_id(correlation.clone()).with_headers(headers);
                let published = channel
                    .basic_publish(
                        "".into(),
                        key.clone(),
                        BasicPublishOptions::default(),
                        &stream.answer.body,
                        properties,
                    )
                    .await;
                if let Err(e) = published {
                    tracing::warn!("rabbitmq: cannot publish a stream reply: {e}");
                    return;
                }
            }
        } else if let Some((key, body, properties)) =
            answer(&handler, &mut scratch, max_message, is_raw, &delivery.properties, &delivery.data)
        {
            let published =
                channel.basic_publish("".into(), key, BasicPublishOptions::default(), &body, properties).await;
            if let Err(e) = published {
                tracing::warn!("rabbitmq: cannot publish a reply: {e}");
                return;
            }
        } else {
            tracing::debug!("rabbitmq: dropped a request with no usable reply_to or correlation_id");
        }
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!("rabbitmq: cannot acknowledge a request: {e}");
            return;
        }
    }
}

impl Transport for Rabbitmq {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "lapin 4.12 (AMQP 0-9-1); broker rabbitmq-server",
        security: "none (loopback, no TLS)",
        delivery: "non-durable queue, manual acknowledgements (prefetch 256); direct reply-to back; a request waits in the queue until a responder consumes it",
        multiplexing: "many requests in flight per channel, matched by correlation id",
        framing: "AMQP 0-9-1 basic.publish / basic.deliver frames, headers table",
        wire_bytes: "not counted: lapin owns its socket on an I/O thread of its own (whose CPU is not in the client thread's)",
    };
    const COUNTS_WIRE: bool = false;
    type Client = RabbitmqClient;
    type Raw = BrokerRaw<RabbitmqClient>;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<RabbitmqClient, TransportError> {
        RabbitmqClient::connect(endpoint, config, None).await
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<BrokerRaw<RabbitmqClient>, TransportError> {
        let client = RabbitmqClient::connect(endpoint, config, Some(raw_request(shape)?)).await?;
        Ok(BrokerRaw::new(client, shape))
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let connection = connect(address).await?;
        let channel = connection.create_channel().await.map_err(handshake("cannot open a channel"))?;
        declare(&channel).await?;
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(handshake("cannot set the prefetch"))?;
        let consume = |queue: &'static str| {
            let channel = channel.clone();
            async move {
                channel
                    .basic_consume(
                        queue.into(),
                        unique_name("wirebench-responder-").into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(handshake("cannot consume the request queues"))
            }
        };
        let requests = consume(REQUESTS).await?;
        let raw = consume(RAW_REQUESTS).await?;
        let handler = Handler::new(&config);
        let max_message = config.max_message;
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(address)), move |mut shutdown, mut set| async move {
            let signal = shutdown.clone();
            set.spawn(async move {
                // The connection lives as long as the responder.
                let _connection = connection;
                respond(channel, requests, raw, handler, max_message, signal).await;
            });
            shutdown.wait().await;
            set
        }))
    }
}

impl Broker for Rabbitmq {
    const DAEMON: Daemon = Daemon { binary: "rabbitmq-server", package: "rabbitmq-server" };
    const SCHEME: &'static str = "amqp";
    /// epmd's port and the Erlang distribution port.
    const EXTRA_PORTS: usize = 2;
    // RabbitMQ refuses a max_message_size over 512 MiB.
    const MAX_BODY: usize = (512 << 20) - HEADROOM;
    // An Erlang VM booting a node on a busy machine.
    const START_DEADLINE: Duration = Duration::from_secs(90);

    fn commands(
        binary: &Path,
        dir: &Path,
        ports: &[u16],
        settings: &BrokerSettings,
    ) -> Result<Vec<Command>, TransportError> {
        let config_error =
            |e: std::io::Error| TransportError::Config(format!("rabbitmq: cannot write in {}: {e}", dir.display()));
        // The Debian wrapper in /usr/sbin insists on running as the rabbitmq
        // user (su from root); the script it wraps runs as anyone.
        let script = resolve_script(binary);
        let (port, epmd_port, dist_port) = (ports[0], ports[1], ports[2]);
        let max_message_size = settings.max_message.min(Self::MAX_BODY) + HEADROOM;
        let config = format!(
            "# wirebench: a throwaway rabbitmq-server for one run\n\
             listeners.tcp.default = 127.0.0.1:{port}\n\
             max_message_size = {max_message_size}\n\
             log.console = true\n\
             log.console.level = warning\n\
             log.file = false\n"
        );
        std::fs::write(dir.join("rabbitmq.conf"), config).map_err(config_error)?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(config_error)?;
        // Our own epmd, on a port of its own, in the broker's process group:
        // the node finds it running and starts none, so nothing outlives
        // the broker.
        let epmd = super::daemon::find_binary("epmd").ok_or_else(|| {
            TransportError::Config("rabbitmq: epmd is not installed: apt-get install -y erlang-base".into())
        })?;
        let mut epmd_command = Command::new(epmd);
        epmd_command.args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"]);
        epmd_command.env("ERL_EPMD_ADDRESS", "127.0.0.1");
        let mut server = Command::new(script);
        let node = format!("wirebench-{}-{port}@localhost", std::process::id());
        server
            .current_dir(dir)
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"));
        Ok(vec![epmd_command, server])
    }

    async fn ready(address: SocketAddr) -> Result<(), TransportError> {
        // The AMQP port opens before the node has booted: only a channel
        // opened through a finished handshake says it serves.
        let connection = connect(address).await?;
        let channel = connection.create_channel().await.map_err(handshake("cannot open a channel"))?;
        let _ = channel.close(200, "ready".into()).await;
        let _ = connection.close(200, "ready".into()).await;
        Ok(())
    }
}

/// The script the Debian wrapper runs: `/usr/sbin/rabbitmq-server` links
/// to `rabbitmq-script-wrapper`, which `su`s to the rabbitmq user; the
/// `rabbitmq-server` beside the wrapper is the real start script.
fn resolve_script(binary: &Path) -> std::path::PathBuf {
    match std::fs::canonicalize(binary) {
        Ok(target) if target.file_name().is_some_and(|n| n == "rabbitmq-script-wrapper") => {
            let real = target.with_file_name("rabbitmq-server");
            if real.exists() { real } else { binary.to_owned() }
        }
        _ => binary.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: Option<FieldTable>) -> BasicProperties {
        let p = BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to.g1h2".into())
            .with_correlation_id("7".into());
        match headers {
            Some(h) => p.with_headers(h),
            None => p,
        }
    }

    fn headers(call: AMQPValue, format: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(CALL_HEADER.into(), call);
        t.insert(FORMAT_HEADER.into(), format);
        t
    }

    fn status_of(p: &BasicProperties) -> u32 {
        integer(p.headers(), STATUS_HEADER).unwrap()
    }

    #[test]
    fn hostile_requests_get_an_error_status_or_are_dropped() {
        let handler = Handler::new(&ServerConfig::default());
        let mut scratch = ServerScratch::default();
        let ok = headers(AMQPValue::LongInt(1), AMQPValue::ShortShortUInt(1));
        let (key, _, p) = answer(&handler, &mut scratch, 1 << 20, false, &request(Some(ok)), b"\xff garbage").unwrap();
        assert_eq!(key.as_str(), "amq.rabbitmq.reply-to.g1h2");
        assert_ne!(status_of(&p), 0, "garbage gets an error status");
        let huge = headers(AMQPValue::LongLongInt(1 << 40), AMQPValue::LongInt(1));
        let (_, _, p) = answer(&handler, &mut scratch, 1 << 20, false, &request(Some(huge)), b"{}").unwrap();
        assert_ne!(status_of(&p), 0, "a call id out of range gets an error status");
        let (_, _, p) = answer(&handler, &mut scratch, 1 << 20, false, &request(None), b"{}").unwrap();
        assert_ne!(status_of(&p), 0, "no headers gets an error status");
        assert!(answer(&handler, &mut scratch, 1 << 20, false, &BasicProperties::default(), b"{}").is_none());
        assert!(answer(&handler, &mut scratch, 1 << 20, true, &request(None), b"\xff\xff\xff\xff").is_none());
    }

    #[test]
    fn the_debian_wrapper_is_not_run() {
        assert_eq!(resolve_script(Path::new("/bin/sh")), Path::new("/bin/sh"));
    }
}
