/**
 * Bandwidth caps and latency with `tc`. A qdisc only shapes what leaves an interface, so a host's
 * two directions are shaped on the two ends of its veth: what it sends on `eth0` inside its
 * namespace, what it receives on the bridge-side end (traffic leaving the bridge towards it).
 *
 * The cap is a token bucket filter (tbf, tc-tbf(8)). tbf accounts each packet at its full
 * Ethernet length and splits a GSO/GRO super-packet larger than its bucket into segments before
 * queueing it (kernel `tbf_segment`), so veth's 64 KiB offload packets cannot overshoot the rate
 * and offloads can stay on (ethtool is not needed). Latency is netem (tc-netem(8)) at the root
 * with the tbf as its child, the arrangement tc-netem(8) gives for "rate and delay".
 */

export interface Shaping {
  /** Bytes per second; undefined for no cap. */
  rateBytes: number | undefined;
  /** Milliseconds added to each packet; 0 for none. */
  delayMs: number;
}

/**
 * The bucket holds 10 ms of traffic at the cap, and never less than 64 KiB. 64 KiB is the largest
 * packet veth's GSO and GRO build (gso_max_size/gro_max_size 65536 without BIG TCP), so one such
 * packet passes whole instead of being split; 10 ms keeps the shaper from having to wake more than
 * 100 times a second at high caps. Either way a burst is at most a few tens of ms of transfer,
 * too little to move a benchmark's multi-second completion times.
 */
export function burstBytes(rateBytes: number): number {
  return Math.max(64 * 1024, Math.ceil(rateBytes / 100));
}

/**
 * tbf's queue holds 100 ms of traffic at the cap, a typical bandwidth-delay product: deep enough
 * that a few TCP flows competing for the cap are slowed by queueing rather than by drops, shallow
 * enough that a queue never adds more than 100 ms of latency of its own.
 */
const TBF_QUEUE_MS = 100;

/**
 * netem holds every packet for the delay, so its queue (counted in packets, default 1000) must
 * hold the delay's worth of packets at the link's speed. Uncapped, that is veth's speed, taken as
 * 1.25 GB/s (10 Gbit/s); packets are counted at 1500 bytes, the MTU, and the limit doubled for
 * bursts.
 */
const UNCAPPED_BYTES_PER_SECOND = 1.25e9;

function netemLimit(s: Shaping): number {
  const rate = s.rateBytes ?? UNCAPPED_BYTES_PER_SECOND;
  return Math.max(1000, Math.ceil(((rate * s.delayMs) / 1000 / 1500) * 2));
}

function tbfArgs(rateBytes: number): string[] {
  // tc reads a bare "bit" suffix as bits per second; its "bps" would mean bytes, so avoid it.
  return ['tbf', 'rate', `${Math.round(rateBytes * 8)}bit`, 'burst', String(burstBytes(rateBytes)), 'latency', `${TBF_QUEUE_MS}ms`];
}

/**
 * The `tc` commands (arguments after `tc`) that shape one device: netem at the root with the tbf
 * as its child when there is a delay and the kernel has netem, else the tbf alone; none for an
 * unshaped host.
 */
export function shapingCommands(dev: string, s: Shaping, netem: boolean): string[][] {
  if (s.delayMs > 0 && netem) {
    const delay = ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', 'delay', `${s.delayMs}ms`, 'limit', String(netemLimit(s))];
    return s.rateBytes === undefined ? [delay] : [delay, ['qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', ...tbfArgs(s.rateBytes)]];
  }
  return s.rateBytes === undefined ? [] : [['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', ...tbfArgs(s.rateBytes)]];
}
