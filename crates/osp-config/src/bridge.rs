//! Settings only the bridge reads: its identity, how it claims (batch, lease, in-flight
//! bound), how it retries, how often it sweeps, the payload limit, Realtime on or off, and the
//! shutdown grace and database pool it shares with the worker.

use std::fmt;
use std::time::Duration;

use super::keys::Key;
use super::layers::{Context, Setting};
use super::sections::{Fields, SupabaseSettings, write_fields};
use super::values::{InvalidValue, as_usize, parse_bool, whole_number};
use super::worker::{OSP_DATABASE_POOL_SIZE, OSP_SHUTDOWN_GRACE_SECONDS};

/// Prefix of the bridge's worker id in claims and logs; a random suffix is added per process,
/// so replicas may share it. Default `osp-bridge`.
pub const OSP_BRIDGE_ID: Key = Key::new("OSP_BRIDGE_ID", "bridge.id").or("osp-bridge");
/// Jobs claimed per statement; default 100.
pub const OSP_BRIDGE_BATCH_SIZE: Key =
    Key::new("OSP_BRIDGE_BATCH_SIZE", "bridge.batch_size").or("100");
/// Dispatches (workflow starts) in flight at once; default 32.
pub const OSP_BRIDGE_MAX_IN_FLIGHT: Key =
    Key::new("OSP_BRIDGE_MAX_IN_FLIGHT", "bridge.max_in_flight").or("32");
/// The bridge's pool when `OSP_DATABASE_POOL_SIZE` is not set: one connection each for the
/// claim loop, the settlements and the queue-depth gauge, and one to spare. No start holds
/// a connection, so the pool does not grow with the starts in flight.
pub const BRIDGE_POOL_SIZE: usize = 4;
/// Seconds a claim holds a job before another bridge may take it over; default 60.
pub const OSP_BRIDGE_LEASE_SECONDS: Key =
    Key::new("OSP_BRIDGE_LEASE_SECONDS", "bridge.lease_seconds").or("60");
/// Attempts before a job whose start keeps failing ends failed; default 10.
pub const OSP_BRIDGE_MAX_ATTEMPTS: Key =
    Key::new("OSP_BRIDGE_MAX_ATTEMPTS", "bridge.max_attempts").or("10");
/// Delay before the first retry of a failed start, in milliseconds; doubles per attempt.
pub const OSP_BRIDGE_RETRY_INITIAL_MS: Key =
    Key::new("OSP_BRIDGE_RETRY_INITIAL_MS", "bridge.retry_initial_ms").or("1000");
/// Longest delay between retries, in milliseconds.
pub const OSP_BRIDGE_RETRY_MAX_MS: Key =
    Key::new("OSP_BRIDGE_RETRY_MAX_MS", "bridge.retry_max_ms").or("60000");
/// Milliseconds between sweeps while a wake-up source (LISTEN, Realtime) is healthy.
pub const OSP_BRIDGE_SWEEP_INTERVAL_MS: Key =
    Key::new("OSP_BRIDGE_SWEEP_INTERVAL_MS", "bridge.sweep_interval_ms").or("15000");
/// Milliseconds between sweeps while no wake-up source is healthy.
pub const OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS: Key = Key::new(
    "OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS",
    "bridge.fallback_sweep_interval_ms",
)
.or("1000");
/// Largest routed event payload (its JSON text, in bytes) the bridge starts a workflow with.
pub const OSP_BRIDGE_MAX_PAYLOAD_BYTES: Key =
    Key::new("OSP_BRIDGE_MAX_PAYLOAD_BYTES", "bridge.max_payload_bytes").or("262144");
/// Threads of the bridge's tokio runtime; default 1: everything on the main thread, which
/// costs the bridge and what shares its cores less CPU than one thread per core
/// (docs/performance.md).
pub const OSP_BRIDGE_RUNTIME_THREADS: Key =
    Key::new("OSP_BRIDGE_RUNTIME_THREADS", "bridge.runtime_threads").or("1");
/// Boolean: subscribe to Supabase Realtime as a wake-up source; default on exactly when
/// `SUPABASE_URL` and the service-role key are set.
pub const OSP_BRIDGE_REALTIME: Key = Key::new("OSP_BRIDGE_REALTIME", "bridge.realtime");

/// The bridge-only keys, in documentation order (the shutdown grace and pool size are the
/// worker's keys, listed with them).
pub const BRIDGE_KEYS: &[Key] = &[
    OSP_BRIDGE_ID,
    OSP_BRIDGE_BATCH_SIZE,
    OSP_BRIDGE_MAX_IN_FLIGHT,
    OSP_BRIDGE_LEASE_SECONDS,
    OSP_BRIDGE_MAX_ATTEMPTS,
    OSP_BRIDGE_RETRY_INITIAL_MS,
    OSP_BRIDGE_RETRY_MAX_MS,
    OSP_BRIDGE_SWEEP_INTERVAL_MS,
    OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS,
    OSP_BRIDGE_MAX_PAYLOAD_BYTES,
    OSP_BRIDGE_RUNTIME_THREADS,
    OSP_BRIDGE_REALTIME,
];

/// Longest bridge id: it is stored in every claim and shown in logs.
const MAX_ID_CHARS: usize = 100;

fn parse_id(s: &str) -> Result<String, InvalidValue> {
    let chars = s.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(InvalidValue::new(format!(
            "is {chars} characters long; at most {MAX_ID_CHARS} are allowed"
        )));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::new("must not contain whitespace"));
    }
    Ok(s.to_owned())
}

fn as_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How the bridge claims, dispatches, retries and sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// Prefix of the worker id; the bridge appends a random suffix per process.
    pub id: String,
    /// Jobs claimed per statement (1 to 1000).
    pub batch_size: u32,
    /// Dispatches (workflow starts) in flight at once.
    pub max_in_flight: usize,
    /// How long a claim holds a job.
    pub lease: Duration,
    /// Attempts before a job whose start keeps failing ends failed.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// Between sweeps while a wake-up source is healthy.
    pub sweep_interval: Duration,
    /// Between sweeps while no wake-up source is healthy.
    pub fallback_sweep_interval: Duration,
    /// Largest payload (JSON text of the routed event's data) a workflow is started with.
    pub max_payload_bytes: usize,
    /// 1: tokio's current-thread runtime; more: that many worker threads.
    pub runtime_threads: usize,
    /// Subscribe to Supabase Realtime (only ever true when Supabase is configured).
    pub realtime: bool,
    /// After SIGTERM, how long in-flight dispatches may take before they are released.
    pub shutdown_grace: Duration,
    /// Connections in the bridge's database pool: claims, settlements, the depth gauge.
    /// Default [`BRIDGE_POOL_SIZE`].
    pub database_pool_size: usize,
}

impl BridgeSettings {
    pub(super) fn fields(&self) -> Fields {
        let ms = |d: Duration| d.as_millis().to_string();
        vec![
            ("id".into(), self.id.clone()),
            ("batch_size".into(), self.batch_size.to_string()),
            ("max_in_flight".into(), self.max_in_flight.to_string()),
            ("lease_seconds".into(), self.lease.as_secs().to_string()),
            ("max_attempts".into(), self.max_attempts.to_string()),
            ("retry_initial_ms".into(), ms(self.retry_initial)),
            ("retry_max_ms".into(), ms(self.retry_max)),
            ("sweep_interval_ms".into(), ms(self.sweep_interval)),
            (
                "fallback_sweep_interval_ms".into(),
                ms(self.fallback_sweep_interval),
            ),
            (
                "max_payload_bytes".into(),
                self.max_payload_bytes.to_string(),
            ),
            ("runtime_threads".into(), self.runtime_threads.to_string()),
            ("realtime".into(), self.realtime.to_string()),
        ]
    }

    /// The settings shared with the worker, under their own TOML names.
    pub(super) fn shared_fields(&self) -> Fields {
        vec![
            (
                "database.pool_size".into(),
                self.database_pool_size.to_string(),
            ),
            (
                "shutdown.grace_seconds".into(),
                self.shutdown_grace.as_secs().to_string(),
            ),
        ]
    }

    /// `supabase` is the parsed Supabase section: `None` when it was invalid (its problem is
    /// recorded), `Some(None)` when it is not configured.
    pub(super) fn parse(
        cx: &mut Context<'_>,
        supabase: Option<&Option<SupabaseSettings>>,
    ) -> Option<Self> {
        let id = cx.get(&OSP_BRIDGE_ID, parse_id).value();
        let batch_size = cx
            .get(&OSP_BRIDGE_BATCH_SIZE, whole_number(1, 1_000))
            .value();
        let max_in_flight = cx
            .get(&OSP_BRIDGE_MAX_IN_FLIGHT, whole_number(1, 10_000))
            .value();
        let lease = cx
            .get(&OSP_BRIDGE_LEASE_SECONDS, whole_number(5, 86_400))
            .value();
        let max_attempts = cx
            .get(&OSP_BRIDGE_MAX_ATTEMPTS, whole_number(1, 1_000))
            .value();
        let retry_initial = cx.get(&OSP_BRIDGE_RETRY_INITIAL_MS, whole_number(1, 3_600_000));
        let retry_max = cx.get(&OSP_BRIDGE_RETRY_MAX_MS, whole_number(1, 86_400_000));
        let sweep = cx
            .get(&OSP_BRIDGE_SWEEP_INTERVAL_MS, whole_number(10, 3_600_000))
            .value();
        let fallback = cx
            .get(
                &OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS,
                whole_number(10, 3_600_000),
            )
            .value();
        let max_payload = cx
            .get(
                &OSP_BRIDGE_MAX_PAYLOAD_BYTES,
                whole_number(1_024, 64 * 1024 * 1024),
            )
            .value();
        let threads = cx
            .get(&OSP_BRIDGE_RUNTIME_THREADS, whole_number(1, 256))
            .value();
        let realtime = cx.get(&OSP_BRIDGE_REALTIME, parse_bool);
        let grace = cx
            .get(&OSP_SHUTDOWN_GRACE_SECONDS, whole_number(0, 3_600))
            .value();
        let pool = cx
            .get(&OSP_DATABASE_POOL_SIZE, whole_number(3, 10_000))
            .optional();

        let retry_initial = match retry_initial {
            Setting::Valid { value, origin } => Some((value, Some(origin))),
            Setting::Default { value } => Some((value, None)),
            Setting::Unset | Setting::Invalid { .. } => None,
        };
        let retry_max = match retry_max {
            Setting::Valid { value, origin } => Some((value, Some(origin))),
            Setting::Default { value } => Some((value, None)),
            Setting::Unset | Setting::Invalid { .. } => None,
        };
        let mut consistent = true;
        if let (Some((initial, initial_origin)), Some((max, max_origin))) =
            (&retry_initial, &retry_max)
            && initial > max
        {
            let key = max_origin
                .clone()
                .or_else(|| initial_origin.clone())
                .unwrap_or_else(|| OSP_BRIDGE_RETRY_MAX_MS.env.to_owned());
            cx.problem(
                key,
                format!(
                    "the longest retry delay ({max} ms) is shorter than the first ({initial} ms)"
                ),
            );
            consistent = false;
        }

        let realtime = match (realtime, supabase) {
            (Setting::Invalid { .. }, _) | (_, None) => None,
            (Setting::Unset | Setting::Default { .. }, Some(supabase)) => Some(supabase.is_some()),
            (Setting::Valid { value: false, .. }, Some(_)) => Some(false),
            (Setting::Valid { value: true, .. }, Some(Some(_))) => Some(true),
            (
                Setting::Valid {
                    value: true,
                    origin,
                },
                Some(None),
            ) => {
                cx.problem(
                    origin,
                    "is true but SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not set (Realtime needs both)",
                );
                None
            }
        };

        let settings = BridgeSettings {
            id: id?,
            batch_size: as_u32(batch_size?),
            max_in_flight: as_usize(max_in_flight?),
            lease: Duration::from_secs(lease?),
            max_attempts: as_u32(max_attempts?),
            retry_initial: Duration::from_millis(retry_initial?.0),
            retry_max: Duration::from_millis(retry_max?.0),
            sweep_interval: Duration::from_millis(sweep?),
            fallback_sweep_interval: Duration::from_millis(fallback?),
            max_payload_bytes: as_usize(max_payload?),
            runtime_threads: as_usize(threads?),
            realtime: realtime?,
            shutdown_grace: Duration::from_secs(grace?),
            database_pool_size: match pool? {
                Some(pool) => as_usize(pool),
                None => BRIDGE_POOL_SIZE,
            },
        };
        consistent.then_some(settings)
    }
}

impl fmt::Display for BridgeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fields(f, "", &self.fields())?;
        f.write_str(" ")?;
        write_fields(f, "", &self.shared_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BridgeConfig;

    fn load(pairs: &[(&str, &str)]) -> Result<BridgeConfig, String> {
        crate::tests::load_over_base(pairs, BridgeConfig::load)
    }

    #[test]
    fn defaults() {
        let bridge = load(&[]).unwrap().bridge;
        assert_eq!(
            bridge,
            BridgeSettings {
                id: "osp-bridge".into(),
                batch_size: 100,
                max_in_flight: 32,
                lease: Duration::from_secs(60),
                max_attempts: 10,
                retry_initial: Duration::from_secs(1),
                retry_max: Duration::from_secs(60),
                sweep_interval: Duration::from_secs(15),
                fallback_sweep_interval: Duration::from_secs(1),
                max_payload_bytes: 256 * 1024,
                runtime_threads: 1,
                realtime: false,
                shutdown_grace: Duration::from_secs(30),
                database_pool_size: 4,
            }
        );
        assert_eq!(
            bridge.to_string(),
            "id=osp-bridge batch_size=100 max_in_flight=32 lease_seconds=60 max_attempts=10 \
             retry_initial_ms=1000 retry_max_ms=60000 sweep_interval_ms=15000 \
             fallback_sweep_interval_ms=1000 max_payload_bytes=262144 runtime_threads=1 realtime=false \
             database.pool_size=4 shutdown.grace_seconds=30"
        );
    }

    #[test]
    fn every_bridge_setting_parses() {
        let config = load(&[
            ("OSP_BRIDGE_ID", "bridge-a"),
            ("OSP_BRIDGE_BATCH_SIZE", "10"),
            ("OSP_BRIDGE_MAX_IN_FLIGHT", "4"),
            ("OSP_BRIDGE_LEASE_SECONDS", "5"),
            ("OSP_BRIDGE_MAX_ATTEMPTS", "3"),
            ("OSP_BRIDGE_RETRY_INITIAL_MS", "50"),
            ("OSP_BRIDGE_RETRY_MAX_MS", "200"),
            ("OSP_BRIDGE_SWEEP_INTERVAL_MS", "500"),
            ("OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS", "100"),
            ("OSP_BRIDGE_MAX_PAYLOAD_BYTES", "2048"),
            ("OSP_BRIDGE_RUNTIME_THREADS", "2"),
            ("OSP_BRIDGE_REALTIME", "yes"),
            ("SUPABASE_URL", "http://localhost:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", "role-SENTINEL"),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "0"),
            ("OSP_DATABASE_POOL_SIZE", "3"),
        ])
        .unwrap();
        let bridge = &config.bridge;
        assert_eq!(bridge.id, "bridge-a");
        assert_eq!((bridge.batch_size, bridge.max_in_flight), (10, 4));
        assert_eq!(bridge.lease, Duration::from_secs(5));
        assert_eq!(bridge.max_attempts, 3);
        assert_eq!(
            (bridge.retry_initial, bridge.retry_max),
            (Duration::from_millis(50), Duration::from_millis(200))
        );
        assert_eq!(
            (bridge.sweep_interval, bridge.fallback_sweep_interval),
            (Duration::from_millis(500), Duration::from_millis(100))
        );
        assert_eq!(bridge.max_payload_bytes, 2048);
        assert_eq!(bridge.runtime_threads, 2);
        assert!(bridge.realtime);
        assert_eq!(bridge.shutdown_grace, Duration::ZERO);
        assert_eq!(bridge.database_pool_size, 3);
        for shown in [format!("{config}"), format!("{config:?}")] {
            assert!(!shown.contains("SENTINEL"), "{shown}");
            assert!(shown.contains("realtime"), "{shown}");
        }
        // Realtime defaults to on once Supabase is configured, and can be turned off.
        let supabase = [
            ("SUPABASE_URL", "http://localhost:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", "k"),
        ];
        assert!(load(&supabase).unwrap().bridge.realtime);
        let off = [supabase[0], supabase[1], ("OSP_BRIDGE_REALTIME", "off")];
        assert!(!load(&off).unwrap().bridge.realtime);
    }

    #[test]
    fn bad_bridge_settings_are_all_listed() {
        let error = load(&[
            ("OSP_BRIDGE_ID", "two words"),
            ("OSP_BRIDGE_BATCH_SIZE", "0"),
            ("OSP_BRIDGE_MAX_IN_FLIGHT", "many"),
            ("OSP_BRIDGE_LEASE_SECONDS", "1"),
            ("OSP_BRIDGE_MAX_ATTEMPTS", "-1"),
            ("OSP_BRIDGE_SWEEP_INTERVAL_MS", "1"),
            ("OSP_BRIDGE_MAX_PAYLOAD_BYTES", "1"),
            ("OSP_BRIDGE_RUNTIME_THREADS", "0"),
            ("OSP_BRIDGE_REALTIME", "true"),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "later"),
        ])
        .unwrap_err();
        for expected in [
            "OSP_BRIDGE_ID: must not contain whitespace (got `two words`)",
            "OSP_BRIDGE_BATCH_SIZE: must be a whole number from 1 to 1000 (got `0`)",
            "OSP_BRIDGE_MAX_IN_FLIGHT: must be a whole number from 1 to 10000 (got `many`)",
            "OSP_BRIDGE_LEASE_SECONDS: must be a whole number from 5 to 86400 (got `1`)",
            "OSP_BRIDGE_MAX_ATTEMPTS: must be a whole number from 1 to 1000 (got `-1`)",
            "OSP_BRIDGE_SWEEP_INTERVAL_MS: must be a whole number from 10 to 3600000 (got `1`)",
            "OSP_BRIDGE_MAX_PAYLOAD_BYTES: must be a whole number from 1024 to 67108864 (got `1`)",
            "OSP_BRIDGE_RUNTIME_THREADS: must be a whole number from 1 to 256 (got `0`)",
            "OSP_BRIDGE_REALTIME: is true but SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not set",
            "OSP_SHUTDOWN_GRACE_SECONDS: must be a whole number from 0 to 3600 (got `later`)",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in\n{error}");
        }
        let error = load(&[
            ("OSP_BRIDGE_RETRY_INITIAL_MS", "5000"),
            ("OSP_BRIDGE_RETRY_MAX_MS", "100"),
        ])
        .unwrap_err();
        assert!(
            error.contains(
                "OSP_BRIDGE_RETRY_MAX_MS: the longest retry delay (100 ms) is shorter than the first (5000 ms)"
            ),
            "{error}"
        );
    }
}
