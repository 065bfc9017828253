//! latchkey: a self-hosted sign-in service. The binary in `main.rs` only calls `cli::run`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod db;
pub mod domain;
pub mod error;
pub mod housekeeping;
pub mod limits;
pub mod metrics;
pub mod mfa;
pub mod next_path;
pub mod notices;
pub mod origin;
pub mod pages;
pub mod passwords;
pub mod request_id;
pub mod revocation;
pub mod schema;
pub mod startup;
pub mod state;
pub mod store;
pub mod tokens;
