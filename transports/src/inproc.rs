//! In-process: no socket at all. The client calls the server's handler
//! directly, so a cell over inproc measures the codec and the service
//! alone: the floor under every real transport. Server CPU is the
//! client's. A oneway message is a call to the handler's oneway path;
//! with no wire, there is nothing to stream over or publish to.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use wirebench_formats::{FormatId, Method, ServerScratch};

use crate::mode::OnewayMeta;
use crate::server::{Handler, Server, ServerConfig};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, RawShape, Transport, TransportError, TransportKind,
    TransportProperties,
};

const KIND: TransportKind = TransportKind::Inproc;

/// In-process.
#[derive(Debug)]
pub struct Inproc;

thread_local! {
    // handle() never awaits, so a thread's scratch is never used by two
    // calls at once.
    static SCRATCH: std::cell::RefCell<ServerScratch> = std::cell::RefCell::new(ServerScratch::default());
}

fn handler(endpoint: &Endpoint) -> Result<Arc<Handler>, TransportError> {
    endpoint.inproc.clone().ok_or_else(|| {
        TransportError::Config("inproc has no address: it runs in the client's process (use --in-process)".into())
    })
}

/// The in-process client.
#[derive(Debug)]
pub struct InprocClient {
    handler: Arc<Handler>,
}

impl crate::Client for InprocClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        self.handler.admit().await;
        // The reply leaves the server's scratch as a transport would hand
        // it over: in a buffer of its own.
        SCRATCH
            .with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                self.handler.handle(&mut scratch, method.id(), format as u8, request).map(Bytes::copy_from_slice)
            })
            .map_err(CallError::Status)
    }

    fn counters(&self) -> Counters {
        Counters::default()
    }

    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        self.handler.admit().await;
        SCRATCH.with(|scratch| {
            self.handler.oneway(&mut scratch.borrow_mut(), meta, method.id(), format as u8, request);
        });
        Ok(())
    }
}

impl InprocClient {
    /// The handler the client calls (its oneway count is read directly).
    pub fn handler(&self) -> &Handler {
        &self.handler
    }
}

/// The in-process raw baseline: the request is read and a reply of the
/// asked size is produced, as a copy.
#[derive(Debug)]
pub struct InprocRaw {
    request: Vec<u8>,
    reply: Bytes,
}

impl crate::RawClient for InprocRaw {
    fn ping(&self) -> impl Future<Output = Result<(), CallError>> + Send {
        std::hint::black_box(&self.request);
        let reply = Bytes::copy_from_slice(&self.reply);
        std::hint::black_box(reply);
        std::future::ready(Ok(()))
    }

    fn counters(&self) -> Counters {
        Counters::default()
    }
}

impl Transport for Inproc {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "none",
        security: "none",
        delivery: "a function call",
        multiplexing: "n/a",
        framing: "none",
        wire_bytes: "0 (no wire)",
    };
    type Client = InprocClient;
    type Raw = InprocRaw;

    async fn connect(endpoint: &Endpoint, _config: &ClientConfig) -> Result<InprocClient, TransportError> {
        Ok(InprocClient { handler: handler(endpoint)? })
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        _config: &ClientConfig,
        shape: RawShape,
    ) -> Result<InprocRaw, TransportError> {
        handler(endpoint)?;
        Ok(InprocRaw { request: vec![0x5a; shape.request], reply: Bytes::from(vec![0xa5; shape.reply]) })
    }

    async fn serve(_listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        let mut endpoint = Endpoint::new(KIND, Address::InProc);
        endpoint.inproc = Some(Handler::new(&config));
        Ok(Server::spawn(endpoint, |mut shutdown, set| async move {
            shutdown.wait().await;
            set
        }))
    }
}
