//! The workflow-test harness against the real dev server and Postgres, in one binary (one
//! environment, one link): workers with replacement activities, interactions, time
//! skipping, failure detection, event chains and histories; and the environment's teardown
//! when the test process dies.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

mod teardown;
mod workflows;
