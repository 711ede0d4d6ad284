//! Matches replies to waiting calls by id, for every transport that
//! multiplexes calls over one read side (tcp, unix, udp).
//!
//! There is no reader task. A caller waiting for its reply takes the read
//! side when it is free and reads until its own reply arrives, handing the
//! others to their callers through oneshot channels; then it lets go and
//! another waiter takes over. At one call in flight the caller reads its
//! own reply, with no task hop between the socket and the caller.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::{CallError, LiveCounters};

/// The read side of a connection: yields replies as they arrive.
pub(crate) trait Incoming: Send + 'static {
    /// The next reply's id and outcome. Must be cancel-safe: a call that
    /// times out while reading must leave the stream readable.
    fn next(&mut self, counters: &LiveCounters) -> impl Future<Output = Result<(u32, Reply), CallError>> + Send;
}

/// A reply's outcome as the wire gave it.
pub(crate) type Reply = Result<Bytes, CallError>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder
    // panicked; carry on rather than poison every later call.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pending calls and the shared read side.
#[derive(Debug)]
pub(crate) struct Demux<R> {
    reader: tokio::sync::Mutex<R>,
    pending: Mutex<HashMap<u32, oneshot::Sender<Reply>>>,
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
        lock(&self.pending).insert(id, tx);
        Ok(Waiter { demux: self, id, rx })
    }

    /// The error that broke the connection, if one did.
    pub(crate) fn broken(&self) -> Option<CallError> {
        lock(&self.broken).clone()
    }

    /// Fails every pending and later call with `error`.
    pub(crate) fn fail(&self, error: CallError) {
        lock(&self.broken).get_or_insert_with(|| error.clone());
        for (_, tx) in lock(&self.pending).drain() {
            let _ = tx.send(Err(error.clone()));
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
                    let (id, reply) = match reader.next(&self.counters).await {
                        Ok(next) => next,
                        Err(e) => {
                            self.fail(e.clone());
                            return Err(e);
                        }
                    };
                    if id == waiter.id {
                        return reply;
                    }
                    match lock(&self.pending).remove(&id) {
                        Some(tx) => {
                            let _ = tx.send(reply);
                        }
                        None => self.counters.late(),
                    }
                }
            }
        }
    }
}
