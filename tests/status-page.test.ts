import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { dirname, join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { startWebdavServer, urlWithLogin } from './helpers/webdav';

function plainGet(url: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/** Runs Debian's chromium headless (as root it needs --no-sandbox), with a hard timeout. */
function chromium(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars', '--user-data-dir=' + args[0], ...args.slice(1)], {
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 1 << 26,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function attr(dom: string, id: string, name: string): string {
  const m = new RegExp(`<[^>]*id="${id}"[^>]*>`).exec(dom);
  const a = m ? new RegExp(`${name}="([^"]*)"`).exec(m[0]) : null;
  if (!a) throw new Error(`no ${name} on #${id} in the rendered DOM`);
  return a[1];
}

function text(dom: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(dom);
  if (!m) throw new Error(`no #${id} in the rendered DOM`);
  return m[1];
}

t.test('GET /~vdfs/ renders the status page in headless Chromium; the numbers read back from the DOM match vdfs status', async (t) => {
  const shared = Buffer.from('on three locations\n');
  const dav = await startWebdavServer(t, {
    seed: (d) => {
      writeFileSync(join(d, 'shared.txt'), shared);
      writeFileSync(join(d, 'twice.bin'), Buffer.alloc(3000, 7));
      writeFileSync(join(d, 'only-here.txt'), 'only here\n');
    },
    otherLocations: ['usb', 'nas'],
    beforeServe: (home) => {
      const root = dirname(home);
      writeFileSync(join(root, 'usb', 'shared.txt'), shared);
      writeFileSync(join(root, 'nas', 'shared.txt'), shared);
      writeFileSync(join(root, 'usb', 'twice.bin'), Buffer.alloc(3000, 7));
      writeFileSync(join(root, 'usb', 'lonely.bin'), Buffer.alloc(5000, 1));
      vdfsOk(home, ['scan']);
      vdfsOk(home, ['config', 'set', 'copies.min', '2']);
      vdfsOk(home, ['pin', '/loc/twice.bin', '--wait']);
    },
  });
  const pageUrl = `${dav.url}~vdfs/`;
  const anon = await plainGet(pageUrl);
  t.equal(anon.status, 401, 'behind the same auth as the share');
  t.equal((await plainGet(`${dav.url}~vdfs/nope`)).status, 401, 'anything under /~vdfs/ asks for the login first');

  const status = vdfsOk(dav.home, ['status', '--json']).json<{
    locations: { name: string; online: boolean; files: number; bytes: number }[];
    copies: { min: number; files: number; histogram: Record<'1' | '2' | '3+', number>; under: { files: number } };
    pins: { bytes: number; fetchedBytes: number };
    uploads: { pending: number; failed: number };
  }>();

  const dir = tempDir(t, 'vdfs-chromium-');
  t.match(vdfsOk(dav.home, ['webdav', 'credentials', '--json']).stdout, /"user"/);
  const shot = join(dir, 'status.png');
  const url = urlWithLogin(pageUrl, dav.login);
  const dump = chromium([join(dir, 'profile-dom'), '--dump-dom', url]);
  t.equal(dump.code, 0, `chromium --dump-dom ran: ${dump.stderr.slice(-500)}`);
  const dom = dump.stdout;
  t.match(dom, /<h1>vdfs on <span id="node-name">webdav-test<\/span><\/h1>/, 'the rendered page, not a 401');
  t.notMatch(dom, /<script/i, 'no script');
  t.notMatch(dom, /(src|href)="https?:/i, 'no external asset');

  // Numbers read back from the rendered DOM against vdfs status --json.
  t.same(
    [text(dom, 'copies-1'), text(dom, 'copies-2'), text(dom, 'copies-3')].map(Number),
    [status.copies.histogram['1'], status.copies.histogram['2'], status.copies.histogram['3+']],
    'the copies histogram',
  );
  t.same(status.copies.histogram, { '1': 2, '2': 2, '3+': 3 }, 'which is right for what was seeded');
  t.equal(Number(attr(dom, 'copies', 'data-under')), status.copies.under.files);
  t.equal(Number(attr(dom, 'pinned', 'data-bytes')), 3000, 'pinned bytes');
  t.equal(Number(attr(dom, 'pinned', 'data-bytes')), status.pins.fetchedBytes);
  t.equal(Number(attr(dom, 'uploads', 'data-pending')), status.uploads.pending);
  for (const l of status.locations) {
    const row = new RegExp(`<tr data-location="${l.name}">(.*?)</tr>`).exec(dom)?.[1] ?? '';
    t.match(row, new RegExp(`data-online="${l.online}"`), `${l.name} online state`);
    t.match(row, new RegExp(`data-bytes="${l.bytes}"`), `${l.name} size`);
  }
  t.match(dom, /<svg id="copies-chart"[^>]*>(.*<rect[^>]*>){3}/s, 'the inline SVG chart has a bar per group');
  t.match(dom, /<table id="peers">.*no paired peers/s, 'the peers section');

  const cap = chromium([join(dir, 'profile-shot'), `--screenshot=${shot}`, '--window-size=900,1100', url]);
  t.equal(cap.code, 0, `chromium --screenshot ran: ${cap.stderr.slice(-500)}`);
  t.ok(existsSync(shot) && statSync(shot).size > 10_000, 'a screenshot was taken');
  if (process.env.VDFS_KEEP_SCREENSHOT) spawnSync('cp', [shot, process.env.VDFS_KEEP_SCREENSHOT]);
});
