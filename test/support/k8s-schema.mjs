// Strict offline validation of Kubernetes objects against the OpenAPI models of @kubernetes/client-node
// (Kubernetes release-1.36): an unknown or misspelt field, or a value of the wrong type, is an error.
// Reads a JSON array of objects on stdin, prints a JSON array of error strings.
import * as models from '@kubernetes/client-node/dist/gen/models/all.js';

const errors = [];
const PRIMITIVE = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  Date: (v) => typeof v === 'string',
  IntOrString: (v) => typeof v === 'string' || Number.isInteger(v),
  any: () => true,
  object: (v) => typeof v === 'object' && v !== null,
};

function check(value, type, path) {
  if (value === null || value === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (!Array.isArray(value)) return errors.push(`${path}: expected an array (${type})`);
    value.forEach((v, i) => check(v, arr[1], `${path}[${i}]`));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return errors.push(`${path}: expected a map (${type})`);
    for (const [k, v] of Object.entries(value)) check(v, map[1], `${path}.${k}`);
    return;
  }
  if (PRIMITIVE[type]) {
    if (!PRIMITIVE[type](value)) errors.push(`${path}: expected ${type}, got ${JSON.stringify(value).slice(0, 40)}`);
    return;
  }
  const model = models[type];
  if (!model || !model.attributeTypeMap) return errors.push(`${path}: no model ${type}`);
  if (typeof value !== 'object' || Array.isArray(value)) return errors.push(`${path}: expected an object (${type})`);
  const fields = new Map(model.attributeTypeMap.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) errors.push(`${path}: unknown field "${k}" in ${type}`);
    else check(v, fields.get(k), `${path}.${k}`);
  }
}

const input = JSON.parse(
  await new Promise((resolve) => {
    let s = '';
    process.stdin.on('data', (c) => (s += c)).on('end', () => resolve(s));
  }),
);
for (const obj of input) {
  const version = String(obj.apiVersion ?? '')
    .split('/')
    .pop();
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${obj.kind}`;
  const name = `${obj.kind}/${obj.metadata?.name ?? '?'}`;
  if (!models[type]) {
    errors.push(`${name}: unknown kind ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  if (!obj.metadata?.name) errors.push(`${name}: metadata.name is required`);
  check(obj, type, name);
}
process.stdout.write(JSON.stringify(errors));
