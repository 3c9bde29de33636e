import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { HttpError } from './http-error';

export const DAV_NS = 'DAV:';

/** One element of a request body with its namespace resolved. Plain data (parseXml throws HttpError 400 for bad XML). */
export interface XElement {
  ns: string;
  local: string;
  /** Non-namespace attributes, keyed `{ns}local` (ns empty for unprefixed), values decoded. */
  attrs: Map<string, string>;
  children: XNode[];
}
/** Text is kept raw (still entity-escaped) so dead property values round-trip byte for byte. */
export type XNode = XElement | { text: string; cdata?: boolean };

export function isElement(n: XNode): n is XElement {
  return (n as XElement).local !== undefined;
}

/** Limits parseXml enforces (HttpError 400 beyond them). */
export interface XmlLimits {
  maxDepth: number;
  maxNamespaces: number;
  /** Elements in one body (PROPFIND/PROPPATCH name at most a few hundred properties). */
  maxElements: number;
  /** Attributes on one element. */
  maxAttributes: number;
  /** Entity and character references (`&amp;`...): each costs the parser far more than a byte. */
  maxReferences: number;
  /**
   * Longest run of text between two tags, or attribute value, in characters: no request
   * needs more than a dead property value (≤ 64 KiB), and long runs are the parser's slowest input.
   */
  maxText: number;
}

export const DEFAULT_XML_LIMITS: XmlLimits = { maxDepth: 64, maxNamespaces: 512, maxElements: 10_000, maxAttributes: 64, maxReferences: 20_000, maxText: 64 * 1024 };

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Entities and DTDs are never processed: the body was already refused if it had a
  // DOCTYPE, and the five predefined entities are decoded by decodeEntities() below.
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  cdataPropName: '#cdata',
  commentPropName: '#comment',
  ignorePiTags: true,
  ignoreDeclaration: true,
});

/**
 * Parses a WebDAV request body. Returns null for an empty body. Throws HttpError 400 for
 * anything with a DOCTYPE or ENTITY declaration (billion laughs, XXE), malformed XML, an
 * undeclared or illegally undeclared namespace prefix, nesting deeper than
 * `limits.maxDepth`, more than `limits.maxNamespaces` namespace declarations, more than
 * `limits.maxElements` elements (comments and PIs included), `limits.maxAttributes`
 * attributes on one element, `limits.maxReferences` entity references, or text runs and
 * attribute values longer than `limits.maxText`.
 */
export function parseXml(body: Buffer, limits: XmlLimits = DEFAULT_XML_LIMITS): XElement | null {
  const text = body.toString('utf8');
  if (text.trim() === '') return null;
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new HttpError(400, 'DTDs and entity declarations are refused');
  prescan(text, limits);
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new HttpError(400, `malformed XML: ${valid.err.msg}`);
  let raw: unknown[];
  try {
    raw = parser.parse(text) as unknown[];
  } catch (err) {
    throw new HttpError(400, `malformed XML: ${(err as Error).message}`);
  }
  const roots = raw.filter((n) => elementName(n as Record<string, unknown>) !== undefined);
  if (roots.length !== 1) throw new HttpError(400, 'XML body must have exactly one root element');
  return convert(roots[0] as Record<string, unknown>, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]), '', 0, limits);
}

/**
 * Cheap checks before the real parser runs, so hostile nesting never reaches it. One pass
 * over the text with indexOf (no regex backtracking: a 1 MiB body costs ~1 MiB of work
 * whatever its shape); markup that never ends is refused here.
 */
function prescan(text: string, limits: XmlLimits): void {
  let depth = 0;
  let namespaces = 0;
  let elements = 0;
  let i = text.indexOf('<');
  if ((i < 0 ? text.length : i) > limits.maxText) throw new HttpError(400, `a text run longer than ${limits.maxText} characters`);
  while (i >= 0) {
    const next = text.charCodeAt(i + 1);
    let end: number;
    // Comments, CDATA sections and PIs count as elements: each is a node for the parser
    const isMarkup = next === 0x21 || next === 0x3f; /* ! ? */
    if (isMarkup && ++elements > limits.maxElements) throw new HttpError(400, `more than ${limits.maxElements} elements`);
    if (isMarkup) {
      if (text.startsWith('<!--', i)) end = closeOf(text, i + 4, '-->');
      else if (text.startsWith('<![CDATA[', i)) end = closeOf(text, i + 9, ']]>');
      else if (next === 0x3f /* ? */) end = closeOf(text, i + 2, '?>');
      else throw new HttpError(400, 'malformed XML: markup declarations are refused');
      if (end - i > limits.maxText + 12) throw new HttpError(400, `a comment, CDATA section or PI longer than ${limits.maxText} characters`);
    } else {
      const tag = tagEnd(text, i + 1, limits.maxText);
      end = tag.end;
      if (tag.quoted > 2 * limits.maxAttributes) throw new HttpError(400, `more than ${limits.maxAttributes} attributes on one element`);
      const closing = next === 0x2f; /* / */
      const selfClosing = text.charCodeAt(end - 2) === 0x2f;
      namespaces += countNamespaceDecls(text, i + 1, end);
      if (closing && --depth < 0) throw new HttpError(400, 'malformed XML: a closing tag without its opening tag');
      else if (!closing && !selfClosing) depth++;
      if (!closing && ++elements > limits.maxElements) throw new HttpError(400, `more than ${limits.maxElements} elements`);
      if (depth > limits.maxDepth) throw new HttpError(400, `XML nested deeper than ${limits.maxDepth}`);
      if (namespaces > limits.maxNamespaces) throw new HttpError(400, `more than ${limits.maxNamespaces} namespace declarations`);
    }
    i = text.indexOf('<', end);
    if ((i < 0 ? text.length : i) - end > limits.maxText) throw new HttpError(400, `a text run longer than ${limits.maxText} characters`);
  }
  let refs = 0;
  for (let k = text.indexOf('&'); k >= 0; k = text.indexOf('&', k + 1)) {
    if (++refs > limits.maxReferences) throw new HttpError(400, `more than ${limits.maxReferences} entity references`);
  }
}

/** Index just past `close`, searching from `from`; HttpError 400 when the markup never ends. */
function closeOf(text: string, from: number, close: string): number {
  const at = text.indexOf(close, from);
  if (at < 0) throw new HttpError(400, `malformed XML: unterminated markup (no ${close})`);
  return at + close.length;
}

/**
 * Index just past the `>` ending a tag that starts at `from`, skipping quoted attribute
 * values, and the count of quote characters seen (two per attribute). `gt` only moves forward, so the whole scan stays linear.
 */
function tagEnd(text: string, from: number, maxValue: number): { end: number; quoted: number } {
  let j = from;
  let quoted = 0;
  let gt = text.indexOf('>', j);
  for (;;) {
    const q = nextQuote(text, j, gt < 0 ? text.length : gt);
    if (q < 0) {
      if (gt < 0) throw new HttpError(400, 'malformed XML: a tag never ends');
      return { end: gt + 1, quoted };
    }
    const close = text.indexOf(text[q]!, q + 1);
    if (close < 0) throw new HttpError(400, 'malformed XML: an attribute value never ends');
    if (close - q - 1 > maxValue) throw new HttpError(400, `an attribute value longer than ${maxValue} characters`);
    j = close + 1;
    quoted += 2;
    if (gt >= 0 && gt < j) gt = text.indexOf('>', j);
  }
}

/** First `"` or `'` in [from, to), or -1; HttpError 400 on a `<`, which no tag may hold outside quotes. */
function nextQuote(text: string, from: number, to: number): number {
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x22 || c === 0x27) return k;
    if (c === 0x3c) throw new HttpError(400, "malformed XML: '<' inside a tag");
  }
  return -1;
}

/** `xmlns=` / `xmlns:p=` declarations in one tag (the regex has a literal head: linear). */
function countNamespaceDecls(text: string, from: number, to: number): number {
  return text.slice(from, to).match(/\sxmlns[:=]/g)?.length ?? 0;
}

function elementName(n: Record<string, unknown>): string | undefined {
  return Object.keys(n).find((k) => k !== ':@' && !k.startsWith('#'));
}

function convert(n: Record<string, unknown>, scope: Map<string, string>, defaultNs: string, depth: number, limits: XmlLimits): XElement {
  if (depth > limits.maxDepth) throw new HttpError(400, `XML nested deeper than ${limits.maxDepth}`);
  const qname = elementName(n)!;
  const rawAttrs = (n[':@'] ?? {}) as Record<string, string>;
  let localScope = scope;
  let ns = defaultNs;
  const plain: [string, string][] = [];
  for (const [k, v] of Object.entries(rawAttrs)) {
    const name = k.slice(2);
    const value = decodeEntities(String(v));
    if (name === 'xmlns') ns = value;
    else if (name.startsWith('xmlns:')) {
      // Namespaces in XML 1.0: a prefix may not be bound to the empty name
      if (value === '') throw new HttpError(400, `namespace prefix ${name.slice(6)} bound to an empty URI`);
      if (localScope === scope) localScope = new Map(scope);
      localScope.set(name.slice(6), value);
    } else plain.push([name, value]);
  }
  const newDefault = ns;
  const colon = qname.indexOf(':');
  let local = qname;
  if (colon >= 0) {
    const prefix = qname.slice(0, colon);
    local = qname.slice(colon + 1);
    const bound = localScope.get(prefix);
    if (bound === undefined) throw new HttpError(400, `undeclared namespace prefix ${prefix}`);
    ns = bound;
  }
  const attrs = new Map<string, string>();
  for (const [name, value] of plain) {
    const c = name.indexOf(':');
    if (c < 0) attrs.set(`{}${name}`, value);
    else {
      const bound = localScope.get(name.slice(0, c));
      if (bound === undefined) throw new HttpError(400, `undeclared namespace prefix ${name.slice(0, c)}`);
      attrs.set(`{${bound}}${name.slice(c + 1)}`, value);
    }
  }
  const children: XNode[] = [];
  for (const child of (n[qname] ?? []) as Record<string, unknown>[]) {
    if ('#text' in child) children.push({ text: String(child['#text']) });
    else if ('#cdata' in child) {
      const parts = child['#cdata'] as { '#text': string }[];
      children.push({ text: parts.map((p) => p['#text']).join(''), cdata: true });
    } else if ('#comment' in child) continue;
    else if (elementName(child) !== undefined) children.push(convert(child, localScope, newDefault, depth + 1, limits));
  }
  return { ns, local, attrs, children };
}

/** Decodes the predefined entities and character references; nothing else exists without a DTD. */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === 'amp') return '&';
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    const cp = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
  });
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Concatenated decoded text of an element (for `<D:href>`, `<D:lockscope>`-style values). */
export function textOf(el: XElement): string {
  return el.children.map((c) => (isElement(c) ? textOf(c) : c.cdata ? c.text : decodeEntities(c.text))).join('');
}

export function childElements(el: XElement): XElement[] {
  return el.children.filter(isElement);
}

export function findChild(el: XElement, ns: string, local: string): XElement | undefined {
  return childElements(el).find((c) => c.ns === ns && c.local === local);
}

/**
 * Serialises element content back to XML whose meaning does not depend on any outer
 * declaration: every element carries its own default-namespace declaration where it
 * changes, so the value can be embedded anywhere in a response. `inheritedDefault`
 * is the default namespace in effect where the markup will be placed.
 */
export function serializeChildren(nodes: XNode[], inheritedDefault = ''): string {
  let out = '';
  for (const n of nodes) {
    if (!isElement(n)) {
      out += n.cdata ? escapeXml(n.text) : n.text;
      continue;
    }
    let attrs = n.ns !== inheritedDefault ? ` xmlns="${escapeXml(n.ns)}"` : '';
    let i = 0;
    for (const [key, value] of n.attrs) {
      const close = key.indexOf('}');
      const ans = key.slice(1, close);
      const local = key.slice(close + 1);
      if (ans === '') attrs += ` ${local}="${escapeXml(value)}"`;
      else {
        const p = `a${i++}`;
        attrs += ` xmlns:${p}="${escapeXml(ans)}" ${p}:${local}="${escapeXml(value)}"`;
      }
    }
    out += n.children.length === 0 ? `<${n.local}${attrs}/>` : `<${n.local}${attrs}>${serializeChildren(n.children, n.ns)}</${n.local}>`;
  }
  return out;
}
