/**
 * The layers of vdfs (README "Architecture"), checked by `npm run check:layers` in CI.
 * Lowest first: core <- providers/<kind>, index, cache <- mount/vfs <- front ends
 * (mount/fuse, mount/webdav, mount/peer-server) <- app/ (wiring) <- mount/cli (entry point).
 * A lower layer never imports a higher one; siblings do not import each other.
 * There are no exceptions: `npm run check:layers` fails on any violation.
 */
const FRONT_ENDS = '^mount/(fuse|webdav|peer-server)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle ties modules into one unit that cannot be tested or replaced alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-the-bottom',
      severity: 'error',
      comment: 'core/ is the shared vocabulary (FsError, paths, Provider): it imports nothing of vdfs above it.',
      from: { path: '^core/' },
      to: { path: '^(app|mount|providers|index|cache)/' },
    },
    {
      name: 'providers-are-leaves',
      severity: 'error',
      comment: 'A provider imports only core/ and its own folder; what it needs from the node (keys, tokens, the index) comes in a context object.',
      from: { path: '^providers/([^/]+)/' },
      to: { path: '^(app|mount|index|cache|providers)/', pathNot: '^providers/$1/' },
    },
    {
      name: 'index-only-core',
      severity: 'error',
      comment: 'index/ (SQLite) imports only core/: scanners get providers through the Provider interface.',
      from: { path: '^index/' },
      to: { path: '^(app|mount|providers|cache)/' },
    },
    {
      name: 'cache-only-core',
      severity: 'error',
      comment: 'cache/ is keyed by content and imports only core/.',
      from: { path: '^cache/' },
      to: { path: '^(app|mount|providers|index)/' },
    },
    {
      name: 'vfs-below-front-ends',
      severity: 'error',
      comment: 'mount/vfs uses core, index and cache; never a concrete provider, the wiring (app/) or a front end.',
      from: { path: '^mount/vfs/' },
      to: { path: '^(app|providers)/|^mount/(fuse|webdav|peer-server|cli)/' },
    },
    {
      name: 'front-ends-use-the-vfs-interface',
      severity: 'error',
      comment: 'Front ends see core/ and the Vfs interface (mount/vfs/types), not VfsCore, the index, providers, the wiring or each other.',
      from: { path: FRONT_ENDS },
      to: { path: '^(app|providers|index|cache)/|^mount/(cli|vfs)/', pathNot: '^mount/vfs/types[.]ts$' },
    },
    {
      name: 'front-ends-not-each-other',
      severity: 'error',
      comment: 'fuse, webdav and the peer server sit side by side.',
      from: { path: '^mount/(fuse|webdav|peer-server)/' },
      to: { path: FRONT_ENDS, pathNot: '^mount/$1/' },
    },
    {
      name: 'app-below-cli',
      severity: 'error',
      comment: 'app/ wires the layers together; only the entry point (mount/cli) sits above it.',
      from: { path: '^app/' },
      to: { path: '^mount/cli/' },
    },
    {
      name: 'sqlite-only-in-index',
      severity: 'error',
      comment: 'index/ is the only place that speaks SQL.',
      from: { pathNot: '^index/' },
      to: { path: '(^|/)node_modules/better-sqlite3/' },
    },
    {
      name: 'no-orphans-of-vdfs',
      severity: 'ignore',
      from: { orphan: true },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    exclude: { path: '^(dist|tests)/' },
    tsPreCompilationDeps: true,
    // node_modules may be a symlink (worktrees share one): keep its paths as node_modules/...
    preserveSymlinks: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json', '.node'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
