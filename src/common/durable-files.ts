// Small state files written so that a crash leaves either the old or the new
// content, never a mix: temp file, fsync, rename, directory fsync. And
// directories whose creation survives a crash.
import { mkdir, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fromNodeError, SeglogError } from '../errors.js';
import { File, fsyncDir } from '../native.js';

/** mkdir -p whose new directories survive a power cut: each parent that gained an entry is fsync'd. */
export async function mkdirDurable(path: string): Promise<void> {
  const created = await mkdir(path, { recursive: true }).catch((err) => Promise.reject(fromNodeError(err)));
  if (created === undefined) return;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    await fsyncDir(dir);
    if (dir === dirname(created)) break;
  }
}

export async function writeFileAtomic(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const file = await File.open(tmp, { create: true, truncate: true });
  try {
    await file.write(Buffer.from(content), 0);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * Kafka's offset checkpoint layout: a version line (0), a count line, then
 * one "name offset" line per log. Log names never contain spaces.
 */
export async function writeOffsetCheckpoint(path: string, offsets: Map<string, number>): Promise<void> {
  const lines = ['0', String(offsets.size), ...[...offsets].map(([name, offset]) => `${name} ${offset}`)];
  await writeFileAtomic(path, `${lines.join('\n')}\n`);
}

/** Reads a checkpoint written by writeOffsetCheckpoint; a missing file is an empty map. */
export async function readOffsetCheckpoint(path: string): Promise<Map<string, number>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const bad = (why: string) => new SeglogError('ECORRUPT', `checkpoint file ${path} is malformed: ${why}`, { path });
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines[0] !== '0') throw bad(`unknown version '${lines[0]}'`);
  const count = Number(lines[1]);
  if (!Number.isSafeInteger(count) || count !== lines.length - 2) throw bad('entry count does not match');
  const out = new Map<string, number>();
  for (const line of lines.slice(2)) {
    const [name, offset, extra] = line.split(' ');
    const n = Number(offset);
    if (name === undefined || extra !== undefined || !Number.isSafeInteger(n) || n < 0) throw bad(`line '${line}'`);
    out.set(name, n);
  }
  return out;
}
