//! OSP testkit: a real throwaway PostgreSQL, a transaction-mode PgBouncer in front of it and a
//! Temporal dev server, each on free ports, for integration tests and the demo.

pub mod demo;
pub mod process;
mod stack;

pub use process::{OspProcess, ProcessError, osp_binary};
pub use stack::{PgBouncer, Postgres, Stack, StackError, TemporalDevServer, TemporalOptions};
