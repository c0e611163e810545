// The seglog command line: dump, verify and recover logs on disk, and run the
// benchmark suite. Exit codes: 0 all good, 1 problems found (or a recovery
// refused), 2 bad usage.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SeglogError } from '../errors.js';
import { dump } from './dump.js';
import { Printer } from './output.js';
import { recover } from './recover.js';
import { verify } from './verify.js';

const USAGE = `usage: seglog <command> [options]

  dump <file> [--records] [--print-data-log]
      Prints the batches of a .log (with --records, their records' metadata;
      with --print-data-log, keys and values too), or the entries of a .index
      or .timeindex, like Kafka's kafka-dump-log.sh.
  verify <dir>
      Checks a log directory, or every log of a store, without changing
      anything: batch sizes, CRCs and offsets, indexes against the log.
  recover <dir> [--repair] [--index-interval-bytes N]
      Runs recovery now: cuts torn tails, rebuilds indexes (one entry per N
      bytes of log, default 4096: give the logs' own setting), closes the log
      cleanly and reports what changed. Corruption followed by valid data is
      refused unless --repair, which cuts the log at the corruption.
  bench [--dir <path>] [--full] [--only <group>[,<group>...]]
      Runs the benchmark suite from a checkout of seglog (after npm install):
      this machine's ceilings, then seglog beside them (bench --help for more).

Exit code: 0 all good, 1 problems found or recovery refused, 2 bad usage.`;

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  // The suite parses its own options.
  if (argv[0] === 'bench') return bench(argv.slice(1));
  const out = new Printer();
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        records: { type: 'boolean', default: false },
        'print-data-log': { type: 'boolean', default: false },
        repair: { type: 'boolean', default: false },
        'index-interval-bytes': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = args;
  const [command, target, ...extra] = positionals;
  if (values.help || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  try {
    if (command === undefined) throw new UsageError('no command given');
    if (!['dump', 'verify', 'recover'].includes(command)) throw new UsageError(`unknown command '${command}'`);
    if (target === undefined) throw new UsageError(`${command} needs a ${command === 'dump' ? 'file' : 'directory'}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const allowed: string[] = { dump: ['records', 'print-data-log'], verify: [], recover: ['repair', 'index-interval-bytes'] }[command as 'dump' | 'verify' | 'recover'];
    for (const [name, value] of Object.entries(values)) {
      if (value !== false && name !== 'help' && !allowed.includes(name)) throw new UsageError(`--${name} does not apply to ${command}`);
    }
    let ok: boolean;
    if (command === 'dump') ok = await dump(target, { records: values.records, data: values['print-data-log'] }, out);
    else if (command === 'verify') ok = (await verify(target, out)).every((f) => f.level !== 'problem');
    else ok = await recover(target, { repair: values.repair, indexIntervalBytes: indexInterval(values['index-interval-bytes']) }, out);
    await out.flush();
    return ok ? 0 : 1;
  } catch (err) {
    await out.flush();
    if (err instanceof UsageError) return usage(err.message);
    // A path that is not there or not the right kind of file is the caller's mistake.
    const code = (err as SeglogError).code;
    if (err instanceof RangeError || code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
      console.error(`seglog ${command}: ${(err as Error).message}`);
      return 2;
    }
    console.error(`seglog ${command}: ${(err as Error).message}`);
    return 1;
  }
}

/**
 * Runs bench/suite.ts (TypeScript, through tsx) with `args`. Both live only
 * in a checkout of seglog with its dev dependencies, not in the published
 * package; the suite's exit code is the command's.
 */
function bench(args: string[]): Promise<number> {
  // src/cli/main.ts and dist/cli/main.js both sit two levels below the package root.
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const suite = join(root, 'bench', 'suite.ts');
  let tsx: string | undefined;
  try {
    tsx = createRequire(join(root, 'package.json')).resolve('tsx');
  } catch {
    // Not installed: said below.
  }
  if (tsx === undefined || !existsSync(suite)) {
    console.error(`seglog bench: runs from a checkout of seglog after npm install (it needs ${suite} and the dev dependency tsx)`);
    return Promise.resolve(2);
  }
  // Ctrl-C reaches the suite as well (same process group): wait for it to clean up and exit.
  process.on('SIGINT', () => undefined);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(tsx).href, suite, ...args], { stdio: 'inherit' });
    child.on('error', (err) => {
      console.error(`seglog bench: ${err.message}`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
  });
}

function indexInterval(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`--index-interval-bytes must be a number of bytes, got '${text}'`);
  return Number(text);
}

function usage(message: string): number {
  console.error(`seglog: ${message}\n\n${USAGE}`);
  return 2;
}

// A reader that goes away (`seglog dump x.log | head`) ends the dump, quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
process.exitCode = await main(process.argv.slice(2));
