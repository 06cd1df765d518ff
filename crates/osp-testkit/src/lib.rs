//! OSP testkit: a real throwaway PostgreSQL, a transaction-mode PgBouncer in front of it and a
//! Temporal dev server, each on free ports, for integration tests and the demo; and, on top of
//! them, a harness for workflow tests (see `docs/testing.md`): one environment per test
//! binary, a fresh database and task queue per test, a worker in the test with real or
//! replacement activities, per-workflow time skipping, deadlines everywhere, failure at the
//! first failed workflow task, event-chain diffs, history recording and replay.

mod activities;
mod artifacts;
pub mod bench;
mod chain;
pub mod demo;
mod env;
mod error;
mod history;
pub mod process;
mod protojson;
mod replay;
pub mod scenario;
mod time;
mod watchdog;
mod worker;
mod workflow;

pub use activities::{Calls, Replaced, Replacement, non_retryable, retryable};
pub use artifacts::artifacts_dir;
pub use chain::{ChainMismatch, StoredEvent, chain_diff, stream_events, wait_for_chain};
pub use env::{DEFAULT_DEADLINE, PlatformBuilder, TestEnv, test_env};
pub use error::TestError;
pub use history::{HistoryFormat, RecordedHistory};
pub use osp_stack::{
    PgBouncer, Postgres, Stack, StackError, TemporalDevServer, TemporalOptions, temporal_cli,
};
pub use process::{OspProcess, ProcessError, osp_binary};
pub use replay::{ReplayFailureKind, ReplayMismatch, Replayer};
pub use worker::{TestWorker, TestWorkerBuilder};
pub use workflow::{TestWorkflow, WorkflowFailure};
