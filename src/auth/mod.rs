//! Signing in and out, refreshing, revoking, and the guard that checks access tokens.

pub mod flows;
pub mod guard;

pub use guard::{Admin, AnyRole, Auth, Identity};
