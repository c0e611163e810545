import { spawn, execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { injectFault } from './helpers/faults.js';
import { LogStore, checkLogName } from '../src/store/store.js';
import { RECOVERY_POINT_CHECKPOINT } from '../src/layout.js';
import { readOffsetCheckpoint } from '../src/common/durable-files.js';
import { tempDir } from './helpers/tmp.js';
import { until } from './helpers/until.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const child = join(here, 'fixtures', 'lock-child.ts');
const tsx = ['--import', 'tsx'];

afterEach(() => injectFault('fsync', null));

async function fillLog(store: LogStore, name: string, n: number, size = 200): Promise<void> {
  const log = await store.log(name);
  for (let i = 0; i < n; i++) await log.append([{ value: Buffer.alloc(size, i % 256), timestamp: 1000 + i }]);
}

describe('names', () => {
  test('valid names pass; separators, dots and other characters are refused', () => {
    for (const ok of ['a', 'topic-0', 'my.topic_1', 'A'.repeat(249)]) expect(checkLogName(ok)).toBe(ok);
    for (const bad of ['', '.', '..', '.hidden', 'a/b', '../x', 'a\\b', 'a b', 'é', 'x\0', 'A'.repeat(250)]) {
      expect(() => checkLogName(bad), bad).toThrow(RangeError);
    }
    expect(() => checkLogName(5)).toThrow(TypeError);
  });

  test('store.log refuses bad names before touching the disk', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    await expect(store.log('../escape')).rejects.toThrow(RangeError);
    expect((await readdir(join(dir, '..'))).includes('escape')).toBe(false);
    await store.close();
  });
});

describe('lock', () => {
  test('a second open in the same process gets ELOCKED naming the lock file', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    const err = await LogStore.open(dir).catch((e) => e);
    expect(err).toMatchObject({ code: 'ELOCKED', path: join(dir, '.lock') });
    expect(err.message).toContain(join(dir, '.lock'));
    expect(err.message).toContain(`pid ${process.pid}`);
    await store.close();
    // Released on close.
    await (await LogStore.open(dir)).close();
  });

  test('across processes: held by a child, refused here; held here, refused in a child', async () => {
    const dir = await tempDir();
    const holder = spawn(process.execPath, [...tsx, child, dir, 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const first = await new Promise<string>((resolve) => holder.stdout.once('data', (d) => resolve(String(d))));
    expect(first.trim()).toBe('opened');
    await expect(LogStore.open(dir)).rejects.toMatchObject({ code: 'ELOCKED' });
    holder.stdin.end();
    await new Promise((resolve) => holder.once('exit', resolve));
    const store = await LogStore.open(dir);
    const out = execFileSync(process.execPath, [...tsx, child, dir], { encoding: 'utf8' });
    expect(out).toMatch(/^locked ELOCKED .*\.lock/);
    await store.close();
  });
});

describe('logs and checkpoints', () => {
  test('logs live in subdirectories, reopen with the store, and are checkpointed atomically', async () => {
    const dir = await tempDir();
    let store = await LogStore.open(dir, { flush: 'always' });
    await fillLog(store, 'a', 10);
    await fillLog(store, 'b', 3);
    expect(store.names).toEqual(['a', 'b']);
    await store.checkpoint();
    expect(await readOffsetCheckpoint(join(dir, 'recovery-point-offset-checkpoint'))).toEqual(new Map([['a', 10], ['b', 3]]));
    expect(await readFile(join(dir, 'recovery-point-offset-checkpoint'), 'utf8')).toBe('0\n2\na 10\nb 3\n');
    await store.close();
    expect(await readdir(dir)).toContain('.clean-shutdown');
    store = await LogStore.open(dir);
    expect(store.cleanShutdown).toBe(true);
    expect(store.names).toEqual(['a', 'b']);
    expect((await store.log('a')).endOffset).toBe(10);
    await store.close();
  });

  test('a checkpoint whose fsync fails leaves the previous checkpoint intact', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    await fillLog(store, 'a', 5);
    await (await store.log('a')).flush();
    await store.checkpoint();
    const before = await readFile(join(dir, 'recovery-point-offset-checkpoint'), 'utf8');
    await fillLog(store, 'a', 5);
    await (await store.log('a')).flush();
    injectFault('fsync', 'EIO');
    await expect(store.checkpoint()).rejects.toMatchObject({ code: 'EIO' });
    expect(await readFile(join(dir, 'recovery-point-offset-checkpoint'), 'utf8')).toBe(before);
    injectFault('fsync', null);
    await store.checkpoint();
    expect(await readFile(join(dir, 'recovery-point-offset-checkpoint'), 'utf8')).toBe('0\n1\na 10\n');
    await store.close();
  });

  test('a malformed checkpoint is refused with ECORRUPT naming it', async () => {
    const dir = await tempDir();
    await (await LogStore.open(dir)).close();
    await writeFile(join(dir, 'log-start-offset-checkpoint'), '0\n3\na 1\n');
    await expect(LogStore.open(dir)).rejects.toMatchObject({ code: 'ECORRUPT', path: join(dir, 'log-start-offset-checkpoint') });
  });

  test('after an unclean shutdown only segments from the recovery point on are scanned', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir, { segmentBytes: 1024 });
    await fillLog(store, 'a', 20);
    const log = await store.log('a');
    await log.flush();
    await store.checkpoint();
    // "Crash": no close. Damage the first segment, below the recovery point.
    const first = join(dir, 'a', '00000000000000000000.log');
    const data = await readFile(first);
    data[100] ^= 0xff;
    await writeFile(first, data);
    await store.close().catch(() => undefined);
    // close() wrote markers; remove them to make the next open unclean.
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'a', '.clean-shutdown'));
    await rm(join(dir, '.clean-shutdown'));
    const reopened = await LogStore.open(dir, { segmentBytes: 1024 });
    expect(reopened.cleanShutdown).toBe(false);
    // Not rescanned: the damage below the recovery point is not seen (a full scan would refuse with ECORRUPT).
    expect((await reopened.log('a')).endOffset).toBe(20);
    await reopened.close();
  });

  test('dropLog closes and removes the log and its checkpoint entries', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir);
    await fillLog(store, 'gone', 3);
    await fillLog(store, 'kept', 1);
    await store.dropLog('gone');
    expect(store.names).toEqual(['kept']);
    expect(await readdir(dir)).not.toContain('gone');
    expect((await readOffsetCheckpoint(join(dir, 'recovery-point-offset-checkpoint'))).has('gone')).toBe(false);
    await expect(store.dropLog('gone')).rejects.toMatchObject({ code: 'ENOENT' });
    await store.close();
  });
});

describe('retention', () => {
  test('removes oldest segments by bytes, checkpoints the start offset first, keeps open reads whole', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir, { segmentBytes: 2048, retentionBytes: 4096, fileDeleteDelayMs: 0 });
    await fillLog(store, 'a', 60);
    const log = await store.log('a');
    const reading = log.read(0, { maxBytes: 1 << 20 });
    const removed = await store.applyRetention();
    expect(removed.get('a')).toBeGreaterThan(0);
    // The read that started before retention still gets all the bytes it asked for.
    const { bytes, nextOffset } = await reading;
    expect(nextOffset).toBe(60);
    expect(bytes.length).toBeGreaterThan(60 * 200);
    expect(log.startOffset).toBeGreaterThan(0);
    expect((await readOffsetCheckpoint(join(dir, 'log-start-offset-checkpoint'))).get('a')).toBe(log.startOffset);
    await expect(log.read(0)).rejects.toMatchObject({ code: 'EOFFSETRANGE' });
    expect(log.size).toBeGreaterThanOrEqual(4096);
    // fileDeleteDelayMs 0: the delayed unlink runs on the scheduler's next turn.
    await until(async () => !(await readdir(join(dir, 'a'))).some((f) => f.endsWith('.deleted')));
    expect(store.backgroundErrors).toEqual([]);
    await store.close();
    const again = await LogStore.open(dir);
    expect((await again.log('a')).startOffset).toBe(log.startOffset);
    await again.close();
  });

  test('by time, on the scheduler', async () => {
    const dir = await tempDir();
    const store = await LogStore.open(dir, { segmentBytes: 2048, retentionMs: 1, retentionCheckIntervalMs: 10, fileDeleteDelayMs: 0 });
    await fillLog(store, 'a', 40);
    const log = await store.log('a');
    await until(() => log.segmentCount === 1);
    expect(log.segmentCount).toBe(1);
    expect(store.backgroundErrors).toEqual([]);
    expect(log.endOffset).toBe(40);
    await store.close();
  });
});

describe('background errors', () => {
  test('a failed scheduled checkpoint reaches onBackgroundError and backgroundErrors; the schedule goes on', async () => {
    const dir = await tempDir();
    const seen: unknown[] = [];
    let failed!: () => void;
    const failure = new Promise<void>((resolve) => (failed = resolve));
    const store = await LogStore.open(dir, {
      checkpointIntervalMs: 1,
      onBackgroundError: (err) => {
        seen.push(err);
        failed();
      },
    });
    await fillLog(store, 'a', 3);
    // A directory where the checkpoint file goes: the rename of the new checkpoint over it fails.
    const path = join(dir, RECOVERY_POINT_CHECKPOINT);
    for (;;) {
      await rm(path, { force: true });
      // A checkpoint may rename its new file into place meanwhile: try again.
      if (await mkdir(path).then(() => true, () => false)) break;
    }
    await failure;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]).toBe(store.backgroundErrors[0]);
    expect(seen[0]).toBeInstanceOf(Error);
    expect(String((seen[0] as Error).message)).toContain(RECOVERY_POINT_CHECKPOINT);
    // The checkpoint job keeps its schedule: once the path is usable again it succeeds and no new error comes.
    await rmdir(path);
    await until(async () => (await readdir(dir)).includes(RECOVERY_POINT_CHECKPOINT));
    const errors = seen.length;
    await store.close();
    expect(seen.length).toBe(errors);
  });

  test('a throwing onBackgroundError does not stop the scheduler', async () => {
    const dir = await tempDir();
    let calls = 0;
    const store = await LogStore.open(dir, {
      checkpointIntervalMs: 1,
      onBackgroundError: () => {
        calls++;
        throw new Error('handler bug');
      },
    });
    for (;;) {
      await rm(join(dir, RECOVERY_POINT_CHECKPOINT), { force: true });
      if (await mkdir(join(dir, RECOVERY_POINT_CHECKPOINT)).then(() => true, () => false)) break;
    }
    await until(() => calls >= 2);
    expect(store.backgroundErrors.length).toBeGreaterThanOrEqual(2);
    await rmdir(join(dir, RECOVERY_POINT_CHECKPOINT)).catch(() => undefined);
    await store.close();
  });

  test('onBackgroundError must be a function', async () => {
    await expect(LogStore.open(await tempDir(), { onBackgroundError: 1 as never })).rejects.toThrow(TypeError);
  });
});

test('bad options are TypeError/RangeError', async () => {
  const dir = await tempDir();
  await expect(LogStore.open(dir, { retentionMs: -1 })).rejects.toThrow(RangeError);
  await expect(LogStore.open(dir, 'x' as never)).rejects.toThrow(TypeError);
  await expect(LogStore.open(1 as never)).rejects.toThrow(TypeError);
});
