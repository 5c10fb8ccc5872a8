/** The one error table lives in core (`src/core/httpStatus.ts`), so every adapter maps errors the same way. */
export { type ErrorBody, httpStatusByCode, toErrorResponse } from '../core/httpStatus.js';
