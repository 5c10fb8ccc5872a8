/**
 * Bundle stand-in for `mime-db` (133 KB of JSON, 14% of every function bundle, parsed at every cold start). The IBM
 * SDKs require it through `mime-types` only to guess the content type of file uploads from a file name, which
 * lockstep never sends; these entries cover what the functions and SDK calls do use. See build.ts.
 */
module.exports = {
  'application/json': { source: 'iana', charset: 'UTF-8', compressible: true, extensions: ['json'] },
  'application/octet-stream': { source: 'iana', compressible: false, extensions: ['bin'] },
  'application/x-ndjson': { compressible: true, extensions: ['jsonl', 'ndjson'] },
  'application/x-www-form-urlencoded': { source: 'iana', compressible: true },
  'multipart/form-data': { source: 'iana', compressible: false },
  'text/csv': { source: 'iana', compressible: true, extensions: ['csv'] },
  'text/html': { source: 'iana', compressible: true, extensions: ['html', 'htm'] },
  'text/plain': { source: 'iana', compressible: true, extensions: ['txt', 'text', 'conf', 'log'] },
};
