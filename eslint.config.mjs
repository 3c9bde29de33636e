// ESLint flat config: typescript-eslint's recommended rules, tuned so that what fails is a
// real problem (unused code, unsafe declarations, missing awaits are not guessed at here:
// tsc --strict covers types). Run with `npm run lint`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'mount/fuse/native/build/**', 'docker/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      // Unused names are errors, except the `_name` convention for deliberately ignored ones.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', destructuredArrayIgnorePattern: '^_' }],
      // Lazy `require` is how the cloud SDKs and selfsigned load on first use (CLI start-up time).
      '@typescript-eslint/no-require-imports': 'off',
      // The FUSE binding's callbacks are untyped at the edge; `any` is kept to those few places.
      '@typescript-eslint/no-explicit-any': 'warn',
      // `catch {}` with a comment saying why is the project's style for best-effort cleanup.
      'no-empty': ['error', { allowEmptyCatch: true }],
      'no-constant-condition': ['error', { checkLoops: false }],
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Functions stay small enough to read at once (issue #14: named steps, not god functions).
    // A warning for now, so a branch that grows one still merges; split it, or say at its top
    // why it is long and disable the rule there.
    files: ['app/**/*.ts', 'mount/**/*.ts', 'providers/**/*.ts', 'index/**/*.ts', 'cache/**/*.ts', 'core/**/*.ts'],
    rules: { 'max-lines-per-function': ['warn', { max: 80 }] },
  },
  {
    files: ['**/*.cjs', '**/*.js', '**/*.mjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', __dirname: 'readonly', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
