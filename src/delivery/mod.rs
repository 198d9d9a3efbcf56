//! Delivery: the messages notifications carry on each channel (`message`), and the worker that
//! sends the outbox (`worker`). What a channel's settings are is in [`crate::channel`].

pub mod message;
pub mod worker;
