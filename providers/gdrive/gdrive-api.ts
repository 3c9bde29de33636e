import { drive, type drive_v3 } from '@googleapis/drive';
import { FsError } from '../../core/fs-error';
import { authClient, authError, type OAuth2Client } from './gdrive-auth';
import { DriveMedia } from './gdrive-media';
import { apiReason, DEFAULT_RETRY, httpStatus, isUnreachable, withRetry, type RetryPolicy } from './gdrive-retry';

export const FOLDER = 'application/vnd.google-apps.folder';
export const SHORTCUT = 'application/vnd.google-apps.shortcut';
export const GOOGLE_PREFIX = 'application/vnd.google-apps.';

/** Only what vdfs uses: listings stay small (10,000 files is about 3 MB, not 30). */
export const FILE_FIELDS = 'id,name,mimeType,size,md5Checksum,version,modifiedTime,createdTime,parents,trashed,shortcutDetails(targetId,targetMimeType)';
export const LIST_FIELDS = `nextPageToken,files(${FILE_FIELDS})`;

export type DriveFile = drive_v3.Schema$File;

/** Every request goes through the caller's retry loop; the library's own retries are off. */
const NO_RETRY = { retry: false } as const;

/** A Drive API failure as FsError (auth first: it names the command that fixes it). */
export function driveError(err: unknown, what: string): FsError {
  if (err instanceof FsError) return err;
  const a = authError(err, what);
  if (a) return a;
  if (isUnreachable(err)) return new FsError('EHOSTDOWN', `${what}: Google Drive unreachable (${(err as Error).message})`, err);
  const s = httpStatus(err);
  const { reason, message } = apiReason(err);
  const msg = message ?? (err as Error)?.message ?? String(err);
  if (s === 404) return new FsError('ENOENT', `${what}: not found on Drive (${msg})`, err);
  if (s === 403) return new FsError('EACCES', `${what}: Drive refused (${reason ?? 'forbidden'}: ${msg})`, err);
  if (s === 400) return new FsError('EINVAL', `${what}: Drive rejected the request (${msg})`, err);
  return new FsError('EIO', `${what}: ${msg}`, err);
}

/** The Drive client of one location: the library, the OAuth client, the retry policy. */
export class DriveApi {
  readonly drive: drive_v3.Drive;
  readonly auth: OAuth2Client;
  /** Content downloads (alt=media), straight over node:http(s) with the same OAuth client. */
  readonly media: DriveMedia;

  /** `homeDir`: the vdfs home whose gdrive/ holds the tokens (tokenFile's default without it). */
  constructor(
    readonly rootUrl: string,
    readonly retry: RetryPolicy = DEFAULT_RETRY,
    homeDir?: string,
  ) {
    this.auth = authClient(homeDir);
    this.drive = drive({ version: 'v3', auth: this.auth, rootUrl, ...NO_RETRY });
    this.media = new DriveMedia(rootUrl, this.auth);
  }

  /** One call with bounded retries; FsError out. */
  call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(what, this.retry, fn, (err) => driveError(err, what), signal);
  }

  async getMeta(id: string, what: string): Promise<DriveFile> {
    return this.call(what, async () => (await this.drive.files.get({ fileId: id, fields: FILE_FIELDS, supportsAllDrives: true }, NO_RETRY)).data);
  }

  /** One page of a files.list query (not trashed, all drives). */
  async listPage(q: string, pageToken: string | undefined, what: string): Promise<{ files: DriveFile[]; next?: string }> {
    return this.call(what, async () => {
      const r = await this.drive.files.list(
        { q: `(${q}) and trashed = false`, fields: LIST_FIELDS, pageSize: 1000, pageToken, supportsAllDrives: true, includeItemsFromAllDrives: true },
        NO_RETRY,
      );
      return { files: r.data.files ?? [], next: r.data.nextPageToken ?? undefined };
    });
  }

  /** Every child of the folders in `parents` (one query, paged). */
  async listChildren(parents: string[], what: string): Promise<DriveFile[]> {
    const q = parents.map((p) => `'${p.replace(/['\\]/g, '\\$&')}' in parents`).join(' or ');
    const out: DriveFile[] = [];
    let token: string | undefined;
    do {
      const page = await this.listPage(q, token, what);
      out.push(...page.files);
      token = page.next;
    } while (token);
    return out;
  }

  async create(body: DriveFile, what: string): Promise<DriveFile> {
    return this.call(what, async () => (await this.drive.files.create({ requestBody: body, fields: FILE_FIELDS, supportsAllDrives: true }, NO_RETRY)).data);
  }

  async update(id: string, body: DriveFile, what: string, parents?: { add?: string; remove?: string }): Promise<DriveFile> {
    return this.call(
      what,
      async () =>
        (
          await this.drive.files.update(
            { fileId: id, requestBody: body, addParents: parents?.add, removeParents: parents?.remove, fields: FILE_FIELDS, supportsAllDrives: true },
            NO_RETRY,
          )
        ).data,
    );
  }

  async export(id: string, mimeType: string, what: string): Promise<Buffer> {
    return this.call(what, async () => Buffer.from((await this.drive.files.export({ fileId: id, mimeType }, { ...NO_RETRY, responseType: 'arraybuffer' })).data as ArrayBuffer));
  }

  async startPageToken(what: string): Promise<string> {
    return this.call(what, async () => (await this.drive.changes.getStartPageToken({ supportsAllDrives: true }, NO_RETRY)).data.startPageToken ?? '');
  }

  /** Every change since `token`, and the token to ask with next time. */
  async changesSince(token: string, what: string): Promise<{ changes: drive_v3.Schema$Change[]; next: string }> {
    const changes: drive_v3.Schema$Change[] = [];
    let t = token;
    for (;;) {
      const r = await this.call(
        what,
        async () =>
          (
            await this.drive.changes.list(
              {
                pageToken: t,
                pageSize: 1000,
                fields: `nextPageToken,newStartPageToken,changes(fileId,removed,file(${FILE_FIELDS}))`,
                supportsAllDrives: true,
                includeItemsFromAllDrives: true,
              },
              NO_RETRY,
            )
          ).data,
      );
      changes.push(...(r.changes ?? []));
      if (r.newStartPageToken) return { changes, next: r.newStartPageToken };
      if (!r.nextPageToken) return { changes, next: t };
      t = r.nextPageToken;
    }
  }
}
