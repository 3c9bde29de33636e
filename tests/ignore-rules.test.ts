import t from 'tap';
import { IgnoreRules } from '../index/ignore-rules';

t.test('the by-name fast path gives the same answers as the gitignore rules', async (t) => {
  const rules = new IgnoreRules();
  t.equal(rules.onlyDefaults, true);
  t.equal(new IgnoreRules(['*.tmp']).onlyDefaults, false);
  const names = [
    '.DS_Store',
    'x.DS_Store',
    '.DS_Store.bak',
    'Thumbs.db',
    'thumbs.db',
    'Thumbs.dbx',
    '._foo',
    '._',
    '_.foo',
    '.Trash-1000',
    '.Trash',
    'lost+found',
    'lost+found2',
    'lostxfound',
    'a.vdfs-tmp-1-2',
    '.vdfs-tmp-x',
    'vdfs-tmp',
    'normal.txt',
    '.hidden',
    'line\nbreak',
    '._line\nbreak',
    'Ünïcödé',
    '*',
    '[x]',
    '!important',
    '#hash',
    ' space',
    'trailing ',
    'back\\slash',
  ];
  for (const name of names) {
    for (const dir of [false, true]) {
      t.equal(rules.ignoresName(name), rules.ignores(name, dir), `${JSON.stringify(name)}${dir ? '/' : ''}`);
      t.equal(rules.ignoresName(name), rules.ignores(`some/dir/${name}`, dir), `some/dir/${JSON.stringify(name)}${dir ? '/' : ''}`);
    }
  }
  t.equal(rules.ignoresName('.DS_Store'), true, 'junk is ignored');
  t.equal(rules.ignoresName('normal.txt'), false);
});

t.test('location rules: gitignore syntax on top of the defaults', async (t) => {
  const rules = new IgnoreRules(['*.tmp', 'build/', '/top-only.txt', '!keep.tmp', 'docs/**/draft-*']);
  t.equal(rules.ignores('a.tmp', false), true);
  t.equal(rules.ignores('x/y/a.tmp', false), true, 'a bare glob matches at any depth');
  t.equal(rules.ignores('keep.tmp', false), false, 'negation');
  t.equal(rules.ignores('build', true), true, 'dir-only rule on a dir');
  t.equal(rules.ignores('build', false), false, 'dir-only rule on a file');
  t.equal(rules.ignores('top-only.txt', false), true, 'anchored rule at the root');
  t.equal(rules.ignores('sub/top-only.txt', false), false, 'anchored rule not below');
  t.equal(rules.ignores('docs/a/b/draft-1.md', false), true, '**');
  t.equal(rules.ignores('.DS_Store', false), true, 'defaults still apply');
  t.equal(rules.ignores('', true), false, 'the root is never ignored');
});

t.test('ignoresPath: the path or a folder above it, by name with the defaults, by prefix with rules', async (t) => {
  const byPrefix = (r: IgnoreRules, rel: string) => rel.split('/').some((_, i, parts) => r.ignores(parts.slice(0, i + 1).join('/'), i < parts.length - 1));
  const paths = [
    'a.txt',
    'd/a.txt',
    '.DS_Store',
    'd/.DS_Store',
    '.Trash-0/x/y',
    'ok/THUMBS.DB/z',
    'build/x.o',
    'x/build',
    'a.tmp',
    'd/keep.tmp',
    'sub/top-only.txt',
    'top-only.txt/z',
  ];
  for (const rules of [new IgnoreRules(), new IgnoreRules(['*.tmp', 'build/', '/top-only.txt', '!keep.tmp'])]) {
    for (const rel of paths) t.equal(rules.ignoresPath(rel), byPrefix(rules, rel), `${rules.onlyDefaults ? 'defaults' : 'rules'}: ${rel}`);
  }
  t.equal(new IgnoreRules().ignoresPath('.Trash-0/x/y'), true, 'a file in an ignored folder');
  t.equal(new IgnoreRules(['build/']).ignoresPath('build/x.o'), true);
  t.equal(new IgnoreRules(['build/']).ignoresPath('x/build'), false, 'a dir-only rule does not match the file itself');
});
