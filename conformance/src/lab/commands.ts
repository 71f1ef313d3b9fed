import { execFile, execFileSync } from 'node:child_process';

/**
 * The lab's only way to change the kernel's network state: `ip` and `tc` run with argument
 * vectors, never through a shell, so no host name or option can be read as a command.
 */

/**
 * How long one `ip` or `tc` call may take. They finish in milliseconds; the limit only keeps a
 * wedged call (a namespace stuck in teardown) from hanging a test until vitest's 180 s timeout.
 */
const COMMAND_TIMEOUT_MS = 10_000;

/** Runs a command and resolves with its stdout; rejects with its stderr in the message. */
export function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/**
 * Runs many `ip` or `tc` commands in one process with `-batch -`, one command per stdin line, and
 * stops at the first failure. Batch lines are split on whitespace, so every argument must be a
 * plain word; the lab's arguments are names and numbers it generates itself, and anything else is
 * refused rather than quoted.
 */
export function runBatch(command: 'ip' | 'tc', globalArgs: string[], lines: string[][]): Promise<string> {
  if (lines.length === 0) return Promise.resolve('');
  for (const args of lines) {
    const bad = args.find((a) => !/^[\w.:/@-]+$/.test(a));
    if (bad !== undefined) return Promise.reject(new Error(`refusing to batch the argument ${JSON.stringify(bad)}`));
  }
  return new Promise((resolve, reject) => {
    const child = execFile(command, [...globalArgs, '-batch', '-'], { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${globalArgs.join(' ')} -batch: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
    child.stdin!.end(lines.map((l) => l.join(' ')).join('\n') + '\n');
  });
}

/** Like run, but a failure resolves with undefined; for removals of things that may be gone already. */
export async function tryRun(command: string, args: string[]): Promise<string | undefined> {
  try {
    return await run(command, args);
  } catch {
    return undefined;
  }
}

/** The synchronous form of tryRun, for the process `exit` hook where nothing async can run. */
export function tryRunSync(command: string, args: string[]): string | undefined {
  try {
    return execFileSync(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

/** Names of every network namespace `ip netns` knows. */
export async function listNamespaces(): Promise<string[]> {
  return parseNamespaces(await run('ip', ['netns', 'list']));
}

/** `ip netns list` prints `name` or `name (id: 3)` per line. */
export function parseNamespaces(out: string): string[] {
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '');
}

/** Names of every link in the test process's namespace. */
export async function listLinks(): Promise<string[]> {
  const links = JSON.parse((await run('ip', ['-j', 'link', 'show'])) || '[]') as Array<{ ifname: string }>;
  return links.map((l) => l.ifname);
}

/** Destinations of every IPv4 route in every table of the test process's namespace. */
export async function listRouteDestinations(): Promise<string[]> {
  const routes = JSON.parse((await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) || '[]') as Array<{ dst: string }>;
  return routes.map((r) => r.dst);
}

/** Process ids of every process in a namespace; empty if it is gone. */
export async function namespacePids(ns: string): Promise<number[]> {
  return parsePids((await tryRun('ip', ['netns', 'pids', ns])) ?? '');
}

export function parsePids(out: string): number[] {
  return out.split('\n').map((l) => Number(l.trim())).filter((p) => Number.isInteger(p) && p > 0);
}

/** Sends a signal, ignoring a process that has already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: it ended on its own.
  }
}
