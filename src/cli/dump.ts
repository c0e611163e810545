// `seglog dump <file>`: prints the batches (and with --records, the records)
// of a .log, or the entries of a .index / .timeindex, in the layout of
// Kafka's kafka-dump-log.sh (DumpLogSegments) so that the two can be compared.
import { basename } from 'node:path';
import { File } from '../native.js';
import { BatchReader } from '../segment/batch-reader.js';
import { decodeBatch, readBatchHeader, type BatchHeader } from '../segment/batch.js';
import { KAFKA_CODEC_NAMES, type CodecId } from '../segment/codecs.js';
import { INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX } from '../segment/segment.js';
import { printable, type Printer } from './output.js';

export interface DumpOptions {
  /** Print every record's metadata (Kafka's --deep-iteration). */
  records: boolean;
  /** Print keys and values too (implies records). */
  data: boolean;
}

const SEGMENT_FILE = /^(\d{20})\.(log|index|timeindex)(\.deleted)?$/;

/** What a file name says: its kind by suffix and, for a segment file name, its base offset. */
export function segmentFileKind(path: string): { kind: 'log' | 'index' | 'timeindex'; baseOffset: number | undefined } | undefined {
  const name = basename(path).replace(/\.deleted$/, '');
  const m = SEGMENT_FILE.exec(basename(path));
  const baseOffset = m === null || !Number.isSafeInteger(Number(m[1])) ? undefined : Number(m[1]);
  if (name.endsWith(LOG_SUFFIX)) return { kind: 'log', baseOffset };
  if (name.endsWith(TIME_INDEX_SUFFIX)) return { kind: 'timeindex', baseOffset };
  if (name.endsWith(INDEX_SUFFIX)) return { kind: 'index', baseOffset };
  return undefined;
}

/** Dumps `path`; returns false when it holds invalid data. */
export async function dump(path: string, options: DumpOptions, out: Printer): Promise<boolean> {
  const what = segmentFileKind(path);
  if (what === undefined) throw new RangeError(`${path}: not a .log, .index or .timeindex file`);
  const file = await File.open(path);
  try {
    await out.line(`Dumping ${path}`);
    if (what.baseOffset === undefined && what.kind !== 'log') {
      await out.line(`(no base offset in the file name: offsets are shown relative to 0)`);
    }
    const base = what.baseOffset ?? 0;
    if (what.kind === 'log') return await dumpLog(file, base, options, out);
    return await dumpIndex(file, base, what.kind, out);
  } finally {
    await file.close();
  }
}

async function dumpLog(file: File, baseOffset: number, options: DumpOptions, out: Printer): Promise<boolean> {
  const size = await file.size();
  const reader = new BatchReader(file, size, 1 << 20);
  await out.line(`Log starting offset: ${baseOffset}`);
  let position = 0;
  let valid = true;
  while (position < size) {
    const check = await reader.check(position);
    if (check.ok) {
      await out.line(batchLine(check.header, position, true));
      if (options.records || options.data) await dumpRecords(reader, check.header, position, options.data, out);
      position += check.header.size;
      continue;
    }
    valid = false;
    // A batch whose size is sane but whose content is not: show it and go on, as Kafka does.
    const header = check.reason === 'crc' || check.reason === 'records' ? await headerAt(reader, position) : undefined;
    if (header === undefined) {
      await out.line(`Found ${size - position} invalid bytes at position ${position} to the end of ${file.path} (${check.reason})`);
      break;
    }
    await out.line(`${batchLine(header, position, false)} reason: ${check.reason}`);
    position += header.size;
  }
  return valid;
}

async function headerAt(reader: BatchReader, position: number): Promise<BatchHeader | undefined> {
  try {
    return readBatchHeader(await reader.bytes(position, 61), 0);
  } catch {
    return undefined;
  }
}

function timeLabel(h: BatchHeader): string {
  return h.timestampType === 'logAppend' ? 'LogAppendTime' : 'CreateTime';
}

function batchLine(h: BatchHeader, position: number, valid: boolean): string {
  const codec = h.compression === 0 ? 'none' : (KAFKA_CODEC_NAMES[h.compression as CodecId] ?? `unknown(${h.compression})`);
  const lastSequence = h.baseSequence < 0 ? -1 : h.baseSequence + h.lastOffsetDelta;
  return (
    `baseOffset: ${h.baseOffset} lastOffset: ${h.lastOffset} count: ${h.recordsCount} baseSequence: ${h.baseSequence} lastSequence: ${lastSequence} ` +
    `producerId: ${h.producerId} producerEpoch: ${h.producerEpoch} partitionLeaderEpoch: ${h.partitionLeaderEpoch} ` +
    `isTransactional: ${h.transactional} isControl: ${h.control} position: ${position} ${timeLabel(h)}: ${h.maxTimestamp} ` +
    `size: ${h.size} magic: ${h.magic} compresscodec: ${codec} crc: ${h.crc} isvalid: ${valid}`
  );
}

async function dumpRecords(reader: BatchReader, h: BatchHeader, position: number, data: boolean, out: Printer): Promise<void> {
  let records;
  try {
    records = decodeBatch(await reader.bytes(position, h.size));
  } catch (err) {
    await out.line(`| cannot decode the records: ${(err as Error).message}`);
    return;
  }
  for (const r of records) {
    const sequence = h.baseSequence < 0 ? -1 : h.baseSequence + (r.offset - h.baseOffset);
    let line =
      `| offset: ${r.offset} ${timeLabel(h)}: ${r.timestamp} keySize: ${r.key === null ? -1 : r.key.length} ` +
      `valueSize: ${r.value === null ? -1 : r.value.length} sequence: ${sequence} headerKeys: [${r.headers.map((x) => x.key).join(',')}]`;
    if (data) line += `${r.key === null ? '' : ` key: ${printable(r.key)}`} payload: ${printable(r.value)}`;
    await out.line(line);
  }
}

async function dumpIndex(file: File, baseOffset: number, kind: 'index' | 'timeindex', out: Printer): Promise<boolean> {
  const entrySize = kind === 'index' ? 8 : 12;
  const size = await file.size();
  const buf = Buffer.alloc(size);
  const n = await file.read(buf, 0);
  const entries = Math.floor(n / entrySize);
  for (let i = 0; i < entries; i++) {
    const e = buf.subarray(i * entrySize, (i + 1) * entrySize);
    // An all-zero entry after the first is preallocated room (an index not trimmed by a clean close).
    if (i > 0 && e.every((b) => b === 0)) {
      await out.line(`(${entries - i} zero entries from byte ${i * entrySize}: preallocated, not yet trimmed)`);
      break;
    }
    if (kind === 'index') {
      await out.line(`offset: ${baseOffset + e.readInt32BE(0)} position: ${e.readInt32BE(4)}`);
    } else {
      await out.line(`timestamp: ${e.readBigInt64BE(0)} offset: ${baseOffset + e.readInt32BE(8)}`);
    }
  }
  if (n % entrySize !== 0) {
    await out.line(`Found ${n % entrySize} trailing bytes at position ${entries * entrySize}: not a whole ${entrySize}-byte entry`);
    return false;
  }
  return true;
}
