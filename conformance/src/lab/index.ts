export * from './lab.js';
export { createLab } from './create-lab.js';
export * from './stats.js';
