//! # metalgate-taskpipe — the task pipe between the two halves of a proxied request
//!
//! Pingora's HTTP/1 proxy runs each request as two halves joined in one task (client side and
//! backend side) that pass `HttpTask`s through two bounded tokio `mpsc` channels of four. Tokio's
//! channel is built for many senders across tasks: each one is two allocations (the shared
//! block list and its `Arc`), a semaphore, and atomics on every send and receive; per proxied
//! request that was ~3 300 instructions, 4.8 % of the bare proxy. This crate is the same
//! surface for one sender and one receiver: the queue is a fixed ring inside a [`Pipe`] that the
//! caller keeps in its own frame (no allocation), behind one uncontended mutex.
//!
//! - [`pipe`]: [`Pipe`], split into a [`Sender`] and a [`Receiver`] that borrow it; `send`,
//!   `reserve` → [`Permit`], `try_reserve`, `is_closed`, `recv`, `try_recv`, with tokio's
//!   cancel-safety (a `send`, `reserve` or `recv` future dropped before it completes has sent,
//!   reserved or taken nothing) and close semantics (a dropped receiver fails sends and returns
//!   their value; a dropped sender ends `recv` once the queue is drained).
#![forbid(unsafe_code)]

pub mod pipe;

pub use pipe::{Permit, Pipe, Receiver, SendError, Sender, TryRecvError, TrySendError};
