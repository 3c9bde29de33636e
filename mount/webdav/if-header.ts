import { HttpError } from './http-error';

/** One condition of an If list. Plain data (parseIfHeader throws for malformed input). */
export interface IfCondition {
  not: boolean;
  /** A state token (lock token or any Coded-URL such as DAV:no-lock). */
  token?: string;
  /** An entity tag as written, quotes included (W/ kept). */
  etag?: string;
}

/** One parenthesised list of an If header, with its resource tag. Plain data. */
export interface IfList {
  /** Raw resource tag URL for tagged lists; null applies to the request URL. */
  resource: string | null;
  conditions: IfCondition[];
}

const MAX_IF_BYTES = 16384;
const MAX_CONDITIONS = 256;

/**
 * Parses the RFC 4918 §10.4 `If:` header into its lists. Throws HttpError 400 for
 * anything that is not the grammar (unbalanced brackets, empty lists, mixing tagged
 * and untagged lists, trailing junk) or longer than 16 KiB / 256 conditions.
 */
export function parseIfHeader(value: string): IfList[] {
  if (value.length > MAX_IF_BYTES) throw new HttpError(400, 'If header too long');
  const lists: IfList[] = [];
  let i = 0;
  let resource: string | null = null;
  let tagged: boolean | undefined;
  let count = 0;
  const bad = (why: string): never => {
    throw new HttpError(400, `malformed If header: ${why}`);
  };
  const ws = () => {
    while (i < value.length && /[ \t\r\n]/.test(value[i]!)) i++;
  };
  const until = (close: string): string => {
    const end = value.indexOf(close, i);
    if (end < 0) bad(`missing ${close}`);
    const s = value.slice(i, end);
    i = end + 1;
    return s;
  };
  ws();
  if (i >= value.length) bad('empty');
  while (i < value.length) {
    if (value[i] === '<') {
      if (tagged === false) bad('tagged list after untagged list');
      tagged = true;
      i++;
      resource = until('>');
      if (resource === '' || /\s/.test(resource)) bad('bad resource tag');
      ws();
      if (value[i] !== '(') bad('resource tag without a list');
      continue;
    }
    if (value[i] !== '(') bad(`unexpected ${JSON.stringify(value[i])}`);
    if (tagged === undefined) tagged = false;
    i++;
    const conditions: IfCondition[] = [];
    for (;;) {
      ws();
      if (value[i] === ')') {
        i++;
        break;
      }
      let not = false;
      if (value.slice(i, i + 3).toLowerCase() === 'not') {
        not = true;
        i += 3;
        ws();
      }
      if (value[i] === '<') {
        i++;
        const token = until('>');
        if (token === '' || /[\s<]/.test(token)) bad('bad state token');
        conditions.push({ not, token });
      } else if (value[i] === '[') {
        i++;
        const etag = until(']');
        if (!/^(W\/)?"[^"]*"$/.test(etag.trim())) bad('bad entity tag');
        conditions.push({ not, etag: etag.trim() });
      } else bad('expected a state token or entity tag');
      if (++count > MAX_CONDITIONS) bad('too many conditions');
    }
    if (conditions.length === 0) bad('empty list');
    lists.push({ resource: tagged ? resource : null, conditions });
    ws();
  }
  return lists;
}

/** Every state token mentioned (outside a Not): the lock tokens the client submits. */
export function submittedTokens(lists: IfList[] | null): Set<string> {
  const out = new Set<string>();
  for (const l of lists ?? []) for (const c of l.conditions) if (c.token && !c.not) out.add(c.token);
  return out;
}
