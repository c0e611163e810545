// Own cache mode across a crash: a child appends (write-behind running,
// catch-up reads under way) and is SIGKILLed; the log reopens in own mode
// with every acknowledged record intact, also with a zero-padded tail such
// as an aligned write-behind buffer leaves, and reads the same bytes as in
// pagecache mode.
import { spawn } from 'node:child_process';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, onTestFinished, test } from 'vitest';
import { Log } from '../src/log/log.js';
import { tempDir } from './helpers/tmp.js';

const LOG_MODULE = fileURLToPath(new URL('../src/log/log.ts', import.meta.url));
const OPTIONS = { segmentBytes: 256 * 1024, cache: { mode: 'own', tailBytes: 256 * 1024, readAheadBytes: 64 * 1024 } } as const;

const value = (offset: number) => Buffer.alloc(300, offset % 251).fill(`offset ${offset};`, 0, 20);

// Appends batches of 1-8 records whose values name their offsets and prints
// "ACK <last offset>" once each resolves, while a reader replays the log.
const CHILD = `
const [dir, flush, options] = process.argv.slice(1);
const { Log } = await import(${JSON.stringify(LOG_MODULE)});
const value = ${value.toString()};
const log = await Log.open(dir, { ...JSON.parse(options), flush });
const turn = () => new Promise((resolve) => setImmediate(resolve));
(async () => {
  for (;;) {
    // Tail hits need no I/O: without a turn of the event loop now and then this loop would starve the appends.
    for await (const r of log.records(log.startOffset)) {
      if (!value(r.offset).equals(r.value)) throw new Error('bad record ' + r.offset);
      if (r.offset % 64 === 0) await turn();
    }
    await turn();
  }
})();
for (let i = 0; ; i++) {
  const base = log.endOffset;
  const records = Array.from({ length: 1 + (i % 8) }, (_, k) => ({ value: value(base + k) }));
  const r = await log.append(records);
  process.stdout.write('ACK ' + r.lastOffset + '\\n');
}
`;

/** Runs the child until it acknowledged at least `records` records, then SIGKILLs it; returns the last acknowledged offset. */
async function appendAndKill(dir: string, flush: string, records: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, dir, flush, JSON.stringify(OPTIONS)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  let acked = -1;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      const lines = (pending + d).split('\n');
      pending = lines.pop()!;
      for (const line of lines) acked = Number(line.split(' ')[1]);
      if (acked + 1 >= records) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`child exited early: ${stderr}`)));
  });
  await exited;
  return acked;
}

test.each(['none', 'always'])("flush '%s': a SIGKILLed writer loses no acknowledged record; a zero-padded tail is cut", { timeout: 120_000 }, async (flush) => {
  const dir = await tempDir();
  let acked = -1;
  for (let trial = 0; trial < 3; trial++) {
    acked = await appendAndKill(dir, flush, acked + 1 + 2000 + trial * 700);
    // What an O_DIRECT write-behind buffer leaves behind its last batch: zeros up to the block.
    const last = (await readdir(dir)).filter((n) => n.endsWith('.log')).sort().pop()!;
    await appendFile(join(dir, last), Buffer.alloc(4096 - 123));
    const log = await Log.open(dir, OPTIONS);
    expect(log.endOffset).toBeGreaterThan(acked);
    let next = 0;
    for await (const r of log.records(0)) {
      expect(r.offset).toBe(next++);
      expect(r.value!.equals(value(r.offset))).toBe(true);
    }
    expect(next).toBe(log.endOffset);
    const own = await log.read(0, { maxBytes: 1 << 30 });
    await log.close();
    const pagecache = await Log.open(dir, { segmentBytes: OPTIONS.segmentBytes });
    expect((await pagecache.read(0, { maxBytes: 1 << 30 })).bytes.equals(own.bytes)).toBe(true);
    await pagecache.close();
  }
});
