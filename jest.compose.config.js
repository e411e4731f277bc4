/**
 * `npm run test:compose`: docker-compose.yml on a real Docker Engine (test/compose). Apart from `npm test`: it needs
 * an engine, takes minutes, and uses none of the machine's own PostgreSQL or RabbitMQ.
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  moduleNameMapper: {
    '^@saga/common$': '<rootDir>/packages/common/src/index.ts',
    '^@saga/common/(.*)$': '<rootDir>/packages/common/src/$1',
  },
  testMatch: ['<rootDir>/test/compose/**/*.test.ts'],
  // Each step waits on conditions with its own deadline; this only bounds a hung test.
  testTimeout: 15 * 60_000,
};
