// createEntity as osp-activities' `PlatformActivities::create_service` does it, with
// node-postgres: the same statements in the same transactions on the same database (one
// insert into public.services per workflow execution under the activities' statement bounds,
// a select of the row when a retry finds it), so the database work of the two workers is equal.
import { ApplicationFailure, activityInfo } from '@temporalio/activity';

import { invalidMessage } from './service-data.mjs';

// osp-activities' STATEMENT_BOUNDS.
const STATEMENT_BOUNDS = "set local lock_timeout = '5s'; set local statement_timeout = '30s'";
const COLUMNS = "id, name, description, service_schema, metadata, to_jsonb(created_at) #>> '{}' as created_at";
const INSERT = `insert into public.services
    (name, description, service_schema, metadata, workflow_id, workflow_run_id)
  values ($1, $2, $3, $4, $5, $6)
  on conflict (workflow_id, workflow_run_id) do nothing
  returning ${COLUMNS}`;
const SELECT = `select ${COLUMNS} from public.services where workflow_id = $1 and workflow_run_id = $2`;

/** osp-activities' `classify_sqlstate`: the caller's errors never succeed on retry. */
function failure(error) {
  const code = typeof error?.code === 'string' ? error.code : '';
  const permanent = ['23', '22', '42', '2F', '0A', '55', 'P0'].includes(code.slice(0, 2))
    && code !== '55P03';
  return ApplicationFailure.create({
    message: String(error?.message ?? error),
    type: permanent ? 'DataRejected' : 'DatabaseError',
    nonRetryable: permanent,
    cause: error instanceof Error ? error : undefined,
  });
}

/** One statement in a transaction of its own under the statement bounds, as `bounded` runs it. */
async function bounded(pool, text, values) {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(STATEMENT_BOUNDS);
    const { rows } = await client.query(text, values);
    await client.query('commit');
    return rows;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** The activities over `pool` (a pg.Pool). */
export function createActivities(pool) {
  return {
    async createEntity(input) {
      const invalid = invalidMessage(input);
      if (invalid !== null) {
        throw ApplicationFailure.create({ message: invalid, type: 'InvalidInput', nonRetryable: true });
      }
      const { workflowId, runId } = activityInfo().workflowExecution;
      try {
        // Insert once per workflow execution; a retry finds the row instead.
        let rows = await bounded(pool, INSERT, [
          input.name,
          input.description ?? null,
          input.service_schema ?? null,
          JSON.stringify(input.metadata ?? {}),
          workflowId,
          runId,
        ]);
        if (rows.length === 0) {
          rows = await bounded(pool, SELECT, [workflowId, runId]);
        }
        const row = rows[0];
        if (row === undefined) {
          throw ApplicationFailure.create({ message: 'services row neither inserted nor found', type: 'PreconditionFailed' });
        }
        return { ...row, metadata: row.metadata ?? {} };
      } catch (error) {
        throw error instanceof ApplicationFailure ? error : failure(error);
      }
    },
  };
}
