import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 * 1024;

export interface PageCacheCost {
  /** Kernel CPU nanoseconds per byte written into pages the file did not have yet. */
  freshNsPerByte: number;
  /** The same for writing over pages the page cache already holds. */
  cachedNsPerByte: number;
}

/**
 * What writing into the page cache costs this machine's kernel, per byte, for pages newly
 * allocated and for pages already cached. Every benchmark here writes what it downloads (an
 * agent's cache, containerd's content store), so all of it goes through new pages. On a
 * machine with ordinary memory both cost about the same (a memory copy, a few tenths of a ns);
 * in a VM whose freed memory is handed back to its host (free page reporting, ballooning),
 * each new page is first faulted in by the host, and that shows up here, many times dearer,
 * as kernel time of whoever writes. The benchmarks print it, so a reader can tell that cost of
 * the machine from krill's. Such a VM takes memory back a few seconds after it is freed, so the
 * probe first waits that long: memory freed just before (by an earlier run) would otherwise be
 * reused before the host took it, and look cheap.
 */
export async function measurePageCache(dir: string, mib = 256, settleMs = 4000): Promise<PageCacheCost> {
  await new Promise((r) => setTimeout(r, settleMs));
  const work = mkdtempSync(join(dir, 'krill-page-cache-'));
  const file = join(work, 'probe');
  const buf = Buffer.alloc(MiB, 0x5a);
  const pass = (fd: number) => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < mib; i++) writeSync(fd, buf, 0, MiB, i * MiB);
    return (process.cpuUsage(t0).system * 1000) / (mib * MiB);
  };
  try {
    const fd = openSync(file, 'w');
    try {
      const freshNsPerByte = pass(fd);
      const cachedNsPerByte = pass(fd);
      fsyncSync(fd);
      return { freshNsPerByte, cachedNsPerByte };
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** One line for a benchmark's output: the two costs, and what `bytes` of fresh pages cost. */
export function pageCacheLine(c: PageCacheCost, bytes: number, what: string): string {
  const seconds = (c.freshNsPerByte * bytes) / 1e9;
  return `        page cache on this machine: ${c.freshNsPerByte.toFixed(2)} ns/B into new pages, ${c.cachedNsPerByte.toFixed(2)} ns/B into cached ones; ${what} ${(bytes / 1e9).toFixed(1)} GB of new pages ≈ ${seconds.toFixed(1)} CPU-s`;
}
