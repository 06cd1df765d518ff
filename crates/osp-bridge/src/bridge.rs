//! The bridge process: connects (retrying, never crashing), runs the wake-up sources, the
//! claim loop and the dispatches, and on shutdown stops claiming, lets in-flight dispatches
//! finish within the grace period and releases what is left.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use osp_config::BridgeConfig;
use osp_runtime::backoff::Backoff;
use osp_runtime::{Health, Metrics};
use temporalio_common::telemetry::metrics::TemporalMeter;
use tokio::sync::{Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use uuid::Uuid;

use crate::check::Schemas;
use crate::dispatch::Dispatcher;
use crate::listen::{self, ListenTiming};
use crate::metrics::BridgeMetrics;
use crate::queue::{ClaimedJob, Queue};
use crate::settle::Settler;
use crate::start::Starter;
use crate::wake::Wakeups;
use crate::{BridgeError, realtime};

/// Readiness check names.
const TEMPORAL_CHECK: &str = "temporal";
const DATABASE_CHECK: &str = "database";

/// How long one claim statement may take; past it the claim counts as failed (and any jobs
/// it did claim come back when their lease expires).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the queue-depth gauge is refreshed.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long releasing the jobs left at shutdown may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// One bridge, configured and not yet running.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    health: Health,
    metrics: Metrics,
    worker_id: String,
    listen_timing: ListenTiming,
    realtime_timing: realtime::RealtimeTiming,
    temporal_meter: Option<TemporalMeter>,
}

/// The jobs being dispatched, so that shutdown can release the ones it has to abort.
type InFlight = Arc<Mutex<HashMap<Uuid, (i32, Option<AbortHandle>)>>>;

/// Removes a dispatch from [`InFlight`] when it ends, however it ends.
struct InFlightEntry {
    in_flight: InFlight,
    job_id: Uuid,
}

impl Drop for InFlightEntry {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.job_id);
    }
}

impl Bridge {
    /// A bridge whose worker id is the configured id plus a random suffix, unique per process.
    pub fn new(config: BridgeConfig) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let worker_id = format!("{}-{}", config.bridge.id, &suffix[..12]);
        // Not ready until connected: registered here, so that no one sees a bridge that has
        // not started yet as ready.
        let health = Health::new();
        health.register(TEMPORAL_CHECK, "connecting");
        health.register(DATABASE_CHECK, "connecting");
        Bridge {
            config,
            health,
            metrics: Metrics::new(),
            worker_id,
            listen_timing: ListenTiming::default(),
            realtime_timing: realtime::RealtimeTiming::default(),
            temporal_meter: None,
        }
    }

    /// Overrides how LISTEN probes and reconnects (tests use shorter times).
    pub fn with_listen_timing(mut self, timing: ListenTiming) -> Self {
        self.listen_timing = timing;
        self
    }

    /// Overrides Realtime's heartbeat and rejoin timing (tests use shorter times).
    pub fn with_realtime_timing(mut self, timing: realtime::RealtimeTiming) -> Self {
        self.realtime_timing = timing;
        self
    }

    /// Uses `metrics` (e.g. one that also serves the SDK's series) instead of a new one.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Records the Temporal client's own series (`temporal_*`) with `meter`.
    pub fn with_temporal_meter(mut self, meter: TemporalMeter) -> Self {
        self.temporal_meter = Some(meter);
        self
    }

    /// Readiness, as `/readyz` reports it.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The series `/metrics` serves.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The id claims are made under.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs until `shutdown` resolves, then drains. Returns an error only for what no retry
    /// can fix (a database URL the driver refuses, metrics registered twice); everything
    /// else is retried with backoff while the process stays up.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BridgeError> {
        let Bridge {
            config,
            health,
            metrics,
            worker_id,
            listen_timing,
            realtime_timing,
            temporal_meter,
        } = self;
        let settings = config.bridge.clone();
        let bridge_metrics = BridgeMetrics::register(metrics.registry())?;
        tracing::info!(worker_id, "bridge starting");

        let pool =
            osp_activities::db::pool(config.database.url.expose(), settings.database_pool_size)?;
        let queue = Queue::new(pool.clone(), worker_id.clone());
        let wakeups = Arc::new(Wakeups::new(bridge_metrics.clone()));

        let mut shutdown = std::pin::pin!(shutdown);
        // Temporal first: without it there is nothing to do with a claimed job.
        let connect = osp_runtime::retry::until_ok(
            &health,
            TEMPORAL_CHECK,
            || osp_runtime::temporal::connect(&config.temporal, &worker_id, temporal_meter.clone()),
            || {},
        );
        let client = tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutdown before Temporal was reached");
                return Ok(());
            }
            client = connect => client,
        };
        health.pass(TEMPORAL_CHECK);
        // The lease bounds everything a dispatch does; a start may use a third of it.
        let start_timeout =
            (settings.lease / 3).clamp(Duration::from_secs(1), Duration::from_secs(20));
        let starter = Starter::new(client, start_timeout);
        let (temporal_up, temporal_watch) = watch::channel(true);

        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        tasks.push(tokio::spawn(listen::run(
            config.database.listen_url.clone(),
            pool.clone(),
            wakeups.clone(),
            listen_timing,
        )));
        if settings.realtime
            && let Some(supabase) = &config.supabase
        {
            tasks.push(tokio::spawn(realtime::run(
                supabase.clone(),
                wakeups.clone(),
                realtime_timing,
            )));
        }
        tasks.push(tokio::spawn(temporal_prober(
            starter.clone(),
            temporal_watch.clone(),
            temporal_up.clone(),
            health.clone(),
        )));
        tasks.push(tokio::spawn(depth_gauge(
            queue.clone(),
            bridge_metrics.clone(),
            health.clone(),
        )));

        let max_in_flight = settings.max_in_flight.max(1);
        let chunk = backlog_chunk(settings.batch_size, max_in_flight);
        // Stopped only after the drain: the dispatches still finishing need it.
        let (settler, settler_task) = Settler::start(
            queue.clone(),
            max_in_flight,
            usize::try_from(chunk).unwrap_or(usize::MAX),
            bridge_metrics.settle.clone(),
        );
        let dispatcher = Arc::new(Dispatcher {
            starter,
            settler,
            settings: settings.clone(),
            metrics: bridge_metrics.clone(),
            wakeups: wakeups.clone(),
            temporal_up,
            schemas: Schemas::default(),
        });
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let in_flight: InFlight = Arc::default();
        let claim_loop = ClaimLoop {
            queue: queue.clone(),
            dispatcher,
            wakeups,
            permits: permits.clone(),
            in_flight: in_flight.clone(),
            metrics: bridge_metrics.clone(),
            health: health.clone(),
            batch: settings.batch_size,
            chunk,
            lease: settings.lease,
            sweep: settings.sweep_interval,
            fallback_sweep: settings.fallback_sweep_interval,
        };
        claim_loop.run(temporal_watch, shutdown.as_mut()).await;
        // No claim follows, so nothing is gained by holding the settlements still to come.
        claim_loop.dispatcher.settler.under_backlog(false);

        // Shutdown: no more claims; what is in flight may finish within the grace period.
        health.drain();
        for task in &tasks {
            task.abort();
        }
        let drain = Drain {
            queue: &queue,
            metrics: &bridge_metrics,
            permits: &permits,
            in_flight: &in_flight,
            max_in_flight,
            grace: settings.shutdown_grace,
            worker_id: &worker_id,
        };
        drain.run().await;
        settler_task.abort();
        Ok(())
    }
}

struct ClaimLoop {
    queue: Queue,
    dispatcher: Arc<Dispatcher>,
    wakeups: Arc<Wakeups>,
    permits: Arc<Semaphore>,
    in_flight: InFlight,
    metrics: BridgeMetrics,
    health: Health,
    batch: u32,
    /// The free slots a claim waits for while a backlog is known ([`backlog_chunk`]).
    chunk: u32,
    lease: Duration,
    sweep: Duration,
    fallback_sweep: Duration,
}

/// The free dispatch slots the claim loop waits for while a backlog is known (the last claim
/// asked for at least this many and came back full): a quarter of the bound, at most a batch.
/// Under load one claim statement then takes many jobs instead of one per start that ends;
/// the starts still in flight keep Temporal busy meanwhile, and the backlog drains as fast.
/// Without a backlog one slot is enough: a new job is claimed as soon as it is announced.
/// The settler gathers as many outcomes under a backlog, so the slots come free together.
fn backlog_chunk(batch: u32, max_in_flight: usize) -> u32 {
    let quarter = u32::try_from(max_in_flight / 4).unwrap_or(u32::MAX);
    quarter.min(batch).max(1)
}

/// The free slots to wait for before the next claim: `chunk` under a backlog, else one.
fn slots_to_claim(backlog: bool, chunk: u32) -> u32 {
    if backlog { chunk } else { 1 }
}

impl ClaimLoop {
    /// Claims whenever there is room, Temporal answers and a wake-up or sweep says so, until
    /// `shutdown` resolves. A claim statement is never abandoned half-way.
    async fn run(
        &self,
        mut temporal: watch::Receiver<bool>,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) {
        let mut errors = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        // Whether a backlog is known: the last claim, of a whole chunk, came back full.
        let mut backlog = false;
        loop {
            if !*temporal.borrow_and_update() {
                tokio::select! {
                    () = &mut shutdown => return,
                    _ = temporal.changed() => continue,
                }
            }
            let room = self.permits.available_permits();
            let need = slots_to_claim(backlog, self.chunk);
            if room < usize::try_from(need).unwrap_or(usize::MAX) {
                tokio::select! {
                    () = &mut shutdown => return,
                    permits = self.permits.acquire_many(need) => {
                        drop(permits);
                        continue;
                    }
                }
            }
            let want = self.batch.min(u32::try_from(room).unwrap_or(u32::MAX));
            let claimed_at = Instant::now();
            let claimed =
                tokio::time::timeout(CLAIM_TIMEOUT, self.queue.claim(want, self.lease)).await;
            if claimed.is_ok() {
                // Answered, with rows or an error; one that timed out is a claim error only.
                self.metrics
                    .claim
                    .observe(claimed_at.elapsed().as_secs_f64());
            }
            match claimed {
                Ok(Ok(jobs)) => {
                    self.health.pass(DATABASE_CHECK);
                    errors.reset();
                    let count = jobs.len();
                    for job in jobs {
                        self.spawn(job, claimed_at + self.lease);
                    }
                    if count > 0 {
                        tracing::debug!(count, "claimed");
                    }
                    let full = u32::try_from(count).unwrap_or(u32::MAX) >= want;
                    // A full claim of one or two slots says little; one of a whole chunk says
                    // that at least that many were waiting.
                    backlog = full && want >= self.chunk;
                    self.dispatcher.settler.under_backlog(backlog);
                    if full {
                        // A full batch: more may be waiting.
                        continue;
                    }
                }
                Ok(Err(error)) => {
                    if self
                        .claim_failed(&mut errors, error.to_string(), &mut shutdown)
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    let message = format!("claim took longer than {} s", CLAIM_TIMEOUT.as_secs());
                    if self.claim_failed(&mut errors, message, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            let interval = if self.wakeups.any_up() {
                self.sweep
            } else {
                self.fallback_sweep
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wakeups.notified() => {}
                () = tokio::time::sleep(interval) => self.wakeups.count_sweep(),
            }
        }
    }

    /// Records a failed claim and waits before the next; true when shutdown came meanwhile.
    async fn claim_failed(
        &self,
        errors: &mut Backoff,
        error: String,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        self.metrics.claim_errors.inc();
        self.health.fail(DATABASE_CHECK, error.clone());
        let (delay, attempt) = errors.next_delay();
        tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis(), "claim failed");
        tokio::select! {
            () = shutdown.as_mut() => true,
            () = tokio::time::sleep(delay) => false,
        }
    }

    fn spawn(&self, job: ClaimedJob, lease_deadline: Instant) {
        self.metrics.claimed.inc();
        // Room was checked before claiming and only this loop takes permits, so one is free;
        // should that ever not hold, the job waits for its lease to expire rather than the
        // bound being broken.
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::error!(job_id = %job.job_id, "no dispatch slot for a claimed job; it returns when its lease expires");
            return;
        };
        let dispatcher = self.dispatcher.clone();
        let metrics = self.metrics.clone();
        let job_id = job.job_id;
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = InFlightEntry {
            in_flight: self.in_flight.clone(),
            job_id,
        };
        in_flight.insert(job_id, (job.attempt, None));
        metrics.in_flight.inc();
        let handle = tokio::spawn(async move {
            let _permit = permit;
            let _entry = entry;
            let _gauge = GaugeGuard(metrics.clone());
            dispatcher.dispatch(job, lease_deadline).await;
        });
        if let Some(slot) = in_flight.get_mut(&job_id) {
            slot.1 = Some(handle.abort_handle());
        }
    }
}

/// Decrements the in-flight gauge when a dispatch ends, aborted or not.
struct GaugeGuard(BridgeMetrics);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// While Temporal is marked unavailable, probes it with backoff and marks it up again.
async fn temporal_prober(
    starter: Starter,
    mut watch: watch::Receiver<bool>,
    up: watch::Sender<bool>,
    health: Health,
) {
    loop {
        if *watch.borrow_and_update() {
            if watch.changed().await.is_err() {
                return;
            }
            continue;
        }
        health.fail(TEMPORAL_CHECK, "unavailable");
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            match starter.probe(Duration::from_secs(5)).await {
                Ok(()) => break,
                Err(error) => {
                    health.fail(TEMPORAL_CHECK, error.to_string());
                    let (delay, attempt) = backoff.next_delay();
                    tracing::warn!(%error, attempt, "temporal still unavailable");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::info!("temporal available again; claiming resumes");
        health.pass(TEMPORAL_CHECK);
        up.send_replace(true);
    }
}

/// Keeps the queue-depth gauge current.
async fn depth_gauge(queue: Queue, metrics: BridgeMetrics, health: Health) {
    let mut ticker = tokio::time::interval(DEPTH_INTERVAL);
    loop {
        ticker.tick().await;
        match queue.depth().await {
            Ok(depth) => {
                health.pass(DATABASE_CHECK);
                metrics
                    .queue_depth
                    .with_label_values(&["ready"])
                    .set(depth.ready);
                metrics
                    .queue_depth
                    .with_label_values(&["scheduled"])
                    .set(depth.scheduled);
                metrics
                    .queue_depth
                    .with_label_values(&["processing"])
                    .set(depth.processing);
            }
            Err(error) => {
                health.fail(DATABASE_CHECK, error.to_string());
                tracing::debug!(%error, "queue depth unavailable");
            }
        }
    }
}

/// The end of a run, once the claim loop has stopped: the dispatches in flight get the grace
/// period to finish; those left are aborted and their jobs released, so that another bridge
/// claims them at once rather than when their leases expire.
struct Drain<'a> {
    queue: &'a Queue,
    metrics: &'a BridgeMetrics,
    permits: &'a Semaphore,
    in_flight: &'a InFlight,
    max_in_flight: usize,
    grace: Duration,
    worker_id: &'a str,
}

impl Drain<'_> {
    async fn run(self) {
        let max = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(self.grace, self.permits.acquire_many(max)).await;
        if drained.is_ok() {
            tracing::info!("bridge stopped; every dispatch finished");
            return;
        }
        let left: Vec<(Uuid, i32, Option<AbortHandle>)> = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(job_id, (attempt, handle))| (*job_id, *attempt, handle.clone()))
            .collect();
        for (_, _, handle) in &left {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
        let reason = format!(
            "released by {} at shutdown before its start was confirmed",
            self.worker_id
        );
        let release = async {
            for (job_id, attempt, _) in &left {
                match self.queue.release(*job_id, *attempt, &reason).await {
                    Ok(_) => self.metrics.released.inc(),
                    Err(error) => {
                        tracing::warn!(%job_id, %error, "cannot release the job; it returns when its lease expires");
                    }
                }
            }
        };
        if tokio::time::timeout(RELEASE_TIMEOUT, release)
            .await
            .is_err()
        {
            tracing::warn!("releasing jobs timed out; they return when their leases expire");
        }
        tracing::info!(
            released = left.len(),
            "bridge stopped after the grace period"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{backlog_chunk, slots_to_claim};

    #[test]
    fn under_a_backlog_claims_wait_for_a_quarter_of_the_bound_at_most_a_batch() {
        // Nothing known to wait: claim as soon as one slot is free.
        assert_eq!(slots_to_claim(false, backlog_chunk(100, 32)), 1);
        assert_eq!(slots_to_claim(true, backlog_chunk(100, 32)), 8);
        assert_eq!(slots_to_claim(true, backlog_chunk(5, 32)), 5);
        // Small bounds still claim.
        assert_eq!(slots_to_claim(true, backlog_chunk(100, 3)), 1);
        assert_eq!(slots_to_claim(true, backlog_chunk(100, 1)), 1);
    }
}
