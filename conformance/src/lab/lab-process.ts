import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { signal } from './commands.js';
import type { LabExit, LabProcess, LabSpawnOptions } from './lab.js';

/**
 * How much output a process keeps in memory: 64 KiB of each stream is a few hundred log lines,
 * enough to see why a component failed without holding a chatty one's whole output.
 */
const TAIL_BYTES = 64 * 1024;
/** Complete stdout lines kept for waitForLine to search; about the same span as the tail. */
const TAIL_LINES = 1000;
/** waitForLine's default patience: components here are ready in well under a second. */
const DEFAULT_WAIT_MS = 10_000;

export interface SpawnedProcess extends LabProcess {
  /** SIGKILLs the process group without waiting, for Lab.close. */
  forceKill(): void;
}

/**
 * Runs `command args` in namespace `ns` through `ip netns exec`, which enters the namespace and
 * execs the command in place, so the child's pid is the command's. It is made a process-group
 * leader (detached) so kill() reaches helpers it starts; its stdin is closed.
 */
export function spawnInNamespace(ns: string, host: string, command: string, args: string[], o: LabSpawnOptions = {}): SpawnedProcess {
  const child = spawn('ip', ['netns', 'exec', ns, command, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    ...(o.env !== undefined ? { env: { ...process.env, ...o.env } } : {}),
  });
  if (child.pid === undefined) throw new Error(`cannot start ip netns exec for ${host}: is iproute2 installed?`);
  const pid = child.pid;
  const out = { stdout: '', stderr: '' };
  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let partial = '';
  const log = o.logFile !== undefined ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
  const keep = (stream: 'stdout' | 'stderr', chunk: string) => {
    out[stream] = (out[stream] + chunk).slice(-TAIL_BYTES);
    log?.write(chunk);
  };
  const addLine = (line: string) => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    for (const w of waiters) w(line);
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    keep('stdout', chunk);
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) addLine(line);
  });
  // A last line without a newline still counts once the stream ends.
  child.stdout!.once('end', () => { if (partial !== '') addLine(partial); });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => keep('stderr', chunk));
  const stdoutClosed = new Promise<void>((resolve) => child.stdout!.once('close', () => resolve()));
  const exited = new Promise<LabExit>((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    // An 'error' after a successful spawn means the child could not be signalled or waited for.
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  void Promise.all([exited, stdoutClosed]).then(() => log?.end());
  const alive = () => child.exitCode === null && child.signalCode === null;
  const tail = () => ({ ...out });
  const describe = () => `${command} on ${host} (pid ${pid})`;

  return {
    pid, host, exited, tail,
    kill(sig = 'SIGTERM') {
      if (alive()) signal(-pid, sig);
      return exited;
    },
    forceKill() {
      if (alive()) signal(-pid, 'SIGKILL');
    },
    waitForLine(pattern, options = {}) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const fail = (why: string) => {
          done();
          const t = tail();
          reject(new Error(`${describe()}: ${why} waiting for ${pattern}\n--- stdout\n${t.stdout.slice(-2000)}\n--- stderr\n${t.stderr.slice(-2000)}`));
        };
        const waiter = (line: string) => {
          if (!pattern.test(line)) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => fail('timed out'), options.timeoutMs ?? DEFAULT_WAIT_MS);
        const onAbort = () => fail('aborted');
        const done = () => {
          waiters.delete(waiter);
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        };
        waiters.add(waiter);
        options.signal?.addEventListener('abort', onAbort, { once: true });
        if (options.signal?.aborted) onAbort();
        void stdoutClosed.then(() => { if (waiters.has(waiter)) fail('process ended'); });
      });
    },
  };
}
