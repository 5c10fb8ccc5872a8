export * from './endpoints.js';
export * from './errors.js';
export * from './http.js';
export * from './ids.js';
export * from './model.js';
export * from './ports.js';
export * from './redact.js';
export * from './sensitive.js';
