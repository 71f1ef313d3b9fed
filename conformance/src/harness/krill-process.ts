import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launcherNodeArgs } from '@krill/lib';

/** The built `krill` launcher; tests that spawn components need `npx tsc -b` first (npm test does it). */
export const KRILL_BIN = fileURLToPath(new URL('../../../cli/bin/krill.js', import.meta.url));
/** The arguments after `node` that start krill as its launcher does: the flags on its `#!` line, then the launcher. */
export const KRILL_ARGV = [...launcherNodeArgs(KRILL_BIN), KRILL_BIN];

/**
 * Node flags a benchmark adds to the krill processes it measures, from two environment
 * variables: `prof` names a directory for V8 CPU profiles (`--cpu-prof`), `args` holds more
 * flags, space-separated (e.g. `--trace-gc`, `--perf-basic-prof`).
 */
export function benchNodeArgs(names: { prof: string; args: string }): string[] {
  const dir = process.env[names.prof];
  return [...(dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : []), ...(process.env[names.args]?.split(' ').filter(Boolean) ?? [])];
}

export interface KrillProcess {
  url: string;
  child: ChildProcess;
  /** Where the component's JSON log lines go. */
  logFile: string;
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<string>;
  kill(signal: NodeJS.Signals): Promise<string>;
}

/**
 * A free loopback port for a process that must be told its port in advance. It is drawn from
 * 20000-32767, below Linux's ephemeral range (32768+), so that no port-0 listener or outgoing
 * connection of a concurrent test can take it between this check and the child's bind.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/**
 * Runs `krill <command> --config <dir>/<name>.yaml` as its own process and waits until its
 * `/ready` answers. The config must set `listen.port` (use freePort). Logs go to <dir>/<name>.log.
 */
export async function startKrillProcess(o: { command: string; name: string; dir: string; config: Record<string, unknown>; readyTimeoutMs?: number; nodeArgs?: string[] }): Promise<KrillProcess> {
  const configFile = join(o.dir, `${o.name}.yaml`);
  writeFileSync(configFile, JSON.stringify(o.config, null, 2));
  const logFile = join(o.dir, `${o.name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), ...KRILL_ARGV, o.command, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? String(code))));
  const listen = o.config['listen'] as { host?: string; port: number };
  const url = `http://${listen.host ?? '127.0.0.1'}:${listen.port}`;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 20_000);
  let done = false;
  void exited.then(() => { done = true; });
  for (;;) {
    if (done) throw new Error(`krill ${o.command} (${o.name}) exited before it was ready; see ${logFile}`);
    try {
      if ((await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`krill ${o.command} (${o.name}) not ready at ${url}; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url, child, logFile, exited,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
