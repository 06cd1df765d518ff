//! OSP database side: the SQL schema and its migrator, and the activities that read and
//! write PostgreSQL (pooler-safe), call DNS and email providers and run the deployer.

pub mod db;
pub mod deployer;
pub mod dns;
pub mod email;
pub mod errors;
pub mod events;
pub mod jobs;
pub mod migrate;
pub mod queries;
// The SDK's `#[activities]` macro generates marker structs without Debug.
#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
mod platform;

pub use migrate::{MIGRATIONS, MigrateError, Migration, MigrationReport, migrate};
pub use platform::PlatformActivities;
