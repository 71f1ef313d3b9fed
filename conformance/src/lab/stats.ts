import { performance } from 'node:perf_hooks';

/**
 * Per-host results of a lab run: when each host started and finished its pull, how many bytes it
 * got from each source (origin, peers, a registry), and the spread of completion times a
 * benchmark reports. Hosts are identified by their LabHost name.
 */

/**
 * The nearest-rank percentile: the smallest value with at least p% of the values at or below it,
 * i.e. the value at 1-based rank ceil(p/100 * n) of the sorted values. It is always one of the
 * values, never an interpolation, so "p99 = 8.2 s" means some host really took 8.2 s. p must be
 * in (0, 100]; throws for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  if (!(p > 0 && p <= 100)) throw new Error(`percentile ${p} is outside (0, 100]`);
  const sorted = [...values].sort((a, b) => a - b);
  return nearestRank(sorted, p);
}

function nearestRank(sorted: readonly number[], p: number): number {
  // The epsilon keeps p * n that should be an integer (e.g. 0.9 * 10 = 9.000000000000002) from
  // rounding up to the next rank.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length - 1e-9));
  return sorted[rank - 1]!;
}

export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** The usual summary of a list of values; undefined for an empty list. */
export function distribution(values: readonly number[]): Distribution | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    min: sorted[0]!,
    p50: nearestRank(sorted, 50),
    p90: nearestRank(sorted, 90),
    p99: nearestRank(sorted, 99),
    max: sorted[sorted.length - 1]!,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };
}

export interface HostRun {
  host: string;
  startedAtMs: number;
  /** Set once the host finished successfully. */
  finishedAtMs?: number;
  /** finishedAtMs - startedAtMs. */
  durationMs?: number;
  /** Set if the host failed; a failed host has no duration. */
  error?: string;
  /** Bytes received, by source label (`origin`, `peer`, `registry`, or a host name). */
  bytesBySource: Record<string, number>;
}

export interface RunSummary {
  hosts: number;
  completed: number;
  failed: number;
  /** Completion times of the hosts that finished; undefined if none did. */
  completionMs: Distribution | undefined;
  /** Bytes by source, summed over all hosts. */
  bytesBySource: Record<string, number>;
}

export interface RunRecorder {
  /** Marks the start of a host's run; a second call for the same host restarts it. */
  start(host: string, atMs?: number): void;
  /** Marks a started host as finished; throws for a host that was never started. */
  finish(host: string, atMs?: number): void;
  /** Marks a started host as failed, with the error's message. */
  fail(host: string, error: unknown): void;
  /** Adds bytes a host received from a source; the host needs to have started. */
  addBytes(host: string, source: string, bytes: number): void;
  /** One entry per started host, in start order; copies, safe to keep. */
  results(): HostRun[];
  summary(): RunSummary;
}

/**
 * Records a run's per-host results. Times default to performance.now() (monotonic, in ms), so
 * only differences between them mean anything; pass `atMs` to use another clock consistently.
 */
export function createRunRecorder(): RunRecorder {
  const runs = new Map<string, HostRun>();
  const get = (host: string) => {
    const r = runs.get(host);
    if (!r) throw new Error(`host ${host} has not started`);
    return r;
  };
  return {
    start(host, atMs = performance.now()) {
      runs.delete(host);
      runs.set(host, { host, startedAtMs: atMs, bytesBySource: {} });
    },
    finish(host, atMs = performance.now()) {
      const r = get(host);
      r.finishedAtMs = atMs;
      r.durationMs = atMs - r.startedAtMs;
      delete r.error;
    },
    fail(host, error) {
      const r = get(host);
      r.error = error instanceof Error ? error.message : String(error);
      delete r.finishedAtMs;
      delete r.durationMs;
    },
    addBytes(host, source, bytes) {
      const r = get(host);
      r.bytesBySource[source] = (r.bytesBySource[source] ?? 0) + bytes;
    },
    results() {
      return [...runs.values()].map((r) => ({ ...r, bytesBySource: { ...r.bytesBySource } }));
    },
    summary() {
      const all = [...runs.values()];
      const bytesBySource: Record<string, number> = {};
      for (const r of all) for (const [s, b] of Object.entries(r.bytesBySource)) bytesBySource[s] = (bytesBySource[s] ?? 0) + b;
      const durations = all.flatMap((r) => (r.durationMs === undefined ? [] : [r.durationMs]));
      return {
        hosts: all.length,
        completed: durations.length,
        failed: all.filter((r) => r.error !== undefined).length,
        completionMs: distribution(durations),
        bytesBySource,
      };
    },
  };
}
