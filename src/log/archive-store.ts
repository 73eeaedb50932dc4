import { AwsClient } from "aws4fetch";
import { workerConfig } from "../config.ts";

/**
 * Where archived logs go: R2 through its binding, or any S3-compatible store. Reads take a
 * byte range, so a reader fetches the one gzip block it needs, never a whole segment or log.
 */
export interface ArchiveStore {
  readonly name: "r2" | "s3";
  put(key: string, body: Uint8Array, contentType: string): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
  /** `length` bytes from `offset`; null when the object does not exist. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array | null>;
}

export function r2Store(bucket: R2Bucket): ArchiveStore {
  return {
    name: "r2",
    async put(key, body, contentType) {
      // Stored as gzip files (Content-Type application/gzip), not as gzip-encoded NDJSON: a
      // range of a gzip-encoded object would be decoded on the way back, and could not be.
      await bucket.put(key, body, { httpMetadata: { contentType } });
    },
    async get(key) {
      const object = await bucket.get(key);
      return object === null ? null : new Uint8Array(await object.arrayBuffer());
    },
    async getRange(key, offset, length) {
      const object = await bucket.get(key, { range: { offset, length } });
      return object === null ? null : new Uint8Array(await object.arrayBuffer());
    },
  };
}

export interface S3Settings {
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** An S3-compatible bucket through aws4fetch (SigV4), path-style URLs. */
export function s3Store(settings: S3Settings): ArchiveStore {
  const client = new AwsClient({
    accessKeyId: settings.accessKeyId,
    secretAccessKey: settings.secretAccessKey,
    service: "s3",
    region: settings.region,
  });
  const url = (key: string) =>
    `${settings.endpoint.replace(/\/$/, "")}/${settings.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const read = async (key: string, headers: Record<string, string>) => {
    const response = await client.fetch(url(key), { headers });
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok) throw new Error(`S3 GET ${key} answered ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  return {
    name: "s3",
    async put(key, body, contentType) {
      const response = await client.fetch(url(key), {
        method: "PUT",
        body,
        headers: { "Content-Type": contentType },
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`S3 PUT ${key} answered ${response.status}`);
    },
    get: (key) => read(key, {}),
    getRange: (key, offset, length) =>
      read(key, { Range: `bytes=${offset}-${offset + length - 1}` }),
  };
}

/** S3 when its settings are all given (src/config.ts), else the R2 binding. */
export function archiveStoreFromEnv(env: Env): ArchiveStore {
  const { s3 } = workerConfig(env);
  return s3 === null ? r2Store(env.ARCHIVE) : s3Store(s3);
}
