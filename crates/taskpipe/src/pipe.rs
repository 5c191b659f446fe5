//! A bounded channel for one sender and one receiver, its queue a ring of `N` slots held by the
//! [`Pipe`] itself.
//!
//! The pipe lives where the caller puts it (for the proxy, in the frame of the future that joins
//! the two halves); [`Pipe::split`] lends it out as a [`Sender`] and a [`Receiver`]. Capacity
//! counts queued values and outstanding [`Permit`]s, as in tokio's `mpsc`. Each side keeps at
//! most one waker (there is one sender and one receiver), woken once when what it waits for
//! happens: a value or the sender's end for the receiver; room or the receiver's end for the
//! sender.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The channel's storage: split it into its two ends with [`Pipe::split`].
pub struct Pipe<T, const N: usize> {
    state: Mutex<State<T, N>>,
}

struct State<T, const N: usize> {
    /// The ring: `len` values from `head`, wrapping at `N`.
    slots: [Option<T>; N],
    head: usize,
    len: usize,
    /// Slots promised to outstanding permits.
    reserved: usize,
    sender_alive: bool,
    receiver_alive: bool,
    /// The receiver, waiting for a value or the sender's end.
    receiver_waker: Option<Waker>,
    /// The sender, waiting for room or the receiver's end.
    sender_waker: Option<Waker>,
}

impl<T, const N: usize> State<T, N> {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| None),
            head: 0,
            len: 0,
            reserved: 0,
            sender_alive: true,
            receiver_alive: true,
            receiver_waker: None,
            sender_waker: None,
        }
    }

    fn has_room(&self) -> bool {
        self.len + self.reserved < N
    }

    fn push(&mut self, value: T) {
        debug_assert!(self.len < N, "a push past the pipe's capacity");
        let tail = (self.head + self.len) % N;
        self.slots[tail] = Some(value);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.slots[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        value
    }
}

/// Keeps `waker` in `slot` unless the one there already wakes the same task.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(kept) if kept.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Wakes a taken waker, if there was one (called with the lock released).
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T, const N: usize> Default for Pipe<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Pipe<T, N> {
    /// An empty pipe of `N` slots (`N` ≥ 1).
    pub fn new() -> Self {
        assert!(N > 0, "a pipe needs at least one slot");
        Self {
            state: Mutex::new(State::new()),
        }
    }

    /// The pipe's two ends. Taking `&mut self` keeps it to one pair at a time; splitting again
    /// once both are gone starts from an empty, open pipe.
    pub fn split(&mut self) -> (Sender<'_, T, N>, Receiver<'_, T, N>) {
        *self.state.get_mut().unwrap_or_else(|e| e.into_inner()) = State::new();
        let pipe = &*self;
        (Sender { pipe }, Receiver { pipe })
    }

    fn lock(&self) -> MutexGuard<'_, State<T, N>> {
        // A panic while the lock was held left the ring consistent (every step that changes it
        // cannot panic), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending end; dropping it ends the receiver's stream once the queue is drained.
pub struct Sender<'a, T, const N: usize> {
    pipe: &'a Pipe<T, N>,
}

/// The receiving end; dropping it drops what is queued and fails every later send.
pub struct Receiver<'a, T, const N: usize> {
    pipe: &'a Pipe<T, N>,
}

/// A slot reserved by [`Sender::reserve`] or [`Sender::try_reserve`]: [`Permit::send`] fills it
/// without waiting; dropping the permit gives the slot back.
pub struct Permit<'s, T, const N: usize> {
    pipe: &'s Pipe<T, N>,
}

/// A send to a pipe whose receiver is gone; holds the value that was not sent.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_reserve`] gave no permit.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// Every slot is queued or reserved.
    Full,
    /// The receiver is gone.
    Closed,
}

/// Why [`Receiver::try_recv`] gave no value.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued; the sender may still send.
    Empty,
    /// Nothing is queued and the sender is gone.
    Disconnected,
}

impl<'a, T, const N: usize> Sender<'a, T, N> {
    /// Queues `value`, waiting for room. Fails, handing `value` back, once the receiver is gone.
    /// Cancel-safe: dropped before it completes, it has queued nothing.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(SendError(())) => Err(SendError(value)),
        }
    }

    /// Reserves a slot, waiting for room. Fails once the receiver is gone. Cancel-safe:
    /// dropped before it completes, it has reserved nothing.
    pub async fn reserve(&self) -> Result<Permit<'_, T, N>, SendError<()>> {
        poll_fn(|cx| self.poll_reserve(Some(cx))).await
    }

    /// Reserves a slot if one is free now.
    pub fn try_reserve(&self) -> Result<Permit<'_, T, N>, TrySendError> {
        match self.poll_reserve(None) {
            Poll::Ready(Ok(permit)) => Ok(permit),
            Poll::Ready(Err(SendError(()))) => Err(TrySendError::Closed),
            Poll::Pending => Err(TrySendError::Full),
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.pipe.lock().receiver_alive
    }

    fn poll_reserve(
        &self,
        cx: Option<&mut Context<'_>>,
    ) -> Poll<Result<Permit<'_, T, N>, SendError<()>>> {
        let mut state = self.pipe.lock();
        if !state.receiver_alive {
            return Poll::Ready(Err(SendError(())));
        }
        if !state.has_room() {
            if let Some(cx) = cx {
                register(&mut state.sender_waker, cx.waker());
            }
            return Poll::Pending;
        }
        state.reserved += 1;
        Poll::Ready(Ok(Permit { pipe: self.pipe }))
    }
}

impl<T, const N: usize> Drop for Sender<'_, T, N> {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        state.sender_alive = false;
        state.sender_waker = None;
        let receiver = state.receiver_waker.take();
        drop(state);
        wake(receiver);
    }
}

impl<T, const N: usize> Permit<'_, T, N> {
    /// Fills the reserved slot with `value`. With the receiver gone, `value` is dropped (as
    /// tokio's permit does: nothing will read it).
    pub fn send(self, value: T) {
        let pipe = self.pipe;
        // The slot is filled here, not given back by `Drop`.
        std::mem::forget(self);
        let mut state = pipe.lock();
        state.reserved -= 1;
        if !state.receiver_alive {
            drop(state);
            drop(value);
            return;
        }
        state.push(value);
        let receiver = state.receiver_waker.take();
        drop(state);
        wake(receiver);
    }
}

impl<T, const N: usize> Drop for Permit<'_, T, N> {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        state.reserved -= 1;
        let sender = state.sender_waker.take();
        drop(state);
        wake(sender);
    }
}

impl<T, const N: usize> Receiver<'_, T, N> {
    /// The next value, waiting for one; `None` once the sender is gone and the queue is empty.
    /// Cancel-safe: dropped before it completes, it has taken nothing.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_take(Some(cx))).await
    }

    /// The next value if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.poll_take(None) {
            Poll::Ready(Some(value)) => Ok(value),
            Poll::Ready(None) => Err(TryRecvError::Disconnected),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    fn poll_take(&self, cx: Option<&mut Context<'_>>) -> Poll<Option<T>> {
        let mut state = self.pipe.lock();
        match state.pop() {
            Some(value) => {
                let sender = state.sender_waker.take();
                drop(state);
                wake(sender);
                Poll::Ready(Some(value))
            }
            None if !state.sender_alive => Poll::Ready(None),
            None => {
                if let Some(cx) = cx {
                    register(&mut state.receiver_waker, cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl<T, const N: usize> Drop for Receiver<'_, T, N> {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        state.receiver_alive = false;
        state.receiver_waker = None;
        // (Collecting nothing allocates nothing.)
        let queued: Vec<T> = std::iter::from_fn(|| state.pop()).collect();
        let sender = state.sender_waker.take();
        drop(state);
        // Dropped with the lock released: a value's own drop may take time.
        drop(queued);
        wake(sender);
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task pipe closed: the receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full => "task pipe full",
            TrySendError::Closed => "task pipe closed: the receiver is gone",
        })
    }
}

impl std::error::Error for TrySendError {}

impl<T, const N: usize> fmt::Debug for Permit<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit { .. }")
    }
}
