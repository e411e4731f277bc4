/**
 * The image's entry point: one image, the component chosen by its command.
 *   node dist/saga.js <component> [--help]     a service, relay, setup, migrate, seed, doctor or dlq
 *   node dist/saga.js check-config <component>   validate the environment for a component and exit
 *   node dist/saga.js --help
 * Components are loaded lazily: only the chosen one runs.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- lazy loading: only the chosen component's modules load */
import { DATABASE_OWNERS, type DatabaseOwner } from '@saga/common/contracts/service-names';

type ComponentEntry = { what: string; run: () => unknown; config: () => unknown };

const service = (name: DatabaseOwner): ComponentEntry => ({
  what:
    name === 'monitor'
      ? 'saga monitor (timelines, stuck sagas, page; consumer of every event)'
      : `${name} service (HTTP API, consumer of ${name}.events)`,
  // esbuild bundles every file this template can name (services/*/src/main.ts), so the bundle holds them all.
  run: () => require(`../services/${name}/src/main.ts`),
  config: () => require(`../services/${name}/src/config.ts`).loadConfig(),
});

export const COMPONENTS = {
  ...(Object.fromEntries(DATABASE_OWNERS.map((s) => [s, service(s)])) as Record<DatabaseOwner, ComponentEntry>),
  relay: {
    what: 'CDC relay (health and metrics :8010)',
    run: () => require('../cdc-relay/src/main'),
    config: () => require('../cdc-relay/src/config').loadConfig(),
  },
  setup: {
    what: 'prepare PostgreSQL servers and the broker (one-shot)',
    run: () => require('./setup'),
    config: () => require('./lib/admin').loadAdminConfig(),
  },
  migrate: {
    what: 'apply the committed migrations (one-shot)',
    run: () => require('./migrate'),
    config: () => require('./lib/admin').loadAdminConfig(),
  },
  seed: {
    what: 'add the demo catalogue and accounts when missing (one-shot)',
    run: () => require('./seed'),
    config: () => require('./demo-data').loadSeedConfig(),
  },
  doctor: {
    what: 'check the prerequisites and say what to fix',
    run: () => require('./doctor'),
    config: () => require('./lib/admin').loadAdminConfig(),
  },
  dlq: {
    what: 'inspect, replay and purge dead-lettered and operator queues',
    run: () => require('./dlq'),
    config: () =>
      require('@saga/common/runtime/config').parseEnv(require('@saga/common/runtime/config').BaseEnv, process.env),
  },
} satisfies Record<string, ComponentEntry>;
export type Component = keyof typeof COMPONENTS;

function help(): string {
  return [
    'usage: saga <component> [args]   |   saga <component> --help   |   saga check-config <component>   |   saga --help',
    '',
    'components:',
    ...Object.entries(COMPONENTS).map(([name, c]) => `  ${name.padEnd(10)} ${c.what}`),
    '',
    'Configuration comes from the environment (see README.md); <NAME>_FILE reads a variable from a file.',
  ].join('\n');
}

function main(argv: string[]) {
  const [command, ...rest] = argv;
  const isComponent = (c: string | undefined): c is Component =>
    !!c && Object.prototype.hasOwnProperty.call(COMPONENTS, c);
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(help());
    return;
  }
  if (command === 'check-config') {
    const target = rest[0];
    if (!isComponent(target)) {
      console.error(`check-config needs a component: ${Object.keys(COMPONENTS).join(', ')}`);
      process.exit(2);
    }
    try {
      COMPONENTS[target].config();
      console.log(`${target}: configuration ok`);
    } catch (err) {
      console.error(`${target}: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
    return;
  }
  if (!isComponent(command)) {
    console.error(`unknown component "${command}"\n\n${help()}`);
    process.exit(2);
  }
  // The component reads its own arguments (dlq) from process.argv after the command.
  process.argv = [process.argv[0]!, command, ...rest];
  COMPONENTS[command].run();
}

if (require.main === module) main(process.argv.slice(2));
