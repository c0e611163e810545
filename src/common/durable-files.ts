// Small state files written so that a crash leaves either the old or the new
// content, never a mix: temp file, fsync, rename, directory fsync. Files moved
// to a new inode the same way. And directories whose creation survives a crash.
import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
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
 * Replaces the file at `path` by a copy of itself in a new inode (a reflink
 * where the file system has them), written through `tmp`, durable before it
 * takes the name: a crash leaves the old file or the copy. Whoever still holds
 * the old inode (an open descriptor, a socket holding its page-cache pages
 * after sendfile(2)) keeps its bytes as they were, whatever is later done to
 * the file at `path`.
 */
export async function replaceWithCopy(path: string, tmp: string): Promise<void> {
  try {
    await copyFile(path, tmp, constants.COPYFILE_FICLONE).catch((err) => Promise.reject(fromNodeError(err)));
    const file = await File.open(tmp, { write: true });
    try {
      await file.datasync();
    } finally {
      await file.close();
    }
  } catch (err) {
    // Nothing changed yet: the copy (a whole segment, say, on a full disk) must not stay behind.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * Kafka's checkpoint layout, shared by its offset checkpoints and its
 * leader-epoch checkpoint: a version line (0), a count line, then one line
 * per entry (fields separated by a space).
 */
export async function writeCheckpoint(path: string, entries: readonly string[]): Promise<void> {
  await writeFileAtomic(path, `${['0', String(entries.length), ...entries].join('\n')}\n`);
}

/** The entry lines of a checkpoint, undefined when there is no file; ECORRUPT when the layout (version, count) is wrong. */
export async function readCheckpoint(path: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines[0] !== '0') throw malformed(path, `unknown version '${lines[0]}'`);
  const count = Number(lines[1]);
  if (!Number.isSafeInteger(count) || count !== lines.length - 2) throw malformed(path, 'entry count does not match');
  return lines.slice(2);
}

export function malformed(path: string, why: string): SeglogError {
  return new SeglogError('ECORRUPT', `checkpoint file ${path} is malformed: ${why}`, { path });
}

/** Kafka's offset checkpoint: one "name offset" line per log. Log names never contain spaces. */
export async function writeOffsetCheckpoint(path: string, offsets: Map<string, number>): Promise<void> {
  await writeCheckpoint(path, [...offsets].map(([name, offset]) => `${name} ${offset}`));
}

/** Reads a checkpoint written by writeOffsetCheckpoint; a missing file is an empty map. */
export async function readOffsetCheckpoint(path: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await readCheckpoint(path)) ?? []) {
    const [name, offset, extra] = line.split(' ');
    const n = Number(offset);
    if (name === undefined || extra !== undefined || !Number.isSafeInteger(n) || n < 0) throw malformed(path, `line '${line}'`);
    out.set(name, n);
  }
  return out;
}
