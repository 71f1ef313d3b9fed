import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** containerd opens its socket in well under a second here; the bound covers a loaded machine. */
const READY_TIMEOUT_MS = 20_000;
/** A pull of a test image takes seconds; a hung one fails the test rather than the suite. */
const CTR_TIMEOUT_MS = 150_000;

export interface Containerd {
  /** The unix socket of its gRPC API. */
  socket: string;
  /** Runs `ctr --address <socket> <args>` and returns its standard output. */
  ctr(args: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * Debian's containerd started for a test with its own root, state and socket under `dir`
 * (never the system's), the CRI plugin disabled (issue 4's tests enable it). Resolves once
 * `ctr version` answers.
 */
export async function startContainerd(o: { dir: string }): Promise<Containerd> {
  mkdirSync(o.dir, { recursive: true });
  const socket = join(o.dir, 'containerd.sock');
  const config = join(o.dir, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${join(o.dir, 'root')}"`,
    `state = "${join(o.dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '',
  ].join('\n'));
  const child = spawn('/usr/bin/containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => { stderr = (stderr + c).slice(-8192); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const ctr = async (args: string[]) => (await run('/usr/bin/ctr', ['--address', socket, ...args], { timeout: CTR_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 })).stdout;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (existsSync(socket) && (await ctr(['version']).then(() => true, () => false))) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      kill();
      throw new Error(`containerd did not start: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket, ctr,
    async close() {
      process.off('exit', kill);
      child.kill('SIGTERM');
      const timer = setTimeout(kill, 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
