import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A signature policy that accepts anything, so skopeo needs no system configuration. */
function policyFile(): string {
  const f = join(mkdtempSync(join(tmpdir(), 'krill-skopeo-')), 'policy.json');
  writeFileSync(f, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  return f;
}

let policy: string | undefined;

export class SkopeoError extends Error {
  constructor(readonly args: string[], readonly stderr: string, readonly exitCode: number | null) {
    super(`skopeo ${args.join(' ')} failed (${exitCode}): ${stderr.trim()}`);
  }
}

/** Runs skopeo with krill's test defaults: a permissive policy, no retries, plain HTTP to loopback. */
export function skopeo(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  policy ??= policyFile();
  const full = ['--policy', policy, ...args];
  return new Promise((resolve, reject) => {
    execFile('skopeo', full, { timeout: options.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new SkopeoError(args, stderr, typeof err.code === 'number' ? err.code : null));
      else resolve(stdout);
    });
  });
}

export interface CopyOptions {
  all?: boolean;
  srcCreds?: string;
  destCreds?: string;
}

/** `skopeo copy` between `oci:<dir>:<tag>` and `docker://host/repo:tag` references, TLS off for registries. */
export function copy(src: string, dest: string, o: CopyOptions = {}): Promise<string> {
  return skopeo([
    'copy', '--retry-times', '0', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false',
    ...(o.all ? ['--all'] : []),
    ...(o.srcCreds ? ['--src-creds', o.srcCreds] : []),
    ...(o.destCreds ? ['--dest-creds', o.destCreds] : []),
    src, dest,
  ]);
}

/** `skopeo inspect` (or `--raw`, or `--config`) of a reference, parsed. */
export async function inspect(ref: string, mode: 'image' | 'raw' | 'config' = 'image'): Promise<Record<string, unknown>> {
  const out = await skopeo(['inspect', '--retry-times', '0', '--tls-verify=false', ...(mode === 'raw' ? ['--raw'] : mode === 'config' ? ['--config'] : []), ref]);
  return JSON.parse(out) as Record<string, unknown>;
}
