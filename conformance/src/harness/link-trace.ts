import { readFileSync } from 'node:fs';
import type { LabHost } from '../lab/index.js';

/**
 * Samples the lab's links every `intervalMs` while a run goes on: what the origin host sent, and
 * the least, median and most any agent host received and sent, in MB/s over each interval, with
 * Ethernet, IP and TCP headers (what the caps count). It reads the bridge-side ends' counters in
 * /sys, which costs no process per sample (`ip -s link` would, on cores the run needs). `stop`
 * ends the sampling and returns one line per interval, time measured from `t0`.
 */
export function startLinkTrace(origin: LabHost, agents: readonly LabHost[], t0: number, intervalMs: number): { stop(): string[] } {
  const hosts = [origin, ...agents];
  const read = () => hosts.map(linkBytes);
  const rows: string[] = [];
  let prev = read();
  let prevAt = Date.now();
  const timer = setInterval(() => {
    const now = read();
    const at = Date.now();
    const rate = (i: number, k: 'sent' | 'received') => (now[i]![k] - prev[i]![k]) / ((at - prevAt) / 1000) / 1e6;
    const spread = (k: 'sent' | 'received') => {
      const r = agents.map((_, i) => rate(i + 1, k)).sort((a, b) => a - b);
      return `min ${f(r[0]!)} med ${f(r[r.length >> 1]!)} max ${f(r[r.length - 1]!)}`;
    };
    rows.push(`        t ${((at - t0) / 1000).toFixed(1).padStart(5)} s | origin sent ${f(rate(0, 'sent'))} | agents received ${spread('received')} | sent ${spread('sent')} MB/s`);
    prev = now;
    prevAt = at;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return rows;
    },
  };
}

/**
 * What a lab host's link has carried so far, headers included, from the bridge-side end's
 * counters (which count the other way round: its rx is what the host sent).
 */
export function linkBytes(h: LabHost): { sent: number; received: number } {
  const counter = (file: string) => Number(readFileSync(`/sys/class/net/${h.netns}/statistics/${file}`, 'utf8'));
  return { sent: counter('rx_bytes'), received: counter('tx_bytes') };
}

const f = (x: number) => x.toFixed(1).padStart(5);
