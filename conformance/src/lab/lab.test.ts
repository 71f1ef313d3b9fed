import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLab } from './create-lab.js';
import { LAB_INDEXES, release, tryClaim } from './lab-claim.js';
import type { Lab, LabHost } from './lab.js';

// Namespaces, veths and qdiscs need root (CAP_NET_ADMIN) and iproute2.
const canRun = process.getuid?.() === 0 && ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].some((p) => existsSync(p));
if (!canRun) throw new Error('the lab tests need root (CAP_NET_ADMIN) and iproute2: run them as root after scripts/install-deps.sh');
const NODE = process.execPath;
/** Each host has its own namespace, so one fixed port never collides with another test's. */
const PORT = 7000;
const CAP_MBPS = 5;
const TRANSFER_BYTES = 8e6;

/** A server that echoes each connection's data back, then closes. */
const echoServer = (ip: string) => `require('net').createServer((c) => c.pipe(c)).listen(${PORT}, '${ip}', () => console.log('listening'));`;

/** A server that counts one connection's bytes and prints them and the ms from accept to end. */
const sinkServer = (ip: string) => `const s = require('net').createServer((c) => { const t = Date.now(); let n = 0;
  c.on('data', (d) => { n += d.length; }); c.on('end', () => { console.log('received ' + n + ' in ' + (Date.now() - t)); s.close(); }); });
  s.listen(${PORT}, '${ip}', () => console.log('listening'));`;

const sender = (ip: string, bytes: number) => `const c = require('net').connect(${PORT}, '${ip}', () => c.end(Buffer.alloc(${bytes})));`;

/** Sends `text` from the test process and resolves with what came back; rejects on error or after timeoutMs. */
function echoFromHere(ip: string, text: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect({ host: ip, port: PORT, timeout: timeoutMs });
    let got = '';
    c.on('connect', () => c.end(text));
    c.on('data', (d) => (got += d));
    c.on('end', () => resolve(got));
    c.on('timeout', () => { c.destroy(); reject(new Error('timed out')); });
    c.on('error', reject);
  });
}

function ipNames(): string[] {
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>).map((l) => l.ifname);
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
  return [...links, ...namespaces].filter((n): n is string => !!n);
}

async function transfer(from: LabHost, to: LabHost): Promise<number> {
  const sink = to.spawn(NODE, ['-e', sinkServer(to.ip)]);
  await sink.waitForLine(/listening/);
  const send = from.spawn(NODE, ['-e', sender(to.ip, TRANSFER_BYTES)]);
  const line = await sink.waitForLine(/^received/, { timeoutMs: 20_000 });
  await send.exited;
  const [, n, ms] = /received (\d+) in (\d+)/.exec(line)!;
  expect(Number(n)).toBe(TRANSFER_BYTES);
  return Number(ms);
}

describe('lab (real namespaces)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ hosts: [{ name: 'a', capMBps: CAP_MBPS, latencyMs: 5 }, { name: 'b' }, { name: 'c' }] });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('gives each host its own address in 198.18.0.0/15 and a gateway on the bridge', () => {
    expect(lab.hosts.map((h) => h.name)).toEqual(['a', 'b', 'c']);
    expect(new Set(lab.hosts.map((h) => h.ip)).size).toBe(3);
    for (const ip of [lab.gatewayIp, ...lab.hosts.map((h) => h.ip)]) expect(ip).toMatch(/^198\.1[89]\./);
    expect(lab.host('b').ip).toBe(lab.hosts[1]!.ip);
    expect(() => lab.host('nobody')).toThrow(/no host/);
    expect(lab.host('a').latencyMs).toBe(lab.netem ? 5 : 0);
  });

  it('routes nothing beyond the lab subnet from a host', async () => {
    // Read the routing table rather than probe: a probe of an outside address is what must not happen.
    const routes = lab.host('a').spawn('ip', ['-4', 'route', 'show']);
    expect(await routes.exited).toEqual({ code: 0, signal: null });
    const lines = routes.tail().stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${lab.subnet.replace(/\./g, '\\.')} dev eth0 `));
  });

  it('adds the configured latency where the kernel has netem, and reports none where it has not', async () => {
    if (!lab.netem) {
      // Without sch_netem the lab still runs, capped but without delay, and says so.
      expect(lab.hosts.every((h) => h.latencyMs === 0)).toBe(true);
      return;
    }
    // A TCP handshake with host a crosses its link twice (SYN in, SYN-ACK out), 5 ms each way.
    const t = performance.now();
    await new Promise<void>((resolve) => {
      const c = connect({ host: lab.host('a').ip, port: PORT });
      c.once('connect', () => { c.destroy(); resolve(); }).once('error', () => resolve());
    });
    expect(performance.now() - t).toBeGreaterThanOrEqual(9);
  });

  it('carries TCP between two hosts and from the test process, with the command as the spawned pid', async () => {
    const b = lab.host('b');
    const server = b.spawn(NODE, ['-e', `console.log('pid ' + process.pid); ${echoServer(b.ip)}`]);
    expect(await server.waitForLine(/^pid/)).toBe(`pid ${server.pid}`);
    await server.waitForLine(/listening/);
    const client = lab.host('a').spawn(NODE, ['-e', `const c = require('net').connect(${PORT}, '${b.ip}', () => c.end('ping'));
      let got = ''; c.on('data', (d) => got += d); c.on('end', () => console.log('got ' + got));`]);
    expect(await client.waitForLine(/^got/)).toBe('got ping');
    expect(await client.exited).toEqual({ code: 0, signal: null });
    expect(await echoFromHere(b.ip, 'from the gateway', 5000)).toBe('from the gateway');
    await server.kill();
  });

  it('installs the cap on both ends of a capped host and none on an uncapped one', async () => {
    const a = lab.host('a');
    const inner = a.spawn('tc', ['qdisc', 'show', 'dev', 'eth0']);
    expect(await inner.exited).toEqual({ code: 0, signal: null });
    const rate = `rate ${CAP_MBPS * 8}Mbit`;
    expect(inner.tail().stdout).toContain(rate);
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', a.netns], { encoding: 'utf8' })).toContain(rate);
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', lab.host('b').netns], { encoding: 'utf8' })).not.toContain('tbf');
  });

  it('holds a capped host to at least size/cap in both directions', async () => {
    const a = lab.host('a');
    const c = lab.host('c');
    const before = await a.counters();
    // Lower bounds only: the cap can only slow a transfer. 10% slack covers the token bucket's
    // initial burst (64 KiB) and timer granularity.
    const minMs = (TRANSFER_BYTES / (CAP_MBPS * 1e6)) * 1000 * 0.9;
    const upMs = await transfer(a, c);
    const downMs = await transfer(c, a);
    console.log(`capped ${CAP_MBPS} MB/s: send ${(TRANSFER_BYTES / upMs / 1000).toFixed(2)} MB/s, receive ${(TRANSFER_BYTES / downMs / 1000).toFixed(2)} MB/s`);
    expect(upMs).toBeGreaterThanOrEqual(minMs);
    expect(downMs).toBeGreaterThanOrEqual(minMs);
    const after = await a.counters();
    expect(after.sent - before.sent).toBeGreaterThanOrEqual(TRANSFER_BYTES);
    expect(after.received - before.received).toBeGreaterThanOrEqual(TRANSFER_BYTES);
  });

  it('fails connections to a host whose link is cut and carries them again once restored', async () => {
    const b = lab.host('b');
    const server = b.spawn(NODE, ['-e', echoServer(b.ip)]);
    await server.waitForLine(/listening/);
    const held = connect({ host: b.ip, port: PORT });
    await new Promise((resolve, reject) => held.once('connect', resolve).once('error', reject));
    let echoed = '';
    held.on('data', (d) => (echoed += d));
    await b.cutLink();
    await b.cutLink();
    held.write('during the cut');
    const fromA = lab.host('a').spawn(NODE, ['-e', `const c = require('net').connect({ port: ${PORT}, host: '${b.ip}', timeout: 1500 });
      c.on('connect', () => console.log('connected')); c.on('timeout', () => { console.log('unreachable'); c.destroy(); });
      c.on('error', (e) => console.log('unreachable ' + e.code));`]);
    const [fromHere, fromHostA] = await Promise.allSettled([echoFromHere(b.ip, 'lost', 1500), fromA.waitForLine(/connected|unreachable/)]);
    expect(fromHere.status).toBe('rejected');
    expect(fromHostA).toMatchObject({ status: 'fulfilled', value: expect.stringMatching(/^unreachable/) });
    expect(echoed).toBe('');
    await b.restoreLink();
    await b.restoreLink();
    expect(await echoFromHere(b.ip, 'back', 5000)).toBe('back');
    // The connection made before the cut stalled rather than broke, and its data now arrives.
    for (let i = 0; i < 250 && echoed === ''; i++) await new Promise((r) => setTimeout(r, 20));
    expect(echoed).toBe('during the cut');
    held.destroy();
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', lab.host('a').netns], { encoding: 'utf8' })).toContain('rate');
    await server.kill();
  });

  it('kills a spawned process and the helpers it started', async () => {
    const parent = lab.host('c').spawn(NODE, ['-e', `const k = require('child_process').spawn('sleep', ['600']);
      console.log('child ' + k.pid); setInterval(() => {}, 1000);`]);
    const childPid = Number((await parent.waitForLine(/^child \d+/)).split(' ')[1]);
    expect(await parent.kill('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
    expect(await parent.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGTERM' });
    const gone = () => !existsSync(`/proc/${childPid}`) || readFileSync(`/proc/${childPid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
    for (let i = 0; i < 100 && !gone(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(gone()).toBe(true);
  });
});

describe('lab lifecycle', () => {
  const labs: Lab[] = [];
  afterEach(async () => {
    await Promise.allSettled(labs.splice(0).map((l) => l.close()));
  });

  it('gives concurrent labs distinct subnets and removes everything on close, idempotently', async () => {
    const [one, two] = await Promise.all([createLab({ hosts: [{ name: 'x' }, { name: 'y', capMBps: 50 }] }), createLab({ hosts: [{ name: 'x' }] })]);
    labs.push(one!, two!);
    expect(one!.subnet).not.toBe(two!.subnet);
    const sleeper = one!.host('y').spawn('sleep', ['600']);
    const mine = [one!.hosts[0]!.netns, one!.hosts[1]!.netns];
    expect(ipNames()).toEqual(expect.arrayContaining(mine));
    await Promise.all([one!.close(), one!.close()]);
    await one!.close();
    expect((await sleeper.exited).signal).toBe('SIGKILL');
    const index = /^krl(\d+)h/.exec(mine[0]!)![1];
    const ofOne = new RegExp(`^krl${index}(br|h\\d+)$`);
    expect(ipNames().filter((n) => ofOne.test(n))).toEqual([]);
    expect(() => one!.host('x').spawn('true', [])).toThrow(/closed/);
    expect(ipNames()).toContain(two!.hosts[0]!.netns);
  });

  it('removes a lab left by a dead process, and its processes, before building a new one', async () => {
    // A stale lab as a killed run leaves it: a bridge, a namespace holding a running process, and
    // no live owner. The test holds the index's claim while it builds the wreck, so no concurrent
    // lab's sweep removes it half-made, and lets go just before createLab.
    let index = LAB_INDEXES - 1;
    let claim = await tryClaim(index);
    while (!claim) claim = await tryClaim(--index);
    const stale = [`krl${index}br`, `krl${index}h0`];
    execFileSync('ip', ['link', 'add', stale[0]!, 'type', 'bridge']);
    execFileSync('ip', ['netns', 'add', stale[1]!]);
    const orphan = spawn('ip', ['netns', 'exec', stale[1]!, 'sleep', '600'], { stdio: 'ignore' });
    const orphanExit = new Promise((r) => orphan.once('exit', (_code, sig) => r(sig)));
    let released = false;
    try {
      // Only once it is inside the namespace is it the stale lab's process.
      const inside = () => execFileSync('ip', ['netns', 'pids', stale[1]!], { encoding: 'utf8' }).split('\n').includes(String(orphan.pid));
      for (let i = 0; i < 100 && !inside(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(inside()).toBe(true);
      released = true;
      await release(claim);
      labs.push(await createLab({ hosts: [{ name: 'fresh' }] }));
      expect(ipNames().filter((n) => stale.includes(n))).toEqual([]);
      expect(await orphanExit).toBe('SIGKILL');
    } finally {
      orphan.kill('SIGKILL');
      // Once the claim is given up the names are createLab's to clear; before, they are ours.
      if (!released) {
        for (const args of [['link', 'del', stale[0]!], ['netns', 'del', stale[1]!]]) {
          try { execFileSync('ip', args, { stdio: 'ignore' }); } catch { /* already removed */ }
        }
        await release(claim);
      }
    }
  });

  it('rejects duplicate host names and impossible caps', async () => {
    await expect(createLab({ hosts: [{ name: 'x' }, { name: 'x' }] })).rejects.toThrow(/unique/);
    await expect(createLab({ hosts: [{ name: 'x', capMBps: 0 }] })).rejects.toThrow(/capMBps/);
  });
});
