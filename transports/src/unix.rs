//! Unix domain sockets: tcp's framing over a local stream socket.

use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::server::{Handler, Server, ServerConfig};
use crate::stream::{self, Listener, StreamClient, StreamRaw};
use crate::{Address, ClientConfig, Endpoint, RawShape, Transport, TransportError, TransportKind, TransportProperties};

/// Unix domain sockets.
#[derive(Debug)]
pub struct Unix;

const KIND: TransportKind = TransportKind::Unix;

fn path(address: &Address) -> Result<&Path, TransportError> {
    match address {
        Address::Unix(path) => Ok(path),
        other => Err(TransportError::Config(format!("unix needs a socket path, not {other}"))),
    }
}

async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<Vec<UnixStream>, TransportError> {
    let path = path(&endpoint.address)?.to_owned();
    stream::connect_all(KIND, &path.display().to_string(), config, || UnixStream::connect(&path)).await
}

/// A listener that removes its socket file when dropped.
#[derive(Debug)]
struct OwnedListener {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for OwnedListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener for OwnedListener {
    type Stream = UnixStream;
    async fn accept(&self) -> std::io::Result<(UnixStream, String)> {
        let (stream, _) = self.listener.accept().await?;
        Ok((stream, self.path.display().to_string()))
    }
}

impl Transport for Unix {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "tokio",
        security: "none (local only)",
        delivery: "reliable, ordered",
        multiplexing: "many calls in flight per connection, matched by request id",
        framing: "12-byte header",
        wire_bytes: "exact (socket payload)",
    };
    type Client = StreamClient<UnixStream>;
    type Raw = StreamRaw<UnixStream>;

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

    /// Binds `listen`; a leftover socket file from a dead server is
    /// replaced, a live one is an error.
    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let path = path(listen)?.to_owned();
        if path.exists() && UnixStream::connect(&path).await.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        let listener = UnixListener::bind(&path).map_err(|e| TransportError::io(KIND, "bind", path.display(), e))?;
        let handler = Handler::new(&config);
        let endpoint = Endpoint::new(KIND, Address::Unix(path.clone()));
        let listener = OwnedListener { listener, path };
        Ok(Server::spawn(endpoint, move |shutdown, set| stream::accept_loop(KIND, listener, handler, shutdown, set)))
    }
}
