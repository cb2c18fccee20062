// Shared Jest settings: TypeScript through SWC, workspace libraries resolved to their sources
// (the same mapping tsconfig.base.json gives tsc), unit specs beside the code in src/ and
// integration specs in test/.
const path = require('node:path');
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = {};
for (const [name, [target]] of Object.entries(compilerOptions.paths)) {
  moduleNameMapper[`^${name.replace(/[/]/g, '\\/')}$`] = path.join(__dirname, target);
}

module.exports = (projectDir, overrides = {}) => ({
  rootDir: projectDir,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  moduleNameMapper,
  testTimeout: 30_000,
  ...overrides,
});
