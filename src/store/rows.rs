//! The user row, read by the user changes (`users`) and by the sign-ins that start a
//! session against it (`sessions`): here, below both, so that neither imports the other
//! for it. `users` changes sessions (a demotion revokes them); sessions never call users.

use diesel::prelude::*;

use crate::clock::Millis;
use crate::domain::{Role, UserId};
use crate::schema::users;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Millis,
}
