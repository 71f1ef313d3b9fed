import { KrillError } from './errors.js';

/** An inclusive byte range of a blob, as HTTP ranges are. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a single-range `Range` header (RFC 9110 §14.1.2) against a blob of `size` bytes:
 * `bytes=a-b`, `bytes=a-` and the suffix form `bytes=-n`. Undefined for no header. An
 * unsatisfiable or multi-range request is InvalidArgument ERR_RANGE_INVALID (HTTP 416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined || header === '') return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  const invalid = () => new KrillError('InvalidArgument', 'ERR_RANGE_INVALID', `range ${JSON.stringify(header)} is not satisfiable for ${size} bytes`);
  if (!m || (m[1] === '' && m[2] === '')) throw invalid();
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) throw invalid();
  return { start, end };
}
