export { PieceFile } from './piece-file.js';
export { TokenBucket, UNLIMITED } from './token-bucket.js';
export { PiecePicker } from './piece-picker.js';
