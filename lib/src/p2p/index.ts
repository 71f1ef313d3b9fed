export { PieceFile } from './piece-file.js';
