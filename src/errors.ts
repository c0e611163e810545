import { getSystemErrorMap } from 'node:util';

/** Codes seglog raises itself, beside the OS's errno names. */
export type SeglogErrorCode =
  | 'ECORRUPT'
  | 'EOFFSETRANGE'
  | 'ECLOSED'
  | 'ELOCKED'
  | 'ECANCELED'
  /** A batch larger than maxMessageBytes (Kafka's RECORD_TOO_LARGE). */
  | 'ERECORDTOOLARGE'
  /** A record timestamp outside the log's bounds (Kafka's INVALID_TIMESTAMP). */
  | 'EINVALIDTIMESTAMP'
  /** A leader epoch older than the log's latest (Kafka's FENCED_LEADER_EPOCH). */
  | 'EFENCEDLEADEREPOCH'
  /** A call the log's options rule out (setHighWatermark under highWatermark 'auto'). */
  | 'EINVAL'
  /** A producer batch or marker with an epoch older than the producer's (Kafka's INVALID_PRODUCER_EPOCH / PRODUCER_FENCED). */
  | 'EPRODUCERFENCED'
  /** A producer batch whose sequence does not follow the producer's last (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER). */
  | 'EOUTOFORDERSEQUENCE'
  /** A record a compacted log cannot take: one without a key (Kafka's INVALID_RECORD). */
  | 'EINVALIDRECORD'
  | (string & {});

export interface SeglogErrorDetails {
  errno?: number;
  syscall?: string;
  path?: string;
  /** For ECORRUPT: byte position in `path` where the damage starts. */
  position?: number;
  /** For failed transfers: bytes that reached the destination before the failure. */
  bytesSent?: number;
  cause?: unknown;
}

/**
 * The one error class seglog throws for failures that are not argument
 * errors (those are TypeError/RangeError). Shaped like Node's fs errors.
 */
export class SeglogError extends Error {
  readonly code: SeglogErrorCode;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;
  readonly position?: number;
  readonly bytesSent?: number;

  constructor(code: SeglogErrorCode, message: string, details: SeglogErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SeglogError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
    if (details.position !== undefined) this.position = details.position;
    if (details.bytesSent !== undefined) this.bytesSent = details.bytesSent;
  }
}

/** Builds the error for a failed system call from its negative errno, as Node's fs does. */
export function errnoError(negErrno: number, syscall: string, path?: string, details: SeglogErrorDetails = {}): SeglogError {
  const [code, description] = getSystemErrorMap().get(negErrno) ?? ['UNKNOWN', 'unknown error'];
  const where = path === undefined ? '' : ` '${path}'`;
  return new SeglogError(code, `${code}: ${description}, ${syscall}${where}`, {
    errno: negErrno,
    syscall,
    ...(path === undefined ? {} : { path }),
    ...details,
  });
}

/** A failed node:fs call's error as a SeglogError (same code, errno, syscall and path): callers see one error class. */
export function fromNodeError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || err instanceof SeglogError || typeof e.code !== 'string' || typeof e.errno !== 'number') return err;
  return new SeglogError(e.code, e.message, {
    errno: e.errno,
    ...(e.syscall === undefined ? {} : { syscall: e.syscall }),
    ...(e.path === undefined ? {} : { path: e.path }),
    cause: err,
  });
}
