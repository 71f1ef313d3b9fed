import type { Logger } from '@krill/lib';
import type { Announce, TrackerClient } from '../../tracker/index.js';

/**
 * Kraken's agent interval (5 s), used when the tracker failed or answered an interval outside
 * ANNOUNCE_MIN_MS..ANNOUNCE_MAX_MS.
 */
const ANNOUNCE_DEFAULT_MS = 5000;
/** Below this a tracker answering 0 (or a bug) would have every seed swarm announce in a loop. */
const ANNOUNCE_MIN_MS = 100;
/** Kraken reverts an interval over a minute to its default: the tracker would forget the peer. */
const ANNOUNCE_MAX_MS = 60_000;

/**
 * Announces `a` now and then again at the interval each answer gives, until the returned stop
 * function is called. Failures are logged at debug and retried at the default interval: a
 * tracker outage must not stop the origin seeding peers that already know it.
 */
export function announceWhileOpen(tracker: TrackerClient, a: Announce, logger: Logger): () => void {
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const next = (ms: number) => {
    if (stopping.signal.aborted) return;
    timer = setTimeout(tick, ms);
    timer.unref();
  };
  const tick = () => {
    tracker.announce(a, stopping.signal).then(
      ({ intervalMs }) => next(intervalMs >= ANNOUNCE_MIN_MS && intervalMs <= ANNOUNCE_MAX_MS ? intervalMs : ANNOUNCE_DEFAULT_MS),
      (err: unknown) => {
        if (!stopping.signal.aborted) logger.debug({ digest: a.digest, err: (err as Error).message }, 'announcing a seed swarm failed; will retry');
        next(ANNOUNCE_DEFAULT_MS);
      },
    );
  };
  tick();
  return () => {
    stopping.abort();
    clearTimeout(timer);
  };
}
