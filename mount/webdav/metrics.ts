/**
 * Request metrics for /~vdfs/metrics, in the Prometheus text format written by hand (a
 * client library would be one more dependency for a dozen lines).
 */
export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latencySum = new Map<string, number>();
  private readonly latencyCount = new Map<string, number>();
  /** Cumulative histogram buckets per method: `le` upper bounds in seconds. */
  private readonly buckets = new Map<string, number[]>();
  bytesIn = 0;
  bytesOut = 0;
  private readonly started = Date.now();

  observe(method: string, status: number, seconds: number): void {
    const m = KNOWN_METHODS.has(method) ? method : 'OTHER';
    const k = `method="${m}",status="${status}"`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    const mk = `method="${m}"`;
    this.latencySum.set(mk, (this.latencySum.get(mk) ?? 0) + seconds);
    this.latencyCount.set(mk, (this.latencyCount.get(mk) ?? 0) + 1);
    let b = this.buckets.get(m);
    if (!b) this.buckets.set(m, (b = BUCKETS.map(() => 0)));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) b[i]!++;
  }

  render(gauges: { openHandles: number; locks: number; inFlight: number; scryptRuns: number }): string {
    const lines: string[] = [];
    lines.push('# HELP vdfs_webdav_requests_total WebDAV requests by method and status.', '# TYPE vdfs_webdav_requests_total counter');
    for (const [k, v] of this.requests) lines.push(`vdfs_webdav_requests_total{${k}} ${v}`);
    lines.push('# HELP vdfs_webdav_request_seconds Time to answer a request.', '# TYPE vdfs_webdav_request_seconds histogram');
    for (const [k, v] of this.latencySum) {
      const m = k.slice('method="'.length, -1);
      const b = this.buckets.get(m) ?? [];
      BUCKETS.forEach((le, i) => lines.push(`vdfs_webdav_request_seconds_bucket{${k},le="${le}"} ${b[i] ?? 0}`));
      lines.push(`vdfs_webdav_request_seconds_bucket{${k},le="+Inf"} ${this.latencyCount.get(k)}`);
      lines.push(`vdfs_webdav_request_seconds_sum{${k}} ${v}`, `vdfs_webdav_request_seconds_count{${k}} ${this.latencyCount.get(k)}`);
    }
    lines.push(
      '# HELP vdfs_webdav_received_bytes_total Body bytes received (PUT).',
      '# TYPE vdfs_webdav_received_bytes_total counter',
      `vdfs_webdav_received_bytes_total ${this.bytesIn}`,
    );
    lines.push('# HELP vdfs_webdav_sent_bytes_total Body bytes sent (GET).', '# TYPE vdfs_webdav_sent_bytes_total counter', `vdfs_webdav_sent_bytes_total ${this.bytesOut}`);
    lines.push('# HELP vdfs_webdav_open_handles VFS handles held by WebDAV requests.', '# TYPE vdfs_webdav_open_handles gauge', `vdfs_webdav_open_handles ${gauges.openHandles}`);
    lines.push('# HELP vdfs_webdav_locks Active WebDAV locks.', '# TYPE vdfs_webdav_locks gauge', `vdfs_webdav_locks ${gauges.locks}`);
    lines.push(
      '# HELP vdfs_webdav_requests_in_flight Requests being answered.',
      '# TYPE vdfs_webdav_requests_in_flight gauge',
      `vdfs_webdav_requests_in_flight ${gauges.inFlight}`,
    );
    lines.push(
      '# HELP vdfs_webdav_password_checks_total scrypt password verifications run (this process).',
      '# TYPE vdfs_webdav_password_checks_total counter',
      `vdfs_webdav_password_checks_total ${gauges.scryptRuns}`,
    );
    lines.push(
      '# HELP vdfs_webdav_uptime_seconds Seconds since the server started.',
      '# TYPE vdfs_webdav_uptime_seconds gauge',
      `vdfs_webdav_uptime_seconds ${(Date.now() - this.started) / 1000}`,
    );
    return lines.join('\n') + '\n';
  }
}

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

export const KNOWN_METHODS = new Set(['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'POST']);
