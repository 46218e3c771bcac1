import { err, ok, type Result } from '../../util/lifecycle';

/** Where one load test connects to, and the request it sends on every turn, serialised once. */
export interface PreparedRequest {
  host: string;
  port: number;
  /** The whole HTTP/1.1 request: request line, headers and body. */
  bytes: Buffer;
  /** A HEAD request: its responses have no body whatever their headers say. */
  head: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_VALUE = /[\r\n\0]|[^\x00-\xff]/;

/**
 * Checks the target and serialises the request: `Host` and `User-Agent` by default (a header of
 * the same name replaces the default), `Authorization` from credentials in the URL, and
 * `Content-Length` for a body.
 */
export function prepareRequest(
  rawUrl: string,
  method = 'GET',
  headers: Record<string, string> = {},
  body?: string,
): Result<PreparedRequest, string> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return err(`"${rawUrl}" is not an absolute URL; give one such as http://127.0.0.1:8080/health`);
  }
  if (url.protocol !== 'http:') {
    return err(`load tests take an http:// URL; "${rawUrl}" uses ${url.protocol.replace(/:$/, '')}`);
  }
  const verb = method.toUpperCase();
  if (!TOKEN.test(verb)) return err(`"${method}" is not an HTTP method; use one such as GET or POST`);

  const fields = new Map<string, [string, string]>();
  const set = (name: string, value: string) => fields.set(name.toLowerCase(), [name, value]);
  set('Host', url.host);
  set('User-Agent', 'conveyor-load');
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    set('Authorization', `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`);
  }
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) return err(`header name "${name}" is not valid; use letters, digits and dashes, such as X-Request-Id`);
    if (BAD_VALUE.test(value)) return err(`header "${name}" has a line break, a NUL or a character beyond Latin-1 in its value; give it on one line, percent-encoded if need be`);
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding') continue; // computed from the body
    set(name, value);
  }
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
  if (body !== undefined) set('Content-Length', String(payload.length));

  let text = `${verb} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [name, value] of fields.values()) text += `${name}: ${value}\r\n`;
  text += '\r\n';
  return ok({
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 80,
    bytes: Buffer.concat([Buffer.from(text, 'latin1'), payload]),
    head: verb === 'HEAD',
  });
}
