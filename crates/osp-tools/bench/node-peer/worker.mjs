#!/usr/bin/env node
// The seed's Node worker (@temporalio/worker, node-postgres, 10 workflow tasks and 10
// activities at once) running OSP's createServiceWorkflow, for `osp-tools bench` to measure
// beside osp-worker. Configured like osp-worker through the environment; serves /healthz and
// /readyz on HEALTH_CHECK_PORT, ready under osp-worker's rule: the database answered and the
// server lists this worker among the pollers of its task queue for workflow and activity tasks.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import pg from 'pg';

import { createActivities } from './activities.mjs';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`node-peer: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const address = required('TEMPORAL_ADDRESS');
const taskQueue = required('TEMPORAL_TASK_QUEUE');
const databaseUrl = required('DATABASE_URL');
const namespace = process.env.TEMPORAL_NAMESPACE || 'default';
const healthPort = Number(process.env.HEALTH_CHECK_PORT || 0);
// osp-worker runs with RUST_LOG=warn in the benchmark; the same level here.
const logLevel = process.env.NODE_PEER_LOG_LEVEL || 'WARN';
// osp-worker's readiness check interval while starting (readiness.rs).
const READY_INTERVAL_MS = 100;

let ready = false;
const health = http.createServer((request, response) => {
  const path = (request.url || '').split('?')[0];
  if (path === '/healthz') {
    response.writeHead(200).end('ok\n');
  } else if (path === '/readyz') {
    response.writeHead(ready ? 200 : 503).end(ready ? 'ready\n' : 'starting\n');
  } else {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => health.listen(healthPort, '127.0.0.1', resolve));

Runtime.install({ logger: new DefaultLogger(logLevel) });

// node-postgres' default pool size, 10, is also osp-worker's (OSP_DATABASE_POOL_SIZE).
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
await pool.query('select 1');
const connection = await NativeConnection.connect({ address });
const worker = await Worker.create({
  connection,
  namespace,
  taskQueue,
  workflowsPath: fileURLToPath(new URL('./workflows.mjs', import.meta.url)),
  activities: createActivities(pool),
  // The seed's concurrency.
  maxConcurrentActivityTaskExecutions: 10,
  maxConcurrentWorkflowTaskExecutions: 10,
});

/** Whether the server lists this worker polling `taskQueue` for tasks of `type`. */
async function polling(type) {
  const { pollers } = await connection.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: 1 /* NORMAL */ },
    taskQueueType: type,
  });
  return (pollers || []).some((poller) => poller.identity === worker.options.identity);
}

async function watchReady() {
  while (worker.getState() === 'RUNNING' && !ready) {
    try {
      // 1: workflow tasks, 2: activity tasks (TaskQueueType).
      ready = (await polling(1)) && (await polling(2));
    } catch (error) {
      console.error(`node-peer: describing ${taskQueue}: ${error.message}`);
    }
    if (!ready) {
      await new Promise((resolve) => setTimeout(resolve, READY_INTERVAL_MS));
    }
  }
}

// run() resolves after SIGTERM or SIGINT (the runtime's shutdown signals) drained the worker.
const running = worker.run();
watchReady();
try {
  await running;
} finally {
  ready = false;
  await pool.end();
  await connection.close();
  health.close();
}
