import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { FsError } from '../../core/fs-error';
import { hashPassword } from '../webdav/auth';
import { ensureWebdavCredential, readWebdavUsers, resetWebdavCredential, writeWebdavUsers } from '../../app/webdav-access';
import { openHome, type GlobalOpts } from './context';
import { printJson } from './output';

/** A password from a terminal (not echoed) or from standard input (first line). */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text.split(/\r?\n/)[0] ?? '';
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.includes('Password')) process.stderr.write(s);
  };
  const pw = await new Promise<string>((res) => rl.question('Password: ', res));
  rl.close();
  process.stderr.write('\n');
  return pw;
}

/** `vdfs webdav credentials` and `vdfs webdav user add|rm|ls`: who may use the WebDAV share. */
export function registerWebdavCommands(program: Command, g: () => GlobalOpts): void {
  const webdav = program.command('webdav').description('WebDAV share settings');
  webdav
    .command('credentials')
    .description("show the home's WebDAV login (user vdfs and its generated password; Digest or Basic)")
    .option('--reset', 'generate a new password (restart a running vdfs to apply)')
    .option('--json', 'print a JSON document')
    .action((o: { reset?: boolean; json?: boolean }) => {
      const home = openHome(g());
      const c = o.reset ? resetWebdavCredential(home) : ensureWebdavCredential(home);
      if (o.json) printJson({ user: c.user, password: c.password });
      else process.stdout.write(`user: ${c.user}\npassword: ${c.password}\n`);
    });
  const user = webdav.command('user').description('more Basic-auth users, accepted on every address (one is needed for a non-loopback address)');
  user
    .command('add <name>')
    .description('add or change a user; the password is read from the terminal or the first line of stdin')
    .action(async (name: string) => {
      if (!/^[\w.@-]{1,64}$/.test(name)) throw new FsError('EINVAL', 'user names: 1-64 letters, digits, ".", "_", "-", "@"');
      const home = openHome(g());
      const pw = await readPassword();
      if (pw.length < 8) throw new FsError('EINVAL', 'use a password of at least 8 characters');
      const users = readWebdavUsers(home).filter((u) => u.name !== name);
      users.push({ name, scrypt: await hashPassword(pw) });
      writeWebdavUsers(home, users);
      process.stdout.write(`WebDAV user ${name} saved (restart a running vdfs to apply)\n`);
    });
  user.command('rm <name>').action((name: string) => {
    const home = openHome(g());
    const users = readWebdavUsers(home);
    if (!users.some((u) => u.name === name)) throw new FsError('ENOENT', `no WebDAV user ${name}`);
    writeWebdavUsers(
      home,
      users.filter((u) => u.name !== name),
    );
    process.stdout.write(`WebDAV user ${name} removed (restart a running vdfs to apply)\n`);
  });
  user
    .command('ls')
    .option('--json', 'print a JSON document')
    .action((o: { json?: boolean }) => {
      const names = readWebdavUsers(openHome(g())).map((u) => u.name);
      if (o.json) printJson(names);
      else process.stdout.write(names.length ? names.map((n) => `${n}\n`).join('') : 'No WebDAV users: the share is reachable on loopback only, with `vdfs webdav credentials`.\n');
    });
}
