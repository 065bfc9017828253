//! Secrets shared by every instance on this database, made once by the first to ask.

use diesel::prelude::*;

use super::{Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::app_secrets;

/// The secret called `name`; if there is none yet, `fresh` becomes it. Two instances
/// starting at once both end up with whichever insert came first.
pub fn get_or_create(
    conn: &mut Conn,
    now: Millis,
    name: &str,
    fresh: &[u8],
) -> Result<Vec<u8>, StoreError> {
    diesel::insert_into(app_secrets::table)
        .values((
            app_secrets::name.eq(name),
            app_secrets::value.eq(fresh),
            app_secrets::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .run(conn)?;
    Ok(app_secrets::table
        .find(name)
        .select(app_secrets::value)
        .one(conn)?)
}

/// Sets the secret called `name` to `value`, whatever it was.
pub fn replace(conn: &mut Conn, now: Millis, name: &str, value: &[u8]) -> Result<(), StoreError> {
    diesel::delete(app_secrets::table.find(name)).run(conn)?;
    diesel::insert_into(app_secrets::table)
        .values((
            app_secrets::name.eq(name),
            app_secrets::value.eq(value),
            app_secrets::created_at.eq(now),
        ))
        .run(conn)?;
    Ok(())
}
