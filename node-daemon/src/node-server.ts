import { once, type Logger } from '@krill/lib';
import type { BuildIndexClient, OriginClient, TrackerClient } from '@krill/cluster-services';
import { startCriServer } from '@krill/cri-proxy';
import { startAgent, type RunningAgent } from './agent-server.js';
import { createContainerd } from './containerd/grpc-containerd.js';
import { createContainerdCri } from './containerd/grpc-cri.js';
import type { NodeConfig } from './node/node-config.js';
import { createKrillPuller } from './node/pull/krill-puller.js';

export interface RunningNode extends RunningAgent {
  /** The CRI socket kubelet and crictl are pointed at. */
  criSocket: string;
}

/**
 * `krill node`: the agent (P2P core, local registry API on loopback, `/metrics`) and the CRI
 * socket in front of containerd, whose PullImage goes through the agent into containerd's
 * content store. The snapshotter is read from containerd's CRI at start unless configured.
 */
export async function startNode(config: NodeConfig, deps: {
  logger: Logger; tracker?: TrackerClient; origins?: OriginClient; buildIndex?: BuildIndexClient;
}): Promise<RunningNode> {
  const logger = deps.logger;
  let criListening = false;
  // `/ready` waits for the CRI socket too: kubelet must not be pointed at it before it answers.
  const ready = async () => {
    if (!criListening) throw new Error(`the CRI socket ${config.cri.socket} is not listening yet`);
  };
  const agent = await startAgent(config, { ...deps, ready, name: 'node' });
  const containerd = createContainerd({ socket: config.cri.containerd.socket, namespace: config.cri.containerd.namespace });
  const cri = createContainerdCri({ socket: config.cri.containerd.socket });
  try {
    const snapshotter = config.cri.snapshotter ?? (await cri.snapshotter());
    const puller = createKrillPuller({
      config: config.cri, agent: agent.agent, buildIndex: agent.buildIndex, containerd, cri, snapshotter,
      logger: logger.child({ component: 'pull' }), metrics: agent.metrics,
    });
    const server = await startCriServer({
      socket: config.cri.socket, containerdSocket: config.cri.containerd.socket, puller,
      logger: logger.child({ component: 'cri' }), metrics: agent.metrics,
    });
    criListening = true;
    logger.info({ socket: server.socket, containerd: config.cri.containerd.socket, snapshotter }, 'node ready');
    return {
      ...agent, criSocket: server.socket,
      close: once(async () => {
        await server.close();
        containerd.close();
        cri.close();
        await agent.close();
      }),
    };
  } catch (err) {
    containerd.close();
    cri.close();
    await agent.close();
    throw err;
  }
}
