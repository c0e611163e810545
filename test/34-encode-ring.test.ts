import { describe, expect, test } from 'vitest';
import { EncodeRing } from '../src/log/encode-ring.js';
import { Log } from '../src/log/log.js';
import { File } from '../src/native.js';
import { readBatchHeader } from '../src/segment/batch.js';
import { random as seeded } from './helpers/random.js';
import { tempDir } from './helpers/tmp.js';

describe('encode ring', () => {
  test('never hands out bytes of a region not yet released, whatever the release order', () => {
    const ring = new EncodeRing(4096);
    const random = seeded(13);
    const live: Array<{ buf: Buffer; fill: number }> = [];
    let fromRing = 0;
    for (let i = 0; i < 5000; i++) {
      if (live.length >= 6 || (live.length > 0 && random() < 0.4)) {
        // Mostly oldest first, as appends settle; sometimes out of order, as rejections can.
        const at = random() < 0.8 ? 0 : Math.floor(random() * live.length);
        const [gone] = live.splice(at, 1);
        ring.release(gone!.buf);
        continue;
      }
      const size = 1 + Math.floor(random() * 900);
      const buf = ring.allocate(size);
      expect(buf.length).toBe(size);
      // The ring's memory is one 4 KiB ArrayBuffer; fresh Buffers come from Node's 8 KiB pool.
      if (buf.buffer.byteLength === 4096) fromRing++;
      buf.fill(i & 0xff);
      live.push({ buf, fill: i & 0xff });
      for (const l of live) expect(l.buf.every((b) => b === l.fill)).toBe(true);
    }
    expect(fromRing).toBeGreaterThan(1500);
    for (const l of live) ring.release(l.buf);
    expect(ring.used).toBe(0);
  });

  test('a batch larger than the ring, or one that finds it full, gets fresh memory', () => {
    const ring = new EncodeRing(1000);
    const a = ring.allocate(600);
    const b = ring.allocate(600);
    expect(b.buffer).not.toBe(a.buffer);
    expect(ring.allocate(2000).length).toBe(2000);
    ring.release(b);
    ring.release(a);
    expect(ring.used).toBe(0);
    expect(ring.allocate(1000).buffer).toBe(a.buffer);
  });

  test('a log reuses encode memory only after the append that used it settled', async () => {
    // Every write must see its batches whole: offsets in sequence and values as appended.
    const seen: string[] = [];
    const { writev, writevNow } = File.prototype;
    const check = (chunks: Uint8Array[]) => {
      for (const c of chunks) for (let p = 0; p < c.length; p += readBatchHeader(c, p).size) seen.push(`${readBatchHeader(c, p).baseOffset}`);
    };
    File.prototype.writev = async function (this: File, chunks: Uint8Array[], position: number) {
      check(chunks);
      return writev.call(this, chunks, position);
    };
    File.prototype.writevNow = function (this: File, chunks: Uint8Array[], position: number) {
      check(chunks);
      return writevNow.call(this, chunks, position);
    };
    try {
      // A ring of 64 KiB (maxPendingBytes) and 20 KiB batches: it wraps every few appends.
      const log = await Log.open(await tempDir(), { maxPendingBytes: 64 * 1024 });
      const value = (i: number) => Buffer.alloc(20 * 1024, i % 251);
      await Promise.all(Array.from({ length: 60 }, (_, i) => log.append([{ value: value(i) }])));
      let i = 0;
      for await (const r of log.records(0)) {
        expect(r.offset).toBe(i);
        expect(r.value!.equals(value(i))).toBe(true);
        i++;
      }
      expect(i).toBe(60);
      await log.close();
    } finally {
      File.prototype.writev = writev;
      File.prototype.writevNow = writevNow;
    }
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => `${i}`));
  });
});
