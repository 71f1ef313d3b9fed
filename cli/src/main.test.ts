import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from './main.js';

async function run(argv: string[], env: Record<string, string> = {}, stop: Promise<string> = new Promise(() => {})) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const code = await main(argv, { env, stdout, stderr, stopSignal: stop });
  return { code, out, err };
}

function yaml(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'krill-cli-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

describe('krill CLI', () => {
  it('lists its commands', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['origin', 'tracker', 'build-index', 'proxy', 'devcluster']) expect(r.out).toContain(`  ${c} `);
  });

  it('rejects an unknown command', async () => {
    const r = await run(['orgin']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "orgin"');
  });

  it('prints a service\'s help with its environment overrides', async () => {
    const r = await run(['origin', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--config FILE');
    expect(r.out).toContain('KRILL_ORIGIN_STORE__CAPACITY_BYTES');
  });

  it('fails a bad config before starting, naming the key and what was expected', async () => {
    const f = yaml('store:\n  dir: /tmp/x\n  capacityBytes: lots\n');
    const r = await run(['origin', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/config key store\.capacityBytes in .*c\.yaml: must be integer \(got "lots"\)/);
  });

  it('names a missing required key and an unknown one', async () => {
    expect((await run(['proxy', '--config', yaml('listen: { port: 0 }\n')])).err).toMatch(/config key (origins|buildIndex|uploadDir).*is required/);
    expect((await run(['build-index', '--config', yaml('db: /tmp/x.db\norigins: { urls: [http://127.0.0.1:1] }\ntypo: 1\n')])).err).toMatch(/config key typo.*unknown key/);
  });

  it('applies environment overrides and validates them', async () => {
    const f = yaml('store: { dir: /tmp/x }\n');
    const r = await run(['origin', '--config', f], { KRILL_ORIGIN_LISTEN__PORT: 'eighty' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/config key listen\.port.*must be integer \(got "eighty"\)/);
  });

  it('rejects unknown flags', async () => {
    const r = await run(['origin', '--confg', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("Unknown option '--confg'");
  });

  it('runs an origin until told to stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krill-cli-origin-'));
    let stop!: (s: string) => void;
    const stopped = new Promise<string>((r) => (stop = r));
    const running = run(['origin', '--config', yaml(`listen: { port: 0 }\nstore: { dir: ${dir} }\n`)], {}, stopped);
    await new Promise((r) => setTimeout(r, 1500));
    stop('SIGTERM');
    const r = await running;
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; url?: string });
    expect(lines.find((l) => l.msg === 'origin listening')?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines.at(-1)?.msg).toBe('origin stopped');
  });
});
