//! The workflow-test harness against the real dev server and Postgres, in one binary (one
//! environment, one link): workers with replacement activities, interactions, time
//! skipping, failure detection, event chains and histories; the environment's teardown when
//! the test process dies; and the `scenario` command against a running stack.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

mod scenario;
mod teardown;
mod workflows;
