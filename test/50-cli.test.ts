import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { Log } from '../src/log/log.js';
import { LogStore } from '../src/store/store.js';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'src', 'cli', 'main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], nodeArgs: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs, file, ...args], { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
}

const seglog = (...args: string[]) => run(cli, args, ['--import', 'tsx']);

/** A standalone log of 30 two-record batches over several segments, closed cleanly. */
async function makeLog(dir: string): Promise<void> {
  const log = await Log.open(dir, { segmentBytes: 2048, indexIntervalBytes: 200 });
  for (let i = 0; i < 30; i++) {
    await log.append([
      { key: `k${i}`, value: `value-${i}`, timestamp: 1000 + i },
      { value: Buffer.from([0, 1, 2]), headers: [{ key: 'h', value: 'x' }], timestamp: 2000 + i },
    ]);
  }
  await log.close();
}

/** makeLog's second segment starts here. */
const SECOND = 44;

/** Size of the first batch in a .log: where the second one starts. */
const firstBatchSize = async (path: string) => (await readFile(path)).readInt32BE(8) + 12;

const seg = (dir: string, base: number, suffix: string) => join(dir, `${String(base).padStart(20, '0')}${suffix}`);

/** Names, sizes, modification times and contents of every file in `dir`. */
async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const s = await stat(join(dir, name));
    out.push(`${name} ${s.size} ${s.mtimeMs} ${createHash('sha256').update(await readFile(join(dir, name))).digest('hex')}`);
  }
  return out;
}

async function flipByte(path: string, position: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[position] ^= 0xff;
  await writeFile(path, bytes);
}

describe('seglog dump', () => {
  test('prints batches like kafka-dump-log, records with --records, keys and values with --print-data-log', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    const plain = await seglog('dump', seg(dir, 0, '.log'));
    expect(plain.code).toBe(0);
    const lines = plain.stdout.trim().split('\n');
    expect(lines[0]).toBe(`Dumping ${seg(dir, 0, '.log')}`);
    expect(lines[1]).toBe('Log starting offset: 0');
    expect(lines[2]).toMatch(
      /^baseOffset: 0 lastOffset: 1 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: -1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 2000 size: \d+ magic: 2 compresscodec: none crc: \d+ isvalid: true$/,
    );
    expect(plain.stdout).not.toContain('| offset:');

    const records = await seglog('dump', seg(dir, 0, '.log'), '--records');
    expect(records.stdout).toContain('| offset: 0 CreateTime: 1000 keySize: 2 valueSize: 7 sequence: -1 headerKeys: []\n');
    expect(records.stdout).not.toContain('payload:');

    const data = await seglog('dump', seg(dir, 0, '.log'), '--print-data-log');
    expect(data.stdout).toContain('| offset: 0 CreateTime: 1000 keySize: 2 valueSize: 7 sequence: -1 headerKeys: [] key: k0 payload: value-0\n');
    // Bytes that are not printable text come out as hex, so each record stays on one line.
    expect(data.stdout).toContain('| offset: 1 CreateTime: 2000 keySize: -1 valueSize: 3 sequence: -1 headerKeys: [h] payload: 0x000102\n');
  });

  test('prints index and time index entries', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    const index = await seglog('dump', seg(dir, 0, '.index'));
    expect(index.code).toBe(0);
    const entries = index.stdout.trim().split('\n').slice(1);
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries) expect(e).toMatch(/^offset: \d+ position: \d+$/);
    const time = await seglog('dump', seg(dir, 0, '.timeindex'));
    expect(time.stdout.trim().split('\n').slice(1).every((l) => /^timestamp: \d+ offset: \d+$/.test(l))).toBe(true);
  });

  test('shows a damaged batch as isvalid: false and goes on; reports a torn tail; exit code 1', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    const path = seg(dir, 0, '.log');
    await flipByte(path, 70); // inside the first batch's records: CRC fails, size still sane
    await appendFile(path, Buffer.alloc(30, 7));
    const r = await seglog('dump', path);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/position: 0 .* isvalid: false reason: crc\n/);
    expect(r.stdout).toMatch(/baseOffset: 2 .* isvalid: true\n/);
    expect(r.stdout).toMatch(/Found 30 invalid bytes at position \d+ to the end/);
  });

  test('usage errors exit with 2', async () => {
    const dir = await tempDir();
    expect((await seglog()).code).toBe(2);
    expect((await seglog('frobnicate', dir)).code).toBe(2);
    expect((await seglog('dump')).code).toBe(2);
    expect((await seglog('dump', join(dir, 'nope.log'))).code).toBe(2);
    expect((await seglog('dump', join(dir, 'x.txt'))).code).toBe(2);
    expect((await seglog('verify', dir, '--repair')).code).toBe(2);
    expect((await seglog('recover', dir, '--index-interval-bytes', 'many')).code).toBe(2);
    const help = await seglog('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: seglog');
  });
});

describe('seglog verify', () => {
  test('a clean log: exit 0, nothing reported', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    const r = await seglog('verify', dir);
    expect(r.stdout).toContain('verified 1 log, 2 segments: 0 problems');
    expect(r.stdout).not.toMatch(/PROBLEM|NOTE/);
    expect(r.code).toBe(0);
  });

  test('reports mid-log corruption and a torn tail with file and position, changing nothing', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    await flipByte(seg(dir, 0, '.log'), 150);
    await appendFile(seg(dir, SECOND, '.log'), Buffer.alloc(100));
    const second = await firstBatchSize(seg(dir, 0, '.log'));
    await rm(join(dir, '.clean-shutdown'));
    const before = await fingerprint(dir);
    const r = await seglog('verify', dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM ${seg(dir, 0, '.log')} at position ${second}: corrupt batch (crc) followed by valid data`);
    expect(r.stdout).toMatch(new RegExp(`PROBLEM ${seg(dir, SECOND, '.log')} at position \\d+: torn tail: 100 bytes`));
    expect(r.stdout).toContain('not closed cleanly');
    expect(await fingerprint(dir)).toEqual(before);
  });

  test('reports bad indexes, stray files and segments out of order', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    await writeFile(seg(dir, 0, '.index'), Buffer.alloc(13));
    await rm(seg(dir, SECOND, '.timeindex'));
    await writeFile(join(dir, '123.log'), 'x');
    const r = await seglog('verify', dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`PROBLEM ${seg(dir, 0, '.index')}: size 13 is not a multiple of the entry size 8`);
    expect(r.stdout).toContain(`PROBLEM ${seg(dir, SECOND, '.timeindex')}: missing`);
    expect(r.stdout).toContain(`PROBLEM ${join(dir, '123.log')}: named like a segment`);

    const other = await tempDir();
    await makeLog(other);
    // The second segment claims to start inside the first.
    for (const suffix of ['.log', '.index', '.timeindex']) await writeFile(seg(other, 40, suffix), await readFile(seg(other, SECOND, suffix)));
    for (const suffix of ['.log', '.index', '.timeindex']) await rm(seg(other, SECOND, suffix));
    const o = await seglog('verify', other);
    expect(o.code).toBe(1);
    expect(o.stdout).toContain(`PROBLEM ${seg(other, 40, '.log')} at position 0: starts at 40, inside the previous segment`);
  });

  test('verifies every log of a store', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    for (const name of ['a', 'b']) await (await store.log(name)).append([{ value: name }]);
    await store.close();
    const r = await seglog('verify', dir);
    expect(r.stdout).toContain('verified 2 logs, 2 segments: 0 problems');
    expect(r.code).toBe(0);
    await writeFile(join(dir, 'recovery-point-offset-checkpoint'), 'garbage');
    expect((await seglog('verify', dir)).stdout).toMatch(/PROBLEM .*recovery-point-offset-checkpoint: checkpoint file .* is malformed/);
  });

  test('a lost segment is a problem: below the first one, or between two', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    for (const suffix of ['.log', '.index', '.timeindex']) await rm(seg(dir, 0, suffix));
    const r = await seglog('verify', dir);
    expect(r.stdout).toContain(`PROBLEM ${seg(dir, SECOND, '.log')}: offsets 0..${SECOND - 1}, from the log start offset to this first segment, are in no segment`);
    expect(r.code).toBe(1);
  });
});

/** A store with one log 't' of several segments, closed cleanly; returns the segments' base offsets. */
async function makeStore(dir: string): Promise<number[]> {
  const store = await LogStore.open(dir, { segmentBytes: 1024 });
  const log = await store.log('t');
  while (log.segmentCount < 5) await log.append([{ value: Buffer.alloc(100, log.endOffset) }, { value: 'x' }]);
  await store.close();
  return (await readdir(join(dir, 't'))).filter((n) => n.endsWith('.log')).map((n) => Number(n.slice(0, 20))).sort((a, b) => a - b);
}

async function loseSegment(dir: string, base: number): Promise<void> {
  for (const suffix of ['.log', '.index', '.timeindex']) await rm(seg(dir, base, suffix), { force: true });
}

describe('seglog verify and dump on a compacted log', () => {
  test("cleaned segments' gaps are no problem below the cleaned point; keys repeated there, and a pass's leftovers, are reported; dump shows delete horizons and tombstones", async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { cleanupPolicy: 'compact', segmentBytes: 1024 });
    for (let i = 0; i < 60; i++) await log.append([{ key: `k${i % 5}`, value: i % 7 === 0 ? null : `v${i}`, timestamp: 1000 + i }]);
    await log.roll();
    await log.compact({ now: 5000 });
    await log.close();
    const clean = await seglog('verify', dir);
    expect(clean.stdout).toContain(': 0 problems');
    expect(clean.code).toBe(0);

    // The tombstone that is k1's latest record (offset 56): its batch carries the horizon the pass wrote.
    const dumped = await seglog('dump', seg(dir, 56, '.log'), '--records');
    expect(dumped.stdout).toMatch(/baseOffset: 56 lastOffset: 56 count: 1 .* deleteHorizonMs: OptionalLong\[86405000\] /);
    expect(dumped.stdout).toContain('| offset: 56 CreateTime: 1056 keySize: 2 valueSize: -1 ');
    expect(dumped.stdout).not.toContain('isvalid: false');

    // A cleaned point over segments no pass rewrote (a checkpoint from elsewhere): their repeated keys are a note.
    const raised = await tempDir();
    const plain = await Log.open(raised, { cleanupPolicy: 'compact', segmentBytes: 1024 });
    for (let i = 0; i < 20; i++) await plain.append([{ key: `k${i % 4}`, value: `v${i}` }]);
    await plain.roll();
    const end = plain.endOffset;
    await plain.close();
    await writeFile(join(raised, 'cleaner-offset-checkpoint'), `0\n1\n${raised.split('/').pop()} ${end}\n`);
    await writeFile(seg(raised, 0, '.log.cleaned'), 'partial');
    const cut = await seglog('verify', raised);
    expect(cut.stdout).toContain('16 records below the cleaned point');
    expect(cut.stdout).toMatch(/PROBLEM .*00000000000000000000\.log\.cleaned: left by a compaction pass that did not commit/);
    expect(cut.code).toBe(1);
  });
});

describe('seglog recover, lost segments', () => {
  test('a hole between segments: refused and reported by verify; --repair cuts the log there and says so', async () => {
    const dir = await tempDir();
    const bases = await makeStore(dir);
    await loseSegment(join(dir, 't'), bases[2]!);
    const v = await seglog('verify', dir);
    expect(v.stdout).toContain(`PROBLEM ${seg(join(dir, 't'), bases[3]!, '.log')}: offsets ${bases[2]}..${bases[3]! - 1} are in no segment`);
    expect(v.code).toBe(1);
    const refused = await seglog('recover', dir);
    expect(refused.stdout).toContain(`refused: offsets ${bases[2]}..${bases[3]! - 1} of ${join(dir, 't')} are in no segment`);
    expect(refused.code).toBe(1);
    const repaired = await seglog('recover', dir, '--repair');
    expect(repaired.stdout).toMatch(new RegExp(`segments were missing; repair gave up offsets ${bases[2]}\\.\\.\\d+`));
    expect(repaired.code).toBe(0);
    expect((await seglog('verify', dir)).stdout).toContain('0 problems');
  });

  test("a lost first segment of a store's log: --repair moves the store's start-offset checkpoint", async () => {
    const dir = await tempDir();
    const bases = await makeStore(dir);
    await loseSegment(join(dir, 't'), 0);
    expect((await seglog('verify', dir)).code).toBe(1);
    expect((await seglog('recover', dir)).code).toBe(1);
    const repaired = await seglog('recover', dir, '--repair');
    expect(repaired.stdout).toContain(`repair gave up offsets 0..${bases[1]! - 1}`);
    expect(await readFile(join(dir, 'log-start-offset-checkpoint'), 'utf8')).toContain(`t ${bases[1]}`);
    const v = await seglog('verify', dir);
    expect(v.stdout).toContain('0 problems');
    const store = await LogStore.open(dir);
    expect((await store.log('t')).startOffset).toBe(bases[1]);
    await store.close();
  });
});

describe('seglog recover', () => {
  test('cuts a torn tail and rebuilds a missing index, reporting both; then verify is clean', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    const size = (await stat(seg(dir, SECOND, '.log'))).size;
    await appendFile(seg(dir, SECOND, '.log'), Buffer.alloc(100, 1));
    await rm(seg(dir, 0, '.index'));
    await rm(join(dir, '.clean-shutdown'));
    const r = await seglog('recover', dir, '--index-interval-bytes', '200');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${dir}: was not closed cleanly; offsets 0..59; 2 changes:`);
    expect(r.stdout).toContain(`${seg(dir, SECOND, '.log')}: cut from ${size + 100} to ${size} bytes`);
    expect(r.stdout).toMatch(new RegExp(`${seg(dir, 0, '.index')}: created \\(\\d+ bytes\\)`));
    const v = await seglog('verify', dir);
    expect(v.stdout).toContain('0 problems');
    expect(v.code).toBe(0);
    expect((await seglog('recover', dir, '--index-interval-bytes', '200')).stdout).toContain('was closed cleanly; offsets 0..59; nothing changed');
  });

  test('refuses mid-log corruption without --repair (changing nothing), cuts it with --repair', async () => {
    const dir = await tempDir();
    await makeLog(dir);
    await flipByte(seg(dir, SECOND, '.log'), 150);
    const second = await firstBatchSize(seg(dir, SECOND, '.log'));
    const before = await fingerprint(dir);
    const refused = await seglog('recover', dir, '--index-interval-bytes', '200');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(new RegExp(`refused: corrupt batch in ${seg(dir, SECOND, '.log')} at position ${second}`));
    expect((await fingerprint(dir)).map((l) => l.split(' ')[0])).toEqual(before.map((l) => l.split(' ')[0]));
    const repaired = await seglog('recover', dir, '--repair', '--index-interval-bytes', '200');
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain(`${seg(dir, SECOND, '.log')}: cut from`);
    expect(repaired.stdout).toContain(`offsets 0..${SECOND + 1}`);
    expect((await seglog('verify', dir)).code).toBe(0);
  });

  test('refuses a store that is open in another LogStore', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    await (await store.log('a')).append([{ value: 'x' }]);
    const r = await seglog('recover', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is open in another process');
    await store.close();
    expect((await seglog('recover', dir)).code).toBe(0);
  });
});

test('bin/seglog.js runs the compiled CLI (dist/, built by npm install)', async () => {
  const dir = await tempDir();
  await makeLog(dir);
  const r = await run(join(root, 'bin', 'seglog.js'), ['verify', dir]);
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('0 problems');
  expect(r.code).toBe(0);
});
