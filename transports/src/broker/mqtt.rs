//! MQTT 5: request/response with a response topic and correlation data,
//! through `mosquitto`, with rumqttc's v5 client.
//!
//! A client subscribes to its own response topic `wirebench/replies/<client
//! id>` (and waits for the broker's SUBACK) before it publishes anything.
//! A request is a PUBLISH to `wirebench/requests` at QoS 1 with the MQTT 5
//! properties Response Topic (that topic) and Correlation Data (the request
//! id, u32 BE), and the user properties `wirebench-call` and
//! `wirebench-format`; the body is the format's bytes. The responder holds
//! the shared subscription `$share/wirebench/wirebench/requests` (several
//! responders share the requests) and publishes the reply at QoS 1 to the
//! response topic with the same correlation data and the user property
//! `wirebench-status`.
//!
//! QoS 1, not 0: the broker acknowledges each hop, and with the throwaway
//! configuration's unlimited queues it drops nothing, so a lost message
//! is a fault rather than load shedding. MQTT keeps nothing for a topic
//! nobody has subscribed to: a request published before any responder
//! subscribed is discarded by the broker and its call times out (visibly,
//! as a timeout); `wirebench serve` reports the responder only after its
//! SUBACK.
//!
//! Oneway: a QoS 1 PUBLISH to `wirebench/requests` with no response topic
//! and no correlation data, with the request's user properties plus
//! `wirebench-oneway-session`, `-seq`, `-sent` and `-bin` (decimals); the
//! responder serves it and counts it in its session.
//!
//! Pubsub: a topic is `wirebench/topics/<topic>`; each subscriber is a
//! connection of its own subscribed at QoS 1 (its SUBACK awaited before
//! the first publish), and a message is a QoS 1 PUBLISH with the user
//! properties `wirebench-call`, `wirebench-format`, `wirebench-seq` (its
//! number) and `wirebench-sent` (its send time, ns of `CLOCK_MONOTONIC`).
//!
//! Stream: a request as above with the user property `wirebench-replies`
//! (the count K); the responder serves it once and publishes K replies to
//! the response topic with its correlation data, each with
//! `wirebench-status` and `wirebench-index` (0 to K-1), or one error
//! reply with no index; QoS 1 from one publisher on one topic keeps their
//! order.
//!
//! The raw floor: `wirebench/raw`, correlation data only, the body's first
//! four bytes (u32 BE) are the reply's length.
//!
//! rumqttc owns its socket (no hook to count bytes), so MQTT rows report
//! no wire bytes; and its packets are capped at 10 KiB unless told: both
//! sides here raise the cap to the run's largest message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, Publish, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, oneshot};
use wirebench_formats::{FormatId, Method, ServerScratch};

use super::{
    Broker, BrokerRaw, BrokerSettings, Daemon, HANDSHAKE, HEADROOM, RawRoundTrip, oneway_meta, oneway_values,
    parse_number, raw_reply_len, raw_request, reply_outcome, serve_oneway, serve_request, serve_stream, stream_count,
    stream_index, unique_name, within,
};
use crate::demux::{self, Slot, StreamItem, StreamSource};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Delivery, Endpoint, LiveCounters, OnewayMeta, PublishMeta, RawShape,
    Subscription, Transport, TransportError, TransportKind, TransportProperties, with_timeout,
};

const KIND: TransportKind = TransportKind::Mqtt;

/// The topic requests are published to.
pub const REQUESTS: &str = "wirebench/requests";
/// The topic of the raw floor's requests.
pub const RAW_REQUESTS: &str = "wirebench/raw";
/// The responders' shared subscription group.
pub const SHARE: &str = "wirebench";
/// Every response topic starts with this.
pub const REPLY_PREFIX: &str = "wirebench/replies/";
/// User property of a request: the call id, decimal.
pub const CALL_PROPERTY: &str = "wirebench-call";
/// User property of a request: the format's wire id, decimal.
pub const FORMAT_PROPERTY: &str = "wirebench-format";
/// User property of a published message (pubsub): its number, decimal.
pub const SEQ_PROPERTY: &str = "wirebench-seq";
/// User property of a published message (pubsub): its send time, ns of the
/// publisher's `CLOCK_MONOTONIC`, decimal.
pub const SENT_PROPERTY: &str = "wirebench-sent";
/// Oneway message user properties (decimals), in the order of the broker
/// module's oneway fields: session, number, send time, sub-window.
pub const ONEWAY_PROPERTIES: [&str; 4] =
    ["wirebench-oneway-session", "wirebench-oneway-seq", "wirebench-oneway-sent", "wirebench-oneway-bin"];
/// Stream user properties (decimals), in the order of the broker module's
/// stream fields: the request's reply count, each reply's index.
pub const STREAM_PROPERTIES: [&str; 2] = ["wirebench-replies", "wirebench-index"];
/// Pubsub topics are MQTT topics under this prefix.
pub const TOPIC_PREFIX: &str = "wirebench/topics/";
/// User property of a reply: the status, decimal.
pub const STATUS_PROPERTY: &str = "wirebench-status";
/// MQTT's largest packet (the Remaining Length field's maximum).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// Requests queued between callers and the event loop.
const CHANNEL: usize = 8192;

/// MQTT 5.
#[derive(Debug)]
pub struct Mqtt;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps behind these locks stay consistent if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn options(address: SocketAddr, client_id: &str, max_message: usize) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, address.ip().to_string(), address.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_start(true)
        .set_connection_timeout(HANDSHAKE.as_secs())
        .set_request_channel_capacity(CHANNEL)
        // rumqttc caps incoming packets at 10 KiB unless told.
        .set_max_packet_size(Some((max_message + HEADROOM).min(MQTT_MAX_PACKET) as u32));
    // rumqttc leaves Nagle's algorithm on: a publish written while the
    // previous one is unacknowledged waits for the peer's delayed ACK
    // (40 ms on Linux), which made every call take about 90 ms.
    let mut network = options.network_options();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    options
}

/// Connects and waits for the CONNACK; then subscribes to `topics` and
/// waits for their SUBACKs. Returns the client and its event loop, ready
/// to be driven.
async fn open(
    address: SocketAddr,
    client_id: &str,
    max_message: usize,
    topics: &[String],
) -> Result<(AsyncClient, EventLoop), TransportError> {
    let (client, mut events) = AsyncClient::new(options(address, client_id, max_message), CHANNEL);
    within(KIND, HANDSHAKE, "connect", async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => break,
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return Err(TransportError::handshake(
                        KIND,
                        format!("{address} refused the connection: {:?}", ack.code),
                    ));
                }
                Ok(_) => continue,
                Err(e) => return Err(TransportError::handshake(KIND, format!("cannot connect to {address}: {e}"))),
            }
        }
        for topic in topics {
            client
                .subscribe(topic.clone(), QoS::AtLeastOnce)
                .await
                .map_err(|e| TransportError::handshake(KIND, format!("cannot subscribe to {topic}: {e}")))?;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                            break;
                        }
                        return Err(TransportError::handshake(
                            KIND,
                            format!("{address} refused {topic}: {:?}", ack.return_codes),
                        ));
                    }
                    Ok(_) => continue,
                    Err(e) => return Err(TransportError::handshake(KIND, format!("subscribing to {topic}: {e}"))),
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok((client, events))
}

fn user_property<'a>(publish: &'a Publish, name: &str) -> Option<&'a [u8]> {
    let properties = publish.properties.as_ref()?;
    properties.user_properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_bytes())
}

fn correlation(publish: &Publish) -> Option<u32> {
    let data = publish.properties.as_ref()?.correlation_data.as_ref()?;
    Some(u32::from_be_bytes(data.as_ref().try_into().ok()?))
}

/// Waiting calls, filled by the event loop's task.
#[derive(Debug, Default)]
struct Router {
    pending: Mutex<HashMap<u32, Slot>>,
    broken: Mutex<Option<CallError>>,
    counters: LiveCounters,
}

impl Router {
    fn deliver(&self, arrived: demux::Arrived) {
        if !demux::dispatch_to(&mut lock(&self.pending), arrived) {
            self.counters.late();
        }
    }

    fn fail(&self, error: CallError) {
        lock(&self.broken).get_or_insert_with(|| error.clone());
        for (_, slot) in lock(&self.pending).drain() {
            slot.fail(error.clone());
        }
    }

    /// Registers call `id` before its request is published.
    fn register(&self, id: u32, slot: Slot) -> Result<Registered<'_>, CallError> {
        if let Some(e) = lock(&self.broken).clone() {
            return Err(e);
        }
        lock(&self.pending).insert(id, slot);
        Ok(Registered { router: self, id })
    }
}

/// Forgets a call when it ends, replied or not.
struct Registered<'a> {
    router: &'a Router,
    id: u32,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.router.pending).remove(&self.id);
    }
}

/// The replies of one stream call, as the event loop's task routes them.
struct StreamReplies<'a> {
    rx: mpsc::UnboundedReceiver<StreamItem>,
    _registered: Registered<'a>,
}

impl StreamSource for StreamReplies<'_> {
    async fn next_item(&mut self) -> StreamItem {
        self.rx.recv().await.unwrap_or_else(|| (None, Err(CallError::Closed("mqtt: the connection failed".into()))))
    }
}

/// Drives a client's event loop: sends what callers queued, keeps the
/// connection alive, hands replies to their callers.
async fn drive(mut events: EventLoop, router: Arc<Router>, raw: bool, max_message: usize) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let Some(id) = correlation(&publish) else {
                    router.counters.late();
                    continue;
                };
                let index = stream_index(user_property(&publish, STREAM_PROPERTIES[1]));
                let reply = if publish.payload.len() > max_message {
                    Err(CallError::Protocol(format!(
                        "mqtt: a {}-byte reply exceeds the {max_message}-byte limit",
                        publish.payload.len()
                    )))
                } else if raw {
                    Ok(publish.payload)
                } else {
                    match parse_number::<u32>("reply status", user_property(&publish, STATUS_PROPERTY)) {
                        Ok(status) => reply_outcome(status, publish.payload),
                        Err(s) => Err(CallError::Protocol(format!("mqtt: {}", s.message))),
                    }
                };
                router.deliver(demux::Arrived { id, index, reply });
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                router.fail(CallError::Closed(format!("mqtt: the broker disconnected: {:?}", d.reason_code)));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                router.fail(CallError::Closed(format!("mqtt: {e}")));
                return;
            }
        }
    }
}

/// One MQTT connection with its response topic.
#[derive(Debug)]
struct Connection {
    client: AsyncClient,
    topic: String,
    router: Arc<Router>,
    next_id: AtomicU32,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connections to the broker, calls spread over them.
#[derive(Debug)]
pub struct MqttClient {
    connections: Vec<Connection>,
    next: AtomicUsize,
    timeout: Duration,
    raw: Option<Bytes>,
    /// The broker, for a subscription's connection of its own.
    address: SocketAddr,
    max_message: usize,
}

impl MqttClient {
    async fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
        raw: Option<Bytes>,
    ) -> Result<MqttClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let mut connections = Vec::with_capacity(config.connections);
        for _ in 0..config.connections.max(1) {
            let id = unique_name("wirebench-");
            let topic = format!("{REPLY_PREFIX}{id}");
            let (client, events) = open(address, &id, config.max_message, std::slice::from_ref(&topic)).await?;
            let router = Arc::new(Router::default());
            let driver = tokio::spawn(drive(events, router.clone(), raw.is_some(), config.max_message));
            connections.push(Connection { client, topic, router, next_id: AtomicU32::new(1), driver });
        }
        Ok(MqttClient {
            connections,
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            raw,
            address,
            max_message: config.max_message,
        })
    }

    async fn call_on(&self, c: &Connection, ids: Option<(u8, u8)>, body: Bytes) -> Result<Bytes, CallError> {
        let id = c.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let _registered = c.router.register(id, Slot::Call(tx))?;
        self.publish_request(c, id, ids, None, body).await?;
        rx.await.unwrap_or_else(|_| Err(CallError::Closed("mqtt: the connection failed".into())))
    }

    /// Publishes request `id` (of the raw floor when `ids` is `None`; a
    /// stream of `replies` when that is given), its reply already registered for.
    async fn publish_request(
        &self,
        c: &Connection,
        id: u32,
        ids: Option<(u8, u8)>,
        replies: Option<u32>,
        body: Bytes,
    ) -> Result<(), CallError> {
        let mut properties = PublishProperties {
            response_topic: Some(c.topic.clone()),
            correlation_data: Some(Bytes::copy_from_slice(&id.to_be_bytes())),
            ..PublishProperties::default()
        };
        let topic = match ids {
            Some((call, format)) => {
                properties.user_properties =
                    vec![(CALL_PROPERTY.into(), call.to_string()), (FORMAT_PROPERTY.into(), format.to_string())];
                if let Some(replies) = replies {
                    properties.user_properties.push((STREAM_PROPERTIES[0].into(), replies.to_string()));
                }
                REQUESTS
            }
            None => RAW_REQUESTS,
        };
        c.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, body, properties)
            .await
            .map_err(|e| CallError::Closed(format!("mqtt: {e}")))
    }

    fn pick(&self) -> &Connection {
        &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()]
    }

    fn snapshot(&self) -> Counters {
        self.connections.iter().fold(Counters::default(), |sum, c| sum + c.router.counters.snapshot())
    }
}

impl crate::Client for MqttClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        let body = Bytes::copy_from_slice(request);
        with_timeout(self.timeout, self.call_on(self.pick(), Some((method.id(), format as u8)), body)).await
    }

    fn counters(&self) -> Counters {
        self.snapshot()
    }

    /// A request whose replies the event loop's task routes to the call
    /// by correlation data, in order.
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
        let body = Bytes::copy_from_slice(request);
        let stream = async {
            let id = c.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::unbounded_channel();
            let registered = c.router.register(id, Slot::Stream(tx))?;
            self.publish_request(c, id, Some((method.id(), format as u8)), Some(replies), body).await?;
            demux::gather(&mut StreamReplies { rx, _registered: registered }, replies, on_reply).await
        };
        with_timeout(self.timeout, stream).await
    }

    /// A QoS 1 publish to the request topic with no response topic.
    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        let c = self.pick();
        if let Some(e) = lock(&c.router.broken).clone() {
            return Err(e);
        }
        let mut user_properties =
            vec![(CALL_PROPERTY.into(), method.id().to_string()), (FORMAT_PROPERTY.into(), (format as u8).to_string())];
        for (name, value) in ONEWAY_PROPERTIES.into_iter().zip(oneway_values(meta)) {
            user_properties.push((name.into(), value));
        }
        let properties = PublishProperties { user_properties, ..PublishProperties::default() };
        let publish = c.client.publish_with_properties(
            REQUESTS,
            QoS::AtLeastOnce,
            false,
            Bytes::copy_from_slice(request),
            properties,
        );
        with_timeout(self.timeout, async { publish.await.map_err(|e| CallError::Closed(format!("mqtt: {e}"))) }).await
    }

    /// A connection of its own, subscribed at QoS 1 (its SUBACK awaited),
    /// its event loop driven by the subscription's task.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, CallError> {
        let topic = topic_name(topic);
        let (client, mut events) = open(self.address, &unique_name("wirebench-sub-"), self.max_message, &[topic])
            .await
            .map_err(|e| CallError::Closed(e.to_string()))?;
        let (tx, rx) = Subscription::channel();
        let max_message = self.max_message;
        let task = tokio::spawn(async move {
            // The client must live as long as its event loop.
            let _client = client;
            loop {
                let delivery = match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => delivery_of(publish, max_message),
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        Err(CallError::Closed(format!("mqtt: the broker disconnected: {:?}", d.reason_code)))
                    }
                    Ok(_) => continue,
                    Err(e) => Err(CallError::Closed(format!("mqtt: {e}"))),
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
        let c = self.pick();
        if let Some(e) = lock(&c.router.broken).clone() {
            return Err(e);
        }
        let properties = PublishProperties {
            user_properties: vec![
                (CALL_PROPERTY.into(), method.id().to_string()),
                (FORMAT_PROPERTY.into(), (format as u8).to_string()),
                (SEQ_PROPERTY.into(), meta.seq.to_string()),
                (SENT_PROPERTY.into(), meta.sent_ns.to_string()),
            ],
            ..PublishProperties::default()
        };
        let publish = c.client.publish_with_properties(
            topic_name(topic),
            QoS::AtLeastOnce,
            false,
            Bytes::copy_from_slice(body),
            properties,
        );
        with_timeout(self.timeout, async { publish.await.map_err(|e| CallError::Closed(format!("mqtt: {e}"))) }).await
    }
}

/// The MQTT topic of a pubsub topic.
fn topic_name(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// A published message as a subscriber got it: its number and send time
/// from its user properties.
fn delivery_of(publish: Publish, max_message: usize) -> Result<Delivery, CallError> {
    let received = std::time::Instant::now();
    if publish.payload.len() > max_message {
        return Err(CallError::Protocol(format!(
            "mqtt: a {}-byte message exceeds the {max_message}-byte limit",
            publish.payload.len()
        )));
    }
    let field = |what: &str, name: &str| {
        parse_number::<u64>(what, user_property(&publish, name))
            .map_err(|s| CallError::Protocol(format!("mqtt: {}", s.message)))
    };
    let (seq, sent_ns) = (field("message number property", SEQ_PROPERTY)?, field("send time property", SENT_PROPERTY)?);
    Ok(Delivery { seq, sent_ns, received, body: publish.payload })
}

impl RawRoundTrip for MqttClient {
    const NAME: &'static str = "mqtt";

    async fn raw_round_trip(&self) -> Result<usize, CallError> {
        let request = self.raw.clone().unwrap_or_default();
        Ok(with_timeout(self.timeout, self.call_on(self.pick(), None, request)).await?.len())
    }

    fn counters(&self) -> Counters {
        self.snapshot()
    }
}

/// Serves one request into the reply to publish, if there is one: a
/// request with no usable response topic or correlation data is dropped.
/// A request's call id and format id, from its user properties.
fn ids_of(publish: &Publish) -> Result<(u8, u8), wirebench_formats::Status> {
    parse_number::<u8>("call property", user_property(publish, CALL_PROPERTY))
        .and_then(|call| Ok((call, parse_number::<u8>("format property", user_property(publish, FORMAT_PROPERTY))?)))
}

/// A request's response topic (one of ours) and correlation data, if it
/// has usable ones.
fn reply_address(publish: &Publish) -> Option<(String, Bytes)> {
    let properties = publish.properties.as_ref()?;
    let topic = properties.response_topic.as_ref().filter(|t| t.starts_with(REPLY_PREFIX) && t.len() <= 256)?;
    let data = properties.correlation_data.clone().filter(|d| d.len() <= 32)?;
    Some((topic.clone(), data))
}

fn answer(
    handler: &Handler,
    scratch: &mut ServerScratch,
    max_message: usize,
    publish: &Publish,
) -> Option<(String, Bytes, PublishProperties)> {
    let (topic, data) = reply_address(publish)?;
    let mut reply = PublishProperties { correlation_data: Some(data), ..PublishProperties::default() };
    if publish.topic.as_ref() == RAW_REQUESTS.as_bytes() {
        let len = raw_reply_len(&publish.payload, max_message)?;
        return Some((topic, Bytes::from(vec![0xa5; len]), reply));
    }
    let served = serve_request(handler, scratch, ids_of(publish), &publish.payload);
    reply.user_properties = vec![(STATUS_PROPERTY.into(), served.status.to_string())];
    Some((topic, Bytes::copy_from_slice(&served.body), reply))
}

/// Serves a stream request and publishes its replies; one with no usable
/// response topic or correlation data is dropped.
async fn serve_stream_request(
    client: &AsyncClient,
    handler: &Handler,
    scratch: &mut ServerScratch,
    publish: &Publish,
    replies: &[u8],
) -> Result<(), rumqttc::v5::ClientError> {
    let Some((topic, data)) = reply_address(publish) else {
        tracing::debug!("mqtt: dropped a stream request with no usable response topic or correlation data");
        return Ok(());
    };
    let stream = serve_stream(handler, scratch, ids_of(publish), stream_count(replies), &publish.payload);
    let body = Bytes::copy_from_slice(&stream.answer.body);
    for i in 0..stream.count {
        let mut user_properties = vec![(STATUS_PROPERTY.into(), stream.answer.status.to_string())];
        if let Some(index) = stream.index(i) {
            user_properties.push((STREAM_PROPERTIES[1].into(), index.to_string()));
        }
        let properties =
            PublishProperties { correlation_data: Some(data.clone()), user_properties, ..PublishProperties::default() };
        client.publish_with_properties(topic.clone(), QoS::AtLeastOnce, false, body.clone(), properties).await?;
    }
    Ok(())
}

/// The responder: the event loop's task hands requests to this one, which
/// serves them and publishes the replies (publishing from the event loop's
/// own task could wait on a full queue that only that task drains).
async fn respond(
    client: AsyncClient,
    mut requests: mpsc::UnboundedReceiver<Publish>,
    handler: Arc<Handler>,
    max_message: usize,
    mut shutdown: ShutdownSignal,
) {
    let mut scratch = ServerScratch::default();
    loop {
        let publish = tokio::select! {
            _ = shutdown.wait() => return,
            publish = requests.recv() => publish,
        };
        let Some(publish) = publish else { return };
        handler.admit().await;
        if let Some(meta) = oneway_meta(&ONEWAY_PROPERTIES, |name| user_property(&publish, name)) {
            serve_oneway(&handler, &mut scratch, meta, ids_of(&publish), &publish.payload);
            continue;
        }
        if let Some(replies) = user_property(&publish, STREAM_PROPERTIES[0]) {
            if let Err(e) = serve_stream_request(&client, &handler, &mut scratch, &publish, replies).await {
                tracing::warn!("mqtt: cannot publish a stream reply: {e}");
                return;
            }
            continue;
        }
        let Some((topic, body, properties)) = answer(&handler, &mut scratch, max_message, &publish) else {
            tracing::debug!("mqtt: dropped a request with no usable response topic or correlation data");
            continue;
        };
        if let Err(e) = client.publish_with_properties(topic, QoS::AtLeastOnce, false, body, properties).await {
            tracing::warn!("mqtt: cannot publish a reply: {e}");
            return;
        }
    }
}

async fn drive_responder(
    mut events: EventLoop,
    requests: mpsc::UnboundedSender<Publish>,
    mut shutdown: ShutdownSignal,
) {
    loop {
        let event = tokio::select! {
            _ = shutdown.wait() => return,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if requests.send(publish).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("mqtt: the responder's connection failed: {e}");
                return;
            }
        }
    }
}

impl Transport for Mqtt {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "rumqttc 0.25 (MQTT 5); broker mosquitto",
        security: "none (loopback, no TLS)",
        delivery: "QoS 1 (at least once) each hop; a request published before a responder subscribed is discarded by the broker and times out",
        multiplexing: "many requests in flight per connection, matched by correlation data",
        framing: "MQTT 5 PUBLISH with Response Topic, Correlation Data and user properties",
        wire_bytes: "not counted: rumqttc owns its socket",
    };
    const COUNTS_WIRE: bool = false;
    type Client = MqttClient;
    type Raw = BrokerRaw<MqttClient>;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<MqttClient, TransportError> {
        MqttClient::connect(endpoint, config, None).await
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<BrokerRaw<MqttClient>, TransportError> {
        let client = MqttClient::connect(endpoint, config, Some(raw_request(shape)?)).await?;
        Ok(BrokerRaw::new(client, shape))
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let topics = [REQUESTS, RAW_REQUESTS].map(|t| format!("$share/{SHARE}/{t}"));
        let (client, events) = open(address, &unique_name("wirebench-responder-"), config.max_message, &topics).await?;
        let handler = Handler::new(&config);
        let max_message = config.max_message;
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(address)), move |mut shutdown, mut set| async move {
            let (tx, rx) = mpsc::unbounded_channel();
            set.spawn(drive_responder(events, tx, shutdown.clone()));
            set.spawn(respond(client, rx, handler, max_message, shutdown.clone()));
            shutdown.wait().await;
            set
        }))
    }
}

impl Broker for Mqtt {
    const DAEMON: Daemon = Daemon { binary: "mosquitto", package: "mosquitto" };
    const SCHEME: &'static str = "mqtt";
    const MAX_BODY: usize = MQTT_MAX_PACKET - HEADROOM;

    fn commands(
        binary: &Path,
        dir: &Path,
        ports: &[u16],
        _settings: &BrokerSettings,
    ) -> Result<Vec<Command>, TransportError> {
        // mosquitto 2 refuses anonymous clients once a listener is
        // configured unless told; as root it would switch to the mosquitto
        // user, which cannot read this directory; no queue or in-flight
        // limit, so nothing is dropped under load; no packet limit (MQTT's
        // own applies); Nagle's algorithm off on client sockets (mosquitto
        // leaves it on unless told, and each delivery then waits for the
        // client's delayed ACK).
        let config = format!(
            "# wirebench: a throwaway mosquitto for one run\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             user root\n\
             persistence false\n\
             max_inflight_messages 0\n\
             max_queued_messages 0\n\
             max_queued_bytes 0\n\
             set_tcp_nodelay true\n\
             log_dest stdout\n\
             log_type error\n\
             log_type warning\n",
            port = ports[0],
        );
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, config)
            .map_err(|e| TransportError::Config(format!("mqtt: cannot write {}: {e}", path.display())))?;
        let mut command = Command::new(binary);
        command.arg("-c").arg(&path);
        Ok(vec![command])
    }

    async fn ready(address: SocketAddr) -> Result<(), TransportError> {
        let (client, mut events) = open(address, &unique_name("wirebench-ready-"), 1 << 10, &[]).await?;
        let _ = client.disconnect().await;
        // Let the DISCONNECT go out; the broker forgets the session either way.
        let _ = tokio::time::timeout(Duration::from_millis(100), events.poll()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, payload: &[u8], properties: Option<PublishProperties>) -> Publish {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec(), properties);
        p.pkid = 1;
        p
    }

    #[test]
    fn hostile_requests_get_an_error_status_or_are_dropped() {
        let handler = Handler::new(&ServerConfig::default());
        let mut scratch = ServerScratch::default();
        let reply_to = |call: &str| PublishProperties {
            response_topic: Some(format!("{REPLY_PREFIX}t")),
            correlation_data: Some(Bytes::from_static(&[0, 0, 0, 7])),
            user_properties: vec![(CALL_PROPERTY.into(), call.into()), (FORMAT_PROPERTY.into(), "1".into())],
            ..PublishProperties::default()
        };
        let (_, _, props) =
            answer(&handler, &mut scratch, 1 << 20, &publish(REQUESTS, b"\xff{garbage", Some(reply_to("1")))).unwrap();
        assert_ne!(props.user_properties[0].1, "0", "garbage gets an error status");
        let (_, _, props) =
            answer(&handler, &mut scratch, 1 << 20, &publish(REQUESTS, b"{}", Some(reply_to("nope")))).unwrap();
        assert_ne!(props.user_properties[0].1, "0", "a bad call id gets an error status");
        assert!(answer(&handler, &mut scratch, 1 << 20, &publish(REQUESTS, b"{}", None)).is_none(), "no reply address");
        let elsewhere = PublishProperties { response_topic: Some("elsewhere".into()), ..reply_to("1") };
        assert!(answer(&handler, &mut scratch, 1 << 20, &publish(REQUESTS, b"{}", Some(elsewhere))).is_none());
        let lying = publish(RAW_REQUESTS, b"\xff\xff\xff\xffxxxx", Some(reply_to("1")));
        assert!(answer(&handler, &mut scratch, 1 << 20, &lying).is_none(), "a lying raw length");
    }

    #[test]
    fn correlation_data_is_four_bytes() {
        let with = |data: &'static [u8]| {
            publish(
                REQUESTS,
                b"",
                Some(PublishProperties {
                    correlation_data: Some(Bytes::from_static(data)),
                    ..PublishProperties::default()
                }),
            )
        };
        assert_eq!(correlation(&with(&[0, 0, 1, 2])), Some(258));
        assert_eq!(correlation(&with(&[1, 2])), None);
    }
}
