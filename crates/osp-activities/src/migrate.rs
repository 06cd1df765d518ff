//! Applies the SQL migrations under `migrations/` in order. Safe to run twice, and from two
//! processes at once: everything happens in one transaction under an advisory lock, and
//! works through a transaction-mode pooler (simple queries and unnamed statements only).

use std::fmt;

use tokio_postgres::{Client, types::Type};

/// One SQL migration, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order they apply.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_store",
        sql: include_str!("../migrations/0001_event_store.sql"),
    },
    Migration {
        version: 2,
        name: "workflow_queue",
        sql: include_str!("../migrations/0002_workflow_queue.sql"),
    },
    Migration {
        version: 3,
        name: "projections",
        sql: include_str!("../migrations/0003_projections.sql"),
    },
    Migration {
        version: 4,
        name: "bridge",
        sql: include_str!("../migrations/0004_bridge.sql"),
    },
    Migration {
        version: 5,
        name: "claim_order",
        sql: include_str!("../migrations/0005_claim_order.sql"),
    },
    Migration {
        version: 6,
        name: "hardening",
        sql: include_str!("../migrations/0006_hardening.sql"),
    },
    Migration {
        version: 7,
        name: "routes_and_jobs",
        sql: include_str!("../migrations/0007_routes_and_jobs.sql"),
    },
    Migration {
        version: 8,
        name: "batched_settlement",
        sql: include_str!("../migrations/0008_batched_settlement.sql"),
    },
    Migration {
        version: 9,
        name: "scans_and_helpers",
        sql: include_str!("../migrations/0009_scans_and_helpers.sql"),
    },
    Migration {
        version: 10,
        name: "held_routes",
        sql: include_str!("../migrations/0010_held_routes.sql"),
    },
    Migration {
        version: 11,
        name: "queue_appends",
        sql: include_str!("../migrations/0011_queue_appends.sql"),
    },
    Migration {
        version: 12,
        name: "claim_generic_plan",
        sql: include_str!("../migrations/0012_claim_generic_plan.sql"),
    },
];

/// Held for the migration transaction; serialises migrators across processes. The value is
/// arbitrary but fixed ("OSPMIGRT").
const LOCK_KEY: i64 = 0x4F53_504D_4947_5254;

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions this run applied, in order.
    pub applied: Vec<i32>,
    /// Versions that were already there.
    pub already_applied: Vec<i32>,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latest = self.applied.iter().chain(&self.already_applied).max();
        match (self.applied.is_empty(), latest) {
            (_, None) => write!(f, "no migrations"),
            (true, Some(latest)) => write!(f, "schema up to date at version {latest}"),
            (false, Some(latest)) => write!(
                f,
                "applied {} migration(s) ({}); schema at version {latest}",
                self.applied.len(),
                self.applied
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Why the schema could not be brought up to date. Nothing is half-applied: the transaction
/// rolls back.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A migration's SQL failed.
    #[error("migration {version} ({name}) failed")]
    Migration {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Reading or recording migration state failed.
    #[error("migration bookkeeping failed")]
    Database(#[from] tokio_postgres::Error),
    /// An applied migration was edited after it ran; the database and this build disagree.
    #[error(
        "migration {version} ({name}) was applied with checksum {recorded}, but this build has {expected}: applied migrations must not change"
    )]
    ChecksumMismatch {
        version: i32,
        name: &'static str,
        recorded: String,
        expected: String,
    },
    /// The database was migrated by a newer build.
    #[error(
        "the database has migration {version}, which this build does not know (newest known: {known}); upgrade this program"
    )]
    UnknownVersion { version: i32, known: i32 },
}

/// Brings the schema up to date.
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    let transaction = client.transaction().await?;
    // Taken first, so that even the bookkeeping table's creation is serialised.
    transaction
        .query_typed(
            "select pg_advisory_xact_lock($1)",
            &[(&LOCK_KEY, Type::INT8)],
        )
        .await?;
    transaction
        .batch_execute(
            "create schema if not exists osp_metadata;
             create table if not exists osp_metadata.schema_migrations (
                 version integer primary key,
                 name text not null,
                 checksum text not null,
                 applied_at timestamptz not null default now()
             );",
        )
        .await?;
    let rows = transaction
        .query_typed(
            "select version, checksum from osp_metadata.schema_migrations order by version",
            &[],
        )
        .await?;

    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let mut report = MigrationReport {
        applied: Vec::new(),
        already_applied: Vec::new(),
    };
    let mut recorded = std::collections::BTreeMap::new();
    for row in rows {
        let version: i32 = row.try_get(0)?;
        let checksum: String = row.try_get(1)?;
        recorded.insert(version, checksum);
    }
    if let Some((&version, _)) = recorded.iter().find(|(v, _)| **v > known) {
        return Err(MigrateError::UnknownVersion { version, known });
    }

    for migration in MIGRATIONS {
        let expected = checksum(migration.sql);
        if let Some(recorded) = recorded.get(&migration.version) {
            if *recorded != expected {
                return Err(MigrateError::ChecksumMismatch {
                    version: migration.version,
                    name: migration.name,
                    recorded: recorded.clone(),
                    expected,
                });
            }
            report.already_applied.push(migration.version);
            continue;
        }
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(|source| MigrateError::Migration {
                version: migration.version,
                name: migration.name,
                source,
            })?;
        transaction
            .query_typed(
                "insert into osp_metadata.schema_migrations (version, name, checksum)
                 values ($1, $2, $3)",
                &[
                    (&migration.version, Type::INT4),
                    (&migration.name, Type::TEXT),
                    (&expected, Type::TEXT),
                ],
            )
            .await?;
        report.applied.push(migration.version);
    }
    transaction.commit().await?;
    Ok(report)
}

/// FNV-1a (64-bit) of the migration text: enough to notice an edit, no dependency needed.
fn checksum(sql: &str) -> String {
    let hash = sql.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_files_are_numbered_alike() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
            assert!(
                migration.sql.starts_with("-- "),
                "{} opens with a comment",
                migration.name
            );
        }
    }

    #[test]
    fn checksum_notices_any_edit() {
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_ne!(checksum("select 1;"), checksum("select 1; "));
    }

    #[test]
    fn the_report_says_what_happened() {
        let report = MigrationReport {
            applied: vec![2, 3],
            already_applied: vec![1],
        };
        assert_eq!(
            report.to_string(),
            "applied 2 migration(s) (2, 3); schema at version 3"
        );
        let nothing = MigrationReport {
            applied: vec![],
            already_applied: vec![1, 2, 3],
        };
        assert_eq!(nothing.to_string(), "schema up to date at version 3");
    }
}
