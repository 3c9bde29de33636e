import t from 'tap';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';
import { OTHER_USER } from './helpers/posix-ops';

// A write-back folder stages what is written and uploads it later. The staged file used to
// belong to the daemon (root) until then and after: another user could not append to the file
// they had just made, an edited file lost its owner when it landed, and chown of a file not
// uploaded yet answered ENOENT (rsync -a as root chowns each file it writes). The same
// commands run on a plain directory say what each file's owner and mode must be.

const asOther = (script: string) => sh('setpriv', [`--reuid=${OTHER_USER.uid}`, `--regid=${OTHER_USER.gid}`, '--clear-groups', 'sh', '-c', script]);
const owner = (p: string) => {
  const st = statSync(p);
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
};

t.test('files written in a write-back folder have the owner the disk would give them, staged and uploaded', async (t) => {
  const { dir, src, mnt, oracle } = await mountWithOracle(t, 'wb', ['--write-back'], ['--allow-other']);
  chmodSync(dir, 0o755);
  const sides = { mount: join(mnt, 'wb'), disk: oracle };
  const steps: [string, (root: string) => { code: number | null; stdout: string; stderr: string }][] = [
    ['a shared folder, and a setgid one of group 23456', (r) => sh('sh', ['-c', `mkdir -m 1777 ${r}/s && mkdir ${r}/g && chown 0:23456 ${r}/g && chmod 2777 ${r}/g`])],
    ['another user writes a file, then appends to it', (r) => asOther(`umask 022; echo one > ${r}/s/mine && echo two >> ${r}/s/mine && cat ${r}/s/mine`)],
    ['and writes one in the setgid folder', (r) => asOther(`umask 002; echo x > ${r}/g/theirs`)],
    ["root appends to the other user's file", (r) => sh('sh', ['-c', `echo three >> ${r}/s/mine`])],
    ['root writes a file and gives it away at once (rsync -a)', (r) => sh('sh', ['-c', `echo given > ${r}/s/given && chown 12345:23456 ${r}/s/given && chmod 640 ${r}/s/given`])],
  ];
  const files = ['s/mine', 'g/theirs', 's/given'];
  for (const [what, step] of steps) {
    const [m, d] = [step(sides.mount), step(sides.disk)];
    t.same({ code: m.code, out: m.stdout }, { code: d.code, out: d.stdout }, `${what}: as on the disk (${m.stderr.trim() || 'no error'})`);
  }
  for (const f of files) t.equal(owner(join(sides.mount, f)), owner(join(sides.disk, f)), `${f}, staged: owner and mode as on the disk`);
  const landed = () => files.every((f) => existsSync(join(src, f)) && readFileSync(join(src, f), 'utf8') === readFileSync(join(oracle, f), 'utf8'));
  t.ok(await until(landed, 30_000), 'every file uploaded to the folder');
  // The upload's own commit follows its copy: give the index a moment to say so.
  t.ok(await until(() => files.every((f) => owner(join(sides.mount, f)) === owner(join(src, f))), 10_000), 'the mount shows the placed files');
  for (const f of files) t.equal(owner(join(src, f)), owner(join(sides.disk, f)), `${f}, uploaded: owner and mode as on the disk`);
  t.equal(asOther(`echo four >> ${sides.mount}/s/mine`).code, 0, 'the other user still appends to their uploaded file');
});
