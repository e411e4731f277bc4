/**
 * `npm run test:cluster`: tests that start a RabbitMQ cluster of their own (test/cluster). Kept out of `npm test`
 * because they start three broker nodes; same transform and global setup as the integration tests.
 */
const base = require('./jest.config.js');
const integration = base.projects.find((p) => p.displayName === 'integration');
module.exports = {
  testTimeout: 600000,
  projects: [{ ...integration, displayName: 'cluster', testMatch: ['<rootDir>/test/cluster/**/*.test.ts'] }],
};
