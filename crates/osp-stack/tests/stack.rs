//! Integration tests of the throwaway stack against real processes: two stacks side by side,
//! cleanup after a panicking test, and stop/start again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osp_stack::{Postgres, Stack, TemporalDevServer};
use temporalio_client::tonic::Request;
use temporalio_client::{Connection, ConnectionOptions, RetryOptions, Url};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs one statement with the simple protocol (what works through transaction pooling)
/// and returns the first column of the first row.
async fn scalar(client: &tokio_postgres::Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.expect(sql);
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("one row with a non-null first column")
}

/// The name the server reports for namespace `default`, or why it could not be asked.
async fn describe_default_namespace(address: &str) -> Result<String, String> {
    let url = Url::parse(&format!("http://{address}")).expect("an address makes a URL");
    let options = ConnectionOptions::new(url)
        .connect_timeout(Duration::from_secs(2))
        .retry_options(RetryOptions::no_retries())
        .build();
    let call = async {
        let connection = Connection::connect(options)
            .await
            .map_err(|error| error.to_string())?;
        let request = DescribeNamespaceRequest {
            namespace: "default".to_owned(),
            ..Default::default()
        };
        let response = connection
            .workflow_service()
            .describe_namespace(Request::new(request))
            .await
            .map_err(|status| status.to_string())?;
        Ok(response
            .into_inner()
            .namespace_info
            .map(|info| info.name)
            .unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The server's message for a failed connection (the error's own text is just "db error").
fn server_message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| format!("{error:?}"))
}

fn with_password(url: &str, good: &str, bad: &str) -> String {
    assert!(url.contains(good));
    url.replace(good, bad)
}

async fn check_stack(stack: &Stack) {
    let postgres = &stack.postgres;
    let bouncer = &stack.pgbouncer;

    let direct = connect(&postgres.url("postgres"))
        .await
        .expect("direct login");
    let one: i32 = direct
        .query_one("select 1", &[])
        .await
        .expect("select 1")
        .get(0);
    assert_eq!(one, 1);
    let pooled = connect(&bouncer.url("postgres"))
        .await
        .expect("login through the bouncer");
    assert_eq!(scalar(&pooled, "select 1").await, "1");

    // Password authentication is really in force, on both paths.
    let wrong = "0".repeat(32);
    let direct_wrong = with_password(&postgres.url("postgres"), postgres.password(), &wrong);
    let error = server_message(
        &connect(&direct_wrong)
            .await
            .expect_err("a wrong password works directly"),
    );
    assert!(error.contains("password authentication failed"), "{error}");
    let pooled_wrong = with_password(&bouncer.url("postgres"), postgres.password(), &wrong);
    let error = server_message(
        &connect(&pooled_wrong)
            .await
            .expect_err("a wrong password works through the bouncer"),
    );
    // PgBouncer's own wording.
    assert_eq!(error, "SASL authentication failed");

    // A database created after the bouncer started is reachable both ways.
    let t1 = postgres
        .create_database("t1")
        .await
        .expect("create database t1");
    assert_eq!(t1, postgres.url("t1"));
    let direct_t1 = connect(&t1).await.expect("direct login to t1");
    assert_eq!(scalar(&direct_t1, "select current_database()").await, "t1");
    let pooled_t1 = connect(&bouncer.url("t1"))
        .await
        .expect("login to t1 through the bouncer");
    assert_eq!(scalar(&pooled_t1, "select current_database()").await, "t1");

    // The admin console confirms transaction pooling.
    let admin = connect(&bouncer.url("pgbouncer"))
        .await
        .expect("admin console login");
    let config = admin
        .simple_query("SHOW CONFIG")
        .await
        .expect("SHOW CONFIG");
    let pool_mode = config.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) if row.get("key") == Some("pool_mode") => {
            row.get("value").map(str::to_owned)
        }
        _ => None,
    });
    assert_eq!(pool_mode.as_deref(), Some("transaction"));

    assert_eq!(stack.temporal.namespace(), "default");
    assert_eq!(
        describe_default_namespace(&stack.temporal.address()).await,
        Ok("default".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_at_once() {
    let started = Instant::now();
    let (a, b) = tokio::try_join!(Stack::start(), Stack::start()).unwrap();
    eprintln!("two stacks started concurrently in {:?}", started.elapsed());

    let mut ports = vec![
        a.postgres.port(),
        a.pgbouncer.port(),
        b.postgres.port(),
        b.pgbouncer.port(),
    ];
    for temporal in [&a.temporal, &b.temporal] {
        let address = temporal.address();
        assert!(address.starts_with("127.0.0.1:"), "{address}");
        ports.push(address.rsplit(':').next().unwrap().parse().unwrap());
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    assert_ne!(a.postgres.root_dir(), b.postgres.root_dir());

    check_stack(&a).await;
    check_stack(&b).await;

    let stopping = Instant::now();
    drop((a, b));
    eprintln!("two stacks stopped in {:?}", stopping.elapsed());
}

/// The parent pid field of /proc/<pid>/stat (after the command name, which may hold spaces).
fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            (parent_of(&stat)? == parent).then_some(pid)
        })
        .collect()
}

fn process_exists(pid: u32) -> bool {
    // A zombie still has its /proc entry, so this also catches an unreaped child.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[derive(Debug, Default)]
struct Seen {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
    postmaster: Option<u32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_nothing_behind() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let stack = Stack::start().await.unwrap();
        eprintln!("one stack started in {:?}", started.elapsed());
        // Open connections, so the postmaster has backends and the bouncer server links.
        let direct = connect(&stack.postgres.url("postgres")).await.unwrap();
        let pooled = connect(&stack.pgbouncer.url("postgres")).await.unwrap();
        scalar(&direct, "select 1").await;
        scalar(&pooled, "select 1").await;
        {
            let mut seen = recorder.lock().unwrap();
            let postmaster = stack.postgres.pid().unwrap();
            seen.postmaster = Some(postmaster);
            seen.pids.extend([
                postmaster,
                stack.pgbouncer.pid().unwrap(),
                stack.temporal.pid().unwrap(),
            ]);
            let backends = children_of(postmaster);
            assert!(!backends.is_empty());
            seen.pids.extend(backends);
            seen.dirs.extend([
                stack.postgres.root_dir().to_path_buf(),
                stack.pgbouncer.root_dir().to_path_buf(),
                stack.temporal.root_dir().to_path_buf(),
            ]);
            assert!(seen.dirs.iter().all(|dir| dir.is_dir()));
        }
        panic!("a test fails while it owns a stack");
    });
    let error = task.await.unwrap_err();
    assert!(error.is_panic(), "{error}");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let postmaster = seen.postmaster.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let alive: Vec<u32> = seen
            .pids
            .iter()
            .copied()
            .filter(|pid| process_exists(*pid))
            .collect();
        let children = children_of(postmaster);
        let dirs: Vec<&PathBuf> = seen.dirs.iter().filter(|dir| dir.exists()).collect();
        if alive.is_empty() && children.is_empty() && dirs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: processes {alive:?}, postmaster children {children:?}, dirs {dirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_again() {
    let (postgres, temporal) =
        tokio::try_join!(Postgres::start(), TemporalDevServer::start()).unwrap();
    let (mut postgres, mut temporal) = (postgres, temporal);

    // Postgres keeps its data and port across a restart.
    let url = postgres.url("postgres");
    let client = connect(&url).await.unwrap();
    client
        .batch_execute("create table kept (x int); insert into kept values (42)")
        .await
        .unwrap();
    drop(client);
    let port = postgres.port();
    postgres.stop().await.unwrap();
    assert_eq!(postgres.pid(), None);
    assert!(postgres.root_dir().join("data").is_dir());
    assert!(connect(&url).await.is_err());
    let restarting = Instant::now();
    postgres.start_again().await.unwrap();
    eprintln!("postgres restarted in {:?}", restarting.elapsed());
    assert_eq!(postgres.port(), port);
    assert_eq!(postgres.url("postgres"), url);
    let client = connect(&url).await.unwrap();
    assert_eq!(scalar(&client, "select x from kept").await, "42");

    // Temporal answers on the same address after a restart.
    let address = temporal.address();
    assert_eq!(
        describe_default_namespace(&address).await,
        Ok("default".to_owned())
    );
    let first_pid = temporal.pid().unwrap();
    temporal.stop().await.unwrap();
    assert_eq!(temporal.pid(), None);
    assert!(!process_exists(first_pid));
    assert!(describe_default_namespace(&address).await.is_err());
    let restarting = Instant::now();
    temporal.start_again().await.unwrap();
    eprintln!("temporal restarted in {:?}", restarting.elapsed());
    assert_eq!(temporal.address(), address);
    assert_eq!(
        describe_default_namespace(&address).await,
        Ok("default".to_owned())
    );
}
