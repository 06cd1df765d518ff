//! The real OSP bridge inside a test (feature `bridge`): it claims the jobs of the test's own
//! database and starts their workflows on the dev server, so that a test drives event ->
//! route -> bridge -> workflow -> events end to end. Stopped (drained) by
//! [`TestBridge::stop`], aborted if dropped.

use std::collections::HashMap;

use osp_config::{BridgeConfig, Sources};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{TestEnv, TestError};

/// A bridge running on the test's runtime.
#[derive(Debug)]
pub struct TestBridge {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), osp_bridge::BridgeError>>>,
}

impl TestEnv {
    /// Starts the real bridge over this test's database (directly, LISTEN included) and the
    /// dev server, with a fast sweep and no health server. `extra` adds or overrides
    /// configuration keys (`OSP_BRIDGE_MAX_ATTEMPTS`, ...).
    pub fn bridge(&self, extra: &[(&str, &str)]) -> Result<TestBridge, TestError> {
        let url = self.database_url();
        let address = self.temporal_address();
        let mut env: HashMap<String, String> = [
            ("TEMPORAL_ADDRESS", address.as_str()),
            ("DATABASE_URL", url.as_str()),
            ("LISTEN_DATABASE_URL", url.as_str()),
            ("ENABLE_HEALTH_CHECK", "false"),
            ("OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS", "200"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        env.entry("OSP_BRIDGE_ID".to_owned())
            .or_insert_with(|| format!("osp-testkit-{}", self.database()));
        let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
        let config = BridgeConfig::load(&Sources {
            env: &env,
            read_file: &read_file,
        })
        .map_err(|error| TestError::Environment(format!("bridge configuration: {error}")))?;
        let (stop, stopped) = oneshot::channel();
        let bridge = osp_bridge::Bridge::new(config);
        let task = tokio::spawn(bridge.run(async {
            let _ = stopped.await;
        }));
        Ok(TestBridge {
            stop: Some(stop),
            task: Some(task),
        })
    }
}

impl TestBridge {
    /// Asks the bridge to drain and waits for it; its error, if it failed.
    pub async fn stop(mut self) -> Result<(), TestError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(TestError::Environment(format!(
                "the bridge failed: {}",
                osp_stack::error_chain(&error)
            ))),
            Err(error) => Err(TestError::Environment(format!("the bridge task: {error}"))),
        }
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
