/** Key Protect's error envelope (§1.6) as the emulator produces it. */

const PHRASES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const MORE_INFO = 'https://cloud.ibm.com/apidocs/key-protect';
export const ERROR_COLLECTION = 'application/vnd.ibm.kms.error+json';

export interface ErrorTarget {
  type: 'field' | 'query_param' | 'header';
  name: string;
}

/** A Key Protect error reply: status, reason code, message; `noReasons` gives the bare 401 body (§1.2). */
export class KpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly target: ErrorTarget | undefined;
  readonly what: string;
  readonly noReasons: boolean;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { target?: ErrorTarget; what?: string; noReasons?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'KpError';
    this.status = status;
    this.code = code;
    this.target = opts.target;
    this.what = opts.what ?? 'Action could not be performed on key';
    this.noReasons = opts.noReasons ?? false;
    this.headers = opts.headers ?? {};
  }

  /** The JSON body (`metadata` + `resources[{errorMsg, reasons[]}]`). */
  toBody(): unknown {
    return errorBody(this.status, this.code, this.message, this);
  }
}

export function phraseOf(status: number): string {
  return PHRASES[status] ?? 'Error';
}

export function errorBody(
  status: number,
  code: string,
  message: string,
  opts: { target?: ErrorTarget | undefined; what?: string; noReasons?: boolean } = {},
): unknown {
  if (opts.noReasons) {
    return {
      metadata: { collectionType: ERROR_COLLECTION, collectionTotal: 1 },
      resources: [{ errorMsg: `${phraseOf(status)}: ${message}` }],
    };
  }
  return {
    metadata: { collectionType: ERROR_COLLECTION, collectionTotal: 1 },
    resources: [
      {
        errorMsg: `${phraseOf(status)}: ${opts.what ?? 'Action could not be performed on key'}: Please see 'reasons' for more details (${code})`,
        reasons: [
          {
            code,
            message,
            status,
            moreInfo: MORE_INFO,
            ...(opts.target ? { target: opts.target } : {}),
          },
        ],
      },
    ],
  };
}

/** The 401 Key Protect answers for a missing/invalid token or an instance the caller cannot reach (no `reasons`). */
export const unauthorized = () =>
  new KpError(401, 'UNAUTHORIZED_ERR', 'The user does not have access to the specified resource', { noReasons: true });
