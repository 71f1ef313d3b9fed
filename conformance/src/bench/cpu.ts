import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (100 on every Linux build we run on). */
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; 0 once it has
 * exited. Benchmarks sample it around a step to say whether a side was bound by CPU: on a
 * 2-core machine a server and its client share the cores, so a ratio means little without it.
 */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** A process's CPU seconds so far in user space and in the kernel (zeros once it has exited). */
export function cpuTimes(pid: number): { user: number; system: number } {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return { user: 0, system: 0 };
  }
  // The command name (field 2) may hold spaces and parentheses; fields are counted after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, so 11 and 12 after the name.
  return { user: Number(fields[11]) / TICKS, system: Number(fields[12]) / TICKS };
}

/** This process's own CPU seconds. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Measures the CPU that `pids` and this process use while `step` runs: cores busy on average
 * (CPU seconds / wall seconds) for the servers and for this process (the client).
 */
export async function withCpu<T>(pids: number[], step: () => Promise<T>): Promise<{ value: T; serverCores: number; clientCores: number; wallMs: number }> {
  const sum = () => pids.reduce((n, p) => n + cpuSeconds(p), 0);
  const s0 = sum();
  const c0 = ownCpuSeconds();
  const t0 = performance.now();
  const value = await step();
  const wallMs = performance.now() - t0;
  const wall = wallMs / 1000;
  return { value, serverCores: (sum() - s0) / wall, clientCores: (ownCpuSeconds() - c0) / wall, wallMs };
}
