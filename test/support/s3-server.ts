// An S3-compatible server on loopback (s3rver: the S3 REST protocol over real HTTP, objects on
// disk) with the `build-logs` bucket, for testing the archive's S3 store. Run as its own
// process; prints `S3_ENDPOINT=<url>` when ready and stops on SIGTERM.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";

const directory = mkdtempSync(join(tmpdir(), "s3rver-"));
const server = new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory,
  configureBuckets: [{ name: "build-logs", configs: [] }],
});
const info = (await server.run()) as { port: number };
console.log(`S3_ENDPOINT=http://127.0.0.1:${info.port}`);
process.on("SIGTERM", () => {
  void server.close().finally(() => {
    rmSync(directory, { recursive: true, force: true });
    process.exit(0);
  });
});
