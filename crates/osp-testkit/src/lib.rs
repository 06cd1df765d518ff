//! OSP testkit: on a real throwaway PostgreSQL, a transaction-mode PgBouncer in front of it and
//! a Temporal dev server (from `osp-stack`, re-exported here), a harness for workflow tests (see `docs/testing.md`): one environment per test
//! binary, a fresh database and task queue per test, a worker in the test with real or
//! replacement activities, per-workflow time skipping, deadlines everywhere, failure at the
//! first failed workflow task, event-chain diffs, history recording and replay.

mod activities;
mod artifacts;
#[cfg(feature = "bridge")]
mod bridge;
mod chain;
mod env;
mod error;
mod history;
mod protojson;
mod replay;
mod time;
mod worker;
mod workflow;

pub use activities::{Calls, Replaced, Replacement, non_retryable, retryable};
pub use artifacts::artifacts_dir;
#[cfg(feature = "bridge")]
pub use bridge::TestBridge;
pub use chain::{ChainMismatch, StoredEvent, chain_diff, stream_events, wait_for_chain};
pub use env::{DEFAULT_DEADLINE, PlatformBuilder, TestEnv, test_env, test_env_with};
pub use error::TestError;
pub use history::{HistoryFormat, RecordedHistory};
pub use osp_activities::Migration;
pub use osp_stack::{
    GetError, OspProcess, PgBouncer, Postgres, ProcessError, SUPABASE_ROLES_SQL, Stack, StackError,
    TemporalDevServer, TemporalOptions, TlsGrpcProxy, TlsProxyOptions, error_chain, free_port, get,
    metric_value, osp_binary, temporal_cli,
};
pub use replay::{ReplayFailureKind, ReplayMismatch, Replayer};
pub use worker::{TestWorker, TestWorkerBuilder};
pub use workflow::{TestWorkflow, WorkflowFailure};
