// Opening a log directory: lists its segments, takes the sealed ones a clean
// shutdown recorded from that record without opening them (they open on
// first read, Segment.load), opens the others (trusting those the recovery
// point vouches for), recovers the rest by a CRC scan, and hands back what it
// loaded. Recovery's rules live here: a torn tail is cut only in the last
// segment, corruption followed by valid data is refused unless `repair`,
// segments must not overlap. A cleaner's swap a crash interrupted is
// completed or undone first (cleaned-swap.ts).
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable } from '../common/durable-files.js';
import { fromNodeError, SeglogError } from '../errors.js';
import { CLEAN_SHUTDOWN_FILE, COPY_SUFFIX, DELETED_SUFFIX, segmentBases } from '../layout.js';
import { fsyncDir } from '../native.js';
import { Segment, type SegmentConfig, type SegmentSummary } from '../segment/segment.js';
import { finishSwaps } from './cleaned-swap.js';
import { CleanedPoint } from './cleaned-point.js';
import { readCleanShutdown, removeCleanShutdown } from './clean-shutdown.js';
import { standaloneContext, type LogContext } from './context.js';
import { LeaderEpochs } from './leader-epochs.js';
import type { LogConfig } from './options.js';
import { Producers } from './producers.js';

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
  /** Producer and transaction state as of the loaded end. */
  producers: Producers;
  /** Whether the context was made for this log alone (its scheduler stops when the log closes). */
  ownContext: boolean;
  /** Whether the clean-shutdown marker is still on disk: it must go before the first write (MarkerOnOpen). */
  markerOnDisk: boolean;
  /**
   * The end known durable: the log end after a clean shutdown that open did
   * not change, else at most the recovery point. After a process crash the
   * recovered tail may still be only in the page cache; claiming it durable
   * would let a checkpoint record a recovery point that a power cut then
   * betrays (recovery would trust segments it must scan).
   */
  durableEnd: number;
  /** How far the cleaner got: segments may hold gaps below it. */
  cleanedPoint: CleanedPoint;
}

/** The segments' config: index sizes, and gaps allowed below the cleaned point. */
export function segmentConfigOf(config: LogConfig, point: CleanedPoint): SegmentConfig {
  return { indexIntervalBytes: config.indexIntervalBytes, segmentIndexBytes: config.segmentIndexBytes, gapsBelow: () => point.offset };
}

/**
 * Opens the log in `dir`, creating it if needed. After an unclean shutdown
 * (no clean-shutdown marker, or a damaged one) every segment from the
 * recovery point on is scanned: torn tails are cut, indexes rebuilt, and
 * corruption followed by valid data is refused (ECORRUPT) unless `repair`.
 * After a clean one, the sealed segments the marker records with their
 * current size are taken from it unopened, and any other segment is scanned;
 * with `repair` every segment is opened and checked now, as after a clean
 * shutdown before segments were summarized (repair cannot act later, on a read).
 */
export async function loadLog(dir: string, config: LogConfig, context: LogContext | undefined): Promise<LoadedLog> {
  let names = await listCreating(dir);
  // A cleaner's swap that passed its point of no return is completed, any other leftover of a pass removed.
  const swapped = await finishSwaps(dir, names);
  if (swapped) names = await readdir(dir);
  const cleanedPoint = await CleanedPoint.read(dir);
  const segmentConfig = segmentConfigOf(config, cleanedPoint);
  const bases = segmentBases(names);
  for (const b of bases) {
    if (!Number.isSafeInteger(b)) throw new SeglogError('ECORRUPT', `segment name beyond the safe offset range in ${dir}`, { path: dir });
  }
  const marker = names.includes(CLEAN_SHUTDOWN_FILE);
  // The last segment opens as the active one whatever the marker says: side by side with reading the marker
  // and making the context. Its failure counts when the loop below reaches it, as if opened there.
  const lastBase = bases.at(-1);
  const lastOpening = lastBase === undefined ? undefined : Segment.open(dir, lastBase, segmentConfig, true);
  lastOpening?.catch(() => undefined);
  const [made, read, removed] = await Promise.allSettled([
    context ?? standaloneContext(dir, config.cache),
    marker ? readCleanShutdown(dir, bases) : undefined,
    // Leftovers of retention that the process did not live to unlink, and of truncateTo's copies it did not live to rename.
    Promise.all(names.filter((n) => n.endsWith(DELETED_SUFFIX) || n.endsWith(COPY_SUFFIX)).map((n) => rm(join(dir, n), { force: true }))),
  ]);
  const failed = [made, read, removed].find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await lastOpening?.then((s) => s.close()).catch(() => undefined);
    if (context === undefined && made.status === 'fulfilled') made.value.scheduler.stop();
    throw failed.reason;
  }
  const ctx = (made as PromiseFulfilledResult<LogContext>).value;
  /** What the clean shutdown vouches for: each segment it recorded whose .log has the recorded size. */
  const recorded = (read as PromiseFulfilledResult<Map<number, SegmentSummary> | undefined>).value;
  const clean = recorded !== undefined;
  const segments: Segment[] = [];
  /** Segments opened (or summarized) on trust (a clean shutdown or the recovery point), not scanned. */
  const trusted = new Set<Segment>();
  /** Whether open changed a segment file (recovery): the marker then goes now, not at the first write. */
  let changed = swapped;
  let missing: OffsetRange[];
  let epochs: LeaderEpochs;
  let producers: Producers;
  try {
    for (let i = 0; i < bases.length; i++) {
      const last = i === bases.length - 1;
      const summary = recorded?.get(bases[i]!);
      let segment: Segment;
      if (summary !== undefined && !last && !config.repair) {
        segment = Segment.summarized(dir, summary, segmentConfig);
        segments.push(segment);
        trusted.add(segment);
      } else {
        // After a clean shutdown a segment it does not vouch for changed since; otherwise segments wholly
        // below the recovery point were durable already.
        let recover = clean ? summary === undefined : last || bases[i + 1]! > ctx.recoveryPoint;
        // Recovery rewrites indexes, so a recovered segment opens writable and is sealed after.
        segment = last ? await lastOpening! : await Segment.open(dir, bases[i]!, segmentConfig, recover);
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
          changed = true;
          await recoverSegment(segment, config.repair, last);
          if (!last) await segment.seal();
        } else {
          trusted.add(segment);
        }
      }
      let prev = segments[segments.length - 2];
      if (prev !== undefined && prev.nextOffset > segment.baseOffset && trusted.has(prev)) {
        // Its end came from headers walked without their CRCs (or from a record of them): a damaged one may
        // claim offsets it never held. Scanned now, the damage is reported where it lies (or cut, with repair).
        changed = true;
        trusted.delete(prev);
        await prev.close();
        prev = await Segment.open(dir, prev.baseOffset, segmentConfig, true);
        segments[segments.length - 2] = prev;
        await recoverSegment(prev, config.repair, false);
        await prev.seal();
      }
      if (prev !== undefined && prev.nextOffset > segment.baseOffset) {
        throw new SeglogError('ECORRUPT', `segment ${segment.logPath} starts at ${segment.baseOffset}, inside the previous segment (which ends at ${prev.nextOffset - 1})`, {
          path: segment.logPath,
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
      changed = true;
      missing = await acceptHoles(dir, segments, segmentConfig, ctx);
    }
    // Once recovery has settled where the log starts and ends: epochs outside that are dropped.
    epochs = await LeaderEpochs.open(dir, segments, Math.max(ctx.logStartOffset, segments[0]!.baseOffset), segments.at(-1)!.nextOffset);
    producers = await Producers.load(dir, names, segments, { expirationMs: config.producerIdExpirationMs, maxProducerIds: config.maxProducerIds });
    // A crash after open's own changes must be detected: then the marker goes now. Otherwise it stays
    // while the log only reads, and goes before its first write (MarkerOnOpen).
    if (marker && (!clean || changed)) {
      await removeCleanShutdown(dir);
    }
  } catch (err) {
    await Promise.allSettled([...segments.map((s) => s.close()), lastOpening?.then((s) => s.close())]);
    if (context === undefined) ctx.scheduler.stop();
    throw err;
  }
  const end = segments.at(-1)!.nextOffset;
  const durableEnd = clean && !changed ? end : Math.min(ctx.recoveryPoint, end);
  return { segments, missing, context: ctx, epochs, producers, ownContext: context === undefined, markerOnDisk: marker && clean && !changed, durableEnd, cleanedPoint };
}

/** The names in `dir`, which is made (durably) if it does not exist yet. */
async function listCreating(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromNodeError(err);
  }
  await mkdirDurable(dir);
  return readdir(dir).catch((err) => Promise.reject(fromNodeError(err)));
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
  // Only the last segment may legitimately have a torn tail; elsewhere a cut is a repair, and refusing changes nothing.
  const r = await segment.recover({ repair, cutTail: isLast });
  if (r.corruptAt !== undefined) {
    throw new SeglogError('ECORRUPT', `corrupt batch in ${segment.log.path} at position ${r.corruptAt} (${r.corruptReason}), followed by valid data; open with repair: true to cut it`, {
      path: segment.log.path,
      position: r.corruptAt,
    });
  }
  if (r.invalidTailAt !== undefined) {
    throw new SeglogError('ECORRUPT', `invalid data at the end of ${segment.log.path} at position ${r.validBytes}, which is not the last segment; open with repair: true to cut it`, {
      path: segment.log.path,
      position: r.validBytes,
    });
  }
}
