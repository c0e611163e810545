// Read-path faults with libfiu (Debian fiu-utils; .ci/run installs it). A
// child (fixtures/read-faults-child.ts) writes a log, then runs one read per
// command under `fiu-run -x` with UV_USE_IO_URING=0, while this file turns
// failure points on and off with fiu-ctrl between commands.
//
// What libfiu 1.1's POSIX preload wraps on the read path: pread and pread64
// (point posix/io/rw/pread), preadv and preadv64 (posix/io/rw/preadv), each
// with a /reduce point that shortens the transfer; the addon calls pread64,
// preadv64 and sendfile64. Not wrapped: sendfile/sendfile64, preadv2,
// splice, copy_file_range. So sendfile and preadv2 (the inline read of
// cached pages, RWF_NOWAIT) get their points from a small shim,
// fixtures/fiu-shim.c, which asks the preloaded libfiu (seglog/sendfile,
// seglog/sendfile/reduce, seglog/sendfile/at, seglog/preadv2,
// seglog/preadv2/reduce, seglog/mincore). In pagecache mode the inline read
// is made to miss (EAGAIN, as for evicted pages) except where a test aims
// at it, and mincore to say no page is in memory (so no read is served
// from a mapping), so the pread tests reach the threadpool read.
//
// For read, records, sendTo (loopback TCP: sendfile(2); any other Writable:
// copied with pread) and, in own cache mode, catch-up reads through the
// O_DIRECT descriptor (/proc/self/fd/N): a fault rejects with a typed EIO
// naming the system call, nothing wrong is served (no wrong byte, no wrong
// record, a socket holds only a correct prefix and is destroyed), short
// reads and transfers still serve exactly what was written, and once the
// fault is off the same log reads back whole, appends, closes and reopens
// clean.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Log } from '../src/log/log.js';
import { recordValue } from './fixtures/random.js';

const hasFiu = spawnSync('sh', ['-c', 'command -v fiu-run && command -v fiu-ctrl']).status === 0;
const here = fileURLToPath(new URL('.', import.meta.url));
const child = join(here, 'fixtures', 'read-faults-child.ts');
/** As the child writes them: one record per batch, its value recordValue(offset, 700). */
const RECORDS = 120;
const VALUE_BYTES = 700;
const EIO = 5;
const EAGAIN = 11;

interface ErrorInfo {
  code: string;
  syscall: string;
  path: string;
  typed: boolean;
  bytesSent?: number;
  message: string;
}
interface Done {
  ok: boolean;
  match?: boolean;
  error?: ErrorInfo;
  failure: ErrorInfo | null;
  preadCalls: number;
  sendfileCalls: number;
  yielded?: number;
  wrong?: number;
  received?: number;
  prefix?: boolean;
  destroyed?: boolean;
  destroyedAtRejection?: boolean;
  directIO?: boolean;
  tailMisses?: number;
  tailHits?: number;
  catchUpBytesFromDisk?: number;
  endOffset?: number;
}

/** The child under fiu-run, its log directory, and fiu-ctrl for its failure points. */
class FiuChild {
  readonly dir: string;
  readonly #proc: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #exited: Promise<number | null>;
  #pid = '';

  private constructor(dir: string, proc: ChildProcess) {
    this.dir = dir;
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', resolve));
    this.#lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }

  static async start(dir: string, shim: string, mode: 'pagecache' | 'own'): Promise<FiuChild> {
    // fiu-run sets LD_PRELOAD to its own two libraries; the sendfile shim is added after them, in the same process (exec).
    const proc = spawn('fiu-run', ['-x', 'sh', '-c', 'LD_PRELOAD="$LD_PRELOAD $0" exec "$@"', shim, process.execPath, '--import', 'tsx', child, dir, mode], {
      env: { ...process.env, UV_USE_IO_URING: '0' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const c = new FiuChild(dir, proc);
    const [ready, pid] = await c.#next();
    expect(ready).toBe('READY');
    c.#pid = pid!;
    return c;
  }

  async #next(): Promise<string[]> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error(`read-faults child ended early (exit ${await this.#exited})`);
    return value.split(' ');
  }

  /** Runs a fiu-ctrl command (enable name=..., disable name=...) in the child. */
  async fiu(command: string): Promise<void> {
    await promisify(execFile)('fiu-ctrl', ['-c', command, this.#pid]);
  }

  /** `enable name=<point>,failinfo=<errno or position>`. */
  enable(point: string, failinfo = EIO): Promise<void> {
    return this.fiu(`enable name=${point},failinfo=${failinfo}`);
  }

  disable(point: string): Promise<void> {
    return this.fiu(`disable name=${point}`);
  }

  /** Runs `work` with `point` on, and turns it off again whatever happens (a failed check must not leave it on for the next test). */
  async with<T>(point: string, failinfo: number, work: () => Promise<T>): Promise<T> {
    await this.enable(point, failinfo);
    try {
      return await work();
    } finally {
      await this.disable(point);
    }
  }

  async op(name: string): Promise<Done> {
    this.#proc.stdin!.write(`${name}\n`);
    const [word, ...rest] = await this.#next();
    expect(word).toBe('DONE');
    return JSON.parse(rest.join(' ')) as Done;
  }

  /** records() with `point` failing from the (k+1)-th record on: the child pauses after k for the fault to start. */
  async recordsFailingAfter(k: number, point: string): Promise<Done> {
    this.#proc.stdin!.write(`records ${k}\n`);
    expect(await this.#next()).toEqual(['AT', String(k)]);
    await this.enable(point);
    try {
      this.#proc.stdin!.write('GO\n');
      const [word, ...rest] = await this.#next();
      expect(word).toBe('DONE');
      return JSON.parse(rest.join(' ')) as Done;
    } finally {
      await this.disable(point);
    }
  }

  async close(): Promise<number | null> {
    this.#proc.stdin!.write('CLOSE\n');
    expect(await this.#next()).toEqual(['CLOSED']);
    return this.#exited;
  }

  kill(): void {
    if (this.#proc.exitCode === null) this.#proc.kill('SIGKILL');
  }
}

/** A failed op: typed EIO naming `syscall`, and the log not failed (a read error is not a reason to stop writes). */
function expectEio(r: Done, syscall: string, path: RegExp): void {
  expect(r.ok, JSON.stringify(r)).toBe(false);
  expect(r.error).toMatchObject({ typed: true, code: 'EIO', syscall });
  expect(r.error!.path).toMatch(path);
  expect(r.failure).toBeNull();
}

/** A whole, exact op: every byte or record as written. */
function expectExact(r: Done): void {
  expect(r, JSON.stringify(r)).toMatchObject({ ok: true, match: true, failure: null });
}

/**
 * A failed sendTo: typed, the socket destroyed, and the receiver holding only a correct prefix of the batches.
 * A failure while the batches are located (a pread) rejects a few event-loop turns before the socket is
 * destroyed (LogReader.sendTo's Promise.all settles with the first rejection); a failed transfer
 * (sendfile) destroys it first, as sendParts documents.
 */
function expectFailedTransfer(r: Done, syscall: string, path: RegExp): void {
  expectEio(r, syscall, path);
  expect(r.destroyed).toBe(true);
  expect(r.destroyedAtRejection).toBe(true);
  expect(typeof r.error!.bytesSent).toBe('number');
  expect(r.prefix).toBe(true);
}

/** The log reopened here, without faults: every record at its offset, nothing after. */
async function expectCleanReopen(dir: string, endOffset: number): Promise<void> {
  const log = await Log.open(dir);
  try {
    expect(log.endOffset).toBe(endOffset);
    let next = 0;
    for await (const r of log.records(0)) {
      expect(r.offset).toBe(next);
      expect(r.value!.equals(recordValue(next, VALUE_BYTES)), `record ${next}`).toBe(true);
      next++;
    }
    expect(next).toBe(endOffset);
  } finally {
    await log.close();
  }
}

/** Builds the sendfile shim once per file. */
/** The shim's point for the inline read of cached pages (preadv2 RWF_NOWAIT). */
const INLINE = 'seglog/preadv2';
let shim = '';
let shimDir = '';
beforeAll(async () => {
  shimDir = await mkdtemp(join(tmpdir(), 'seglog-fiu-shim-'));
  shim = join(shimDir, 'fiu-shim.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'fixtures', 'fiu-shim.c'), '-ldl']);
});
afterAll(() => rm(shimDir, { recursive: true, force: true }));

// Never skipped: a missing fiu-run must fail loudly (.ci/run installs fiu-utils).
test('fiu-run is installed', () => expect(hasFiu, 'fiu-run not found: apt-get install fiu-utils').toBe(true));

describe.each(['pagecache', 'own'] as const)('read-path faults in %s mode', (mode) => {
  // In pagecache mode reads pread the segment files; in own mode a read from offset 0 misses the tail
  // cache and is a catch-up read through the O_DIRECT descriptor, /proc/self/fd/N.
  const readPath = mode === 'pagecache' ? /\/\d{20}\.log$/ : /^\/proc\/self\/fd\/\d+$/;
  let c: FiuChild;
  let logDir: string;
  let dataRoot: string;
  beforeAll(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), 'seglog-read-faults-'));
    logDir = join(dataRoot, 'log');
    c = await FiuChild.start(logDir, shim, mode);
    // Pages in memory would be served from a mapping, which makes no pread: mincore is made to miss too.
    if (mode === 'pagecache') {
      await c.enable(INLINE, EAGAIN);
      await c.enable('seglog/mincore', 0);
    }
  });
  afterAll(async () => {
    c?.kill();
    await rm(dataRoot, { recursive: true, force: true });
  });

  test('without faults every read is exact', async () => {
    const read = await c.op('read');
    expectExact(read);
    if (mode === 'own') {
      // Proof that this is the path under test: catch-up reads from disk, O_DIRECT.
      expect(read).toMatchObject({ directIO: true });
      expect(read.tailMisses).toBeGreaterThan(0);
      expect(read.catchUpBytesFromDisk).toBeGreaterThan(0);
    }
    expectExact(await c.op('records'));
    expectExact(await c.op('sendTo'));
    expectExact(await c.op('sendToCopy'));
  });

  test('EIO on pread: read, records and sendTo reject typed, serve nothing wrong, and work again after', async () => {
    await c.with('posix/io/rw/pread', EIO, async () => {
      expectEio(await c.op('read'), 'pread', readPath);
      const records = await c.op('records');
      expectEio(records, 'pread', readPath);
      expect(records).toMatchObject({ yielded: 0, wrong: 0 });
      // The batches are located (pread of headers, or a catch-up read) before the socket is touched; still, the
      // socket is destroyed, and nothing reached it.
      for (const op of ['sendTo', 'sendToCopy']) {
        const r = await c.op(op);
        expectFailedTransfer(r, 'pread', readPath);
        expect(r.received).toBe(0);
      }
    });
    for (const op of ['read', 'records', 'sendTo', 'sendToCopy']) expectExact(await c.op(op));
  });

  test('EIO on pread starting mid-iteration: records yields only right records, then rejects typed', async () => {
    const r = await c.recordsFailingAfter(30, 'posix/io/rw/pread');
    expectEio(r, 'pread', readPath);
    // Own mode may serve a few more from its read-ahead buffer before it needs the disk.
    expect(r.yielded).toBeGreaterThanOrEqual(30);
    expect(r.yielded).toBeLessThan(RECORDS);
    expect(r.wrong).toBe(0);
    expectExact(await c.op('records'));
  });

  test('short preads (posix/io/rw/pread/reduce): every read still returns exactly what was written', async () => {
    const whole = await c.op('read');
    await c.with('posix/io/rw/pread/reduce', 0, async () => {
      const short = await c.op('read');
      expectExact(short);
      // The reads really came back short: more calls for the same bytes.
      expect(short.preadCalls).toBeGreaterThan(whole.preadCalls);
      for (const op of ['records', 'sendTo', 'sendToCopy']) expectExact(await c.op(op));
    });
  });

  if (mode === 'own') {
    test('a tail-cache hit makes no read, so a pread fault does not touch it', async () => {
      const tail = await c.with('posix/io/rw/pread', EIO, () => c.op('tail'));
      expectExact(tail);
      expect(tail).toMatchObject({ tailHits: 1, preadCalls: 0 });
    });
  }

  if (mode === 'pagecache') {
    test('EIO on the inline read of cached pages (preadv2): read, records and sendTo reject typed, then work again', async () => {
      await c.disable(INLINE);
      try {
        await c.with(INLINE, EIO, async () => {
          expectEio(await c.op('read'), 'preadv2', readPath);
          const records = await c.op('records');
          expectEio(records, 'preadv2', readPath);
          expect(records).toMatchObject({ yielded: 0, wrong: 0 });
          const sent = await c.op('sendTo');
          expectFailedTransfer(sent, 'preadv2', readPath);
          expect(sent.received).toBe(0);
        });
        for (const op of ['read', 'records', 'sendTo', 'sendToCopy']) expectExact(await c.op(op));
        // Short inline reads: the rest comes from the threadpool read, byte for byte.
        await c.with(`${INLINE}/reduce`, 0, async () => {
          for (const op of ['read', 'records', 'sendTo', 'sendToCopy']) expectExact(await c.op(op));
        });
      } finally {
        await c.enable(INLINE, EAGAIN);
      }
    });

    test('EIO on sendfile: sendTo rejects typed with bytesSent 0, destroys the socket, and sends again after', async () => {
      const r = await c.with('seglog/sendfile', EIO, () => c.op('sendTo'));
      expectFailedTransfer(r, 'sendfile', readPath);
      expect(r.error!.bytesSent).toBe(0);
      expect(r.received).toBe(0);
      // The copying path does not use sendfile.
      expectExact(await c.op('sendTo'));
    });

    test('EIO on sendfile mid-transfer: the receiver holds exactly the bytes before the fault, and bytesSent says so', async () => {
      const r = await c.with('seglog/sendfile/at', 10_000, () => c.op('sendTo'));
      expectFailedTransfer(r, 'sendfile', readPath);
      expect(r.error!.bytesSent).toBe(10_000);
      expect(r.received).toBe(10_000);
      expectExact(await c.op('sendTo'));
    });

    test('short sendfile transfers (seglog/sendfile/reduce): sendTo still sends exactly the batches', async () => {
      const whole = await c.op('sendTo');
      const short = await c.with('seglog/sendfile/reduce', 0, () => c.op('sendTo'));
      expectExact(short);
      expect(short.sendfileCalls).toBeGreaterThan(whole.sendfileCalls);
    });

    test('EIO and short reads on preadv (File.readv; the log read path does not use it)', async () => {
      expectEio(await c.with('posix/io/rw/preadv', EIO, () => c.op('readv')), 'preadv', readPath);
      // libfiu drops a random number of buffers from each call (possibly none): a few tries, each exact, at least one short.
      const tries = await c.with('posix/io/rw/preadv/reduce', 0, async () => [await c.op('readv'), await c.op('readv'), await c.op('readv')]);
      for (const r of tries) expectExact(r);
      expect(Math.max(...tries.map((r) => r.preadCalls))).toBeGreaterThan(1);
    });
  } else {
    test('sendTo in own mode sends from memory: a sendfile fault does not reach it', async () => {
      const r = await c.with('seglog/sendfile', EIO, () => c.op('sendTo'));
      expectExact(r);
      expect(r.sendfileCalls).toBe(0);
    });
  }

  test('after the faults the log appends, reads back whole, closes, and reopens clean', async () => {
    const appended = await c.op('append');
    expectExact(appended);
    expect(appended.endOffset).toBe(RECORDS + 10);
    for (const op of ['read', 'records', 'sendTo']) expectExact(await c.op(op));
    expect(await c.close()).toBe(0);
    await expectCleanReopen(logDir, RECORDS + 10);
  });
});
