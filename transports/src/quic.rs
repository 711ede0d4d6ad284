//! QUIC with quinn: TLS 1.3 with a certificate generated when the server
//! starts and pinned by the client (see [`crate::tls`]); one
//! bidirectional stream per call on a reused connection.
//!
//! ALPN `wirebench`: each stream carries one request frame (the frame of
//! [`crate::frame`]) and the client finishes its side; the server
//! answers with one reply frame and finishes. ALPN `wirebench-raw`: the
//! raw baseline; the request's first 4 bytes (u32 BE) give the reply
//! length, the reply is that many bytes.
//!
//! Bytes on the wire come from quinn's connection statistics: UDP payload,
//! so QUIC headers, encryption overhead, acknowledgements and
//! retransmissions are all counted.
//!
//! Call modes (ALPN `wirebench`): a oneway message is one unidirectional
//! stream carrying one oneway frame, which the server serves and counts; a
//! stream call is a bidirectional stream whose request frame asks for K
//! replies, answered with K reply frames (each with its index) before the
//! server finishes its side.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint as QuinnEndpoint, RecvStream, SendStream, TransportConfig, VarInt};
use wirebench_formats::{Code, FormatId, Method, ServerScratch, Status};

use crate::frame::{self, Extension, Header};
use crate::mode::OnewayMeta;
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::stream::reply_result;
use crate::tls::{self, Identity};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, RawShape, Transport, TransportError, TransportKind,
    TransportProperties, with_timeout,
};

const ALPN_RPC: &[u8] = b"wirebench";
const ALPN_RAW: &[u8] = b"wirebench-raw";
/// Concurrent streams a peer may open.
const MAX_STREAMS: u32 = 1024;

const KIND: TransportKind = TransportKind::Quic;

/// QUIC.
#[derive(Debug)]
pub struct Quic;

fn transport_config() -> Arc<TransportConfig> {
    let mut config = TransportConfig::default();
    config.max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS));
    // Oneway messages, one per unidirectional stream (clients never accept
    // any: the server opens none).
    config.max_concurrent_uni_streams(VarInt::from_u32(MAX_STREAMS));
    Arc::new(config)
}

fn closed(e: impl std::fmt::Display) -> CallError {
    CallError::Closed(e.to_string())
}

/// Opens `config.connections` connections offering `alpn`.
async fn connect_all(
    endpoint: &Endpoint,
    config: &ClientConfig,
    alpn: &[u8],
) -> Result<(QuinnEndpoint, Vec<Connection>), TransportError> {
    let server = endpoint.address.inet(KIND)?;
    let pin = endpoint.pin.ok_or_else(|| {
        TransportError::Config(format!("quic needs the server's certificate pin: {server}#sha256:<hex>"))
    })?;
    let tls = tls::client_config(pin, &[alpn]).map_err(|e| TransportError::handshake(KIND, e))?;
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TransportError::handshake(KIND, e))?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(transport_config());
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut quinn = QuinnEndpoint::client(local).map_err(|e| TransportError::io(KIND, "bind", local, e))?;
    quinn.set_default_client_config(client_config);
    let mut connections = Vec::new();
    for _ in 0..config.connections.max(1) {
        let connecting = quinn
            .connect(server, tls::SERVER_NAME)
            .map_err(|e| TransportError::handshake(KIND, format!("cannot connect to {server}: {e}")))?;
        let connection = tokio::time::timeout(config.timeout, connecting)
            .await
            .map_err(|_| {
                TransportError::handshake(KIND, format!("no handshake with {server} within {:?}", config.timeout))
            })?
            .map_err(|e| TransportError::handshake(KIND, format!("handshake with {server} failed: {e}")))?;
        connections.push(connection);
    }
    Ok((quinn, connections))
}

fn counters_of(connections: &[Connection]) -> Counters {
    connections.iter().fold(Counters::default(), |sum, c| {
        let stats = c.stats();
        sum + Counters { bytes_sent: stats.udp_tx.bytes, bytes_received: stats.udp_rx.bytes, late_replies: 0 }
    })
}

/// Reads the peer's whole side of a stream, refusing more than `max`.
async fn read_all(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, CallError> {
    recv.read_to_end(max).await.map_err(|e| match e {
        quinn::ReadToEndError::TooLong => CallError::TooLarge { transport: "quic", size: max + 1, limit: max },
        quinn::ReadToEndError::Read(e) => closed(e),
    })
}

/// The QUIC RPC client.
#[derive(Debug)]
pub struct QuicClient {
    _endpoint: QuinnEndpoint,
    connections: Vec<Connection>,
    next: AtomicUsize,
    timeout: Duration,
    max_message: usize,
}

impl QuicClient {
    async fn call_on(
        &self,
        connection: &Connection,
        method: Method,
        format: FormatId,
        request: &[u8],
    ) -> Result<Bytes, CallError> {
        let len = u32::try_from(request.len()).map_err(|_| CallError::TooLarge {
            transport: "quic",
            size: request.len(),
            limit: u32::MAX as usize,
        })?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(closed)?;
        send.write_all(&Header::request(0, method.id(), format as u8, len).to_bytes()).await.map_err(closed)?;
        send.write_all(request).await.map_err(closed)?;
        send.finish().map_err(closed)?;
        let reply = read_all(&mut recv, frame::HEADER_LEN + frame::MAX_EXTENSION + self.max_message).await?;
        let (header, body_len) = frame::parse_datagram(&reply, self.max_message).map(|(h, b)| (h, b.len()))?;
        let start = header.wire_len();
        reply_result(&header, Bytes::from(reply).slice(start..start + body_len))
    }

    fn pick(&self) -> &Connection {
        &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()]
    }

    async fn stream_on<R>(
        &self,
        connection: &Connection,
        method: Method,
        format: FormatId,
        request: &[u8],
        replies: u32,
        mut on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        let len = frame::body_len(request.len()).ok_or(CallError::TooLarge {
            transport: "quic",
            size: request.len(),
            limit: u32::MAX as usize,
        })?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(closed)?;
        send.write_all(&Header::stream(0, method.id(), format as u8, len, replies).to_bytes()).await.map_err(closed)?;
        send.write_all(request).await.map_err(closed)?;
        send.finish().map_err(closed)?;
        let mut buf = BytesMut::new();
        let mut got = 0u32;
        while let Some((header, body)) = next_frame(&mut recv, &mut buf, self.max_message).await? {
            let body = reply_result(&header, body)?;
            if header.ext != Extension::Stream(got) || got >= replies {
                return Err(CallError::Protocol(format!("stream reply {:?} where reply {got} was due", header.ext)));
            }
            got += 1;
            if on_reply(body).is_break() {
                let _ = recv.stop(VarInt::from_u32(0));
                return Ok(got);
            }
        }
        if got < replies {
            return Err(CallError::Protocol(format!("the stream ended after {got} of {replies} replies")));
        }
        Ok(got)
    }
}

/// The next whole frame of a stream, reading as needed; `None` when the
/// peer finished the stream between frames.
async fn next_frame(
    recv: &mut RecvStream,
    buf: &mut BytesMut,
    max_message: usize,
) -> Result<Option<(Header, Bytes)>, CallError> {
    loop {
        if let Some(frame) = frame::take_frame(buf, max_message)? {
            return Ok(Some(frame));
        }
        match recv.read_chunk(usize::MAX, true).await.map_err(closed)? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None if buf.is_empty() => return Ok(None),
            None => return Err(CallError::Protocol(format!("the stream ended inside a frame ({} bytes)", buf.len()))),
        }
    }
}

/// Closes the connections at once, so the server does not keep them until
/// their idle timeout.
fn close(connections: &[Connection]) {
    for c in connections {
        c.close(VarInt::from_u32(0), b"done");
    }
}

impl Drop for QuicClient {
    fn drop(&mut self) {
        close(&self.connections);
    }
}

impl Drop for QuicRaw {
    fn drop(&mut self) {
        close(&self.connections);
    }
}

impl crate::Client for QuicClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        with_timeout(self.timeout, self.call_on(self.pick(), method, format, request)).await
    }

    fn counters(&self) -> Counters {
        counters_of(&self.connections)
    }

    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        let len = frame::body_len(request.len()).ok_or(CallError::TooLarge {
            transport: "quic",
            size: request.len(),
            limit: u32::MAX as usize,
        })?;
        let header = Header::oneway(meta.seq, method.id(), format as u8, len, meta.extension());
        let connection = self.pick();
        let send = async {
            let mut send = connection.open_uni().await.map_err(closed)?;
            send.write_all(&header.to_bytes()).await.map_err(closed)?;
            send.write_all(request).await.map_err(closed)?;
            send.finish().map_err(closed)
        };
        with_timeout(self.timeout, send).await
    }

    async fn call_stream<R>(
        &self,
        method: Method,
        format: FormatId,
        request: &[u8],
        replies: u32,
        on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        with_timeout(self.timeout, self.stream_on(self.pick(), method, format, request, replies, on_reply)).await
    }
}

/// The QUIC raw ping-pong client.
#[derive(Debug)]
pub struct QuicRaw {
    _endpoint: QuinnEndpoint,
    connections: Vec<Connection>,
    next: AtomicUsize,
    timeout: Duration,
    request: Bytes,
    reply: usize,
}

impl QuicRaw {
    async fn ping_on(&self, connection: &Connection) -> Result<(), CallError> {
        let (mut send, mut recv) = connection.open_bi().await.map_err(closed)?;
        send.write_chunk(self.request.clone()).await.map_err(closed)?;
        send.finish().map_err(closed)?;
        let reply = read_all(&mut recv, self.reply).await?;
        if reply.len() != self.reply {
            return Err(CallError::Protocol(format!("raw reply of {} bytes, expected {}", reply.len(), self.reply)));
        }
        Ok(())
    }
}

impl crate::RawClient for QuicRaw {
    async fn ping(&self) -> Result<(), CallError> {
        let connection = &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()];
        with_timeout(self.timeout, self.ping_on(connection)).await
    }

    fn counters(&self) -> Counters {
        counters_of(&self.connections)
    }
}

impl Transport for Quic {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "quinn",
        security: "TLS 1.3, certificate pinned",
        delivery: "reliable, ordered per stream",
        multiplexing: "one bidirectional QUIC stream per call",
        framing: "12-byte header per stream",
        wire_bytes: "UDP payload from quinn's connection statistics",
    };
    type Client = QuicClient;
    type Raw = QuicRaw;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<QuicClient, TransportError> {
        let (quinn, connections) = connect_all(endpoint, config, ALPN_RPC).await?;
        Ok(QuicClient {
            _endpoint: quinn,
            connections,
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            max_message: config.max_message,
        })
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<QuicRaw, TransportError> {
        if shape.request < 4 {
            return Err(TransportError::Config("quic: a raw request carries its reply length in 4 bytes".into()));
        }
        let reply =
            u32::try_from(shape.reply).map_err(|_| TransportError::Config("quic: raw reply over 4 GiB".into()))?;
        let mut request = vec![0x5a; shape.request];
        request[..4].copy_from_slice(&reply.to_be_bytes());
        let (quinn, connections) = connect_all(endpoint, config, ALPN_RAW).await?;
        Ok(QuicRaw {
            _endpoint: quinn,
            connections,
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            request: Bytes::from(request),
            reply: shape.reply,
        })
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let identity = Identity::generate().map_err(|e| TransportError::handshake(KIND, e))?;
        let tls = identity.server_config(&[ALPN_RPC, ALPN_RAW]).map_err(|e| TransportError::handshake(KIND, e))?;
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| TransportError::handshake(KIND, e))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(transport_config());
        let quinn =
            QuinnEndpoint::server(server_config, address).map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let local = quinn.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let mut endpoint = Endpoint::new(KIND, Address::Inet(local));
        endpoint.pin = Some(identity.pin());
        let handler = Handler::new(&config);
        Ok(Server::spawn(endpoint, move |mut shutdown, mut connections| async move {
            loop {
                tokio::select! {
                    incoming = quinn.accept() => {
                        let Some(incoming) = incoming else { return connections };
                        let (handler, shutdown) = (handler.clone(), shutdown.clone());
                        connections.spawn(async move {
                            let peer = incoming.remote_address();
                            if let Err(e) = serve_connection(incoming, handler, shutdown).await {
                                tracing::warn!("quic connection from {peer} closed: {e}");
                            }
                        });
                    }
                    () = shutdown.wait() => {
                        quinn.close(VarInt::from_u32(0), b"server shutting down");
                        return connections;
                    }
                }
                while connections.try_join_next().is_some() {}
            }
        }))
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handler: Arc<Handler>,
    mut shutdown: ShutdownSignal,
) -> Result<(), String> {
    let connection = incoming.await.map_err(|e| format!("handshake failed: {e}"))?;
    let raw = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|alpn| alpn == ALPN_RAW);
    loop {
        tokio::select! {
            // A fixed polling order: a call then runs the same instructions
            // every time (`wirebench instructions` counts them).
            biased;
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let served = if raw { serve_raw(send, recv, &handler).await } else { serve_stream(send, recv, &handler).await };
                        if let Err(e) = served {
                            tracing::warn!("quic stream failed: {e}");
                        }
                    });
                }
                Err(quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            },
            stream = connection.accept_uni() => match stream {
                Ok(mut recv) if raw => {
                    // The raw baseline has no oneway messages.
                    let _ = recv.stop(VarInt::from_u32(1));
                }
                Ok(recv) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_oneway(recv, &handler).await {
                            tracing::warn!("quic oneway stream failed: {e}");
                        }
                    });
                }
                Err(quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            },
            () = shutdown.wait() => {
                connection.close(VarInt::from_u32(0), b"server shutting down");
                return Ok(());
            }
        }
    }
}

thread_local! {
    // serve() never awaits, so a thread's scratch is never used by two
    // requests at once.
    static SCRATCH: std::cell::RefCell<ServerScratch> = std::cell::RefCell::new(ServerScratch::default());
}

/// Serves one oneway stream: one oneway frame, no reply.
async fn serve_oneway(mut recv: RecvStream, handler: &Handler) -> Result<(), String> {
    let request = match recv.read_to_end(frame::HEADER_LEN + frame::MAX_EXTENSION + handler.max_message).await {
        Ok(request) => request,
        Err(e) => {
            let _ = recv.stop(VarInt::from_u32(1));
            return Err(format!("oneway message not read: {e}"));
        }
    };
    let (header, body) = frame::parse_datagram(&request, handler.max_message).map_err(|e| e.to_string())?;
    let Extension::Oneway(oneway) = header.ext else {
        return Err(format!("a unidirectional stream carried {:?}, not a oneway message", header.ext));
    };
    handler.admit().await;
    let meta = OnewayMeta::from_frame(header.request_id, oneway);
    SCRATCH.with(|scratch| handler.oneway(&mut scratch.borrow_mut(), meta, header.call, header.format, body));
    Ok(())
}

/// Writes the replies of a stream request: the reply `replies` times (the
/// service answers once), or one error frame.
async fn serve_replies(
    send: &mut SendStream,
    handler: &Handler,
    header: &Header,
    body: &[u8],
    replies: u32,
) -> Result<(), String> {
    let reply = handler.check_replies(replies).and_then(|_| {
        SCRATCH.with(|scratch| {
            handler.handle(&mut scratch.borrow_mut(), header.call, header.format, body).map(Bytes::copy_from_slice)
        })
    });
    match reply {
        Ok(reply) => {
            for index in 0..replies {
                let head = Header::stream_reply(header, 0, reply.len() as u32, index);
                send.write_all(&head.to_bytes()).await.map_err(|e| e.to_string())?;
                send.write_chunk(reply.clone()).await.map_err(|e| e.to_string())?;
            }
        }
        Err(status) => write_status(send, header, &status).await?,
    }
    send.finish().map_err(|e| e.to_string())
}

async fn write_status(send: &mut SendStream, header: &Header, status: &Status) -> Result<(), String> {
    let message = status.message.as_bytes();
    let head = Header::stream_reply(header, status.code.value(), message.len() as u32, 0);
    send.write_all(&head.to_bytes()).await.map_err(|e| e.to_string())?;
    send.write_all(message).await.map_err(|e| e.to_string())
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream, handler: &Handler) -> Result<(), String> {
    let request = match recv.read_to_end(frame::HEADER_LEN + frame::MAX_EXTENSION + handler.max_message).await {
        Ok(request) => request,
        Err(e) => {
            // Over the limit or reset: refuse this stream, keep the connection.
            let _ = send.reset(VarInt::from_u32(1));
            return Err(format!("request not read: {e}"));
        }
    };
    // Every framing error resets the stream with code 1; the connection
    // and its other streams go on.
    let (header, body) = match frame::parse_datagram(&request, handler.max_message) {
        Ok(frame) if !frame.0.is_reply() => frame,
        Ok(_) => {
            let _ = send.reset(VarInt::from_u32(1));
            return Err("a reply frame was sent to the server".into());
        }
        Err(e) => {
            let _ = send.reset(VarInt::from_u32(1));
            return Err(e.to_string());
        }
    };
    handler.admit().await;
    match header.ext {
        Extension::None => {}
        Extension::Stream(replies) => return serve_replies(&mut send, handler, &header, body, replies).await,
        Extension::Oneway(_) | Extension::Publish { .. } => {
            let status = Status::new(Code::InvalidArgument, "a oneway message goes on a unidirectional stream");
            write_status(&mut send, &Header::request(header.request_id, header.call, header.format, 0), &status)
                .await?;
            return send.finish().map_err(|e| e.to_string());
        }
    }
    let reply = SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (status, body) = match handler.handle(&mut scratch, header.call, header.format, body) {
            Ok(reply) => (0, Cow::Borrowed(reply)),
            Err(status) => (status.code.value(), Cow::Owned(status.message.into_bytes())),
        };
        let mut out = Vec::with_capacity(frame::HEADER_LEN + body.len());
        Header::reply_to(&header, status, body.len() as u32).put(&mut out);
        out.extend_from_slice(&body);
        out
    });
    send.write_all(&reply).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())
}

async fn serve_raw(mut send: SendStream, mut recv: RecvStream, handler: &Handler) -> Result<(), String> {
    let refuse = |send: &mut SendStream, why: String| {
        let _ = send.reset(VarInt::from_u32(1));
        Err(why)
    };
    let request = match recv.read_to_end(handler.max_message).await {
        Ok(request) => request,
        Err(e) => return refuse(&mut send, format!("raw request not read: {e}")),
    };
    let Some(head) = request.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) else {
        return refuse(&mut send, format!("raw request of {} bytes, under 4", request.len()));
    };
    let reply = u32::from_be_bytes(head) as usize;
    if reply > handler.max_message {
        return refuse(&mut send, format!("raw reply of {reply} bytes asked for"));
    }
    send.write_all(&vec![0xa5; reply]).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())
}
