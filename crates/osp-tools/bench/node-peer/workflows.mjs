// createServiceWorkflow as OSP's osp-workflows defines it (same name, input, result and
// activity options): validate, then one createEntity activity (start-to-close 30 s, at most
// 3 attempts). Bundled by the SDK's own bundler at Worker.create, as the seed's worker did.
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';

import { invalidMessage } from './service-data.mjs';

const { createEntity } = proxyActivities({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3 },
});

export async function createServiceWorkflow(input) {
  const invalid = invalidMessage(input);
  if (invalid !== null) {
    throw ApplicationFailure.create({ message: invalid, type: 'InvalidInput', nonRetryable: true });
  }
  return await createEntity(input);
}
