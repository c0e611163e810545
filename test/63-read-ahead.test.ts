// Own mode's read-ahead streams: a sequential reader's next fill runs in
// the background while the reader goes on with the bytes held (double
// buffering), and what it reads meanwhile is the file's bytes at the right
// positions; a point read's fill reads just the blocks asked for.
import { describe, expect, test } from 'vitest';
import { ReadAheadStream, type Fill } from '../src/cache/read-ahead.js';

const KiB = 1024;
const END = 16 * 1024 * KiB;
/** The file's byte at `position`. */
const byteAt = (position: number) => (position * 7 + (position >> 12)) & 0xff;

/** A file of END bytes as fills see it; with `hold`, fills wait until released. */
function file() {
  const fills: Array<{ position: number; length: number }> = [];
  const held: Array<() => void> = [];
  let hold = false;
  const fill: Fill = async (into, position) => {
    fills.push({ position, length: into.length });
    if (hold) await new Promise<void>((resolve) => held.push(resolve));
    const n = Math.min(into.length, END - position);
    for (let i = 0; i < n; i++) into[i] = byteAt(position + i);
    return n;
  };
  return {
    fill,
    fills,
    hold: (on: boolean) => (hold = on),
    release: () => held.splice(0).forEach((resolve) => resolve()),
  };
}

function expectBytes(stream: ReadAheadStream, position: number, length: number): void {
  const view = stream.view(position, length);
  expect(view.length).toBe(length);
  expect(view.every((b, i) => b === byteAt(position + i))).toBe(true);
}

/** 'served' if `p` settles within a turn of the event loop, else 'waiting'. */
const settlesNow = (p: Promise<unknown>) => Promise.race([p.then(() => 'served'), new Promise((resolve) => setImmediate(() => resolve('waiting')))]);

describe('ReadAheadStream', () => {
  test('a sequential reader reads held bytes while its next fill is under way', async () => {
    const f = file();
    const stream = new ReadAheadStream(1024 * KiB, 4 * KiB);
    // A reader reading on: its window grows past the minimum.
    let position = 0;
    for (let i = 0; i < 4; i++) {
      await stream.ensure(position, 100 * KiB, END, f.fill);
      expectBytes(stream, position, 100 * KiB);
      position += 100 * KiB;
    }
    f.hold(true);
    const before = f.fills.length;
    stream.readAhead(position, END, f.fill);
    expect(f.fills.length).toBe(before + 1);
    // The bytes held from `position` on are served at once, the fill still waiting on the "disk".
    const held = stream.view(position, 1024 * KiB).length;
    expect(held).toBeGreaterThan(20 * KiB);
    expect(await settlesNow(stream.ensure(position, 20 * KiB, END, f.fill))).toBe('served');
    expectBytes(stream, position, 20 * KiB);
    // Past them, the reader waits for the fill, which brings the right bytes.
    const further = stream.ensure(position, held + 100 * KiB, END, f.fill);
    expect(await settlesNow(further)).toBe('waiting');
    f.hold(false);
    f.release();
    await further;
    expectBytes(stream, position, held + 100 * KiB);
    stream.free();
  });

  test('an exact fill (a point read) reads just the blocks asked for', async () => {
    const f = file();
    const stream = new ReadAheadStream(1024 * KiB, 4 * KiB);
    await stream.ensure(1000 * KiB + 100, 20 * KiB, END, f.fill, true);
    expect(f.fills).toEqual([{ position: 1000 * KiB, length: 24 * KiB }]);
    expectBytes(stream, 1000 * KiB + 100, 20 * KiB);
    await stream.ensure(3000 * KiB, 20 * KiB, END, f.fill);
    expect(f.fills[1]).toEqual({ position: 3000 * KiB, length: 128 * KiB });
    stream.free();
  });
});
