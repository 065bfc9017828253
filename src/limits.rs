//! Sizes the service refuses beyond, shared by the server's setup and the handlers.

/// The largest request body accepted anywhere (SPEC: bodies over 16 KiB get 413).
pub const BODY_LIMIT: usize = 16 * 1024;
