//! Types the database stores as plain columns: newtypes over `i64` (ids and instants) as
//! `BIGINT`, enums (roles, event kinds) as `TEXT`. The macros
//! give a type diesel's `AsExpression` (so it binds where its column is compared or
//! set) and `FromSql` (so a row loads it), on SQLite and PostgreSQL alike, through the
//! value inside.

/// Maps `$name(i64)` (derived with `AsExpression` and `FromSqlRow` for
/// `sql_type = BigInt`) onto `BIGINT` on every backend.
macro_rules! bigint_newtype {
    ($name:ident) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <i64 as diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>>::to_sql(
                    &self.0, out,
                )
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                <i64 as diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>>::from_sql(
                    bytes,
                )
                .map($name)
            }
        }
    };
}

pub(crate) use bigint_newtype;

/// Maps an enum stored as `TEXT` (derived with `AsExpression`, and `FromSqlRow` when it
/// is read, for `sql_type = Text`) onto every backend: written as its `as_str()`, and read
/// back with `$read`, a `fn(&str) -> Result<Self, String>`, when one is given.
macro_rules! text_enum {
    ($name:ident) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }
    };
    ($name:ident, $read:expr) => {
        crate::sql_types::text_enum!($name);

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text =
                    <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(
                        bytes,
                    )?;
                let read: fn(&str) -> Result<$name, String> = $read;
                read(&text).map_err(Into::into)
            }
        }
    };
}

pub(crate) use text_enum;
