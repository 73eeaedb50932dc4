// A job's env and secrets cross the Queue and the runner's request sealed with AES-GCM under a
// key only the Worker and the runner hold (JOB_SECRETS_KEY), so neither the Queue's storage nor
// a request log sees them in plain text. WebCrypto only: the same code runs in workerd and Node.

/** What the sealed part of a job holds. */
export interface JobValues {
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
}

export type AesKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

const KEY_BYTES = 32;
const IV_BYTES = 12;
const VERSION = "v1";
/** `v1.<iv>.<ciphertext and tag>`, both base64url. */
export const SEALED_VALUES_PATTERN = /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$/;

export class SealedValuesError extends Error {
  override readonly name = "SealedValuesError";
}

/**
 * Why a JOB_SECRETS_KEY value is unusable, or null when it is a key: the base64 (or base64url)
 * of 32 random bytes, as `openssl rand -base64 32` prints it.
 */
export function jobSecretsKeyProblem(value: string): string | null {
  const bytes = decodeBase64(value.trim());
  if (bytes === null)
    return "JOB_SECRETS_KEY is not base64 (make one with `openssl rand -base64 32`)";
  if (bytes.length !== KEY_BYTES)
    return `JOB_SECRETS_KEY must be ${KEY_BYTES} bytes of base64 (\`openssl rand -base64 32\`), got ${bytes.length} bytes`;
  return null;
}

/** Imports the shared key; throws naming the problem when the value is not one. */
export async function importJobSecretsKey(value: string): Promise<AesKey> {
  const problem = jobSecretsKeyProblem(value);
  const bytes = decodeBase64(value.trim());
  if (problem !== null || bytes === null) throw new SealedValuesError(problem ?? "bad key");
  return crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
}

// The job id is authenticated with the ciphertext: values sealed for one job cannot be moved
// into another job's message, whoever can write to the Queue.
function additionalData(jobId: string): Uint8Array {
  return new TextEncoder().encode(`build-log-stream job values ${VERSION} ${jobId}`);
}

export async function sealJobValues(
  key: AesKey,
  jobId: string,
  values: JobValues,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new TextEncoder().encode(
    JSON.stringify({ env: values.env, secrets: values.secrets }),
  );
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: additionalData(jobId) },
    key,
    plain,
  );
  return `${VERSION}.${encodeBase64Url(iv)}.${encodeBase64Url(new Uint8Array(sealed))}`;
}

/** Opens what sealJobValues() sealed for this job; throws SealedValuesError otherwise. */
export async function openJobValues(
  key: AesKey,
  jobId: string,
  sealed: string,
): Promise<JobValues> {
  const [version, ivText, dataText] = sealed.split(".");
  const iv = decodeBase64(ivText ?? "");
  const data = decodeBase64(dataText ?? "");
  if (version !== VERSION || iv === null || iv.length !== IV_BYTES || data === null)
    throw new SealedValuesError(`the sealed values are not ${VERSION}.<iv>.<data>`);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: additionalData(jobId) },
      key,
      data,
    );
  } catch (error) {
    throw new SealedValuesError(
      "the sealed values do not open with this JOB_SECRETS_KEY for this job (another key, another job, or altered)",
      { cause: error },
    );
  }
  const value: unknown = JSON.parse(new TextDecoder().decode(plain));
  if (!isJobValues(value)) throw new SealedValuesError("the sealed values are not {env, secrets}");
  return value;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === "string")
  );
}

function isJobValues(value: unknown): value is JobValues {
  if (typeof value !== "object" || value === null) return false;
  const fields: Record<string, unknown> = { ...value };
  return isStringRecord(fields.env) && isStringRecord(fields.secrets);
}

function encodeBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || text.length === 0) return null;
  const standard = text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
  try {
    const binary = atob(standard.padEnd(Math.ceil(standard.length / 4) * 4, "="));
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  } catch {
    return null;
  }
}

const importedKeys = new Map<string, Promise<AesKey>>();

/** importJobSecretsKey(), once per key value for the life of the process or isolate. */
export function jobSecretsKey(value: string): Promise<AesKey> {
  let key = importedKeys.get(value);
  if (key === undefined) {
    key = importJobSecretsKey(value);
    // A bad value is not kept: the next call reports it again rather than a cached rejection.
    key.catch(() => importedKeys.delete(value));
    importedKeys.set(value, key);
  }
  return key;
}
