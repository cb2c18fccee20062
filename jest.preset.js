// Shared Jest settings: TypeScript through SWC, workspace libraries resolved to their sources
// (the same mapping tsconfig.base.json gives tsc), unit specs beside the code in src/ and
// integration specs in test/.
const path = require('node:path');
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = {};
for (const [name, [target]] of Object.entries(compilerOptions.paths)) {
  moduleNameMapper[`^${name.replace(/[/]/g, '\\/')}$`] = path.join(__dirname, target);
}

// Jest on Node 20 cannot load ES modules: zod's locale files are imported as ESM (so that the
// bundles can tree-shake them) and mapped to their CommonJS twins here.
moduleNameMapper['^zod/v4/locales/(.*)\\.js$'] = path.join(__dirname, 'node_modules/zod/v4/locales/$1.cjs');

// @unraid/libvirt is ESM-only (its exports have no require condition): its dist is mapped and
// transformed to CommonJS like our sources (SWC turns import.meta.url into a file URL).
moduleNameMapper['^@unraid/libvirt$'] = path.join(__dirname, 'node_modules/@unraid/libvirt/dist/index.js');

module.exports = (projectDir, overrides = {}) => ({
  rootDir: projectDir,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
    '/node_modules/@unraid/libvirt/.+\\.js$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!@unraid/libvirt/)'],
  moduleNameMapper,
  testTimeout: 30_000,
  ...overrides,
});
