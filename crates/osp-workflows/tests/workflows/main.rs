//! The workflows' integration tests, in one binary so they share one environment (one dev
//! server, one PostgreSQL) and one link: each workflow end to end with the real activities,
//! directly and through PgBouncer; bad input; compensation; started by the `temporal` CLI;
//! and replay of the recorded histories.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test loudly")]
// The crate's clippy.toml bans I/O, sleeps and spawns in workflow code; the tests run beside
// the workflows, not in them.
#![allow(clippy::disallowed_methods)]

mod bootstrap;
mod common;
mod create_service;
mod deploy_worker;
mod replay;
