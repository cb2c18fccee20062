module.exports = require('../jest.preset.js')(__dirname, {
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/stack/**/*.spec.ts', '<rootDir>/boundaries/**/*.spec.ts', '<rootDir>/deploy/**/*.spec.ts'],
});
