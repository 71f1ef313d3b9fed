import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promises as dns } from 'node:dns';
import { createDnsResolver, type MemberResolver, type SrvTarget } from '../membership.js';

/**
 * A real DNS server for tests: dnsmasq on 127.0.0.1 and a free UDP port, answering from a hosts
 * file the test rewrites (dnsmasq re-reads it on SIGHUP). Names under `krill.test` only; an
 * unknown name is NXDOMAIN and a name with only A records has no AAAA (NODATA), as a cluster's
 * DNS answers. SRV records too (`srv-host`, which dnsmasq reads only at start: a change of them
 * restarts it on the same port). Needs `dnsmasq` on PATH (Debian's dnsmasq-base;
 * scripts/install-deps.sh).
 */
export interface TestDnsServer {
  port: number;
  /** A resolver pointed at this server, with short timeouts (a stopped server fails a lookup in ~0.3 s). */
  resolver: MemberResolver;
  /** Replaces every record (name -> addresses, name -> SRV targets) and waits until the server answers with them. */
  set(records: Record<string, string[]>, srv?: Record<string, SrvTarget[]>): Promise<void>;
  /** Stops answering (SIGSTOP), so lookups time out; `resume` (SIGCONT) undoes it. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/** The name whose address counts `set` calls, so `set` can tell when dnsmasq has re-read the file. */
const GENERATION = 'generation.krill.test';

export async function startTestDnsServer(records: Record<string, string[]> = {}, srv: Record<string, SrvTarget[]> = {}): Promise<TestDnsServer> {
  // dnsmasq started as root drops to `nobody`, which must still read the file after a SIGHUP.
  const dir = await mkdtemp(join(tmpdir(), 'krill-dns-'));
  await chmod(dir, 0o755);
  const hosts = join(dir, 'hosts');
  let generation = 0;
  const write = async (r: Record<string, string[]>) => {
    generation++;
    const lines = Object.entries(r).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}`));
    lines.push(`127.254.${generation >> 8 & 255}.${generation & 255} ${GENERATION}`);
    await writeFile(hosts, `${lines.join('\n')}\n`, { mode: 0o644 });
  };
  const srvArgs = (r: Record<string, SrvTarget[]>) => Object.entries(r).flatMap(([name, targets]) => targets.map((t) => `--srv-host=${name},${t.target},${t.port}`));
  let srvNow = srvArgs(srv);
  await write(records);
  let child: ChildProcess | undefined;
  let port = 0;
  // A port found free may be taken before dnsmasq binds it; a few tries make that harmless.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freeUdpPort();
    child = await spawnDnsmasq(port, hosts, srvNow);
  }
  if (!child) throw new Error('dnsmasq did not start (is it installed? scripts/install-deps.sh installs dnsmasq-base)');
  let proc = child;
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGCONT');
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  const probe = new dns.Resolver({ timeout: 200, tries: 1 });
  probe.setServers([`127.0.0.1:${port}`]);
  const answered = async (want: string) => {
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await probe.resolve4(GENERATION)).includes(want)) return;
      } catch {
        // Not up yet, or re-reading the file.
      }
      if (Date.now() > end) throw new Error(`dnsmasq on port ${port} did not answer ${GENERATION} = ${want}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const current = () => `127.254.${generation >> 8 & 255}.${generation & 255}`;
  await answered(current());
  return {
    port,
    resolver: createDnsResolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 300, tries: 1 }),
    async set(r, s = {}) {
      await write(r);
      const next = srvArgs(s);
      if (next.join('\n') === srvNow.join('\n')) {
        proc.kill('SIGHUP');
      } else {
        srvNow = next;
        await stop();
        const restarted = await spawnDnsmasq(port, hosts, srvNow);
        if (!restarted) throw new Error(`dnsmasq could not bind port ${port} again`);
        proc = restarted;
      }
      await answered(current());
    },
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((r) => socket.close(() => r()));
  return port;
}

/** Starts dnsmasq in the foreground; undefined when it exits at once (its port was taken). */
async function spawnDnsmasq(port: number, hosts: string, extra: string[]): Promise<ChildProcess | undefined> {
  const child = spawn('dnsmasq', [
    '--no-daemon', '--conf-file=/dev/null', '--pid-file', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, '--local=/krill.test/', '--log-facility=-', '--quiet-dhcp', ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4096); });
  const outcome = await Promise.race([
    new Promise<'exit'>((r) => child.once('exit', () => r('exit'))),
    new Promise<'error'>((r) => child.once('error', () => r('error'))),
    new Promise<'up'>((r) => setTimeout(() => r('up'), 300)),
  ]);
  if (outcome === 'up') return child;
  if (/address already in use/i.test(stderr)) return undefined;
  throw new Error(`dnsmasq failed to start: ${stderr.trim() || outcome}`);
}
