import t from 'tap';
import { spawn } from 'node:child_process';
import { startWebdavServer } from './helpers/webdav';

/** Runs Debian's litmus with a hard timeout; resolves with everything it printed. */
function runLitmus(url: string, user: string, password: string, cwd: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn('litmus', ['-k', '--', url, user, password], { cwd, env: { ...process.env, TESTS: 'basic copymove props locks http' } });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`litmus could not run (apt-get install litmus): ${err.message}`));
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

t.test('litmus: all 104 tests of basic, copymove, props, locks and http pass, none skipped', async (t) => {
  const srv = await startWebdavServer(t);
  const { code, out } = await runLitmus(`${srv.url}loc/`, srv.login.user, srv.login.password, srv.home, 240_000);
  const suites = [...out.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)].map((m) => ({
    suite: m[1]!,
    run: Number(m[2]),
    passed: Number(m[3]),
    failed: Number(m[4]),
  }));
  const failures = out.split('\n').filter((l) => /FAIL|SKIPPED|WARNING/.test(l));
  t.same(
    suites.map((s) => s.suite),
    ['basic', 'copymove', 'props', 'locks', 'http'],
    'all five suites ran to their summary',
  );
  const total = suites.reduce((a, s) => ({ run: a.run + s.run, passed: a.passed + s.passed, failed: a.failed + s.failed }), { run: 0, passed: 0, failed: 0 });
  t.equal(total.failed, 0, `no failures:\n${failures.join('\n')}`);
  t.equal(total.passed, 104, 'exactly 104 tests passed');
  t.equal(total.run, 104, 'nothing skipped (104 run)');
  t.notMatch(out, /skipped/i, 'no test reports itself skipped');
  t.equal(code, 0, 'litmus exit status 0');
  t.equal(srv.proc.exitCode, null, 'server still running afterwards');
});
