import type { Logger } from '@krill/lib';

/**
 * The multi-host lab: emulated hosts as Linux network namespaces on one bridge, each with its own
 * address, a bandwidth cap in both directions and, where the kernel has `netem`, added latency.
 * Origins, trackers and agents run as separate processes on separate hosts; a test can kill them or
 * cut a host's link and read per-host results (see stats.ts).
 *
 * It needs root and iproute2 (`ip`, `tc`). Every address it assigns is in 198.18.0.0/15, the block
 * RFC 2544 (section C.2.2) reserves for network benchmark testing, so it never shadows a real
 * network; the namespaces get no default route, so processes on the hosts can reach only the lab's
 * own addresses and their loopback.
 */

/** One emulated host as the caller describes it. */
export interface LabHostSpec {
  /** A label unique within the lab (`origin-1`, `agent-7`); it never becomes a kernel name. */
  name: string;
  /**
   * Bandwidth cap in MB/s (10^6 bytes per second), applied separately to what the host sends and
   * what it receives. It limits Ethernet frames, headers included, so TCP payload tops out at
   * about 95% of it. Omitted: no cap (veth moves several GB/s).
   */
  capMBps?: number;
  /**
   * Delay in milliseconds added to every packet the host sends and every packet it receives, like
   * the host's own access link: a one-way trip between hosts A and B gains latencyA + latencyB.
   * Needs `sch_netem`; without it the lab still starts and `LabHost.latencyMs` reads 0.
   */
  latencyMs?: number;
}

export interface LabOptions {
  hosts: LabHostSpec[];
  logger?: Logger;
}

/** How a spawned process ended, as Node's `exit` event reports it. */
export interface LabExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LabSpawnOptions {
  /** Added to (and overriding) the test process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** If set, stdout and stderr are appended to this file as well as kept in the in-memory tail. */
  logFile?: string;
}

export interface LabProcess {
  /** The process id of the command itself (`ip netns exec` execs it in place). */
  readonly pid: number;
  /** The host it runs on. */
  readonly host: string;
  /** Resolves once the process has ended; never rejects. */
  readonly exited: Promise<LabExit>;
  /**
   * Sends `signal` (default SIGTERM) to the process and its process group, so helpers it started
   * go too. A no-op once it has ended. Resolves like `exited`. Safe to call more than once.
   */
  kill(signal?: NodeJS.Signals): Promise<LabExit>;
  /**
   * Resolves with the first stdout line matching `pattern`, looking first at the lines still held
   * in the tail, so a line printed before the call is found. Rejects with an error carrying the
   * output tail if the process ends first, after `timeoutMs` (default 10 s), or when `signal`
   * aborts.
   */
  waitForLine(pattern: RegExp, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<string>;
  /** The last 64 KiB of stdout and of stderr, for diagnostics. */
  tail(): { stdout: string; stderr: string };
}

/** Bytes that crossed a host's link since the lab started, headers included. */
export interface LinkCounters {
  sent: number;
  received: number;
}

export interface LabHost {
  readonly name: string;
  /** The host's address, e.g. 198.18.3.10. */
  readonly ip: string;
  /**
   * The host's network namespace (`ip netns`) and, by the same name, the bridge-side end of its
   * veth in the test process's namespace; inside the namespace the other end is `eth0`. For
   * diagnostics (`tc -s qdisc show dev <link>`); the lab owns both.
   */
  readonly netns: string;
  /** The cap actually applied, in MB/s; undefined for none. */
  readonly capMBps: number | undefined;
  /** The latency actually applied in each direction, in ms: 0 when none was asked for or netem is missing. */
  readonly latencyMs: number;
  /**
   * Runs `command args` inside the host's namespace as its own process group. Throws if the lab
   * is closed or `ip` itself cannot be started; a command that cannot be found shows up as an
   * `exited` with code 1 or 255 and `ip`'s message in the stderr tail. Safe to call concurrently.
   */
  spawn(command: string, args: string[], options?: LabSpawnOptions): LabProcess;
  /**
   * Pulls the host's cable at the switch: its bridge port goes down, so packets to and from it are
   * dropped and new connections fail or time out. Established TCP connections stall and carry on
   * after restoreLink if neither end has given up. Idempotent.
   */
  cutLink(): Promise<void>;
  /** Plugs the cable back in and resolves once the host's interface has carrier again. Idempotent. */
  restoreLink(): Promise<void>;
  /** Reads the host's link counters. */
  counters(): Promise<LinkCounters>;
}

export interface Lab {
  /** Hosts in the order of `LabOptions.hosts`. */
  readonly hosts: readonly LabHost[];
  /** The bridge's address in the test process's namespace, from which it reaches every host. */
  readonly gatewayIp: string;
  /** The lab's subnet in CIDR form, e.g. 198.18.3.0/24. */
  readonly subnet: string;
  /** Whether the kernel had netem, i.e. whether latencies were applied. */
  readonly netem: boolean;
  /** The host of that name; throws if there is none. */
  host(name: string): LabHost;
  /**
   * SIGKILLs every process the lab spawned and every other process left in its namespaces, then
   * removes every namespace, veth and bridge it made (their qdiscs go with them). Idempotent; safe
   * to call after a failed start or a failed test. Rejects, after trying everything, if some of it
   * could not be removed. Stop processes gracefully with `LabProcess.kill` first if that matters.
   */
  close(): Promise<void>;
}
