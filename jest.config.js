/**
 * Two tiers, chosen by folder: test/unit (pure, no I/O, milliseconds) and test/integration
 * (real PostgreSQL with wal_level=logical and real RabbitMQ, started by `npm run setup`).
 * ts-jest runs in transpile-only mode: types are checked once by `npm run typecheck`.
 */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  moduleNameMapper: {
    '^@saga/common$': '<rootDir>/packages/common/src/index.ts',
    '^@saga/common/(.*)$': '<rootDir>/packages/common/src/$1',
  },
};
module.exports = {
  // Integration tests wait on conditions with their own deadlines; this only bounds a hung test.
  testTimeout: 120000,
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/**/test/unit/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/'],
    },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      testPathIgnorePatterns: ['/node_modules/'],
    },
  ],
};
