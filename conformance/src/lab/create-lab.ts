import { silentLogger, type Logger } from '@krill/lib';
import { run, runBatch, tryRun } from './commands.js';
import { claimIndex, MAX_HOSTS, release, sweepStale, teardownIndex, teardownSync, type LabNames } from './lab-claim.js';
import type { Lab, LabHost, LabHostSpec, LabOptions } from './lab.js';
import { spawnInNamespace, type SpawnedProcess } from './lab-process.js';
import { shapingCommands } from './shaping.js';

/**
 * Hosts set up at once. Their `ip` and `tc` runs overlap in process start-up but serialise on the
 * kernel's rtnl lock, so beyond a few in flight more buys nothing and only crowds two cores.
 */
const SETUP_CONCURRENCY = 8;
/** Below 10 kB/s the token bucket's 64 KiB burst is seconds of traffic and the cap stops being a rate. */
const MIN_CAP_MBPS = 0.01;
/** How long a restored link may take to show carrier; veth and a non-STP bridge take microseconds. */
const CARRIER_TIMEOUT_MS = 5_000;
/** How long close waits for SIGKILLed processes to be reaped before it reports them. */
const REAP_TIMEOUT_MS = 5_000;

/**
 * Builds a lab: clears what dead labs left, claims a /24, makes the bridge and one namespace per
 * host, shapes every host's link, and returns once all hosts can reach each other and the gateway.
 * If any step fails, everything made so far is removed before the error is thrown.
 */
export async function createLab(options: LabOptions): Promise<Lab> {
  validate(options.hosts);
  const logger = options.logger ?? silentLogger();
  const cleaned = await sweepStale();
  if (cleaned.length > 0) logger.warn({ labs: cleaned }, 'removed namespaces and links left by dead labs');
  const { names, claim } = await claimIndex();
  const spawned = new Set<SpawnedProcess>();
  const onExit = () => {
    for (const p of spawned) p.forceKill();
    teardownSync(names, options.hosts.length);
  };
  process.once('exit', onExit);
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= (async () => {
    process.off('exit', onExit);
    let left: string[];
    let reaped: boolean;
    try {
      for (const p of spawned) p.forceKill();
      left = await teardownIndex(names.index);
      reaped = await Promise.race([
        Promise.all([...spawned].map((p) => p.exited)).then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), REAP_TIMEOUT_MS).unref()),
      ]);
    } finally {
      // Released even if teardown threw: the next lab to claim this index clears what is left.
      await release(claim);
    }
    const problems = [...(left.length ? [`could not remove ${left.join(', ')}`] : []), ...(reaped ? [] : ['spawned processes did not exit after SIGKILL'])];
    if (problems.length) throw new Error(`lab ${names.subnet}: ${problems.join('; ')}`);
    logger.info({ subnet: names.subnet }, 'lab closed');
  })());

  try {
    const netem = await build(names, options.hosts);
    const hosts = options.hosts.map((spec, i) => makeHost(names, i, spec, netem, () => closing !== undefined, spawned, logger));
    logger.info({ subnet: names.subnet, hosts: hosts.map((h) => `${h.name}=${h.ip}`), netem }, 'lab ready');
    return {
      hosts, netem, close,
      gatewayIp: names.gatewayIp,
      subnet: names.subnet,
      host(name) {
        const h = hosts.find((x) => x.name === name);
        if (!h) throw new Error(`lab has no host ${name}`);
        return h;
      },
    };
  } catch (err) {
    await close().catch((e: unknown) => logger.error({ err: e }, 'lab cleanup after a failed start'));
    throw err;
  }
}

function validate(hosts: LabHostSpec[]): void {
  if (hosts.length === 0 || hosts.length > MAX_HOSTS) throw new Error(`a lab has 1 to ${MAX_HOSTS} hosts (one /24), not ${hosts.length}`);
  const seen = new Set<string>();
  for (const h of hosts) {
    if (h.name === '' || seen.has(h.name)) throw new Error(`lab host names must be unique and non-empty: "${h.name}"`);
    seen.add(h.name);
    if (h.capMBps !== undefined && !(h.capMBps >= MIN_CAP_MBPS && Number.isFinite(h.capMBps))) throw new Error(`host ${h.name}: capMBps must be at least ${MIN_CAP_MBPS}`);
    if (h.latencyMs !== undefined && !(h.latencyMs >= 0 && Number.isFinite(h.latencyMs))) throw new Error(`host ${h.name}: latencyMs must be >= 0`);
  }
}

/**
 * Makes the bridge and the hosts; resolves whether the kernel has netem. Commands go in batches
 * (one `ip` for every host's outer half, one `ip` and one `tc` per namespace, one `tc` for every
 * bridge-side qdisc): one process per command took 9 s for 50 hosts.
 */
async function build(names: LabNames, hosts: LabHostSpec[]): Promise<boolean> {
  const br = names.bridge;
  await run('ip', ['link', 'add', br, 'type', 'bridge']);
  // No IPv6 link-local addresses anywhere: the lab speaks only the IPv4 addresses it assigns.
  await run('ip', ['link', 'set', br, 'addrgenmode', 'none']);
  await run('ip', ['addr', 'add', `${names.gatewayIp}/24`, 'dev', br]);
  await run('ip', ['link', 'set', br, 'up']);
  const netem = await probeNetem(br);
  const shaping = hosts.map((h) => ({ rateBytes: h.capMBps === undefined ? undefined : h.capMBps * 1e6, delayMs: h.latencyMs ?? 0 }));
  await runBatch('ip', [], hosts.flatMap((_, i) => {
    const link = names.host(i);
    return [
      ['netns', 'add', link],
      ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', link],
      ['link', 'set', link, 'addrgenmode', 'none'],
      ['link', 'set', link, 'master', br],
      ['link', 'set', link, 'up'],
    ];
  }));
  for (let i = 0; i < hosts.length; i += SETUP_CONCURRENCY) {
    await Promise.all(hosts.slice(i, i + SETUP_CONCURRENCY).map(async (_, j) => {
      const ns = names.host(i + j);
      await runBatch('ip', ['-n', ns], [
        ['link', 'set', 'lo', 'up'],
        ['link', 'set', 'eth0', 'addrgenmode', 'none'],
        ['addr', 'add', `${names.hostIp(i + j)}/24`, 'dev', 'eth0'],
        ['link', 'set', 'eth0', 'up'],
      ]);
      await runBatch('tc', ['-n', ns], shapingCommands('eth0', shaping[i + j]!, netem));
    }));
  }
  await runBatch('tc', [], hosts.flatMap((_, i) => shapingCommands(names.host(i), shaping[i]!, netem)));
  return netem;
}

/** Adds and removes a zero-delay netem on the (otherwise unshaped) bridge. */
async function probeNetem(br: string): Promise<boolean> {
  try {
    await run('tc', ['qdisc', 'add', 'dev', br, 'root', 'netem', 'delay', '0ms']);
  } catch (err) {
    if (/unknown/i.test((err as Error).message)) return false;
    throw err;
  }
  await run('tc', ['qdisc', 'del', 'dev', br, 'root']);
  return true;
}

function makeHost(names: LabNames, i: number, spec: LabHostSpec, netem: boolean, closed: () => boolean, spawned: Set<SpawnedProcess>, logger: Logger): LabHost {
  const ns = names.host(i);
  const log = logger.child({ host: spec.name });
  return {
    name: spec.name,
    ip: names.hostIp(i),
    netns: ns,
    capMBps: spec.capMBps,
    latencyMs: netem ? spec.latencyMs ?? 0 : 0,
    spawn(command, args, o) {
      if (closed()) throw new Error(`lab ${names.subnet} is closed`);
      const p = spawnInNamespace(ns, spec.name, command, args, o);
      spawned.add(p);
      void p.exited.then((e) => {
        spawned.delete(p);
        log.debug({ pid: p.pid, command, ...e }, 'lab process exited');
      });
      return p;
    },
    async cutLink() {
      await run('ip', ['link', 'set', ns, 'down']);
      log.info('link cut');
    },
    async restoreLink() {
      await run('ip', ['link', 'set', ns, 'up']);
      await waitForCarrier(ns);
      log.info('link restored');
    },
    async counters() {
      // The bridge-side end receives what the host sends and sends what it receives.
      const [link] = JSON.parse(await run('ip', ['-j', '-s', 'link', 'show', ns])) as Array<{ stats64: { rx: { bytes: number }; tx: { bytes: number } } }>;
      return { sent: link!.stats64.rx.bytes, received: link!.stats64.tx.bytes };
    },
  };
}

/** Waits until the host's eth0 has carrier and its bridge port forwards. */
async function waitForCarrier(ns: string): Promise<void> {
  const deadline = Date.now() + CARRIER_TIMEOUT_MS;
  for (;;) {
    const [inner] = JSON.parse((await tryRun('ip', ['-n', ns, '-j', 'link', 'show', 'eth0'])) ?? '[{}]') as Array<{ flags?: string[] }>;
    const [port] = JSON.parse((await tryRun('ip', ['-j', '-d', 'link', 'show', ns])) ?? '[{}]') as Array<{ linkinfo?: { info_slave_data?: { state?: string } } }>;
    if (inner?.flags?.includes('LOWER_UP') && port?.linkinfo?.info_slave_data?.state === 'forwarding') return;
    if (Date.now() > deadline) throw new Error(`host link ${ns} has no carrier ${CARRIER_TIMEOUT_MS} ms after restoreLink`);
    // Polling every 20 ms costs two `ip` calls per tick and adds at most 20 ms to a restore.
    await new Promise((r) => setTimeout(r, 20));
  }
}
