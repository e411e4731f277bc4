/**
 * npm run build: bundle every component into dist/saga.js (workspace code inlined, npm dependencies left as
 * packages for `npm ci --omit=dev`). What the Dockerfile's build stage runs.
 */
import { build } from 'esbuild';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

build({
  entryPoints: [path.join(ROOT, 'scripts/cli.ts')],
  outfile: path.join(ROOT, 'dist/saga.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  alias: { '@saga/common': path.join(ROOT, 'packages/common/src') },
  sourcemap: true,
  tsconfig: path.join(ROOT, 'tsconfig.json'),
  logLevel: 'warning',
}).then(
  () => console.log('build: dist/saga.js'),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
