import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './krill-process.js';

export interface DockerRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, for `docker://` references. */
  host: string;
  /** The server's process id (benchmarks read its CPU time). */
  pid: number;
  close(): Promise<void>;
}

/** How long distribution may take to start answering; it starts in well under a second here. */
const READY_TIMEOUT_MS = 15_000;

/**
 * Runs Debian's docker-registry (CNCF distribution) on 127.0.0.1 with filesystem storage under
 * `dir`, optionally behind htpasswd basic auth (bcrypt, as distribution requires, made with
 * `htpasswd -Bbn`). Resolves once `/v2/` answers; `close` stops it.
 */
export async function startDockerRegistry(o: { dir: string; htpasswd?: { user: string; password: string } }): Promise<DockerRegistry> {
  mkdirSync(o.dir, { recursive: true });
  let auth = '';
  if (o.htpasswd) {
    const file = join(o.dir, 'htpasswd');
    writeFileSync(file, execFileSync('htpasswd', ['-Bbn', o.htpasswd.user, o.htpasswd.password]));
    auth = `auth:\n  htpasswd:\n    realm: krill-test\n    path: ${file}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = join(o.dir, 'config.yml');
    writeFileSync(config, [
      'version: 0.1',
      'log:\n  level: warn\n  accesslog:\n    disabled: true',
      `storage:\n  filesystem:\n    rootdirectory: ${join(o.dir, 'data')}\n  delete:\n    enabled: true`,
      `http:\n  addr: 127.0.0.1:${port}`,
      auth,
    ].join('\n'));
    const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let up = false;
    while (!up && child.exitCode === null && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        up = res.status === 200 || res.status === 401;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (up) {
      return {
        url, host: `127.0.0.1:${port}`, pid: child.pid!,
        async close() {
          process.off('exit', kill);
          child.kill('SIGTERM');
          await exited;
        },
      };
    }
    kill();
    await exited;
    // Another process may have taken the port between freePort and the bind; try another.
    if (attempt >= 2 || !/address already in use/.test(stderr)) throw new Error(`docker-registry did not start: ${stderr.trim()}`);
  }
}
