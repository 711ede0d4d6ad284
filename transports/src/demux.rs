//! Matches replies to waiting calls by id, for every transport that
//! multiplexes calls over one read side (tcp, unix, udp).
//!
//! There is no reader task. A caller waiting for its reply takes the read
//! side when it is free and reads until its own reply arrives, handing the
//! others to their callers through oneshot channels; then it lets go and
//! another waiter takes over. At one call in flight the caller reads its
//! own reply, with no task hop between the socket and the caller.
//!
//! A stream call (mode `stream`) registers once and receives many frames
//! under its id, in order, until it ends; it reads for everyone the same
//! way while it waits. [`gather`] checks a stream's frames the same way
//! for every transport and broker that carries streams, whatever their
//! frames come from ([`StreamSource`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::{CallError, LiveCounters};

/// The read side of a connection: yields replies as they arrive.
pub(crate) trait Incoming: Send + 'static {
    /// The next reply. Must be cancel-safe: a call that times out while
    /// reading must leave the stream readable.
    fn next(&mut self, counters: &LiveCounters) -> impl Future<Output = Result<Arrived, CallError>> + Send;
}

/// A reply's outcome as the wire gave it.
pub(crate) type Reply = Result<Bytes, CallError>;

/// One reply frame off the wire.
#[derive(Debug)]
pub(crate) struct Arrived {
    /// The request id it answers.
    pub(crate) id: u32,
    /// A stream reply's index.
    pub(crate) index: Option<u32>,
    /// Its outcome.
    pub(crate) reply: Reply,
}

impl Arrived {
    /// A reply that is not part of a stream.
    pub(crate) fn single(id: u32, reply: Reply) -> Arrived {
        Arrived { id, index: None, reply }
    }
}

/// A stream reply: its index (if the frame carried one) and outcome.
pub(crate) type StreamItem = (Option<u32>, Reply);

/// Who waits for the frames of an id.
#[derive(Debug)]
pub(crate) enum Slot {
    /// One reply.
    Call(oneshot::Sender<Reply>),
    /// Every frame until the stream ends; the waiter forgets the id.
    Stream(tokio::sync::mpsc::UnboundedSender<StreamItem>),
}

impl Slot {
    /// Tells the waiter its call failed with `error`.
    pub(crate) fn fail(self, error: CallError) {
        match self {
            Slot::Call(tx) => {
                let _ = tx.send(Err(error));
            }
            Slot::Stream(tx) => {
                let _ = tx.send((None, Err(error)));
            }
        }
    }
}

/// Hands a frame to whoever in `pending` waits for its id; `false` if
/// no one does (a late or unknown reply, for the caller to count).
pub(crate) fn dispatch_to(pending: &mut HashMap<u32, Slot>, arrived: Arrived) -> bool {
    match pending.get(&arrived.id) {
        Some(Slot::Call(_)) => {
            if let Some(Slot::Call(tx)) = pending.remove(&arrived.id) {
                let _ = tx.send(arrived.reply);
            }
            true
        }
        Some(Slot::Stream(tx)) => tx.send((arrived.index, arrived.reply)).is_ok(),
        None => false,
    }
}

/// Where the frames of one stream call come from, in arrival order: a
/// demultiplexed connection, or a reply subscription of its own.
pub(crate) trait StreamSource: Send {
    /// The next frame: its index, if it carried one, and its outcome.
    fn next_item(&mut self) -> impl Future<Output = StreamItem> + Send;

    /// Called when a frame came out of order, before the call fails; a
    /// connection whose frames are ordered breaks here.
    fn disordered(&mut self, error: &CallError) {
        let _ = error;
    }
}

/// Reads the `replies` frames of one stream call from `source`, each
/// body to `on_reply` in order: indices 0 to `replies - 1`, each once;
/// an error frame ends the call with its error (a refused stream is one
/// error frame); a frame out of order, or one too many, is a protocol
/// error. `Break` abandons the stream. The replies delivered.
pub(crate) async fn gather<S, R>(source: &mut S, replies: u32, mut on_reply: R) -> Result<u32, CallError>
where
    S: StreamSource,
    R: FnMut(Bytes) -> std::ops::ControlFlow<()> + Send,
{
    let mut got = 0u32;
    // A stream of no replies is refused by the server: its error frame is
    // still read.
    while got < replies.max(1) {
        let (index, reply) = source.next_item().await;
        let body = reply?;
        if index != Some(got) || got == replies {
            let e = CallError::Protocol(format!("stream reply {index:?} where reply {got} was due"));
            source.disordered(&e);
            return Err(e);
        }
        got += 1;
        if on_reply(body).is_break() {
            break;
        }
    }
    Ok(got)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder
    // panicked; carry on rather than poison every later call.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pending calls and the shared read side.
#[derive(Debug)]
pub(crate) struct Demux<R> {
    reader: tokio::sync::Mutex<R>,
    pending: Mutex<HashMap<u32, Slot>>,
    broken: Mutex<Option<CallError>>,
    pub(crate) counters: Arc<LiveCounters>,
}

/// A registered call; dropping it (after the reply, or on a timeout)
/// forgets the call, so a reply arriving later is counted as late.
pub(crate) struct Waiter<'a, R> {
    demux: &'a Demux<R>,
    id: u32,
    rx: oneshot::Receiver<Reply>,
}

impl<R> Drop for Waiter<'_, R> {
    fn drop(&mut self) {
        lock(&self.demux.pending).remove(&self.id);
    }
}

/// A registered stream call; dropping it forgets the id, so frames
/// arriving later are counted as late.
pub(crate) struct StreamWaiter<'a, R> {
    demux: &'a Demux<R>,
    id: u32,
    rx: tokio::sync::mpsc::UnboundedReceiver<StreamItem>,
}

impl<R> Drop for StreamWaiter<'_, R> {
    fn drop(&mut self) {
        lock(&self.demux.pending).remove(&self.id);
    }
}

/// A stream call's frames off its demultiplexed connection; a frame out
/// of order breaks the connection (its frames are ordered, so the rest
/// cannot be trusted).
impl<R: Incoming> StreamSource for StreamWaiter<'_, R> {
    async fn next_item(&mut self) -> StreamItem {
        let demux = self.demux;
        demux.next_of(self).await
    }

    fn disordered(&mut self, error: &CallError) {
        self.demux.fail(error.clone());
    }
}

impl<R: Incoming> Demux<R> {
    pub(crate) fn new(reader: R, counters: Arc<LiveCounters>) -> Demux<R> {
        Demux {
            reader: tokio::sync::Mutex::new(reader),
            pending: Mutex::new(HashMap::new()),
            broken: Mutex::new(None),
            counters,
        }
    }

    /// Registers call `id` before its request is sent.
    pub(crate) fn register(&self, id: u32) -> Result<Waiter<'_, R>, CallError> {
        if let Some(e) = self.broken() {
            return Err(e);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, Slot::Call(tx));
        Ok(Waiter { demux: self, id, rx })
    }

    /// Registers stream call `id` before its request is sent.
    pub(crate) fn register_stream(&self, id: u32) -> Result<StreamWaiter<'_, R>, CallError> {
        if let Some(e) = self.broken() {
            return Err(e);
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        lock(&self.pending).insert(id, Slot::Stream(tx));
        Ok(StreamWaiter { demux: self, id, rx })
    }

    /// A stream call `id`: registered, then `send` (its request) awaited,
    /// then its `replies` frames read by [`gather`].
    pub(crate) async fn call_stream<F>(
        &self,
        id: u32,
        send: impl Future<Output = Result<(), CallError>>,
        replies: u32,
        on_reply: F,
    ) -> Result<u32, CallError>
    where
        F: FnMut(Bytes) -> std::ops::ControlFlow<()> + Send,
    {
        let mut waiter = self.register_stream(id)?;
        send.await?;
        gather(&mut waiter, replies, on_reply).await
    }

    /// Hands a frame to whoever waits for its id.
    fn dispatch(&self, arrived: Arrived) {
        if !dispatch_to(&mut lock(&self.pending), arrived) {
            self.counters.late();
        }
    }

    /// The error that broke the connection, if one did.
    pub(crate) fn broken(&self) -> Option<CallError> {
        lock(&self.broken).clone()
    }

    /// Fails every pending and later call with `error`.
    pub(crate) fn fail(&self, error: CallError) {
        lock(&self.broken).get_or_insert_with(|| error.clone());
        for (_, slot) in lock(&self.pending).drain() {
            slot.fail(error.clone());
        }
    }

    /// Waits for the reply of `waiter`, reading for everyone while the
    /// read side is free.
    pub(crate) async fn wait(&self, mut waiter: Waiter<'_, R>) -> Reply {
        let closed = || CallError::Closed("the connection failed".into());
        tokio::select! {
            biased;
            reply = &mut waiter.rx => reply.unwrap_or_else(|_| Err(self.broken().unwrap_or_else(closed))),
            mut reader = self.reader.lock() => {
                // The previous reader may have delivered our reply between
                // our wake-up and taking the lock.
                if let Ok(reply) = waiter.rx.try_recv() {
                    return reply;
                }
                if let Some(e) = self.broken() {
                    return Err(e);
                }
                loop {
                    let arrived = match reader.next(&self.counters).await {
                        Ok(next) => next,
                        Err(e) => {
                            self.fail(e.clone());
                            return Err(e);
                        }
                    };
                    if arrived.id == waiter.id {
                        return arrived.reply;
                    }
                    self.dispatch(arrived);
                }
            }
        }
    }

    /// Waits for the next frame of a stream call, reading for everyone
    /// while the read side is free.
    pub(crate) async fn next_of(&self, waiter: &mut StreamWaiter<'_, R>) -> StreamItem {
        let closed = || CallError::Closed("the connection failed".into());
        tokio::select! {
            biased;
            item = waiter.rx.recv() => item.unwrap_or_else(|| (None, Err(self.broken().unwrap_or_else(closed)))),
            mut reader = self.reader.lock() => {
                if let Ok(item) = waiter.rx.try_recv() {
                    return item;
                }
                if let Some(e) = self.broken() {
                    return (None, Err(e));
                }
                loop {
                    let arrived = match reader.next(&self.counters).await {
                        Ok(next) => next,
                        Err(e) => {
                            self.fail(e.clone());
                            return (None, Err(e));
                        }
                    };
                    if arrived.id == waiter.id {
                        return (arrived.index, arrived.reply);
                    }
                    self.dispatch(arrived);
                }
            }
        }
    }
}
