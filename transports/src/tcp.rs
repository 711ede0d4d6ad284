//! TCP: tokio, TCP_NODELAY, the frame of [`crate::frame`], many
//! calls in flight per connection, any number of connections.

use tokio::net::{TcpListener, TcpStream};

use crate::server::{Handler, Server, ServerConfig};
use crate::stream::{self, Listener, StreamClient, StreamRaw};
use crate::{Address, ClientConfig, Endpoint, RawShape, Transport, TransportError, TransportKind, TransportProperties};

/// TCP.
#[derive(Debug)]
pub struct Tcp;

const KIND: TransportKind = TransportKind::Tcp;

async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<Vec<TcpStream>, TransportError> {
    let address = endpoint.address.inet(KIND)?;
    stream::connect_all(KIND, &address.to_string(), config, || async move {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
    .await
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept(&self) -> std::io::Result<(TcpStream, String)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer.to_string()))
    }
}

impl Transport for Tcp {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "tokio",
        security: "none",
        delivery: "reliable, ordered",
        multiplexing: "many calls in flight per connection, matched by request id",
        framing: "12-byte header",
        wire_bytes: "exact (socket payload)",
    };
    type Client = StreamClient<TcpStream>;
    type Raw = StreamRaw<TcpStream>;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<Self::Client, TransportError> {
        let streams = connect(endpoint, config).await?;
        StreamClient::new(streams, config).await.map_err(|e| TransportError::io(KIND, "greet", &endpoint.address, e))
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<Self::Raw, TransportError> {
        let streams = connect(endpoint, config).await?;
        StreamRaw::new(streams, config, shape)
            .await
            .map_err(|e| TransportError::io(KIND, "greet", &endpoint.address, e))
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let address = listen.inet(KIND)?;
        let listener = TcpListener::bind(address).await.map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let local = listener.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let handler = Handler::new(&config);
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |shutdown, set| {
            stream::accept_loop(KIND, listener, handler, shutdown, set)
        }))
    }
}
