export { PieceFile } from './piece-file.js';
export { TokenBucket, UNLIMITED } from './token-bucket.js';
export { PiecePicker } from './piece-picker.js';
export { Swarm, type SwarmOptions, type Pacer } from './swarm.js';
export { PeerNode, type PeerNodeOptions, type SwarmResolver } from './peer-node.js';
