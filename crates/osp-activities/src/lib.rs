//! OSP database side: the SQL schema and its migrator, and (with the workflows) the
//! activities that read and write PostgreSQL through tokio-postgres.

pub mod migrate;

pub use migrate::{MIGRATIONS, MigrateError, Migration, MigrationReport, migrate};
