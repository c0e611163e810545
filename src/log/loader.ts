// Opening a log directory: lists its segments, opens each (trusting those a
// clean shutdown or the recovery point vouches for), recovers the rest by a
// CRC scan, and hands back what it loaded. Recovery's rules live here: a torn
// tail is cut only in the last segment, corruption followed by valid data is
// refused unless `repair`, segments must not overlap.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable } from '../common/durable-files.js';
import { SeglogError } from '../errors.js';
import { CLEAN_SHUTDOWN_FILE, COPY_SUFFIX, DELETED_SUFFIX, segmentBases } from '../layout.js';
import { fsyncDir } from '../native.js';
import { Segment, type SegmentConfig } from '../segment/segment.js';
import { standaloneContext, type LogContext } from './context.js';
import { LeaderEpochs } from './leader-epochs.js';
import type { LogConfig } from './options.js';

/** Offsets [from, to] (inclusive) that no segment holds. */
export interface OffsetRange {
  from: number;
  to: number;
}

/** What open found: the segments in offset order (the last one active) and the context they live in. */
export interface LoadedLog {
  segments: Segment[];
  /** Offsets in no segment, accepted by `repair` (lost segment files). */
  missing: OffsetRange[];
  context: LogContext;
  /** The leader epochs, trimmed to the loaded offsets. */
  epochs: LeaderEpochs;
  /** Whether the context was made for this log alone (its scheduler stops when the log closes). */
  ownContext: boolean;
}

export function segmentConfigOf(config: LogConfig): SegmentConfig {
  return { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes };
}

/**
 * Opens the log in `dir`, creating it if needed. After an unclean shutdown
 * (no clean-shutdown marker) every segment from the recovery point on is
 * scanned: torn tails are cut, indexes rebuilt, and corruption followed by
 * valid data is refused (ECORRUPT) unless `repair`.
 */
export async function loadLog(dir: string, config: LogConfig, context: LogContext | undefined): Promise<LoadedLog> {
  const segmentConfig = segmentConfigOf(config);
  await mkdirDurable(dir);
  const names = await readdir(dir);
  // Leftovers of retention that the process did not live to unlink, and of truncateTo's copies it did not live to rename.
  const leftovers = names.filter((n) => n.endsWith(DELETED_SUFFIX) || n.endsWith(COPY_SUFFIX));
  await Promise.all(leftovers.map((n) => rm(join(dir, n), { force: true })));
  const bases = segmentBases(names);
  for (const b of bases) {
    if (!Number.isSafeInteger(b)) throw new SeglogError('ECORRUPT', `segment name beyond the safe offset range in ${dir}`, { path: dir });
  }
  const ctx = context ?? (await standaloneContext(dir, config.cache));
  const clean = names.includes(CLEAN_SHUTDOWN_FILE);
  const segments: Segment[] = [];
  /** Segments opened on trust (a clean shutdown or the recovery point), not scanned. */
  const trusted = new Set<Segment>();
  let missing: OffsetRange[];
  let epochs: LeaderEpochs;
  try {
    for (let i = 0; i < bases.length; i++) {
      const last = i === bases.length - 1;
      // Segments wholly below the recovery point were durable already.
      let recover = !clean && (last || bases[i + 1]! > ctx.recoveryPoint);
      // Recovery rewrites indexes, so a recovered segment opens writable and is sealed after.
      let segment = await Segment.open(dir, bases[i]!, segmentConfig, last || recover);
      if (!recover && !segment.wellFormed) {
        // Trusted, yet its batches do not end where the file does (damage or a bad index): recover it after all.
        recover = true;
        if (!last) {
          await segment.close();
          segment = await Segment.open(dir, bases[i]!, segmentConfig, true);
        }
      }
      segments.push(segment);
      if (recover) {
        await recoverSegment(segment, config.repair, last);
        if (!last) await segment.seal();
      } else {
        trusted.add(segment);
      }
      let prev = segments[segments.length - 2];
      if (prev !== undefined && prev.nextOffset > segment.baseOffset && trusted.has(prev)) {
        // Its end came from headers walked without their CRCs: a damaged one may claim offsets it never held.
        // Scanned now, the damage is reported where it lies (or cut, with repair).
        trusted.delete(prev);
        await prev.close();
        prev = await Segment.open(dir, prev.baseOffset, segmentConfig, true);
        segments[segments.length - 2] = prev;
        await recoverSegment(prev, config.repair, false);
        await prev.seal();
      }
      if (prev !== undefined && prev.nextOffset > segment.baseOffset) {
        throw new SeglogError('ECORRUPT', `segment ${segment.log.path} starts at ${segment.baseOffset}, inside the previous segment (which ends at ${prev.nextOffset - 1})`, {
          path: segment.log.path,
          position: 0,
        });
      }
    }
    if (segments.length === 0) segments.push(await Segment.create(dir, Math.max(0, ctx.logStartOffset), segmentConfig));
    missing = holes(segments, ctx.logStartOffset);
    if (missing.length > 0) {
      const list = missing.map((r) => `${r.from}..${r.to}`).join(', ');
      if (!config.repair) {
        throw new SeglogError('ECORRUPT', `offsets ${list} of ${dir} are in no segment (segment files are missing); open with repair: true to accept the loss`, { path: dir });
      }
      missing = await acceptHoles(dir, segments, segmentConfig, ctx);
    }
    // Once recovery has settled where the log starts and ends: epochs outside that are dropped.
    epochs = await LeaderEpochs.open(dir, segments, Math.max(ctx.logStartOffset, segments[0]!.baseOffset), segments.at(-1)!.nextOffset);
    // From here on a crash must be detected: the marker goes before any write.
    if (clean) {
      await rm(join(dir, CLEAN_SHUTDOWN_FILE));
      await fsyncDir(dir);
    }
  } catch (err) {
    await Promise.allSettled(segments.map((s) => s.close()));
    if (context === undefined) ctx.scheduler.stop();
    throw err;
  }
  return { segments, missing, context: ctx, epochs, ownContext: context === undefined };
}

/**
 * Repair of lost segments, as repair treats corruption: a lost first segment
 * moves the start offset past it (durably, as retention would); at a hole
 * further on, the log is cut, so it ends where the hole begins and a
 * follower fetches the rest again. Returns what is lost.
 */
async function acceptHoles(dir: string, segments: Segment[], config: SegmentConfig, ctx: LogContext): Promise<OffsetRange[]> {
  const lost: OffsetRange[] = [];
  if (segments[0]!.baseOffset > ctx.logStartOffset) {
    lost.push({ from: ctx.logStartOffset, to: segments[0]!.baseOffset - 1 });
    await ctx.persistStartOffset(segments[0]!.baseOffset);
  }
  const cut = segments.findIndex((s, i) => i > 0 && s.baseOffset > segments[i - 1]!.nextOffset);
  if (cut < 0) return lost;
  const end = segments[segments.length - 1]!.nextOffset;
  lost.push({ from: segments[cut - 1]!.nextOffset, to: end - 1 });
  for (const s of segments.splice(cut).reverse()) await s.delete();
  await fsyncDir(dir);
  // The segment before the hole is the active one now: reopened writable.
  const last = segments.pop()!;
  await last.close();
  segments.push(await Segment.open(dir, last.baseOffset, config, true));
  return lost;
}

/**
 * The offsets from `logStartOffset` to the end that no segment holds. Each
 * segment must start where the one before it ends (a roll starts the next
 * one at the log end), and the first must not start above the start offset.
 */
function holes(segments: readonly Segment[], logStartOffset: number): OffsetRange[] {
  const found: OffsetRange[] = [];
  let end = logStartOffset;
  for (const s of segments) {
    if (s.baseOffset > end) found.push({ from: end, to: s.baseOffset - 1 });
    end = Math.max(end, s.nextOffset);
  }
  return found;
}

async function recoverSegment(segment: Segment, repair: boolean, isLast: boolean): Promise<void> {
  const r = await segment.recover({ repair });
  if (r.corruptAt !== undefined) {
    throw new SeglogError('ECORRUPT', `corrupt batch in ${segment.log.path} at position ${r.corruptAt} (${r.corruptReason}), followed by valid data; open with repair: true to cut it`, {
      path: segment.log.path,
      position: r.corruptAt,
    });
  }
  // Only the last segment may legitimately have a torn tail; elsewhere a cut is a repair.
  if (!isLast && r.truncatedBytes > 0 && !repair) {
    throw new SeglogError('ECORRUPT', `invalid data at the end of ${segment.log.path} at position ${r.validBytes}, which is not the last segment; open with repair: true to cut it`, {
      path: segment.log.path,
      position: r.validBytes,
    });
  }
}
