import type { ProviderEntry } from '../../core/provider';
import type { DriveApi, DriveFile } from './gdrive-api';

/** One child as vdfs sees it: a shortcut is its target with the shortcut's name. */
export interface Node {
  /** The id to read from (a shortcut's target). */
  id: string;
  /** The id of the entry itself in its folder (the shortcut), for rename and remove. */
  selfId: string;
  name: string;
  kind: 'dir' | 'file' | 'doc';
  file: DriveFile;
}

/**
 * What the tree walks (gdrive-walk, gdrive-changes) need of the provider; GdriveProvider is
 * one. Every method throws FsError as the Provider interface says.
 */
export interface DriveTree {
  readonly loc: { folderId: string };
  readonly api: DriveApi;
  /** The node at a location-relative path (ENOENT when there is none). */
  resolve(rel: string, what: string): Promise<Node>;
  /** A listed file as a node; undefined for what vdfs leaves out (trashed, broken shortcuts). */
  toNode(f: DriveFile, what: string): Promise<Node | undefined>;
  /** The children of one folder by their unique, POSIX-safe names. */
  named(nodes: Node[]): Map<string, Node>;
  entry(n: Node, what: string): Promise<ProviderEntry>;
}
