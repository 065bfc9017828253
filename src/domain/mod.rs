//! Validated values: raw strings stop at the edge of the program.

mod ids;
pub mod listing;
mod password;
mod role;
mod username;

pub use ids::{as_number, EventId, PasskeyId, SessionId, UserId};
pub use password::Password;
pub use role::Role;
pub use username::Username;
