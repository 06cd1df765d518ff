// ServiceData's rules, as osp-core's `ServiceData::validate` checks them, for the workflow and
// the activity alike (both check, as OSP's do). Plain functions: the workflow bundle imports
// this file too, so it must stay deterministic and free of Node APIs.

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/** Every broken rule of `input`, as `field: message`; empty when it is valid. */
export function problems(input) {
  const found = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return ['ServiceData: must be an object'];
  }
  const { name, description, service_schema: schema, metadata } = input;
  if (typeof name !== 'string' || name.trim() === '') {
    found.push('name: must not be empty');
  } else if ([...name].length > 200) {
    found.push(`name: must be 1 to 200 characters (got ${[...name].length})`);
  }
  if (description != null && (typeof description !== 'string' || [...description].length > 10000)) {
    found.push('description: must be 0 to 10000 characters');
  }
  if (schema != null && (typeof schema !== 'string' || schema.length > 63 || !IDENTIFIER.test(schema))) {
    found.push("service_schema: must be a lowercase SQL identifier (letters, digits and '_')");
  }
  if (metadata != null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    found.push('metadata: must be an object');
  }
  return found;
}

/** The failure message OSP gives for broken input, or null. */
export function invalidMessage(input) {
  const found = problems(input);
  return found.length === 0 ? null : `invalid ServiceData: ${found.join('; ')}`;
}
