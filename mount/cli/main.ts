import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { isFsError } from '../../core/fs-error';
import { closeHome, type GlobalOpts } from './context';
import { EXIT_CODES } from './exit-codes';
import { registerIndexCommands } from './commands-index';
import { registerQueryCommands } from './commands-query';
import { registerScanCommand } from './commands-scan';
import { registerStatusCommand } from './commands-status';
import { registerMountCommands } from './commands-mount';
import { registerCacheCommands } from './commands-cache';
import { registerUpCommand } from './commands-up';
import { registerWebdavCommands } from './commands-webdav';
import { registerPeerCommands } from './commands-peer';
import { registerAuthCommands } from './commands-auth';
import { registerSafetyCommands } from './commands-safety';
import { registerPinCommands } from './commands-pin';
import { registerFsckCommand } from './commands-fsck';
import { registerCopyCommand } from './commands-copy';

function fail(err: unknown): never {
  if (isFsError(err)) {
    process.stderr.write(`vdfs: ${err.message}\n`);
    process.exit(EXIT_CODES[err.code]);
  }
  const sqliteBusy = (err as { code?: string }).code === 'SQLITE_BUSY';
  process.stderr.write(`vdfs: ${sqliteBusy ? 'the index is busy (another vdfs is writing); try again' : ((err as Error).stack ?? String(err))}\n`);
  process.exit(sqliteBusy ? EXIT_CODES.EBUSY : 1);
}

/** The version in the package.json above this module (the sources' or dist/'s: the same file). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  }
  return 'unknown';
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('vdfs')
    .description('one virtual distributed filesystem over your disks, devices and cloud buckets')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .option('--home <dir>', 'the node state directory (default: $VDFS_HOME or ~/.local/share/vdfs)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .exitOverride()
    .showHelpAfterError();
  const g = () => program.opts<GlobalOpts>();
  registerIndexCommands(program, g);
  registerScanCommand(program, g);
  registerQueryCommands(program, g);
  registerStatusCommand(program, g);
  registerMountCommands(program, g);
  registerCacheCommands(program, g);
  registerUpCommand(program, g);
  registerWebdavCommands(program, g);
  registerPeerCommands(program, g);
  registerAuthCommands(program, g);
  registerSafetyCommands(program, g);
  registerPinCommands(program, g);
  registerFsckCommand(program, g);
  registerCopyCommand(program, g);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    fail(err);
  } finally {
    closeHome();
  }
}

// A closed pipe (vdfs ls | head) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

if (require.main === module) void main(process.argv);
