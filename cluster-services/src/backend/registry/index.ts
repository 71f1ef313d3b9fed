export { createRegistryBackend } from './registry-backend.js';
