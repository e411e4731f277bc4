/**
 * npm run contracts: write contracts/asyncapi.yaml, contracts/openapi/<service>.json and the event
 * catalogue from the code's contracts. `-- --check` writes nothing and exits 1 when a file is out of date.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { generatedFiles, readRepoFile, ROOT, withCatalogue } from './lib/contracts';

answerArgs({
  name: 'npm run contracts',
  summary:
    'generate the AsyncAPI and OpenAPI documents and the event catalogue of docs/contracts.md from the zod contracts',
  details: ['--check  write nothing; exit 1 naming each file that differs from what would be generated'],
  accepts: (args) => args.length === 0 || (args.length === 1 && args[0] === '--check'),
});

const check = process.argv.includes('--check');
const files = { ...generatedFiles(), 'docs/contracts.md': withCatalogue(readRepoFile('docs/contracts.md')) };
const stale: string[] = [];
for (const [path, content] of Object.entries(files)) {
  let current: string | undefined;
  try {
    current = readRepoFile(path);
  } catch {
    current = undefined;
  }
  if (current === content) continue;
  stale.push(path);
  if (!check) {
    mkdirSync(dirname(join(ROOT, path)), { recursive: true });
    writeFileSync(join(ROOT, path), content);
  }
}
if (check && stale.length > 0) {
  process.stderr.write(`out of date (run npm run contracts): ${stale.join(', ')}\n`);
  process.exit(1);
}
process.stdout.write(
  stale.length ? `${check ? 'would write' : 'wrote'} ${stale.join(', ')}\n` : 'contracts up to date\n',
);
