import type { ServerResponse } from 'node:http';
import { statusLine } from './status';
import { escapeXml } from './xml';

export const XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n';

/** One property in a response: its namespace, name and already-serialised inner XML. Plain data: nothing throws. */
export interface PropOut {
  ns: string;
  name: string;
  /** Inner XML; undefined renders an empty element (propname, 404 lists). */
  xml?: string;
}

/** Renders one property element so that it carries its own namespace declaration. */
export function renderProp(p: PropOut): string {
  let open: string;
  let close: string;
  if (p.ns === 'DAV:') {
    open = `D:${p.name}`;
    close = open;
  } else if (p.ns === '') {
    open = `${p.name} xmlns=""`;
    close = p.name;
  } else {
    open = `R:${p.name} xmlns:R="${escapeXml(p.ns)}"`;
    close = `R:${p.name}`;
  }
  return p.xml === undefined || p.xml === '' ? `<${open}/>` : `<${open}>${p.xml}</${close}>`;
}

/** A `<D:response>` with one propstat per status. */
export function renderResponse(href: string, byStatus: Map<number, PropOut[]>, description?: string): string {
  let out = `<D:response><D:href>${escapeXml(href)}</D:href>`;
  for (const [status, props] of byStatus) {
    if (props.length === 0) continue;
    out += `<D:propstat><D:prop>${props.map(renderProp).join('')}</D:prop><D:status>${statusLine(status)}</D:status></D:propstat>`;
  }
  if (description) out += `<D:responsedescription>${escapeXml(description)}</D:responsedescription>`;
  return out + '</D:response>\n';
}

/** A `<D:response>` carrying only a status (DELETE/COPY failures on members). */
export function renderStatusResponse(href: string, status: number): string {
  return `<D:response><D:href>${escapeXml(href)}</D:href><D:status>${statusLine(status)}</D:status></D:response>\n`;
}

/** Sends a complete small XML body. */
export function sendXml(res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
  const buf = Buffer.from(XML_HEAD + body, 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(buf.length), ...headers });
  res.end(buf);
}
