import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { ROOT, tempDir } from './helpers/cli';

// The layer check (npm run check:layers, in .ci/run) runs dependency-cruiser with the project's
// own .dependency-cruiser.cjs. These tests run that same tool and config on the real tree and on
// small made-up trees, one forbidden import each, so every rule is shown to fail when broken.

const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const LAYERS = ['core', 'app', 'mount', 'providers', 'index', 'cache'];

interface Violation {
  rule: string;
  from: string;
  to: string;
}

/**
 * Runs depcruise in `cwd` over the layer folders, as `npm run check:layers` does (the `err`
 * reporter, whose exit code is the number of errors); returns that code and the errors it printed.
 */
function cruise(cwd: string, extra: string[] = []): { code: number; violations: Violation[]; out: string } {
  const r = spawnSync(DEPCRUISE, [...LAYERS, '--config', join(cwd, '.dependency-cruiser.cjs'), '--output-type', 'err', ...extra], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 1 << 28,
  });
  if (r.error) throw r.error;
  // "  error rule-name: from → to" (a cycle continues with "→" lines; its first edge is enough here)
  const violations = [...r.stdout.matchAll(/^\s*error ([a-z-]+): (\S+) →\s*(\S+)?/gm)].map((m) => ({ rule: m[1], from: m[2], to: m[3] ?? '' }));
  return { code: r.status ?? -1, violations, out: r.stdout + r.stderr };
}

const show = (vs: Violation[]) => vs.map((v) => `${v.rule}: ${v.from} -> ${v.to}`);

/** A tree with the project's config and tsconfig, every layer folder, and the given files. */
function fixture(t: Test, files: Record<string, string>): string {
  const dir = tempDir(t);
  copyFileSync(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  copyFileSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  for (const l of LAYERS) mkdirSync(join(dir, l), { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  for (const l of LAYERS) writeFileSync(join(dir, l, 'keep.ts'), 'export const keep = 1;\n');
  return dir;
}

t.test('the real tree passes the layer check, with no list of known violations', async (t) => {
  const r = cruise(ROOT);
  t.same(show(r.violations), [], 'no violation');
  t.equal(r.code, 0, 'exit 0');
});

// One forbidden edge per case: [what, files, the rule that must fire, its from, its to].
const BAD: [string, Record<string, string>, string, string, string][] = [
  ['core imports the wiring', { 'core/a.ts': "import '../app/b';\n", 'app/b.ts': 'export {};\n' }, 'core-is-the-bottom', 'core/a.ts', 'app/b.ts'],
  [
    'a provider imports another provider',
    { 'providers/s3/a.ts': "import '../local/b';\n", 'providers/local/b.ts': 'export {};\n' },
    'providers-are-leaves',
    'providers/s3/a.ts',
    'providers/local/b.ts',
  ],
  [
    'a provider imports the index',
    { 'providers/peer/a.ts': "import '../../index/b';\n", 'index/b.ts': 'export {};\n' },
    'providers-are-leaves',
    'providers/peer/a.ts',
    'index/b.ts',
  ],
  [
    'the index imports a provider',
    { 'index/a.ts': "import '../providers/local/b';\n", 'providers/local/b.ts': 'export {};\n' },
    'index-only-core',
    'index/a.ts',
    'providers/local/b.ts',
  ],
  ['the cache imports the index', { 'cache/a.ts': "import '../index/b';\n", 'index/b.ts': 'export {};\n' }, 'cache-only-core', 'cache/a.ts', 'index/b.ts'],
  ['the vfs imports the wiring', { 'mount/vfs/a.ts': "import '../../app/b';\n", 'app/b.ts': 'export {};\n' }, 'vfs-below-front-ends', 'mount/vfs/a.ts', 'app/b.ts'],
  ['the vfs imports a front end', { 'mount/vfs/a.ts': "import '../fuse/b';\n", 'mount/fuse/b.ts': 'export {};\n' }, 'vfs-below-front-ends', 'mount/vfs/a.ts', 'mount/fuse/b.ts'],
  [
    'a front end imports VfsCore',
    { 'mount/webdav/a.ts': "import '../vfs/vfs-core';\n", 'mount/vfs/vfs-core.ts': 'export {};\n' },
    'front-ends-use-the-vfs-interface',
    'mount/webdav/a.ts',
    'mount/vfs/vfs-core.ts',
  ],
  [
    'the peer server imports the index',
    { 'mount/peer-server/a.ts': "import '../../index/b';\n", 'index/b.ts': 'export {};\n' },
    'front-ends-use-the-vfs-interface',
    'mount/peer-server/a.ts',
    'index/b.ts',
  ],
  [
    'the peer server imports a provider',
    { 'mount/peer-server/a.ts': "import '../../providers/peer/b';\n", 'providers/peer/b.ts': 'export {};\n' },
    'front-ends-use-the-vfs-interface',
    'mount/peer-server/a.ts',
    'providers/peer/b.ts',
  ],
  [
    'the cache opens SQLite',
    { 'cache/a.ts': "import Database from 'better-sqlite3';\nexport const d = Database;\n" },
    'sqlite-only-in-index',
    'cache/a.ts',
    'node_modules/better-sqlite3/lib/index.js',
  ],
  [
    'a front end imports another',
    { 'mount/fuse/a.ts': "import '../webdav/b';\n", 'mount/webdav/b.ts': 'export {};\n' },
    'front-ends-not-each-other',
    'mount/fuse/a.ts',
    'mount/webdav/b.ts',
  ],
  ['the wiring imports the CLI', { 'app/a.ts': "import '../mount/cli/b';\n", 'mount/cli/b.ts': 'export {};\n' }, 'app-below-cli', 'app/a.ts', 'mount/cli/b.ts'],
  [
    'SQLite outside index/',
    { 'app/a.ts': "import Database from 'better-sqlite3';\nexport const d = Database;\n" },
    'sqlite-only-in-index',
    'app/a.ts',
    'node_modules/better-sqlite3/lib/index.js',
  ],
  ['a cycle', { 'cache/a.ts': "import './b';\nexport const a = 1;\n", 'cache/b.ts': "import './a';\nexport const b = 1;\n" }, 'no-circular', 'cache/a.ts', 'cache/b.ts'],
];

for (const [what, files, rule, from, to] of BAD) {
  t.test(`the check fails when ${what} (${rule})`, async (t) => {
    const r = cruise(fixture(t, files));
    t.not(r.code, 0, 'non-zero exit');
    // A cycle is reported from either end; the other rules name the importing file.
    const hit = r.violations.find((v) => v.rule === rule && ((v.from === from && v.to === to) || (rule === 'no-circular' && v.from === to && v.to === from)));
    t.ok(hit, `${rule}: ${from} -> ${to} is reported (got: ${show(r.violations).join('; ') || r.out})`);
  });
}

t.test('allowed edges pass: front end -> Vfs interface, wiring -> providers, CLI -> wiring, vfs -> index', async (t) => {
  const r = cruise(
    fixture(t, {
      'mount/vfs/types.ts': "import '../../core/keep';\nexport {};\n",
      'mount/webdav/a.ts': "import '../vfs/types';\n",
      'mount/vfs/b.ts': "import '../../index/keep';\nimport '../../cache/keep';\n",
      'providers/s3/c.ts': "import '../../core/keep';\nexport {};\n",
      'app/d.ts': "import '../providers/s3/c';\nimport '../mount/vfs/b';\nimport '../mount/webdav/a';\n",
      'mount/cli/e.ts': "import '../../app/d';\n",
      'index/f.ts': "import Database from 'better-sqlite3';\nexport const d = Database;\n",
    }),
  );
  t.same(show(r.violations), [], 'no violation');
  t.equal(r.code, 0, 'exit 0');
});
